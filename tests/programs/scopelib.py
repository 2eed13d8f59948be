"""A module of "library" code for the scope tests: traced unless excluded."""

from collections.abc import Callable


def helper(x: int) -> int:
    return x + 1


def apply(fn: Callable[[int], int], x: int) -> int:
    return fn(x)


def target(x: int) -> int:
    return helper(x) * 2
