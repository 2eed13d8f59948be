"""Leaves a file open at module level, calls a function, and ends (normally,
or by an exception with "raise"): python flushes the file as it tears down
__main__.  Its exit handler sees this module as __main__."""

import atexit
import sys

left_open = open(sys.argv[1], "w")  # noqa: SIM115 - closed by the interpreter at exit
left_open.write("written, never flushed by the program\n")
marker = "the program's own __main__"


def at_exit() -> None:
    import __main__

    print("at exit:", getattr(__main__, "marker", "another __main__"), sys.argv[0], len(sys.argv))


atexit.register(at_exit)


def work(how: str) -> None:
    if how == "raise":
        raise ValueError("ends by an exception")


work(sys.argv[2] if len(sys.argv) > 2 else "")
