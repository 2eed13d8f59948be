"""Tee: one run, several tracers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from blocktrace.events import OpEnd, TraceEvent
from blocktrace.tracers import (
    Tracer,
    VMState,
    at_recursion_limit,
    belongs_to_program,
    capabilities_changed,
    capabilities_of,
    direct_call,
    finest,
)
from blocktrace.tracers.depth import call_with_room
from blocktrace.tracers.level import only_level

__all__ = ["Tee"]

_DISABLE = sys.monitoring.DISABLE


class Tee:
    """Sends every event to each tracer in turn.

    Its capabilities combine its tracers' (see :class:`blocktrace.Tracer`):
    ``OpEnd`` events are asked for when any tracer wants them (and go only to
    those that do), a site may be turned off only when every tracer may do so
    (and then only once every tracer answered ``DISABLE`` there), and a Tee of
    one tracer has that one's ``fast_call`` and ``op_line`` (a Tee of a
    ``ChainTracer`` keeps the C line writer), and the Tee's ``level`` is the
    finest any tracer declares, each tracer being sent only its own level's
    events. Each tracer is called through its own ``fast_call`` when it has one.
    Change the tracers with :meth:`add` and :meth:`remove` (or call
    :meth:`refresh` after changing ``tracers``), so that a running stepper hears
    of it.

    A tracer that raises is detached (the others go on); the failure is passed to
    the remaining tracers' ``record_failure`` (the chain writer records it in the
    trace) and reported on stderr.  ``HaltRun`` and other non-``Exception``
    errors pass through untouched.
    """

    def __init__(self, *tracers: Tracer) -> None:
        self.tracers: list[Tracer] = list(tracers)
        self.refresh()

    def refresh(self) -> None:
        """Combine the tracers' capabilities again (after ``tracers`` changed)."""
        caps = [capabilities_of(t) for t in self.tracers]
        self.level = finest([c.level for c in caps])
        """The finest level a tracer declares (what the stepper produces)."""
        calls = [(t, direct_call(t, c) if c.level == self.level
                  else only_level(direct_call(t, c), c.level))
                 for t, c in zip(self.tracers, caps, strict=True)]
        self._calls: list[tuple[Tracer, Callable[[Any, Any], object]]] = calls
        self._op_end_calls = [tc for tc, c in zip(calls, caps, strict=True) if c.wants_op_end]
        self.wants_op_end = bool(self._op_end_calls)
        self.may_disable = bool(caps) and all(c.may_disable for c in caps)
        fast = caps[0].fast_call if len(caps) == 1 else None
        self.fast_call = fast
        """The one tracer's ``fast_call``, when it is alone (else ``None``)."""
        self.op_line = caps[0].op_line if len(caps) == 1 else None
        """The one tracer's ``op_line``, when it is alone (else ``None``)."""

    def add(self, tracer: Tracer) -> None:
        """Send the events from the next one on to ``tracer`` too."""
        self.tracers.append(tracer)
        self._changed()

    def remove(self, tracer: Tracer) -> None:
        """Stop sending events to ``tracer``."""
        self.tracers = [t for t in self.tracers if t is not tracer]
        self._changed()

    def _changed(self) -> None:
        self.refresh()
        capabilities_changed(self)

    def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
        calls = self._op_end_calls if type(event) is OpEnd else self._calls
        answer: object = _DISABLE if self.may_disable else None
        for tracer, call in calls:
            try:
                if call(vm, event) is not _DISABLE:
                    answer = None
            except Exception as exc:
                answer = None
                if isinstance(exc, RecursionError) and at_recursion_limit():
                    self._again(tracer, call, vm, event)
                    continue
                if belongs_to_program(exc):
                    raise  # raised by the program's signal handler
                self._detach(tracer, exc)
        return answer

    def _again(
        self, tracer: Tracer, call: Callable[[Any, Any], object], vm: VMState, event: TraceEvent
    ) -> None:
        """A tracer that hit the recursion limit the program is near is called
        again with room (the program keeps its own depth); failing again, at
        the limit still, is the program's error."""
        try:
            call_with_room(call, vm, event)
        except Exception as exc:
            if isinstance(exc, RecursionError) and at_recursion_limit():
                raise
            if belongs_to_program(exc):
                raise
            self._detach(tracer, exc)

    def _detach(self, tracer: Tracer, exc: Exception) -> None:
        self.remove(tracer)
        message = f"tracer {type(tracer).__name__} failed: {type(exc).__name__}: {exc}"
        if sys.__stderr__ is not None:
            sys.__stderr__.write(f"blocktrace: {message}; detached, the others go on\n")
        self.record_failure(message)

    def record_failure(self, message: str) -> None:
        for tracer in self.tracers:
            record = capabilities_of(tracer).record_failure
            if record is not None:
                record(message)
