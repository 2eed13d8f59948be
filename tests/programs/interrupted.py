"""Ctrl-C (an uncaught KeyboardInterrupt) from inside a function, after
registering an exit handler and writing to a file left for the interpreter to
close: both must happen under blocktrace as under python."""

import atexit
import sys

if len(sys.argv) > 1:
    left_open = open(sys.argv[1], "w")  # noqa: SIM115 - closed by the interpreter at exit
    left_open.write("written before Ctrl-C\n")
atexit.register(print, "atexit ran")


def wait() -> None:
    raise KeyboardInterrupt


wait()
