"""Tee: one run, several tracers."""

from __future__ import annotations

import sys

from blocktrace.events import TraceEvent
from blocktrace.tracers import Tracer, VMState, at_recursion_limit, belongs_to_program

__all__ = ["Tee"]


class Tee:
    """Sends every event to each tracer in turn.

    A tracer that raises is detached (the others go on); the failure is passed to
    the remaining tracers' ``record_failure`` (the chain writer records it in the
    trace) and reported on stderr.  ``HaltRun`` and other non-``Exception``
    errors pass through untouched.
    """

    def __init__(self, *tracers: Tracer) -> None:
        self.tracers: list[Tracer] = list(tracers)
        self.wants_op_end = any(getattr(t, "wants_op_end", False) for t in tracers)

    def __call__(self, vm: VMState, event: TraceEvent, /) -> None:
        for tracer in self.tracers:
            try:
                tracer(vm, event)
            except Exception as exc:
                if isinstance(exc, RecursionError) and at_recursion_limit():
                    raise  # the program's own depth, not this tracer's fault
                if belongs_to_program(exc):
                    raise  # raised by the program's signal handler
                self._detach(tracer, exc)

    def _detach(self, tracer: Tracer, exc: Exception) -> None:
        self.tracers = [t for t in self.tracers if t is not tracer]
        message = f"tracer {type(tracer).__name__} failed: {type(exc).__name__}: {exc}"
        if sys.__stderr__ is not None:
            sys.__stderr__.write(f"blocktrace: {message}; detached, the others go on\n")
        self.record_failure(message)

    def record_failure(self, message: str) -> None:
        for tracer in self.tracers:
            record = getattr(tracer, "record_failure", None)
            if record is not None:
                record(message)
