"""A signal whose handler raises, arriving as an object the trace numbered dies.

``--locals on`` numbers ``thing`` (``<Thing #1>``) and watches it with a weak
reference; ``items.clear()`` drops it inside one C call right after the signal
was raised (ctypes: no bytecode between), so the first Python code to run -- where
CPython runs the handler -- is blocktrace's weak reference callback.  Untraced,
the handler runs in this program and the loop below is cut short; the program
prints whether it caught the timeout."""

import ctypes
import functools
import operator
import signal


class Timeout(Exception):
    pass


class Thing:
    pass


def on_usr1(signum, frame):
    raise Timeout("too slow")


signal.signal(signal.SIGUSR1, on_usr1)
send = getattr(ctypes.CDLL(None), "raise")
send.argtypes = [ctypes.c_int]


def spin():
    # a loop of its own: CPython 3.13.0 does not catch an exception a handler raises
    # at a loop's jump in the frame of the try when sys.monitoring watches the code
    n = 0
    while n < 2_000_000:  # a handler that never came ends the loop
        n += 1


def main():
    thing = Thing()
    items = [thing]
    del thing
    caught = False
    try:
        list(map(operator.call, [functools.partial(send, signal.SIGUSR1), items.clear]))
        spin()
    except Timeout:
        caught = True
    print("caught" if caught else "missed")


main()
