"""Recorder: keeps every event, for tests, notebooks and views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blocktrace.events import OpEnd, OpStart, TraceEvent
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

    While recording it keeps one tuple per event (its ``op_line`` takes an
    ``OpStart`` with gas and depth straight from the stepper's hook); ``events``
    and ``records`` are built from them when read.
    """

    def __init__(self, *, op_end: bool = False) -> None:
        self._log: list[tuple[Any, int, int, int]] = []
        self._events: list[TraceEvent] = []
        self._records: list[Recorded] = []
        self.wants_op_end = op_end
        append = self._log.append

        def op_line(event: OpStart, gas: int, depth: int) -> bool:
            # The hook's fast path runs while one thread is traced: thread 1.
            append((event, depth, gas, 1))
            return True

        self.op_line = op_line
        """``Capabilities.op_line``: an ``OpStart`` from plain values, one append."""

    def __call__(self, vm: VMState, event: TraceEvent, /) -> None:
        if type(event) is OpEnd and not self.wants_op_end:
            return
        self._log.append((event, vm.depth, vm.gas, vm.thread))  # one append: all or nothing

    @property
    def events(self) -> list[TraceEvent]:
        """The recorded events, in order."""
        events, log = self._events, self._log
        if len(events) != len(log):
            events.extend(entry[0] for entry in log[len(events):])
        return events

    @property
    def records(self) -> list[Recorded]:
        """Each event with its depth, gas and thread, in order."""
        records, log = self._records, self._log
        if len(records) != len(log):
            records.extend(Recorded(*entry) for entry in log[len(records):])
        return records

    def of_type[T](self, kind: type[T]) -> list[T]:
        """The recorded events of one type, in order."""
        return [e for e in self.events if type(e) is kind]
