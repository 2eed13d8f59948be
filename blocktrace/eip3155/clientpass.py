"""Passing over what two EVM clients' traces have in common, in C.

Diffing two clients' traces of one transaction (geth against evmone, besu against
revm) or two runs of one client is what EIP-3155 traces are for; real ones run to
millions of steps.  While the differ walks two such traces in step, the lines ahead
of both are read by ``_cclients.walk`` (C, ``csrc/clients.c``): it takes, on each
side, the lines a client writes between two steps that the dialect rules drop or
count (implicit STOP lines, geth's frame-exit lines) and the op line of the next
step, and compares the two steps on the compared fields -- no line decoded into
Python objects, no ``Step`` made.  The walk takes only lines it is sure of (its file
says which: JSON objects of printable ASCII, numbers in the plain forms,
no fault, no summary, no header, no line that merges with the one before); at
anything else, and at the first step that differs, it stops, and the reference
(``normalise.steps_of``) reads on from the last step the walk took, so the last
common step, every divergence, the first op line's evidence, faults, summaries and
noise are read as before and the report is the same.

It is the protocol of ``skip`` (which does this for blocktrace traces): each step
generator is suspended after a step, holding the op line of the next one (the last
line its source gave); ``send(n)`` says that line and the lines after it up to
where the source now stands were passed over as ``n`` steps.  Plain and compressed
files alike (a ``.zst``/``.gz`` trace's bytes as ``format.compressed`` decompresses
them, as the reference reads them), any compared fields (``--fields``, ``--ignore``;
``error`` and blocktrace's fields are none on every line the walk takes), with or
without ``--stack-top``; only where the C extension is built (not with
``BLOCKTRACE_PURE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from inspect import GEN_SUSPENDED, getgeneratorstate
from types import ModuleType
from typing import BinaryIO

from blocktrace._native import extension
from blocktrace.eip3155.normalise import TraceInfo, blocktrace_reader, steps_of
from blocktrace.eip3155.reader import TraceError, open_trace
from blocktrace.eip3155.records import Step
from blocktrace.format.compressed import CompressedDataError, kind_of
from blocktrace.format.linesource import CHUNK, NumberedLines
from blocktrace.limits import MAX_LINE_BYTES, LineTooLongError

__all__ = ["pair"]

_c: ModuleType | None = extension("blocktrace.eip3155._cclients")

_MASK = {"pc": 1, "op": 2, "gas": 4, "depth": 8, "stack": 16, "gasCost": 32, "memSize": 64,
         "refund": 128, "opName": 256, "returnData": 512}
_NONE_HERE = frozenset({"error", "line", "code", "function", "file", "thread", "locals",
                        "globals", "event"})
"""Fields none on every line the walk takes (it leaves faults and blocktrace's lines to
the reference): the same on both sides."""
_LAG = 1024
"""_cclients: ``error`` or ``event`` is compared (a line after the last step taken may
merge into it with one: the walk hands the reference the step before)."""
_MORE_A, _MORE_B = 1, 2
_NOTHING = (0, 0, 0, 0, 0, 0)

Skip = Callable[[int | None], tuple[int, int, int, int, int, int]]
"""``skip.Skip``: ``skip(since) -> (steps_a, steps_b, hunks, differing_a, differing_b,
since)``; this one passes only steps in common (the same count on each side, no hunks)."""


class _Lines(NumberedLines):
    """A client trace's lines from a buffer of the file (``normalise.LineSource``), as
    the EIP-3155 reader gives them (``reader.trace_lines``): numbered from 1, each
    with its newline but the last (given without one if the file does not end with
    one), each at most ``MAX_LINE_BYTES`` (a longer one is a ``TraceError``): the
    format's line source of the differ's walks (``format.linesource.NumberedLines``;
    ``fresh``: a line was given since the last pass, the generator holds it)."""

    __slots__ = ()

    def __init__(self, path: str) -> None:
        super().__init__(path, torn_last=True, chunk=CHUNK)

    @contextmanager
    def numbered(self) -> Iterator[Iterator[tuple[int, bytes]]]:
        # (a TraceError when it cannot be opened: a directory, unreadable, no zstandard)
        with open_trace(self.path) as stream:
            self.stream = _Pieces(stream)
            try:
                yield self.numbered_lines()
            finally:
                self.stream = None

    def too_long(self, number: int) -> TraceError:
        return TraceError(self.path, number,
                          f"{LineTooLongError(number, MAX_LINE_BYTES)}: not a trace line")

    def called(self, code: int | str, line: bytes) -> None:
        """(Call lines are blocktrace's; a client trace's are read by the reference.)"""


class _Pieces:
    """``readinto`` of a buffered stream (``reader.open_trace``) one piece at a
    time (``readinto1``): a decompressor's error is raised only with no byte of a piece
    read (``FrameStream``), so every complete line before it is given, as the
    reference's ``readline`` gives them."""

    __slots__ = ("stream",)

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def readinto(self, buffer: memoryview, /) -> int:
        return self.stream.readinto1(buffer)  # type: ignore[attr-defined,no-any-return]


