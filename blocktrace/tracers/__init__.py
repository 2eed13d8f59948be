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
from dataclasses import dataclass
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, MethodType
from typing import Any, Literal, Protocol

from blocktrace.events import TraceEvent
from blocktrace.tracers.render import Renderer

__all__ = [
    "LEVELS",
    "Capabilities",
    "Level",
    "Tracer",
    "VMState",
    "at_recursion_limit",
    "belongs_to_program",
    "capabilities_changed",
    "capabilities_of",
    "direct_call",
    "discard_trace",
    "emit",
    "finest",
    "get_tracer",
    "set_tracer",
]


Level = Literal["op", "line", "call"]
"""How much of a run a tracer is sent (see ``Tracer.level``)."""
LEVELS: tuple[Level, ...] = ("op", "line", "call")
"""The levels, finest first."""


def finest(levels: list[Level]) -> Level:
    """The finest of ``levels`` (``call`` for none: nobody wants instructions)."""
    return min(levels, key=LEVELS.index, default="call")


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

    Any callable ``tracer(vm, event)`` is a tracer.  A tracer object may also
    declare what it needs from the stepper, as attributes; each is optional, an
    absent one means its default, and :func:`capabilities_of` reads them all
    (the stepper does, on every :func:`set_tracer` and every change of a
    ``Tee``):

    ``wants_op_end: bool = False``
        send ``OpEnd`` events too (they cost a second call per instruction).
    ``may_disable: bool = False``
        the tracer may answer ``sys.monitoring.DISABLE`` for an ``OpStart`` to
        turn that instruction site off (until ``vm.restart_events()``); without
        it the answer is ignored.
    ``fast_call: Callable[[VMState, TraceEvent], object] | None = None``
        a callable doing exactly what calling the tracer does, more directly,
        which the stepper calls instead (``ChainTracer`` offers its C line
        writer: no Python frame per instruction).
    ``op_line: Callable[[OpStart, int, int], bool] | None = None``
        a callable that handles an ``OpStart`` from plain values,
        ``op_line(event, gas, depth)``, returning True when it did (what the
        tracer would have done) and False when it did not, and the tracer is
        then called as usual; the stepper's hook passes gas and depth itself
        (``ChainTracer`` offers its line writer's ``op``).
    ``call_lines: tuple[line, pieces] | None = None``
        the tracer's call and return lines may be written by the stepper's C
        call hooks, read from the instance like ``op_line``: ``line(body)``
        writes a line body (``ChainTracer`` offers its line writer's ``line``)
        and ``pieces(event)`` gives, after the tracer handled a code object's
        first ``CallStart``, the two pieces of its call lines
        (``blocktrace.format.callline.call_pieces``) or None when its lines are
        not that plain (threads, a clock, values); returns are then written as
        ``blocktrace.format.callline.return_body`` with the value rendered by
        ``vm.renderer``, and the tracer gets no ``CallStart``/``Return`` for them.

    When ``op_line`` or ``line`` is a builtin method of a *sink* (a C type that
    names it in its ``_sink_api``, blocktrace/events/csrc/sink.h: the C line
    writer, the ``Recorder``'s log), the stepper's C hooks call its C function
    instead, with plain C values; a sink may take calls and returns as values
    (``Recorder``) rather than lines.
    ``level: "op" | "line" | "call" = "op"``
        which events the stepper produces: ``op`` every one; ``line`` the
        ``OpStart`` of the first instruction of each source-line range
        (``OpStart.line_start``) and no other, with every call, return,
        exception and ``Stop``; ``call`` no ``OpStart`` at all.  Gas still
        counts every instruction executed.  (Any other value reads as ``op``.)
    ``counts_gas: bool = True``
        False: at ``call`` level, without a gas limit, the stepper need not
        count instructions (no per-instruction event at all; gas stays at its
        limit, ``gas_used`` 0).  The golden recorder at ``calls`` level, which
        does not compare gas, declares it; a trace says so in its header.
    ``return_values: bool = True``
        False: the tracer records no return values (its return lines have no
        ``value`` member); the stepper's C hooks then render none.  The golden
        recorder at ``calls`` level without values declares it.
    ``record_failure: Callable[[str], object] | None = None``
        told, with a one-line message, when this tracer (or one beside it in a
        ``Tee``) failed and was detached: ``ChainTracer`` writes it into the trace.

    They are declared on :class:`Capabilities`, not here, so that a plain
    function stays a ``Tracer`` for the type checker.
    """

    def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
        """Handle one event.  The result is ignored, except for a tracer with
        ``may_disable = True`` (see above)."""
        ...


CallPieces = tuple[bytes, bytes] | None
"""A code object's call-line pieces (see ``Capabilities.call_lines``), or None."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a tracer asked of the stepper, its optional attributes resolved once
    (see :class:`Tracer` for what each means).  The defaults are a plain
    function's: only ``OpStart``/``CallStart``/... events, no ``DISABLE``, called
    as it is, nobody to tell of failures."""

    wants_op_end: bool = False
    may_disable: bool = False
    fast_call: Callable[[Any, Any], object] | None = None
    op_line: Callable[[Any, int, int], bool] | None = None
    call_lines: tuple[Callable[[bytes], object], Callable[[Any], CallPieces]] | None = None
    record_failure: Callable[[str], object] | None = None
    level: Level = "op"
    counts_gas: bool = True
    return_values: bool = True


_PLAIN = Capabilities()
_FUNCTIONS = (FunctionType, MethodType, BuiltinFunctionType)


def capabilities_of(tracer: object) -> Capabilities:
    """The capabilities ``tracer`` declares, defaults for those it does not.

    A function or method has none (its attributes are not read: a function's
    ``__dict__`` is the program's business).  ``fast_call`` and ``op_line`` are read
    from the instance only, so that a method named so on a class is not taken for one.
    An attribute that cannot be read counts as absent."""
    if isinstance(tracer, _FUNCTIONS):
        return _PLAIN
    try:
        own = vars(tracer) if hasattr(tracer, "__dict__") else {}
        fast = own.get("fast_call")
        op_line = own.get("op_line")
        call_lines = own.get("call_lines")
        if not (type(call_lines) is tuple and len(call_lines) == 2
                and callable(call_lines[0]) and callable(call_lines[1])):
            call_lines = None
        record = getattr(tracer, "record_failure", None)
        level = getattr(tracer, "level", "op")
        return Capabilities(
            wants_op_end=bool(getattr(tracer, "wants_op_end", False)),
            may_disable=bool(getattr(tracer, "may_disable", False)),
            fast_call=fast if callable(fast) else None,
            op_line=op_line if callable(op_line) else None,
            call_lines=call_lines,
            record_failure=record if callable(record) else None,
            level=level if isinstance(level, str) and level in LEVELS else "op",
            counts_gas=getattr(tracer, "counts_gas", True) is not False,
            return_values=getattr(tracer, "return_values", True) is not False,
        )
    except Exception:
        return _PLAIN


def direct_call(tracer: object, caps: Capabilities | None = None) -> Callable[[Any, Any], object]:
    """What to call for ``tracer``: its ``fast_call`` if it has one, an
    instance's bound ``__call__`` (skips the type-slot lookup on every call),
    else the tracer itself."""
    fast = (caps if caps is not None else capabilities_of(tracer)).fast_call
    if fast is not None:
        return fast
    if not isinstance(tracer, _FUNCTIONS):
        bound = type(tracer).__dict__.get("__call__")
        if isinstance(bound, FunctionType):
            return MethodType(bound, tracer)
    return tracer  # type: ignore[return-value]


def discard_trace(vm: VMState, event: TraceEvent, /) -> None:
    """The default tracer: ignores everything.  Tracing cost with it is the
    stepper's own cost.  (With the C extension built, the stepper's C callback
    calls the same no-op written in C, ``blocktrace.vm._chook.discard``.)"""


class _Active:
    __slots__ = ("started", "starter", "tracer", "watcher")

    def __init__(self) -> None:
        self.tracer: Tracer = discard_trace
        self.watcher: Callable[[Tracer], None] | None = None
        """Told of every swap (the running stepper, which captures the tracer
        in its per-instruction callback)."""
        self.starter: Callable[[], None] | None = None
        """Starts a stepper for a tracer set while none runs (``blocktrace.vm``
        installs it: this layer does not import the stepper)."""
        self.started: Callable[[], None] | None = None
        """Stops the running stepper if ``starter`` started it."""


_active = _Active()
"""The stepper reads ``_active.tracer`` on every event, so a swap takes effect at
the next event."""


def set_tracer(tracer: Tracer) -> Tracer:
    """Make ``tracer`` the active tracer and return the one it replaces.

    A running stepper re-reads the new tracer's capabilities at once (see
    :class:`Tracer`).

    Setting a real tracer (anything but :func:`discard_trace`) while no stepper
    runs starts one, as ``blocktrace.start()`` with its defaults would, from the
    caller's next instruction on; like every stepper it stops at interpreter
    exit, and the tracer gets ``Stop`` with the program's outcome (a
    ``ChainTracer`` seals its file).  A ``start()`` right after ``set_tracer``
    takes over from it, with its own arguments (see ``blocktrace.start``).
    Setting :func:`discard_trace` stops the stepper ``set_tracer`` started (the
    tracer it replaces gets ``Stop``); one started by ``start()`` runs on until
    ``stop()``."""
    started = _active.started
    if tracer is discard_trace and started is not None:
        started()
    old = _swap(tracer)
    if _active.watcher is None and tracer is not discard_trace and _active.starter is not None:
        _active.starter()
    return old


def _swap(tracer: Tracer) -> Tracer:
    """``set_tracer`` without starting or stopping anything."""
    old = _active.tracer
    _active.tracer = tracer
    watcher = _active.watcher
    if watcher is not None:
        watcher(tracer)
    return old


def capabilities_changed(tracer: object) -> None:
    """``tracer`` (a ``Tee`` whose children changed) declares other capabilities
    now: if it is the active tracer, or inside it, the stepper re-reads them."""
    active = _active.tracer
    watcher = _active.watcher
    if watcher is not None and (active is tracer or _contains(active, tracer)):
        watcher(active)


def _contains(outer: object, inner: object) -> bool:
    children = getattr(outer, "tracers", None) if not isinstance(outer, _FUNCTIONS) else None
    if not isinstance(children, list):
        return False
    for child in children:
        if child is inner or _contains(child, inner):
            refresh = getattr(outer, "refresh", None)
            if callable(refresh):
                refresh()  # an outer Tee combines again, from the inner one's new state
            return True
    return False


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
