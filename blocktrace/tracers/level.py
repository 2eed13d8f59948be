"""Trace levels (``op``, ``line``, ``call``) and LevelFilter, their reference.

A trace's level says how much of the run it holds (docs/FORMAT.md, header
``level``):

- ``op``: every event (one line per instruction);
- ``line``: calls, returns, exceptions, the end of the run, and the ``OpStart``
  that starts each source-line range (``OpStart.line_start``);
- ``call``: calls, returns, exceptions and the end of the run.

A tracer declares its level (``Tracer.level``, a capability: ``ChainTracer``
has ``level=``) and the stepper produces only that level's events: at ``line``
and ``call`` the per-instruction hook charges gas for the other instructions
and emits nothing, so gas stays "instructions executed" whatever the level.

``LevelFilter`` is the same choice made in Python over ``op`` events: it
declares its level too (so the stepper skips the events for it), and still
drops what a finer producer sends it -- a ``Tee`` sends each tracer its own
level's events that way, and tests check the stepper against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blocktrace.events import OpStart, TraceEvent
from blocktrace.tracers import LEVELS, Level, Tracer, VMState, capabilities_of

__all__ = ["LEVELS", "Level", "LevelFilter", "check_level", "level_tracer", "only_level"]


def check_level(level: object) -> Level:
    """``level`` if it is one of ``LEVELS``, else ``ValueError``."""
    if not isinstance(level, str) or level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    return level


def only_level(
    call: Callable[[Any, Any], object], level: Level
) -> Callable[[Any, Any], object]:
    """``call`` behind ``level``'s choice of events (``call`` itself at ``op``)."""
    if level == "op":
        return call
    lines = level == "line"

    def filtered(vm: Any, event: Any) -> object:
        if type(event) is OpStart and not (lines and event.line_start):
            return None
        return call(vm, event)

    return filtered


class LevelFilter:
    """Sends ``tracer`` the events of ``level`` and drops the other ``OpStart``s.

    Declares ``level`` (the stepper then produces only those events) and passes
    ``record_failure`` on (the chain writer records a failed tracer)."""

    wants_op_end = False

    def __init__(self, tracer: Tracer, level: Level) -> None:
        self.tracer = tracer
        self.level = check_level(level)
        self._lines = level == "line"
        self._ops = level == "op"

    def __call__(self, vm: VMState, event: TraceEvent, /) -> Any:
        if type(event) is OpStart and not self._ops and not (self._lines and event.line_start):
            return None
        return self.tracer(vm, event)

    def record_failure(self, message: str) -> None:
        record = getattr(self.tracer, "record_failure", None)
        if record is not None:
            record(message)


def level_tracer(tracer: Tracer, level: Level) -> Tracer:
    """``tracer`` sent only ``level``'s events: itself when it declares that level
    (a ``ChainTracer(level=...)`` keeps its C fast path) or when ``level`` is
    ``op``, else behind a ``LevelFilter``.  A tracer that declares another level
    of its own (a ``ChainTracer`` whose header names one) is refused:
    ``ValueError``."""
    check_level(level)
    declared = capabilities_of(tracer).level
    if declared == level:
        return tracer
    if getattr(tracer, "level", None) is not None and not isinstance(tracer, LevelFilter):
        raise ValueError(f"the tracer records level {declared!r}, not {level!r} "
                         f"(give the level to the tracer itself)")
    return tracer if level == "op" else LevelFilter(tracer, level)
