"""Recorder: keeps every event, for tests, notebooks and views."""

from __future__ import annotations

from dataclasses import dataclass

from blocktrace.events import OpEnd, TraceEvent
from blocktrace.tracers import VMState

__all__ = ["Recorded", "Recorder"]


@dataclass(slots=True)
class Recorded:
    """One event with the dynamic state it happened in (read from ``vm``)."""

    event: TraceEvent
    depth: int
    gas: int
    thread: int


class Recorder:
    """Keeps events in ``.events`` and, beside them, ``.records`` with the
    depth, gas and thread of each (an ``OpStart`` object is shared by every run
    of its instruction, so the dynamic state must be captured separately).

    ``op_end=True`` asks the stepper for ``OpEnd`` events too.
    """

    def __init__(self, *, op_end: bool = False) -> None:
        self.events: list[TraceEvent] = []
        self.records: list[Recorded] = []
        self.wants_op_end = op_end

    def __call__(self, vm: VMState, event: TraceEvent, /) -> None:
        if type(event) is OpEnd and not self.wants_op_end:
            return
        record = Recorded(event, vm.depth, vm.gas, vm.thread)  # first: a call may be retried
        self.events.append(event)
        self.records.append(record)

    def of_type[T](self, kind: type[T]) -> list[T]:
        """The recorded events of one type, in order."""
        return [e for e in self.events if type(e) is kind]
