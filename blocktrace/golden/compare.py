"""Comparing a fresh golden-form trace with the stored golden, and saying how they differ.

Both files are golden bytes (``stabilise``), so the same behaviour gives the
same bytes: a byte comparison settles the common case.  Otherwise the stored
file is verified (a golden edited by hand or damaged is reported as such, never
as a comparison) while both are compared step by step with the diff engine
(``blocktrace.eip3155``), which passes over their common steps as bytes and
stops after the requested number of hunks.
"""

from __future__ import annotations

import filecmp
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from blocktrace._native import extension
from blocktrace.eip3155 import skip
from blocktrace.eip3155.compare import Comparer, resolve_fields
from blocktrace.eip3155.differ import StepDiff, diff_steps
from blocktrace.eip3155.normalise import TraceInfo, normalise
from blocktrace.eip3155.reader import TraceError
from blocktrace.eip3155.records import Step
from blocktrace.eip3155.report import SummaryDiff, compare_summaries
from blocktrace.format.callline import without_values
from blocktrace.format.fastcheck import Follower
from blocktrace.format.linesource import CHUNK, BufferedLines
from blocktrace.format.reader import Verification, check_chain
from blocktrace.golden.read import Frame, call_steps, header_of, source_text, stack_at
from blocktrace.golden.stabilise import GOLDEN_GENESIS
from blocktrace.limits import MAX_LINE_BYTES
from blocktrace.tracers.level import Level

__all__ = ["FIELDS_BY_LEVEL", "GoldenCorrupt", "GoldenDiff", "compare_golden", "fields_for"]

FIELDS_BY_LEVEL: dict[Level, tuple[str, ...]] = {
    "op": ("pc", "op", "depth", "line", "function", "file", "thread", "error", "locals",
           "globals"),
    "line": ("depth", "line", "function", "file", "thread", "error", "locals", "globals"),
    "call": ("event", "depth", "function", "file", "thread", "error", "locals"),
}
"""What must stay the same at each level (a call-level step's ``locals`` is a
return's value, compared when values are recorded)."""


class GoldenCorrupt(Exception):
    """The stored golden is not a trace this plugin wrote (edited, damaged, other level)."""


@dataclass
class GoldenDiff:
    """The outcome of one comparison; ``text`` is the report for a failed test."""

    golden: str
    fresh: str
    level: Level
    fields: tuple[str, ...]
    steps: StepDiff | None = None
    summary: SummaryDiff | None = None
    text: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.steps is None or (
            self.steps.equal and (self.summary is None or not self.summary.differences)
        )


def fields_for(level: Level, ignore: Sequence[str] = ()) -> tuple[str, ...]:
    """The compared fields of ``level`` minus ``ignore`` (``ValueError`` for an unknown name)."""
    return resolve_fields(FIELDS_BY_LEVEL[level], None, list(ignore))


def check_golden(path: str, level: Level) -> None:
    """Raise ``GoldenCorrupt`` unless ``path`` is a sealed golden trace of ``level``.

    The chain alone settles it: every line's hash, the summary's included, is
    checked; the Merkle root (``verify``'s, for anchoring a trace elsewhere) is
    not computed -- a golden's anchors are its genesis and level, and whoever
    could re-hash an edited chain could as well recompute a root."""
    _judge(path, level, check_chain(path))


def _judge(path: str, level: Level, result: Verification) -> None:
    """``check_golden``'s verdict on the chain check's ``result``."""
    if result.status != "sealed":
        where = f" at line {result.line}" if result.line else ""
        raise GoldenCorrupt(
            f"golden trace {path} is {result.status}{where}: {result.reason} -- it was edited "
            "by hand or damaged; re-create it with --blocktrace-golden-update"
        )
    if result.genesis != GOLDEN_GENESIS:
        raise GoldenCorrupt(f"golden trace {path} was not written by the golden plugin "
                            f"(genesis {result.genesis!r}); re-create it with "
                            "--blocktrace-golden-update")
    recorded = result.header.get("level", "op")
    if recorded != level:
        raise GoldenCorrupt(f"golden trace {path} was recorded at level {recorded!r}, the test "
                            f"asks for {level!r}; re-record it with --blocktrace-golden-update")


