"""The program's recursion depth stays its own.

CPython counts every Python frame of a thread against ``sys.getrecursionlimit()``,
blocktrace's too: the frames ``blocktrace run`` keeps under the program, and the
frames of a Python-level callback (and its tracer) above it.  Untouched, a traced
program would meet ``RecursionError`` some frames before it does under python.

The interpreter keeps, per thread, how many frames are left
(``py_recursion_remaining``, beside ``py_recursion_limit`` in ``PyThreadState``);
``sys.setrecursionlimit`` keeps the difference between the two, so a shift of
the remaining count survives the program changing its limit, and
``sys.getrecursionlimit()`` shows the program's own limit.  There is no API to
shift it, so the field is found once, by looking at the thread state from two
depths (through ``ctypes``), and only used when it was found unambiguously; else
nothing is shifted (and docs/ARCHITECTURE.md says what that leaves).

Two uses, neither on the per-instruction path: ``blocktrace run`` gives back the
frames under the program (:func:`as_program_bottom`), and a callback or tracer
that hits the limit while the program is near it is called again with room
(:func:`call_with_room`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["CALLBACK_ROOM", "ROOM", "as_program_bottom", "call_with_room", "counter", "shift"]

ROOM = 200
"""Frames lent to a callback that hit the limit (a tracer rendering nested values
needs a few dozen)."""

CALLBACK_ROOM = 2
"""Frames lent to the thread that started tracing for as long as it runs: a
Python-level callback at the program's deepest frame needs one for itself and
one for its failure path, which then lends itself :data:`ROOM`.  (A program
frame pushed into them fails at its start instead of at its call: the same
depth, with one more frame in the traceback.)"""

_WORDS = 128
_field: list[Any] = []  # [offset] once found, [None] when it cannot be


def _find() -> int | None:
    """The index (in C ints) of ``py_recursion_remaining`` in this interpreter's
    thread state: the int followed by the limit that drops by one per frame."""
    try:
        import ctypes

        get = ctypes.pythonapi.PyThreadState_Get
        get.restype = ctypes.c_void_p

        def snapshot() -> list[int]:
            return list((ctypes.c_int * _WORDS).from_address(get())[:])

        limit = sys.getrecursionlimit()
        a = snapshot()
        b = (lambda: snapshot())()
        c = (lambda: (lambda: snapshot())())()
    except Exception:
        return None
    found = [
        i for i in range(_WORDS - 1)
        if a[i + 1] == b[i + 1] == c[i + 1] == limit and a[i] - b[i] == 1 and b[i] - c[i] == 1
    ]
    return found[0] if len(found) == 1 else None


def counter() -> Any:
    """This thread's count of frames left (a ``ctypes.c_int`` over it: adding to
    its ``value`` pushes no frame, so it works at the limit itself), or None
    where it cannot be found."""
    if not _field:
        _field.append(_find())
    offset = _field[0]
    if offset is None:
        return None
    import ctypes

    get = ctypes.pythonapi.PyThreadState_Get
    get.restype = ctypes.c_void_p
    return ctypes.c_int.from_address(get() + offset * ctypes.sizeof(ctypes.c_int))


def shift(frames: int) -> bool:
    """Give this thread ``frames`` more frames before ``RecursionError`` (take
    them back with a negative count).  False when it cannot be done here."""
    count = counter()
    if count is None:
        return False
    count.value += frames
    return True


@contextmanager
def as_program_bottom() -> Iterator[None]:
    """Inside: the caller's frame counts as depth 0, as the C code under a
    program is under python (a script's module frame, or ``runpy``'s for
    ``-m``, runs at depth 1), so that blocktrace's frames under the program
    cost it nothing."""
    depth = 0
    frame: FrameType | None = sys._getframe(2)  # the caller of the ``with``
    while frame is not None:
        depth += 1
        frame = frame.f_back
    shifted = depth > 0 and shift(depth)
    try:
        yield
    finally:
        if shifted:
            shift(-depth)


def call_with_room(call: Callable[[Any, Any], object], vm: Any, event: Any) -> object:
    """``call(vm, event)`` again, with :data:`ROOM` more frames: for a call that
    raised ``RecursionError`` while the program is near the limit (its own
    depth, not the tracer's fault).  Raises what the call raises; the
    ``RecursionError`` again when no room can be made."""
    if not shift(ROOM):
        raise RecursionError("maximum recursion depth exceeded")
    try:
        return call(vm, event)
    finally:
        shift(-ROOM)
