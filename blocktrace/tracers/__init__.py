"""The tracer protocol and the one active tracer (after ``ethereum.trace``).

A tracer is any callable ``tracer(vm, event)``.  ``vm`` is the live stepper
state (see :class:`VMState`) and ``event`` one of :mod:`blocktrace.events`.
Exactly one tracer is active at a time; :func:`set_tracer` swaps it and returns
the previous one, and :func:`discard_trace` -- which does nothing -- is the
default and the overhead baseline.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Protocol

from blocktrace.events import TraceEvent
from blocktrace.tracers.render import Renderer

__all__ = [
    "Tracer",
    "VMState",
    "at_recursion_limit",
    "belongs_to_program",
    "discard_trace",
    "emit",
    "get_tracer",
    "set_tracer",
]


class VMState(Protocol):
    """What a tracer may read from the stepper while it handles an event.

    Read it during the call only: the values change with the next event.
    """

    gas: int
    """Steps left in the budget, before the current instruction is charged."""
    gas_limit: int
    """The budget the run started with."""
    depth: int
    """Call depth inside the traced scope of the current thread, from 1."""
    thread: int
    """Per-trace number of the thread the event happened on: 1 for the thread
    that started tracing, then 2, 3, ... in order of first traced event."""
    threads_seen: int
    """How many threads have run traced code so far (events are tagged with the
    thread once this exceeds 1)."""
    @property
    def code(self) -> CodeType | None:
        """The code object of the event (``None`` for ``Stop``)."""
        ...

    @property
    def offset(self) -> int:
        """Bytecode offset of the event (the ``pc``)."""
        ...

    renderer: Renderer
    """Bounded, side-effect-free value rendering shared by the run's tracers."""

    @property
    def gas_used(self) -> int: ...

    def restart_events(self) -> None:
        """Turn back on every site a tracer turned off with ``DISABLE``."""
        ...

    @property
    def frame(self) -> FrameType | None:
        """The live Python frame running ``code``, found on demand (slow)."""
        ...


class Tracer(Protocol):
    """Receives every event of a traced run, in order, on the thread that ran it.

    A tracer object may also carry an instance attribute ``fast_call``: a
    callable doing exactly what calling the tracer does, which the stepper then
    calls per instruction instead (``ChainTracer`` offers its C line writer)."""

    def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
        """Handle one event.  The result is ignored, except for a tracer with
        ``may_disable = True``: returning ``sys.monitoring.DISABLE`` for an
        ``OpStart`` turns that instruction site off until ``vm.restart_events()``."""
        ...


def discard_trace(vm: VMState, event: TraceEvent, /) -> None:
    """The default tracer: ignores everything.  Tracing cost with it is the
    stepper's own cost.  (With the C extension built, the stepper's C callback
    calls the same no-op written in C, ``blocktrace.vm._chook.discard``.)"""


class _Active:
    __slots__ = ("tracer", "watcher")

    def __init__(self) -> None:
        self.tracer: Tracer = discard_trace
        self.watcher: Callable[[Tracer], None] | None = None
        """Told of every swap (the running stepper, which captures the tracer
        in its per-instruction callback)."""


_active = _Active()
"""The stepper reads ``_active.tracer`` on every event, so a swap takes effect at
the next event."""


def set_tracer(tracer: Tracer) -> Tracer:
    """Make ``tracer`` the active tracer and return the one it replaces."""
    old = _active.tracer
    _active.tracer = tracer
    watcher = _active.watcher
    if watcher is not None:
        watcher(tracer)
    return old


def get_tracer() -> Tracer:
    """The active tracer."""
    return _active.tracer


def emit(vm: VMState, event: TraceEvent) -> None:
    """Send ``event`` to the active tracer."""
    _active.tracer(vm, event)


def at_recursion_limit(margin: int = 50) -> bool:
    """Whether this thread's stack is within ``margin`` frames of the recursion
    limit.  A ``RecursionError`` from a tracer there is the traced program's own
    depth (it would hit the limit a few frames later untraced), not a tracer bug:
    it goes to the program instead of detaching the tracer.  Walks the stack, so
    only for failure paths."""
    depth = 0
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth >= sys.getrecursionlimit() - margin


def belongs_to_program(exc: BaseException) -> bool:
    """Whether ``exc``, caught in blocktrace's own code, is the traced program's.

    Python runs signal handlers wherever the main thread is, inside a tracer or
    the stepper too: Ctrl-C's ``KeyboardInterrupt``, a ``SystemExit`` from a
    SIGTERM handler, a timeout a ``SIGALRM`` handler raises.  Those must reach
    the program as they would untraced, not be taken for a tracer failure or a
    value that would not render.  (Walks the traceback: failure paths only.)"""
    if not isinstance(exc, Exception):
        return True
    import signal

    handlers = set()
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        code = getattr(getattr(handler, "__func__", handler), "__code__", None)
        if code is not None:
            handlers.add(code)
    tb = exc.__traceback__
    while tb is not None and handlers:
        if tb.tb_frame.f_code in handlers:
            return True
        tb = tb.tb_next
    return False
