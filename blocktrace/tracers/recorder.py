"""Recorder: keeps every event, for tests, notebooks and views."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from blocktrace._native import extension
from blocktrace.events import OpEnd, OpStart, Return, TraceEvent
from blocktrace.tracers import VMState

__all__ = ["Recorded", "Recorder"]


@dataclass(slots=True)
class Recorded:
    """One event with the dynamic state it happened in (read from ``vm``)."""

    event: TraceEvent
    depth: int
    gas: int
    thread: int


_c = extension("blocktrace.tracers._crecord")


def _no_pieces(event: object) -> tuple[bytes, bytes]:
    """``Capabilities.call_lines``' pieces: a Recorder's calls carry none (its log
    takes them as values)."""
    return b"", b""


class Recorder:
    """Keeps events in ``.events`` and, beside them, ``.records`` with the
    depth, gas and thread of each (an ``OpStart`` object is shared by every run
    of its instruction, so the dynamic state must be captured separately).

    ``op_end=True`` asks the stepper for ``OpEnd`` events too.

    While recording it keeps one entry per event, from which ``events`` and
    ``records`` are built when read.  With the C extensions the log is
    ``blocktrace.tracers._crecord.Log``, a sink the stepper's C hooks append
    ops, calls and returns to as plain values (a return's ``Return`` is made
    when read); else a list of tuples, and ``op_line`` takes an ``OpStart`` with
    gas and depth straight from the stepper's hook.
    """

    def __init__(self, *, op_end: bool = False) -> None:
        self._events: list[TraceEvent] = []
        self._records: list[Recorded] = []
        self._done: list[tuple[Any, int, int, int]] = []
        self.wants_op_end = op_end
        if _c is not None:
            log = _c.Log(Return)
            self._log: Any = log
            self._append: Callable[[tuple[Any, int, int, int]], object] = log.append
            self.op_line: Callable[[OpStart, int, int], bool] = log.op
            """``Capabilities.op_line``: the log's ``op`` (the C hook calls its C entry)."""
            self.call_lines = (log.line, _no_pieces)
            """``Capabilities.call_lines``: the log's C entries take calls and returns."""
            return
        plain: list[tuple[Any, int, int, int]] = []
        self._log = plain
        self._append = append = plain.append

        def op_line(event: OpStart, gas: int, depth: int) -> bool:
            # The hook's fast path runs while one thread is traced: thread 1.
            append((event, depth, gas, 1))
            return True

        self.op_line = op_line

    def __call__(self, vm: VMState, event: TraceEvent, /) -> None:
        if type(event) is OpEnd and not self.wants_op_end:
            return
        self._append((event, vm.depth, vm.gas, vm.thread))  # one append: all or nothing

    def _built(self) -> list[tuple[Any, int, int, int]]:
        """Every entry as an (event, depth, gas, thread) tuple, each made once (so
        ``events`` and ``records`` share the event objects)."""
        log = self._log
        if type(log) is list:
            return log
        built = self._done
        if len(built) != len(log):
            built.extend(log.entries(len(built)))
        return built

    @property
    def events(self) -> list[TraceEvent]:
        """The recorded events, in order."""
        events, built = self._events, self._built()
        if len(events) != len(built):
            events.extend(entry[0] for entry in built[len(events):])
        return events

    @property
    def records(self) -> list[Recorded]:
        """Each event with its depth, gas and thread, in order."""
        records, built = self._records, self._built()
        if len(records) != len(built):
            records.extend(Recorded(*entry) for entry in built[len(records):])
        return records

    def of_type[T](self, kind: type[T]) -> list[T]:
        """The recorded events of one type, in order."""
        return [e for e in self.events if type(e) is kind]
