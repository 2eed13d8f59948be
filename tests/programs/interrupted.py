"""Ctrl-C (an uncaught KeyboardInterrupt) from inside a function."""


def wait() -> None:
    raise KeyboardInterrupt


wait()