class _Check(threading.Thread):
    """``check_golden`` on a thread of its own (``start``; where the byte pass checks
    the golden's chain as it reads it, ``follow`` gives it that check instead and no
    thread runs); ``verdict`` waits for it and raises what it raised."""

    def __init__(self, path: str, level: Level) -> None:
        super().__init__(name="blocktrace-golden-check", daemon=True)
        self.path = path
        self.level: Level = level
        self.error: BaseException | None = None
        self.follower: Follower | None = None
        self.begun = False

    def begin(self) -> None:
        """Check on the thread unless ``follow`` took the check over (at the latest
        when the comparison starts reading)."""
        if not self.begun and self.follower is None:
            self.begun = True
            self.start()

    def follow(self) -> Follower | None:
        """The golden's check for the byte pass to feed (``fastcheck.Follower``), where
        the chain scanner is built and the thread has not begun."""
        native = extension("blocktrace.format._cscan")
        if native is None or self.begun:
            return None
        self.follower = Follower(native, self.path)
        return self.follower

    def run(self) -> None:
        try:
            check_golden(self.path, self.level)
        except BaseException as exc:  # handed to the caller by ``verdict``
            self.error = exc

    def verdict(self) -> None:
        if self.follower is not None:
            _judge(self.path, self.level, self.follower.finish())
            return
        self.begin()
        self.join()
        if self.error is not None:
            raise self.error


def _streams(
    info_g: TraceInfo, info_f: TraceInfo, level: Level, values: bool, fields: Sequence[str],
    check: _Check,
) -> tuple[Iterator[Step], Iterator[Step], skip.Skip | None]:
    """Both step streams, and the differ's ``skip`` where the steps can be passed
    over as bytes once the streams are back in step (``eip3155.skip``: it checks the
    golden's chain as it reads it)."""
    if level == "call":
        return (call_steps(info_g.path, info_g, values), call_steps(info_f.path, info_f, values),
                None)
    if skip.fused():
        follower = check.follow()
        fast = skip.pair(info_g, info_f, fields, follower)
        if fast is not None:
            return fast
        check.follower = None
    return normalise(info_g.path, info_g), normalise(info_f.path, info_f), None


class _Untold(Exception):
    """``_same_calls`` cannot tell on the bytes (the comparison decides)."""


def _calls_pieces(lines: BufferedLines) -> Iterator[bytes]:
    """The file's lines without their hashes and return values
    (``format.callline.without_values``), a piece of whole lines at a time;
    ``_Untold`` where that cannot tell (a line naming a thread, a line without a
    hash member -- a torn one included -- or a line longer than ``MAX_LINE_BYTES``)."""
    while lines.more():
        pos, n = lines.pos, lines.n
        cut = lines.buf.rfind(b"\n", pos, n) + 1
        if cut == 0:  # no whole line yet: read on, a line's length bounded
            if n - pos > MAX_LINE_BYTES:
                raise _Untold
            continue
        piece = without_values(lines.view()[pos:cut])
        if piece is None:
            raise _Untold
        lines.pos = lines.start = cut
        yield piece
    if lines.rest():
        raise _Untold


def _same_calls(golden: str, fresh: str, chunk: int = CHUNK) -> bool:
    """Whether two calls-level goldens hold the same lines but for their return values
    (and so their hashes): then they are the same behaviour when values are not
    compared, found without decoding a line (``format.callline.without_values``).
    False when that cannot be told so (lines naming threads, a damaged line).  Both
    are read a piece at a time (``BufferedLines``; memory bounded whatever their size)
    and compared as they come, up to the first difference; ``chunk``: bytes read at
    a time."""
    with BufferedLines.open(golden, chunk) as lines_a, BufferedLines.open(fresh, chunk) as lines_b:
        pieces = (_calls_pieces(lines_a), _calls_pieces(lines_b))
        ahead = [b"", b""]  # of each, what is not yet compared with the other
        ended = [False, False]
        try:
            while True:
                if not ended[0] and (len(ahead[0]) <= len(ahead[1]) or ended[1]):
                    side = 0
                elif not ended[1]:
                    side = 1
                else:
                    return ahead[0] == ahead[1]
                piece = next(pieces[side], None)
                if piece is None:
                    ended[side] = True
                    continue
                ahead[side] += piece
                short, long = sorted(ahead, key=len)
                if not long.startswith(short):
                    return False
                ahead = [ahead[0][len(short):], ahead[1][len(short):]]
        except _Untold:
            return False


def compare_golden(
    golden: str,
    fresh: str,
    level: Level,
    *,
    ignore: Sequence[str] = (),
    values: bool = False,
    hunks: int = 3,
    root: str = ".",
) -> GoldenDiff:
    """Compare ``fresh`` with ``golden`` (both golden bytes).  Raises ``GoldenCorrupt``
    for a stored golden that is not sound, ``ValueError`` for a bad ``ignore``."""
    fields = fields_for(level, ignore)
    result = GoldenDiff(golden, fresh, level, fields)
    if filecmp.cmp(golden, fresh, shallow=False):
        return result
    # The stored golden is verified while both are compared (the chain check runs in
    # C without the GIL): its verdict comes first, and a golden that is not sound is
    # reported as such, whatever the comparison found.
    check = _Check(golden, level)
    if level == "call":
        check.begin()
    if level == "call" and not values:
        try:
            same = _same_calls(golden, fresh)
        except BaseException:
            check.join()
            raise
        if same:  # only return values differ (a test's random numbers), not compared
            check.verdict()
            return result
    info_g = TraceInfo(golden)
    info_f = TraceInfo(fresh)
    comparer = Comparer(fields)
    try:
        stream_g, stream_f, skipper = _streams(info_g, info_f, level, values, fields, check)
        check.begin()
        steps = diff_steps(stream_g, stream_f, comparer, max_hunks=max(hunks, 1),
                           stop_after=max(hunks, 1) + 1, skip=skipper)
    except TraceError as exc:
        check.verdict()
        raise GoldenCorrupt(f"golden trace {exc}; re-create it with "
                            "--blocktrace-golden-update") from None
    except BaseException:
        if check.begun:
            check.join()
        raise
    check.verdict()
    result.steps = steps
    if not steps.stopped:
        result.summary = compare_summaries(info_g, info_f, by_line=level != "op")
    if result.equal:
        return result
    result.text = _report(result, root, header_of(golden).python, header_of(fresh).python)
    return result