def pair(
    info_a: TraceInfo, info_b: TraceInfo, fields: Sequence[str], stack_top: int | None
) -> tuple[Iterator[Step], Iterator[Step], Skip] | None:
    """The step streams of two client traces and the ``skip`` that passes over what
    lies ahead of both in common (see ``skip.Skip``: it never counts hunks), or None
    where only the reference reads them (see the module)."""
    if _c is None or not fields or (stack_top is not None and stack_top < 0):
        return None
    mask = 0
    for name in fields:
        bit = _MASK.get(name)
        if bit is None:
            if name not in _NONE_HERE:
                return None
            bit = _LAG if name in ("error", "event") else 0
        mask |= bit
    for info in (info_a, info_b):
        if info.forced_dialect == "blocktrace":
            return None
        path = info.path
        try:
            if os.path.isdir(path):
                return None
            kind_of(path)
            if blocktrace_reader(path) is not None:
                return None
        except (OSError, TraceError):
            return None  # the reference says why
    top = -1 if stack_top is None else stack_top
    source_a, source_b = _Lines(info_a.path), _Lines(info_b.path)
    steps_a = steps_of(info_a.path, info_a, source_a)
    steps_b = steps_of(info_b.path, info_b, source_b)

    def skip(since: int | None) -> tuple[int, int, int, int, int, int]:
        return _skip(source_a, source_b, steps_a, steps_b, info_a, info_b, mask, top)

    return steps_a, steps_b, skip


def _skip(
    a: _Lines, b: _Lines, steps_a: Generator[Step, int | None, None],
    steps_b: Generator[Step, int | None, None], info_a: TraceInfo, info_b: TraceInfo,
    mask: int, top: int,
) -> tuple[int, int, int, int, int, int]:
    """Pass over the steps both traces have in common from here (see the module)."""
    assert _c is not None
    if (
        not a.fresh or not b.fresh or a.done or b.done
        or info_a.evidence.header or info_b.evidence.header
        or getgeneratorstate(steps_a) != GEN_SUSPENDED
        or getgeneratorstate(steps_b) != GEN_SUSPENDED
    ):
        return _NOTHING
    # Each generator holds the op line of its next step: the last line its source gave.
    given_a, given_b = a.pos - a.start, b.pos - b.start
    pa, pb = a.start, b.start
    steps = 0
    lines = [0, 0]
    stops = [0, 0]
    exits = [0, 0]
    while True:
        n, pa, pb, la, lb, sa, sb, ea, eb, reason = _c.walk(
            a.view(), pa, b.view(), pb, mask, top, MAX_LINE_BYTES)
        steps += n
        lines[0] += la
        lines[1] += lb
        stops[0] += sa
        stops[1] += sb
        exits[0] += ea
        exits[1] += eb
        if reason == 0:
            break
        source = a if reason == _MORE_A else b
        # keep from the unit the walk stands at (``more`` moves what it keeps to the front)
        a.start, b.start = pa, pb
        a.pos, b.pos = pa + given_a, pb + given_b
        try:
            grew = source.more()
        except CompressedDataError:  # (raised again when the reference reads on there)
            grew = False
        pa, pb = a.start, b.start
        if not grew:
            break  # the end of that input: the reference reads it
    if steps == 0:
        a.start, b.start = pa, pb
        a.pos, b.pos = pa + given_a, pb + given_b
        return _NOTHING
    for source, steps_x, info, at, i in ((a, steps_a, info_a, pa, 0), (b, steps_b, info_b, pb, 1)):
        source.start = source.pos = at
        source.lineno += lines[i] - 1
        source.fresh = False
        info.op_lines += stops[i]  # the STOP lines (the generator counts one op line a step)
        info.stops_dropped += stops[i]
        if exits[i]:
            info.frame_exits += exits[i]
            info.evidence.frame_exit = True
            info.evidence.summary_has_output = True
        steps_x.send(steps)
    return steps, steps, 0, 0, 0, 0
