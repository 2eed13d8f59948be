"""Passing over what two blocktrace traces have in common, as bytes.

Two recordings of the same behaviour differ in every line's hash member (and,
past a divergence, in the gas), nowhere else.  So while the differ walks two
blocktrace traces in step, the lines ahead of both are compared as bytes
(``_cskip.skip``, C): an op line equal in both but for its hash (and its gas,
when gas is not a compared field) is the same step in both whatever fields are
compared, provided both traces' code tables give each code number the same
function and file as far as the compared fields see them -- no line is decoded,
no step object made.  The walk gives back the steps it passed;
the reference path (``normalise.steps_of``) reads on from the second-to-last op
line it passed, so the last common step, every divergence and everything the C
walk does not know (exception lines, a line that may merge, headers, sources,
summaries) are read as before and the report is the same.

Once the differ keeps no more hunks in full, the walk also passes over a step
that differs (``Skip``): two op lines unlike as bytes that Python judges as steps
(``_judge``, the diff's ``Comparer``), followed by ``SYNC`` steps in common, are the
hunk of one step on each side the differ would have counted there.

The rules the walk keeps (the C file says which lines it passes over) are only
half of it; the other half is here: the code tables agreeing on both sides, a
call line passed over only when it says what the last one read for its code
number said (the ``calls`` sets), both generators suspended after a step (so
each holds the op line of its next step, the last line its source gave).

Lines passed over are not decoded: a line that is not JSON, or not a trace line,
but is the same in both inputs at the same step, is counted as the op (or return)
line it starts as.  Compressed traces are read this way too, their frames
decompressed (and checked) one after another by the format's
``compressed.FrameStream`` into the same buffer; only where the C extension is
built.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from inspect import GEN_SUSPENDED, getgeneratorstate
from types import ModuleType
from typing import Any

import msgspec

from blocktrace._native import extension
from blocktrace.eip3155.compare import Comparer
from blocktrace.eip3155.dialects import FIELDS
from blocktrace.eip3155.levels import CallSteps, Projected, StartKey
from blocktrace.eip3155.lines import Lines, by_line
from blocktrace.eip3155.normalise import TraceInfo, blocktrace_reader, steps_of
from blocktrace.eip3155.reader import TraceError, raw_decoder, read_sources
from blocktrace.eip3155.records import Step
from blocktrace.format.compressed import CompressedDataError, FrameStream, Kind
from blocktrace.format.fastcheck import Follower
from blocktrace.format.linesource import CHUNK, NumberedLines
from blocktrace.limits import MAX_LINE_BYTES

__all__ = ["Pair", "call_pair", "level_pair", "line_pair", "pair"]

_c: ModuleType | None = extension("blocktrace.eip3155._cskip")

_MORE = 1  # _cskip: a line runs past the end of a buffer
_HELD = 1 << 26
"""Bytes kept for the chain check beyond what the lines need (64 MiB): past that,
the check reads them itself (``Follower.finish``)."""

Skip = Callable[[int | None], tuple[int, int, int, int, int, int]]
"""``skip(since)``: pass over what lies ahead of both traces; ``since``, when not None,
the steps in common since the differ's last hunk, and the differ keeps no more hunks
in full: then a step that differs, with ``differ.SYNC`` steps in common after it, is
passed over too, as the hunk of one step on each side the differ would make of it,
and (``align``) a divergent region of steps inserted, removed or changed, as the
differ's look-ahead would align it.  Answers ``(steps_a, steps_b, hunks, differing_a,
differing_b, since)``: the steps passed on each side (hunks included), the hunks among
them and their steps on each side, and the steps in common after the last hunk."""
Pair = tuple[Iterator[Step], Iterator[Step], Skip]


class _Source(NumberedLines):
    """A trace's lines from a buffer of the file (``normalise.LineSource``), as the
    format's reader gives them: numbered from 1, each at most ``MAX_LINE_BYTES``
    (a longer one is a ``TraceError``), none after a torn last line
    (``format.linesource.NumberedLines``, the one line source of this walk and of
    the clients', ``clientpass``).

    The file is read as ``BufferedLines`` reads it (one reusable buffer, never
    mapped: a file truncated while it is read gives a short read, not a SIGBUS);
    the C pass walks ``view()`` from ``start``.  A read keeps, besides the last
    line given, the lines the chain check has still to read (:meth:`kept`)."""

    __slots__ = ("by_code", "calls", "check", "kind")

    def __init__(self, path: str, check: Follower | None = None, kind: Kind = "plain") -> None:
        super().__init__(path, sources=True, chunk=CHUNK)  # (sources: the report reads them)
        self.kind = kind
        """``plain``, or how the file is compressed (its lines: ``_Uncompressed``)."""
        self.check = check if check is not None and check.scan is not None else None
        """The file's chain check, fed by the walk while it can be (``Follower``)."""
        self.calls: set[bytes] = set()
        """What the call lines last read for each code number said (``_cskip.call_key``)."""
        self.by_code: dict[int | str, bytes] = {}

    @contextmanager
    def numbered(self) -> Iterator[Iterator[tuple[int, bytes]]]:
        try:
            stream = open(self.path, "rb", buffering=0)  # noqa: SIM115 (held while read)
        except OSError as exc:
            raise TraceError(self.path, None, f"cannot read: {exc.strerror or exc}") from None
        with stream:
            if self.kind == "plain":
                self.stream = stream
            else:
                try:
                    self.stream = _Uncompressed(FrameStream(stream, self.kind))
                except CompressedDataError as exc:
                    raise TraceError(self.path, None, exc.reason) from None
            try:
                yield self.numbered_lines()
            finally:
                self.stream = None

    def kept(self) -> int:
        """``start``, or the chain check's position while the check follows: bytes
        held for it up to ``_HELD``, past that the check reads them itself."""
        start = self.start
        check = self.check
        if check is not None:
            waiting = check.pos - self.base
            if start - waiting > _HELD:
                self.check = None
            else:
                start = min(start, waiting)
        return start

    def ended(self) -> None:
        assert self.sources is not None
        read_sources(self.path, self.sources)

    def called(self, code: int | str, line: bytes) -> None:
        assert _c is not None
        key: bytes | None = _c.call_key(line)
        old = self.by_code.pop(code, None)
        if old is not None:
            self.calls.discard(old)
        if key is not None:
            self.by_code[code] = key
            self.calls.add(key)


class _Uncompressed:
    """The lines of a compressed trace as its frames hold them (``FrameStream``:
    each frame checked whole before its bytes are given).  Compressed data that
    cannot be read on ends the lines as a torn line ends a plain file's (the
    format reader's rule, ``TraceReader.raw_lines``): the lines before it are
    given, the unfinished one is not."""

    __slots__ = ("ended", "frames")

    def __init__(self, frames: FrameStream) -> None:
        self.frames = frames
        self.ended = False

    def readinto(self, buffer: memoryview, /) -> int:
        if self.ended:
            return 0
        try:
            return self.frames.fill(buffer)  # (frame after frame: the walk asks for megabytes)
        except CompressedDataError:
            self.ended = True
            return 0


def fused() -> bool:
    """Whether ``pair`` can check a trace's chain as it passes its lines (C built)."""
    return _c is not None


def pair(
    info_a: TraceInfo, info_b: TraceInfo, fields: Sequence[str], check: Follower | None = None,
    comparer: Comparer | None = None, window: int = 0,
) -> Pair | None:
    """The step streams of two blocktrace traces and the function that passes over
    what lies ahead of both in common (returning the steps passed), or None where
    only the reference path reads them (no C extension, a forced client dialect,
    a compressed file with ``check``).  ``check``: the chain check of ``info_a``'s plain file, fed
    the lines the pass goes over (from where it stands: the lines between are
    checked first), as long as they are in the buffer; its ``finish`` does the rest.
    ``comparer``: how the differ compares steps (the fields): given, the pass also
    passes over a step that differs as the differ would (see ``Skip``); with a
    ``window`` (the differ's) of at least 64 steps, also regions of steps inserted or
    removed (the C walk's ``align``: its windows are the differ's first two)."""
    if _c is None:
        return None
    kinds: list[Kind] = []
    for info in (info_a, info_b):
        if info.forced_dialect not in (None, "blocktrace"):
            return None
        reader = blocktrace_reader(info.path)
        if reader is None or (reader.kind != "plain" and check is not None):
            return None  # (the check reads a plain file's bytes)
        kinds.append(reader.kind)
    source_a, source_b = _Source(info_a.path, check, kinds[0]), _Source(info_b.path, None, kinds[1])
    steps_a = steps_of(info_a.path, info_a, source_a)
    steps_b = steps_of(info_b.path, info_b, source_b)
    mask_gas = "gas" not in fields
    # What of a code's (function, file) the compared fields see.
    seen = tuple(i for i, name in enumerate(("function", "file")) if name in fields)

    judge = None if comparer is None else _judge(info_a, info_b, comparer)
    aligned = (None if comparer is None or window < _ALIGN_WINDOW
               else sum(1 << FIELDS.index(name) for name in fields))

    def skip(since: int | None) -> tuple[int, int, int, int, int, int]:
        return _skip(source_a, source_b, steps_a, steps_b, info_a, info_b, mask_gas, seen,
                     judge, since, aligned)

    if aligned is None:
        return steps_a, steps_b, skip
    fields_mask = aligned

    def look(step_a: Step, step_b: Step) -> tuple[int, int] | None:
        return _look(source_a, source_b, step_a, step_b, info_a, info_b, seen, fields_mask)

    return steps_a, steps_b, _Skipper(skip, look)


_Steps = Generator[Step, int | tuple[int, int] | None, None]


def _opened(
    info_a: TraceInfo, info_b: TraceInfo, events: tuple[CallSteps, CallSteps] | None = None,
) -> tuple[_Source, _Source, _Steps, _Steps] | None:
    """Both blocktrace traces' line sources (no chain check) and the step streams
    read from them (``events``: their call-level steps, ``steps_of``'s), or None where
    only the reference reads them (a forced client dialect, no blocktrace trace)."""
    sources: list[_Source] = []
    for info in (info_a, info_b):
        if info.forced_dialect not in (None, "blocktrace"):
            return None
        reader = blocktrace_reader(info.path)
        if reader is None:
            return None
        sources.append(_Source(info.path, None, reader.kind))
    source_a, source_b = sources
    event_a, event_b = (None, None) if events is None else events
    return (source_a, source_b, steps_of(info_a.path, info_a, source_a, event_a),
            steps_of(info_b.path, info_b, source_b, event_b))


def line_pair(
    info_a: TraceInfo, info_b: TraceInfo, fields: Sequence[str], comparer: Comparer,
    window: int = 0,
) -> tuple[Lines, Lines, Skip] | None:
    """``diff --by-line`` of two blocktrace traces: their steps grouped by source line
    (``lines.by_line``) and the ``Skip`` that passes over the groups both have in
    common as bytes (``_cskip.lines``: each trace walked to its next group, the two
    groups' first steps judged on the compared fields), or None where only the
    reference reads them (as ``pair``).  With a ``window`` (the differ's) of at least
    64 groups, once the differ keeps no more hunks in full, the walk also passes over
    divergent regions as the differ's look-ahead aligns them (``Skip``)."""
    if _c is None:
        return None
    opened = _opened(info_a, info_b)
    if opened is None:
        return None
    source_a, source_b, steps_a, steps_b = opened
    lines_a, lines_b = by_line(steps_a), by_line(steps_b)
    seen = tuple(i for i, name in enumerate(("function", "file")) if name in fields)
    mask = sum(1 << FIELDS.index(name) for name in fields)
    same = comparer.same
    aligned = window >= _ALIGN_WINDOW

    def skip(since: int | None) -> tuple[int, int, int, int, int, int]:
        return _skip_lines(source_a, source_b, steps_a, steps_b, lines_a, lines_b,
                           info_a, info_b, seen, mask, same, since if aligned else None)

    if not aligned:
        return lines_a, lines_b, skip

    def look(step_a: Step, step_b: Step) -> tuple[int, int] | None:
        return _look_steps(source_a, source_b, step_a, step_b, info_a.functions,
                           info_b.functions, seen, mask, True, None, None)

    return lines_a, lines_b, _Skipper(skip, look)


def level_pair(
    info_a: TraceInfo, info_b: TraceInfo, level_a: str, level_b: str, fields: Sequence[str],
    starts: Callable[[], set[StartKey]], window: int = 0,
) -> tuple[Iterator[Step], Iterator[Step], Skip] | None:
    """An op-level blocktrace trace against a line-level one: the steps compared at
    level line (the op-level trace's ``levels.project``ed with ``starts``) and the
    ``Skip`` that passes over what both have in common as bytes (``_cskip.project``:
    the op lines the projection leaves out are passed over unread), or None where
    only the reference reads them (as ``pair``).  With a ``window`` of at least 64
    steps, once the differ keeps no more hunks in full, also steps that agree on the
    compared fields and divergent regions, as ``line_pair``'s walk does."""
    if _c is None or {level_a, level_b} != {"op", "line"}:
        return None
    opened = _opened(info_a, info_b)
    if opened is None:
        return None
    source_a, source_b, steps_a, steps_b = opened
    fine = Projected(steps_a if level_a == "op" else steps_b, "line", starts)
    stream_a: Iterator[Step] = fine if level_a == "op" else steps_a
    stream_b: Iterator[Step] = fine if level_b == "op" else steps_b
    info_fine = info_a if level_a == "op" else info_b
    seen = tuple(i for i, name in enumerate(("function", "file")) if name in fields)
    mask_gas = "gas" not in fields
    mask = sum(1 << FIELDS.index(name) for name in fields)
    aligned = window >= _ALIGN_WINDOW
    cache: list[Any] = [None, None]  # (the fine trace's code table, the keep set for it)

    def keep() -> set[int] | None:
        known = fine.known
        if known is None:
            return None
        functions = info_fine.functions
        if cache[0] != functions:
            cache[0] = dict(functions)
            cache[1] = _keep(known, functions)
        kept: set[int] | None = cache[1]
        return kept

    def skip(since: int | None) -> tuple[int, int, int, int, int, int]:
        kept = keep()
        if kept is None:
            return _NOTHING
        return _skip_levels(source_a, source_b, steps_a, steps_b, fine, info_a, info_b,
                            seen, mask_gas, kept if level_a == "op" else None,
                            kept if level_b == "op" else None, mask,
                            since if aligned else None)

    if not aligned:
        return stream_a, stream_b, skip

    def look(step_a: Step, step_b: Step) -> tuple[int, int] | None:
        kept = keep()
        if kept is None:
            return None
        return _look_steps(source_a, source_b, step_a, step_b, info_a.functions,
                           info_b.functions, seen, mask, False,
                           kept if level_a == "op" else None, kept if level_b == "op" else None)

    return stream_a, stream_b, _Skipper(skip, look)


def call_pair(
    info_a: TraceInfo, info_b: TraceInfo, fields: Sequence[str],
) -> tuple[Iterator[Step], Iterator[Step], Skip] | None:
    """Two blocktrace traces compared at level call (either is call-level): each one's
    call, return and exception lines as steps (``levels.CallSteps``, read in one pass
    with the counts ``normalise`` makes) and the ``Skip`` that passes over what both
    have in common as bytes (``_cskip.calls``: op lines passed unread, call and return
    lines equal but for the hash), or None where only the reference reads them (as
    ``pair``).  The reference reads each trace whole before its first step
    (``levels.call_steps``), so an error in A is the one raised even when B has one
    earlier: B's error waits for A's end here."""
    if _c is None:
        return None
    events = CallSteps(), CallSteps()
    opened = _opened(info_a, info_b, events)
    if opened is None:
        return None
    source_a, source_b, steps_a, steps_b = opened
    seen = tuple(i for i, name in enumerate(("function", "file")) if name in fields)
    masks = ("gas" not in fields) | ("file" not in fields) << 1

    def skip(since: int | None) -> tuple[int, int, int, int, int, int]:
        return _skip_calls(source_a, source_b, steps_a, steps_b, events, info_a, info_b,
                           seen, masks)

    return steps_a, _after(steps_a, steps_b), skip


def _after(first: Iterator[Step], second: Iterator[Step]) -> Iterator[Step]:
    """``second``'s steps; when it raises ``TraceError``, ``first`` is read to its end
    before, and its own ``TraceError`` raised instead if it has one."""
    try:
        yield from second
    except TraceError:
        for _ in first:
            pass
        raise


def _skip_calls(
    a: _Source, b: _Source, steps_a: _Steps, steps_b: _Steps,
    events: tuple[CallSteps, CallSteps], info_a: TraceInfo, info_b: TraceInfo,
    seen: tuple[int, ...], masks: int,
) -> tuple[int, int, int, int, int, int]:
    """Pass over what two traces have in common at level call from here (each generator
    holds the line after its last step); ``Skip``'s answer (no hunks).  ``masks``:
    ``_cskip.calls``' (1: gas not compared, 2: file not compared)."""
    assert _c is not None
    event_a, event_b = events
    if (
        a.lineno == 0 or b.lineno == 0 or a.done or b.done
        or getgeneratorstate(steps_a) != GEN_SUSPENDED
        or getgeneratorstate(steps_b) != GEN_SUSPENDED
        or not _agree(event_a.functions, event_b.functions, seen)
    ):
        return _NOTHING
    gas_a = None if event_a.pending is None else event_a.pending.gas
    gas_b = None if event_b.pending is None else event_b.pending.gas
    given_a, given_b = a.pos - a.start, b.pos - b.start
    pa, pb = a.start, b.start
    passed = count_a = count_b = read_a = read_b = ignored_a = ignored_b = 0
    walk = _c.calls
    while True:
        n, reason, pa, n_a, n_lines, n_ignored_a, pb, n_b, n_lines_b, n_ignored_b = walk(
            a.view(), pa, b.view(), pb, masks, a.calls, b.calls, MAX_LINE_BYTES,
            gas_a, gas_b, count_a, count_b)
        passed += n
        count_a += n_a
        count_b += n_b
        read_a += n_lines
        read_b += n_lines_b
        ignored_a += n_ignored_a
        ignored_b += n_ignored_b
        if reason != _MORE:
            break
        pa, pb, going = _read_on(a, b, pa, pb, given_a, given_b, n)
        if not going:
            break
    if passed == 0:
        a.start, b.start = pa, pb
        a.pos, b.pos = pa + given_a, pb + given_b
        return _NOTHING
    for source, steps_x, info, at, ignored, ops, read in (
        (a, steps_a, info_a, pa, ignored_a, count_a, read_a),
        (b, steps_b, info_b, pb, ignored_b, count_b, read_b),
    ):
        source.start = source.pos = at
        source.lineno += read - 1
        info.ignored += ignored
        steps_x.send((passed, ops))
    return passed, passed, 0, 0, 0, 0


def _keep(known: set[StartKey], functions: dict[int | str, tuple[str, str]]) -> set[int] | None:
    """The line starts ``known`` as ``_cskip.project`` looks them up in an op-level
    trace with this code table (``code << 32 | pc``), or None where it cannot: a line
    start of no known function (an op line without a code number that the table names
    would match it)."""
    pcs: dict[str, list[int]] = {}
    for function, pc in known:
        if function is None:
            return None
        pcs.setdefault(function, []).append(pc)
    return {code << 32 | pc for code, (name, _) in functions.items()
            if type(code) is int and 0 <= code < 1 << 30
            for pc in pcs.get(name, ()) if 0 <= pc < 1 << 32}


def _skip_levels(
    a: _Source, b: _Source, steps_a: Generator[Step, int | None, None],
    steps_b: Generator[Step, int | None, None], fine: Projected, info_a: TraceInfo,
    info_b: TraceInfo, seen: tuple[int, ...], mask_gas: bool, keep_a: set[int] | None,
    keep_b: set[int] | None, fields: int = 0, since: int | None = None,
) -> tuple[int, int, int, int, int, int]:
    """Pass over what an op-level and a line-level trace have in common at level line
    from here (each generator holds the op line of its next step); ``Skip``'s answer.
    ``since`` (not None: the differ keeps no more hunks in full): divergent regions
    too, judged on ``fields`` (a mask of ``FIELDS``)."""
    assert _c is not None
    if (
        a.lineno == 0 or b.lineno == 0 or a.done or b.done
        or getgeneratorstate(steps_a) != GEN_SUSPENDED
        or getgeneratorstate(steps_b) != GEN_SUSPENDED
        or not _agree(info_a.functions, info_b.functions, seen)
    ):
        return _NOTHING
    given_a, given_b = a.pos - a.start, b.pos - b.start
    pa, pb = a.start, b.start
    count_a = count_b = read_a = read_b = ignored_a = ignored_b = 0
    walk = _c.project
    more: tuple[int, ...] = () if since is None else (fields, since)
    passed = _Passed(since)
    while True:
        n, reason, pa, n_a, n_lines, n_ignored_a, pb, n_b, n_lines_b, n_ignored_b, *counts = (
            walk(a.view(), pa, b.view(), pb, mask_gas, a.calls, b.calls, MAX_LINE_BYTES,
                 keep_a, keep_b, *more))
        passed.add(n, counts)
        n = n or (counts[0] if counts else 0)  # (a walk that passed a step of either)
        if more:
            more = (fields, passed.since)
        count_a += n_a
        count_b += n_b
        read_a += n_lines
        read_b += n_lines_b
        ignored_a += n_ignored_a
        ignored_b += n_ignored_b
        if reason != _MORE:
            break
        pa, pb, going = _read_on(a, b, pa, pb, given_a, given_b, n)
        if not going:
            break
    if count_a == 0 and count_b == 0:  # (op lines left out before the first kept
        a.start, b.start = pa, pb       # are passed over even when none is kept)
        a.pos, b.pos = pa + given_a, pb + given_b
        return _NOTHING
    for source, steps_x, info, at, ignored, ops, read in (
        (a, steps_a, info_a, pa, ignored_a, count_a, read_a),
        (b, steps_b, info_b, pb, ignored_b, count_b, read_b),
    ):
        source.start = source.pos = at
        source.lineno += read - 1
        info.ignored += ignored
        steps_x.send(ops)
    fine.index += passed.a if keep_a is not None else passed.b
    return passed.answer()


class _Passed:
    """What the walks over steps (``_cskip.lines``, ``_cskip.project``) passed, summed
    over their calls: steps on each side, and (``since`` not None: hunks counted) the
    hunks among them, their steps on each side, and the steps in common after the last
    (``Skip``'s answer)."""

    __slots__ = ("a", "b", "differing_a", "differing_b", "hunks", "since")

    def __init__(self, since: int | None) -> None:
        self.a = self.b = self.hunks = self.differing_a = self.differing_b = 0
        self.since = since or 0

    def add(self, n: int, counts: list[int]) -> None:
        """One walk's answer: ``n`` steps of a, and its five counts (or none: as many
        steps of b, no hunk)."""
        self.a += n
        if not counts:
            self.b += n
            return
        n_b, hunks, since, differing_a, differing_b = counts
        self.b += n_b
        self.hunks += hunks
        self.since = since
        self.differing_a += differing_a
        self.differing_b += differing_b

    def answer(self) -> tuple[int, int, int, int, int, int]:
        return (self.a, self.b, self.hunks, self.differing_a, self.differing_b,
                self.since if self.hunks else 0)


def _line_key(step: Step) -> tuple[int, int, int, int] | None:
    """A step's by-line key as ``_cskip.lines`` takes it, or None where it cannot."""
    key: list[int] = []
    for given, absent in ((step.depth, 1), (step.code, -1), (step.line, 0), (step.thread, -1)):
        # (as the C walk reads a key: JSON integers as the writer writes them, or absent)
        if given is None:
            key.append(absent)
        elif type(given) is int and 0 <= given < _KEY_LIMIT:
            key.append(given)
        else:
            return None
    return key[0], key[1], key[2], key[3]


_KEY_LIMIT = 10 ** 18
"""Above the largest key member the C walk reads (18 digits)."""


def _skip_lines(
    a: _Source, b: _Source, steps_a: Generator[Step, int | None, None],
    steps_b: Generator[Step, int | None, None], lines_a: Lines, lines_b: Lines,
    info_a: TraceInfo, info_b: TraceInfo, seen: tuple[int, ...], fields: int,
    same: Callable[[Step, Step], bool], since: int | None = None,
) -> tuple[int, int, int, int, int, int]:
    """Pass over the groups both traces have in common from here: the group each
    ``Lines`` holds (its step read, the lines after it not yet: each generator holds
    the op line of its next step) when the two agree, and those after it that agree
    as ``_cskip.lines`` judges them; ``Skip``'s answer.  ``since`` (not None: the
    differ keeps no more hunks in full): divergent regions too."""
    assert _c is not None
    held_a, held_b = lines_a.current, lines_b.current
    if (
        held_a is None or held_b is None or a.lineno == 0 or b.lineno == 0
        or a.done or b.done
        or getgeneratorstate(steps_a) != GEN_SUSPENDED
        or getgeneratorstate(steps_b) != GEN_SUSPENDED
        or not _agree(info_a.functions, info_b.functions, seen)
        or not same(held_a, held_b)
    ):
        return _NOTHING
    key_a, key_b = _line_key(held_a), _line_key(held_b)
    if key_a is None or key_b is None:
        return _NOTHING
    given_a, given_b = a.pos - a.start, b.pos - b.start
    pa, pb = a.start, b.start
    count_a = count_b = read_a = read_b = ignored_a = ignored_b = 0
    refilled = False
    walk = _c.lines
    passed = _Passed(since)
    while True:
        more = () if since is None else (passed.since,)
        n, reason, pa, n_a, n_lines, n_ignored_a, pb, n_b, n_lines_b, n_ignored_b, *counts = (
            walk(a.view(), pa, b.view(), pb, a.calls, b.calls, MAX_LINE_BYTES, fields,
                 key_a, key_b, *more))
        passed.add(n, counts)
        n = n or (counts[0] if counts else 0)  # (a walk that passed a group of either)
        if n:
            key_a = key_b = None  # (from the first op lines of two groups on)
        count_a += n_a
        count_b += n_b
        read_a += n_lines
        read_b += n_lines_b
        ignored_a += n_ignored_a
        ignored_b += n_ignored_b
        if reason != _MORE or (n == 0 and refilled):
            break  # (a group longer than what a refill brings: the reference reads it)
        refilled = n == 0
        pa, pb, going = _read_on(a, b, pa, pb, given_a, given_b, n)
        if not going:
            break
    if passed.a == 0 and passed.b == 0:
        a.start, b.start = pa, pb
        a.pos, b.pos = pa + given_a, pb + given_b
        return _NOTHING
    for source, steps_x, lines_x, info, at, ignored, ops, read, groups in (
        (a, steps_a, lines_a, info_a, pa, ignored_a, count_a, read_a, passed.a),
        (b, steps_b, lines_b, info_b, pb, ignored_b, count_b, read_b, passed.b),
    ):
        source.start = source.pos = at
        source.lineno += read - 1
        info.ignored += ignored
        steps_x.send(ops)
        lines_x.passed(groups)
    return passed.answer()


class _Skipper:
    """``Skip``, and the differ's look-ahead on bytes (``look``, see ``_look``)."""

    __slots__ = ("look", "skip")

    def __init__(self, skip: Skip, look: Callable[[Step, Step], tuple[int, int] | None]
                 ) -> None:
        self.skip = skip
        self.look = look

    def __call__(self, since: int | None) -> tuple[int, int, int, int, int, int]:
        return self.skip(since)


def _look(
    a: _Source, b: _Source, step_a: Step, step_b: Step, info_a: TraceInfo, info_b: TraceInfo,
    seen: tuple[int, ...], fields: int,
) -> tuple[int, int] | None:
    """The size on each side of the divergent region starting at two steps that differ,
    as ``differ._look_ahead`` finds it, read from the lines as bytes (``_cskip.look``),
    or None where that is not done here: a step whose line is no longer in the buffer,
    code tables that do not agree, or anything the C look does not read."""
    assert _c is not None
    at = _places(a, b, step_a, step_b, info_a.functions, info_b.functions, seen)
    if at is None:
        return None
    found: tuple[int, int] | None = _c.look(a.view(), at[0], b.view(), at[1], a.calls, b.calls,
                                            MAX_LINE_BYTES, fields)
    return found


def _places(
    a: _Source, b: _Source, step_a: Step, step_b: Step,
    functions_a: Mapping[int | str, tuple[str | None, str | None]],
    functions_b: Mapping[int | str, tuple[str | None, str | None]], seen: tuple[int, ...],
) -> list[int] | None:
    """Where the op lines of two steps start in their sources' buffers, for a look-ahead
    on the bytes from there: None when a line is gone from the buffer or the code tables
    do not agree as far as the compared fields see them."""
    if not _agree(functions_a, functions_b, seen):
        return None
    at: list[int] = []
    for source, step in ((a, step_a), (b, step_b)):
        where = _line_at(source, step.lineno)
        if where is None:
            return None
        at.append(where)
    return at


def _look_steps(
    a: _Source, b: _Source, step_a: Step, step_b: Step,
    functions_a: Mapping[int | str, tuple[str | None, str | None]],
    functions_b: Mapping[int | str, tuple[str | None, str | None]], seen: tuple[int, ...],
    fields: int, grouped: bool, keep_a: set[int] | None, keep_b: set[int] | None,
) -> tuple[int, int] | None:
    """``_look`` for the steps of ``--by-line`` (``grouped``: two groups' first steps) or
    of level line (``keep_a``/``keep_b``: ``_cskip.project``'s), from ``_cskip.steps_look``."""
    assert _c is not None
    at = _places(a, b, step_a, step_b, functions_a, functions_b, seen)
    if at is None:
        return None
    found: tuple[int, int] | None = _c.steps_look(
        a.view(), at[0], b.view(), at[1], a.calls, b.calls, MAX_LINE_BYTES, fields, grouped,
        keep_a, keep_b)
    return found


def _skip(
    a: _Source, b: _Source, steps_a: Generator[Step, int | None, None],
    steps_b: Generator[Step, int | None, None], info_a: TraceInfo, info_b: TraceInfo,
    mask_gas: bool, seen: tuple[int, ...], judge: Callable[[bytes, bytes], bool] | None,
    since: int | None, aligned: int | None = None,
) -> tuple[int, int, int, int, int, int]:
    """Pass over the steps both traces have in common from here (see the module);
    ``(steps_a, steps_b, hunks, differing_a, differing_b, since)`` as ``Skip`` says.
    ``aligned``: the mask of the compared fields when regions may be passed too."""
    assert _c is not None
    if (
        a.lineno == 0 or b.lineno == 0 or a.done or b.done
        or getgeneratorstate(steps_a) != GEN_SUSPENDED
        or getgeneratorstate(steps_b) != GEN_SUSPENDED
        or not _agree(info_a.functions, info_b.functions, seen)
    ):
        return _NOTHING
    # Each generator holds the op line of its next step: the last line its source gave.
    given_a, given_b = a.pos - a.start, b.pos - b.start
    pa, pb = a.start, b.start
    steps = count_b = lines = lines_b = ignored_a = ignored_b = hunks = 0
    differing_a = differing_b = 0
    check = a.check
    hunk_args: tuple[Callable[[bytes, bytes], bool], int] | tuple[()] = (
        () if judge is None or since is None else (judge, since))
    walk = _c.skip
    if hunk_args and aligned is not None:
        walk = _c.align
        hunk_args = (*hunk_args, aligned)  # type: ignore[assignment]
    while True:
        n: int
        n_hunks = 0
        if check is not None and a.base <= check.pos:
            n, n_lines, n_ignored_a, n_ignored_b, pa, pb, reason, at, check.number, code, *more = (
                walk(a.view(), pa, b.view(), pb, mask_gas, a.calls, b.calls, MAX_LINE_BYTES,
                     check.scan, check.pos - a.base, check.number, *hunk_args))
            check.pos = a.base + at
            if code:  # a line the scanner stopped at: the check's finish answers for it
                check.code = code
                a.check = check = None
        else:  # the lines since the check's position are gone from the buffer: it reads them
            a.check = check = None
            n, n_lines, n_ignored_a, n_ignored_b, pa, pb, reason, *more = walk(
                a.view(), pa, b.view(), pb, mask_gas, a.calls, b.calls, MAX_LINE_BYTES,
                *hunk_args)
        n_b, n_lines_b, n_differing_a = n, n_lines, 0
        if hunk_args:
            if aligned is not None:
                n_hunks, since, n_b, n_lines_b, n_differing_a, n_differing_b = more
                differing_b += n_differing_b
            else:
                n_hunks, since = more
                n_differing_a = n_differing_b = n_hunks
                differing_b += n_hunks
            hunk_args = (hunk_args[0], since, *hunk_args[2:])
        hunks += n_hunks
        differing_a += n_differing_a
        steps += n
        count_b += n_b
        lines += n_lines
        lines_b += n_lines_b
        ignored_a += n_ignored_a
        ignored_b += n_ignored_b
        if reason != _MORE:
            break
        pa, pb, going = _read_on(a, b, pa, pb, given_a, given_b, n)
        if not going:
            break
    if steps == 0 and count_b == 0:
        a.start, b.start = pa, pb
        a.pos, b.pos = pa + given_a, pb + given_b
        return _NOTHING
    for source, steps_x, info, at, ignored, passed, read in (
        (a, steps_a, info_a, pa, ignored_a, steps, lines),
        (b, steps_b, info_b, pb, ignored_b, count_b, lines_b),
    ):
        source.start = source.pos = at
        source.lineno += read - 1
        info.ignored += ignored
        steps_x.send(passed)
    return (steps, count_b, hunks, differing_a, differing_b,
            since if hunks and since is not None else 0)


def _read_on(a: _Source, b: _Source, pa: int, pb: int, given_a: int, given_b: int,
             n: int) -> tuple[int, int, bool]:
    """After a walk stopped for want of bytes at ``pa``/``pb`` (having passed ``n``):
    keep both buffers from there and read on where the lines run out (the traces'
    lines need not take the same bytes: a side read on regardless would keep ever
    more); the walk's new positions, and False at an input's end (a torn line, or
    nothing more in common to pass)."""
    a.start, b.start = pa, pb
    a.pos, b.pos = pa + given_a, pb + given_b
    need_a, need_b = a.n - pa < _REFILL, b.n - pb < _REFILL
    if not (need_a or need_b):
        need_a = need_b = True  # (a line longer than that)
    grew_a = a.more() if need_a else True
    grew_b = b.more() if need_b else True
    going = (grew_a and grew_b) or (n != 0 and (grew_a or grew_b))
    return a.start, b.start, going


_NOTHING = (0, 0, 0, 0, 0, 0)
_ALIGN_WINDOW = 64
_REFILL = CHUNK // 2
"""A buffer with fewer bytes than this left after the walk's stop is read on."""
_BACK = 8192
"""Lines counted back at most to find a step that differs (the differ may hold the
steps read after it, up to its window)."""
"""The differ's look-ahead window must reach this far for ``align`` (its windows)."""


def _judge(info_a: TraceInfo, info_b: TraceInfo, comparer: Comparer
           ) -> Callable[[bytes, bytes], bool]:
    """Whether two op lines (that the pass found differ as bytes, with no ``event`` or
    ``error`` member, neither merging with the line before) are steps that differ,
    as the comparer judges the steps ``normalise.steps_of`` makes of them; False
    where that is not for sure (a line it would read otherwise: the reference
    reads it)."""
    decode = raw_decoder().decode
    same = comparer.same

    def step(line: bytes, functions: dict[int | str, tuple[str, str]]) -> Step | None:
        try:
            raw = decode(line)
        except (msgspec.DecodeError, RecursionError):
            return None
        pc, op, gas, depth = raw.pc, raw.op, raw.gas, raw.depth
        if depth is None:
            depth = 1
        if (
            type(pc) is not int or type(op) is not int or type(depth) is not int
            or not isinstance(gas, str) or not gas.startswith("0x")
            or raw.error is not None or raw.event is not None or raw.blocktrace is not None
        ):
            return None
        try:
            gas_value = int(gas, 16)
        except ValueError:
            return None
        name = file = None
        if raw.code is not None:
            known = functions.get(raw.code)
            if known is not None:
                name, file = known
        return Step(0, 0, pc, op, gas_value, depth, raw.stack, raw, None, None, name, file)

    def judge(line_a: bytes, line_b: bytes) -> bool:
        step_a = step(line_a, info_a.functions)
        step_b = step(line_b, info_b.functions)
        return step_a is not None and step_b is not None and not same(step_a, step_b)

    return judge


def _line_at(source: _Source, number: int) -> int | None:
    """Where line ``number`` starts in the source's buffer: counted back from the last
    line given (at ``start``, numbered ``lineno``), or None when it is gone from the
    buffer (the buffer starts at a line's start: the one ``more`` kept)."""
    back = source.lineno - number
    if back < 0 or back > _BACK:
        return None
    at = source.start
    buf = source.buf
    for _ in range(back):
        if at <= 0:
            return None
        at = buf.rfind(b"\n", 0, at - 1) + 1
    return at


def _agree(
    a: Mapping[int | str, tuple[str | None, str | None]],
    b: Mapping[int | str, tuple[str | None, str | None]], seen: tuple[int, ...],
) -> bool:
    """Whether two code tables give every code number the same function and file, as
    far as the compared fields see them (``seen``: 0 the function, 1 the file): then
    an op line's bytes say the same step in both traces."""
    if a == b or not seen:
        return True
    if a.keys() != b.keys():
        return False
    return all(a[code][i] == b[code][i] for code in a for i in seen)
