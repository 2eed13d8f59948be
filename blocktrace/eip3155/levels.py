"""Comparing blocktrace traces of different levels (``op``, ``line``, ``call``).

A coarser trace holds a subset of the finer trace's lines (docs/FORMAT.md,
header ``level``): the same calls, returns and exceptions, and at ``line`` only
the op lines that start a source-line range.  ``diff`` of two traces of
different levels compares at the coarser level: the finer trace's steps are
projected to it here, before the differ aligns them.

- at ``call`` (either trace is call-level): the steps compared are each
  trace's call, return and exception lines (``call_steps``), in order -- the
  call tree and its exceptions -- not op steps (an op trace's ops are skipped).
- ``op`` to ``line``: an op step stays when it starts a source-line range.  An
  op trace does not mark those, so they are taken from the line trace itself:
  the (function, pc) of its op steps.  This is exact when both runs
  execute the same lines; a line start only the op trace's run reached is not
  compared (the report says so), though what it leads to -- other lines, calls,
  exceptions -- still is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import msgspec

from blocktrace.eip3155.numbers import parse_int
from blocktrace.eip3155.records import RawLine, Step

if TYPE_CHECKING:
    from blocktrace.eip3155.normalise import TraceInfo

__all__ = ["RANK", "CallSteps", "Projected", "call_steps", "coarser", "line_starts_of", "project"]

_CALL_EVENTS = frozenset({"call", "return", "raise", "reraise", "handled"})

RANK = {"op": 0, "line": 1, "call": 2}
"""Levels, finest first."""


def coarser(a: str, b: str) -> str:
    """The coarser of two levels."""
    return a if RANK.get(a, 0) >= RANK.get(b, 0) else b


StartKey = tuple[str | None, int]


def line_starts_of(steps: Iterator[Step]) -> set[StartKey]:
    """(function, pc) of a line-level trace's op steps (its line starts): the steps
    made from an op line, an exception merged into one or not.  (Not the file:
    two runs of one program are often recorded from two paths.)"""
    return {(s.function, s.pc) for s in steps if s.raw.event is None}


def project(
    steps: Iterator[Step], level: str, starts: Callable[[], set[StartKey]] | None = None
) -> Projected:
    """``steps`` of a finer trace as a ``level`` trace holds them, renumbered from 0.
    ``starts`` gives the line starts (see ``line_starts_of``) for ``level`` ``line``."""
    return Projected(steps, level, starts)


class Projected:
    """:func:`project`'s steps, with what a pass over the lines as bytes
    (``skip.level_pair``) needs to see and move: ``known``, the line starts once read
    (on the first step asked for), and ``index``, the next step's number."""

    __slots__ = ("index", "known", "level", "starts", "steps")

    def __init__(self, steps: Iterator[Step], level: str,
                 starts: Callable[[], set[StartKey]] | None) -> None:
        self.steps = steps
        self.level = level
        self.starts = starts
        self.known: set[StartKey] | None = None
        self.index = 0

    def __iter__(self) -> Projected:
        return self

    def __next__(self) -> Step:
        level = self.level
        if level == "op":
            return next(self.steps)
        known = self.known
        if known is None:
            starts = self.starts
            known = self.known = starts() if level == "line" and starts is not None else set()
        call = level == "call"
        for step in self.steps:
            if step.event is None and (call or (step.function, step.pc) not in known):
                continue
            index = self.index
            if step.index != index:
                step = Step(index, step.lineno, step.pc, step.op, step.gas, step.depth,
                            step.stack_raw, step.raw, step.error, step.event, step.function,
                            step.file)
            self.index = index + 1
            return step
        raise StopIteration


class CallSteps:
    """The steps of a trace's call, return and exception lines, as ``normalise.steps_of``
    makes them with ``events`` (a call's ``pc`` and ``op`` are 0, its ``function`` the
    called one): the steps compared at level ``call``.  ``functions``: the code table
    as the call lines say it (no name: None); ``pending``: the op step ``steps_of``
    held when it gave the last of these steps (``skip.call_pair``)."""

    __slots__ = ("functions", "index", "pending")

    def __init__(self) -> None:
        self.functions: dict[int | str, tuple[str | None, str | None]] = {}
        self.index = 0
        self.pending: Step | None = None

    def step(self, raw: RawLine, lineno: int) -> Step | None:
        event = raw.event
        if event not in _CALL_EVENTS:
            return None
        code = raw.code
        if event == "call" and code is not None:
            self.functions[code] = (raw.name, raw.file)
        name, file = self.functions.get(code, (None, None)) if code is not None else (None, None)
        pc, op, gas, depth = raw.pc, raw.op, raw.gas, raw.depth
        try:  # (each written out: a generator over the four made per step cost ~5%)
            pc = 0 if pc is None else pc if type(pc) is int else parse_int(pc)
            op = 0 if op is None else op if type(op) is int else parse_int(op)
            gas = 0 if gas is None else gas if type(gas) is int else parse_int(gas)
            depth = 0 if depth is None else depth if type(depth) is int else parse_int(depth)
        except ValueError:
            return None
        if event in ("call", "return"):  # shown as what they are, a call at its def line
            shown = event if raw.kind in (None, event) else f"{event} ({raw.kind})"
            line = raw.firstLine if event == "call" and raw.line is None else raw.line
            raw = msgspec.structs.replace(raw, opName=shown, line=line)
        error = raw.error if isinstance(raw.error, str) and raw.error else None
        index = self.index
        self.index = index + 1
        return Step(index, lineno, pc, op, gas, depth, raw.stack, raw, error, event, name, file)

    def passed(self, steps: int) -> None:
        self.index += steps


def call_steps(path: str, info: TraceInfo) -> Iterator[Step]:
    """The call, return and exception lines of a blocktrace trace as steps
    (:class:`CallSteps`), after a first pass of ``normalise`` has filled ``info``
    (summary, counts) and checked the input (its errors come before any step, as
    they did when each line was decoded here)."""
    from blocktrace.eip3155.normalise import TraceInfo, normalise, steps_of

    for _ in normalise(path, info):
        pass
    again = TraceInfo(path, forced_dialect=info.forced_dialect)
    yield from steps_of(path, again, None, CallSteps())
