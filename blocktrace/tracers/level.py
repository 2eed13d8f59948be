"""LevelFilter: pass on only the events a trace level keeps (``op``, ``line``, ``call``).

A trace's level says how much of the run it holds (docs/FORMAT.md, header
``level``):

- ``op``: every event (one line per instruction; today's trace);
- ``line``: calls, returns, exceptions, the end of the run, and the ``OpStart``
  that starts each source-line range (``OpStart.line_start``);
- ``call``: calls, returns, exceptions and the end of the run.

The stepper still runs every instruction of the traced scope, so gas stays
"instructions executed" whatever the level.  This filter is the simple form of
the level choice; the stepper may later skip the dropped events itself, behind
the same ``level=`` argument.
"""

from __future__ import annotations

from typing import Any, Literal

from blocktrace.events import OpStart, TraceEvent
from blocktrace.tracers import Tracer, VMState

__all__ = ["LEVELS", "Level", "LevelFilter", "level_tracer"]

Level = Literal["op", "line", "call"]
LEVELS: tuple[Level, ...] = ("op", "line", "call")


class LevelFilter:
    """Sends ``tracer`` the events of ``level`` and drops the other ``OpStart``s.

    ``record_failure`` is passed on (the chain writer records a failed tracer)."""

    wants_op_end = False

    def __init__(self, tracer: Tracer, level: Level) -> None:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        self.tracer = tracer
        self.level = level
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
    """``tracer`` itself at ``op`` level (keeping its fast path), else filtered."""
    return tracer if level == "op" else LevelFilter(tracer, level)
