"""Imported by btprog's ``__main__``: traced too, as the user's own code."""


def double(x: int) -> int:
    return 2 * x