# -- the report -------------------------------------------------------------------


Sources = dict[str, "list[str] | str"]


def _source(sources: Sources, file: str | None, line: int | None) -> str:
    """The text of ``file:line`` as the trace committed to it (its source lines), or why
    it cannot be shown."""
    if file is None or not line:
        return ""
    text = sources.get(file)
    if text is None:
        return ""
    if isinstance(text, str):
        return f"  | ({text})"
    return f"  | {text[line - 1].strip()}" if line <= len(text) else ""


def _describe(step: Step | None, sources: Sources, level: Level) -> str:
    if step is None:
        return "(nothing: the trace ends here)"
    what = step.event if level == "call" else (step.raw.opName or f"op {step.op}")
    if level == "op":
        what = f"pc {step.pc} {what}"
    elif level == "line":
        what = ""
    place = f"{step.function or '?'}  {step.file or '?'}:{step.line or '?'}"
    text = f"{what + '  ' if what else ''}{place}{_source(sources, step.file, step.line)}"
    if step.error:
        text += f"  [{step.event or 'error'}: {step.error}]"
    if level == "call" and step.raw.locals:
        text += f"  -> {bytes(step.raw.locals).decode()}"
    return text


def _stack(frames: list[Frame], sources: Sources) -> list[str]:
    return [f"      {f.function}  {f.file}:{f.line}{_source(sources, f.file, f.line)}"
            for f in frames[-12:]]


def _report(diff: GoldenDiff, root: str, py_golden: str | None, py_now: str | None) -> str:
    steps = diff.steps
    assert steps is not None
    unit = {"op": "instruction", "line": "source line", "call": "call event"}[diff.level]
    out = [f"blocktrace golden: the test's behaviour changed (level {diff.level}, "
           f"compared: {', '.join(diff.fields)})",
           f"  golden: {diff.golden}"]
    first = steps.first
    golden_sources = source_text(diff.golden, root)
    now_sources = source_text(diff.fresh, root)
    if first is not None:
        fields = f" (differs in: {', '.join(first.fields)})" if first.fields else ""
        # numbered as steps (0-based, in the order run), not as a file's line numbers
        out.append(f"  first divergence at step {first.step} of the {unit}s run{fields}")
        if steps.last_common is not None:
            last = steps.last_common[1]
            out.append(f"  last common step {last.index}: "
                       f"{_describe(last, now_sources, diff.level)}")
        else:
            out.append("  (no common step before it)")
        out.append(f"  golden: {_describe(first.a, golden_sources, diff.level)}")
        out.append(f"  now:    {_describe(first.b, now_sources, diff.level)}")
        for label, path, step in (("now", diff.fresh, first.b), ("golden", diff.golden, first.a)):
            if step is not None:
                out.append(f"  call stack ({label}), outermost first:")
                sources = now_sources if path == diff.fresh else golden_sources
                out.extend(_stack(stack_at(path, step.lineno), sources))
                break
        further = steps.hunk_count - 1
        if steps.stopped:
            out.append(f"  {further} further hunk(s) at least (the comparison stopped there)")
        else:
            out.append(f"  {further} further hunk(s); {unit}s: {steps.steps_a} in the golden, "
                       f"{steps.steps_b} now")
    summary = diff.summary
    if summary is not None and summary.differences:
        a, b = summary.a, summary.b
        for name in summary.differences:
            key = {"pass": "passed"}.get(name, name)
            out.append(f"  outcome differs in {name}: golden {getattr(a, key, None)!r}, "
                       f"now {getattr(b, key, None)!r}")
    if py_golden and py_now and py_golden != py_now:
        out.append(f"  note: the golden was recorded on Python {py_golden}, this is {py_now}")
    if not os.environ.get("PYTHONHASHSEED"):
        out.append("  note: PYTHONHASHSEED is not set: the iteration order of sets of strings "
                   "may change between runs")
    out.append("  if the change is intended, re-record with --blocktrace-golden-update")
    return "\n".join(out)
