"""``diff_files``: two trace files in, one ``DiffReport`` out (no printing here)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from blocktrace.eip3155 import clientpass, levels, lines, skip
from blocktrace.eip3155.compare import Comparer, resolve_fields
from blocktrace.eip3155.dialects import (
    DIALECTS,
    EVM_DEFAULT_FIELDS,
    PYTHON_DEFAULT_FIELDS,
    placeholder_root,
)
from blocktrace.eip3155.differ import DEFAULT_MAX_HUNKS, DEFAULT_WINDOW, StepDiff, diff_steps
from blocktrace.eip3155.lines import LINE_DEFAULT_FIELDS
from blocktrace.eip3155.normalise import TraceInfo, normalise
from blocktrace.eip3155.reader import TraceError, trace_sources
from blocktrace.eip3155.records import Step, Summary
from blocktrace.eip3155.writer import canonical_step
from blocktrace.format import SourceLine, TraceReader, blocktrace_header, read_source
from blocktrace.format.source import read_local_text

__all__ = [
    "DiffReport", "SummaryDiff", "diff_files", "quote_source", "sniff_python", "source_line",
]


class SummaryDiff(msgspec.Struct):
    a: Summary | None
    b: Summary | None
    differences: list[str] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)


class DiffReport(msgspec.Struct):
    a: TraceInfo
    b: TraceInfo
    fields: tuple[str, ...]
    stack_top: int | None
    steps: StepDiff
    summary: SummaryDiff
    by_line: bool = False
    notes: list[str] = msgspec.field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.steps.equal and not self.summary.differences


def sniff_python(path: str) -> bool:
    """Whether the trace at ``path`` is a blocktrace trace, by the format's one
    rule (``blocktrace.format.blocktrace_header``); a blocktrace trace that cannot
    be used raises ``TraceError`` with what ``verify`` says of it."""
    return blocktrace_header(path) is not None


_SOURCES: dict[tuple[str, str | None], list[str] | str] = {}
_TRACE_SOURCES: dict[str, dict[str, SourceLine]] = {}


def _trace_sources(trace: str) -> dict[str, SourceLine]:
    """The source lines of the blocktrace trace at ``trace`` (none for others)."""
    found = _TRACE_SOURCES.get(trace)
    if found is None:
        try:
            found = trace_sources(TraceReader(trace))
        except TraceError:
            found = {}
        if len(_TRACE_SOURCES) > 16:
            _TRACE_SOURCES.clear()
        _TRACE_SOURCES[trace] = found
    return found


def _source_lines(path: str, entry: SourceLine | None) -> list[str] | str:
    """The lines of ``path`` as ``entry`` committed to them, or why not."""
    key = (path, None if entry is None else entry.sha256)
    if key not in _SOURCES:
        if len(_SOURCES) > 256:
            _SOURCES.clear()
        got = (
            read_local_text(path) if entry is None
            else read_source(msgspec.structs.replace(entry, file=path))
        )
        _SOURCES[key] = got.text.splitlines() if got.text is not None else got.reason
    return _SOURCES[key]


def quote_source(
    file: str | None, line: int | None, near: str | None = None
) -> tuple[str | None, str]:
    """``(the text of file's line, "")``, or ``(None, why not)``.

    With ``near`` (the trace the step came from) a file is quoted only as that
    trace committed to it: its source line's SHA-256 and size, or embedded text
    (``blocktrace.format.read_source``), so a forged trace naming ``/etc/shadow``
    or ``/dev/zero`` gets nothing quoted.  A relative ``file`` (``co_filename``
    as the program was started) is looked up from the current directory, then
    from the trace's directory, where a trace usually sits beside its program.
    Without ``near`` the caller vouches for ``file`` (it checked the content
    itself): it is read if it is a bounded regular file.
    """
    if not file or not line or line < 1 or file.startswith("<"):
        return None, ""
    entry: SourceLine | None = None
    candidates = [file]
    if near is not None:
        entry = _trace_sources(near).get(file)
        if entry is None:
            return None, "source missing or changed: the trace records no hash of it"
        if not os.path.isabs(file) and entry.text is None:
            candidates.append(os.path.join(os.path.dirname(os.path.abspath(near)), file))
    reason = ""
    for candidate in candidates:
        lines = _source_lines(candidate, entry)
        if isinstance(lines, str):
            reason = reason or lines
            continue
        return (lines[line - 1].strip() if line <= len(lines) else None), ""
    return None, reason


def source_line(file: str | None, line: int | None, near: str | None = None) -> str | None:
    """The text of ``file``'s line ``line`` (see :func:`quote_source`), else None."""
    return quote_source(file, line, near)[0]


def _output(summary: Summary, python: bool) -> str | None:
    out = summary.output
    if out is None or python:
        return out
    out = out.lower()
    return out[2:] if out.startswith("0x") else out


def compare_summaries(a: TraceInfo, b: TraceInfo, by_line: bool = False) -> SummaryDiff:
    """Summaries compared on what means the same on both sides; the rest noted.

    ``by_line``: instruction counts (blocktrace's ``gasUsed``) are not compared."""
    sa, sb = a.summary, b.summary
    result = SummaryDiff(sa, sb)
    if sa is None or sb is None:
        for info, mine in ((a, sa), (b, sb)):
            if mine is None:
                result.notes.append(f"{info.path} has no summary line")
        return result
    python = a.dialect == "blocktrace" and b.dialect == "blocktrace"
    root_a, root_b = sa.stateRoot, sb.stateRoot
    for info, root in ((a, root_a), (b, root_b)):
        if placeholder_root(root):
            result.notes.append(
                f"stateRoot of {info.path} is all zeros, a placeholder (revm's EIP-3155 tracer "
                "does not compute the root; no real state root is zero): not reported, "
                "not compared")
    if root_a is not None and root_b is not None and not (
        placeholder_root(root_a) or placeholder_root(root_b)
    ) and root_a.lower() != root_b.lower():
        result.differences.append("stateRoot")
    out_a, out_b = _output(sa, python), _output(sb, python)
    if out_a is not None and out_b is not None and out_a != out_b:
        result.differences.append("output")
    if sa.passed is not None and sb.passed is not None and sa.passed != sb.passed:
        if a.dialect == b.dialect:
            result.differences.append("pass")
        else:
            result.notes.append(
                f"pass differs ({sa.passed} in {a.dialect}, {sb.passed} in {b.dialect}); "
                "clients give it different meanings, not flagged"
            )
    if sa.gasUsed is not None and sb.gasUsed is not None and sa.gasUsed != sb.gasUsed:
        if a.gas_used == b.gas_used and a.gas_used != "unknown" and not by_line:
            result.differences.append("gasUsed")
        elif by_line:
            result.notes.append(f"instructions traced differ: {sa.gasUsed} vs {sb.gasUsed}; "
                                "not compared per source line")
        else:
            result.notes.append(
                f"gasUsed differs: {sa.gasUsed} ({a.gas_used} gas, {a.dialect}) vs "
                f"{sb.gasUsed} ({b.gas_used} gas, {b.dialect}); not flagged"
            )
    if (sa.error or None) != (sb.error or None):
        if python:
            result.differences.append("error")
        else:
            result.notes.append("error text differs (clients word errors differently)")
    return result


def diff_files(
    path_a: str,
    path_b: str,
    *,
    fields: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    stack_top: int | None = None,
    max_hunks: int = DEFAULT_MAX_HUNKS,
    window: int = DEFAULT_WINDOW,
    dialect_a: str | None = None,
    dialect_b: str | None = None,
    by_line: bool = False,
    walks: bool = True,
) -> DiffReport:
    """Diff two trace files.  Raises ``TraceError`` (unusable input) or
    ``ValueError`` (bad field names, ``by_line`` on client traces).

    ``by_line`` compares blocktrace traces one executed source line at a time
    (see ``lines.by_line``) instead of one instruction at a time.  ``walks``: False
    reads every step by the reference path (as ``BLOCKTRACE_PURE=1`` does), never
    by the C walks over bytes."""
    for dialect in (dialect_a, dialect_b):
        if dialect is not None and dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r} (known: {', '.join(DIALECTS)})")
    python_a = DIALECTS[dialect_a].python if dialect_a else sniff_python(path_a)
    python_b = DIALECTS[dialect_b].python if dialect_b else sniff_python(path_b)
    if by_line and not (python_a and python_b):
        raise ValueError("--by-line compares blocktrace traces (source lines); "
                         "an input is a client trace")
    defaults = PYTHON_DEFAULT_FIELDS if python_a and python_b else EVM_DEFAULT_FIELDS
    chosen = resolve_fields(LINE_DEFAULT_FIELDS if by_line else defaults, fields, ignore)
    comparer = Comparer(chosen, stack_top)
    info_a = TraceInfo(path_a, forced_dialect=dialect_a)
    info_b = TraceInfo(path_b, forced_dialect=dialect_b)
    level_note = None
    skipper = None
    grouped = False
    if python_a and python_b:
        stream_a, stream_b, level_note, skipper, grouped = _at_one_level(
            info_a, info_b, chosen, comparer, window, by_line, walks)
    elif walks and (fast := clientpass.pair(info_a, info_b, chosen, stack_top)) is not None:
        stream_a, stream_b, skipper = fast
    else:
        stream_a, stream_b = normalise(path_a, info_a), normalise(path_b, info_b)
    if by_line and not grouped:
        stream_a, stream_b = lines.by_line(stream_a), lines.by_line(stream_b)
        skipper = None
    try:
        steps = diff_steps(stream_a, stream_b, comparer, max_hunks=max_hunks, window=window,
                           skip=skipper)
    except (TraceError, ValueError):
        if skipper is None:
            raise
        # A line neither trace may hold (the walks leave every such line to the
        # reference): which one is named first, when each trace holds one, is a
        # matter of the order the reference reads ahead in each, which the walks
        # do not keep.  The reference's answer, read again without them.
        return diff_files(path_a, path_b, fields=fields, ignore=ignore, stack_top=stack_top,
                          max_hunks=max_hunks, window=window, dialect_a=dialect_a,
                          dialect_b=dialect_b, by_line=by_line, walks=False)
    for path, python in ((path_a, python_a), (path_b, python_b)):
        if python:  # read the trace's source commitments while the file is there
            _trace_sources(path)  # (from the pass that just read it, if it did)
    report = DiffReport(info_a, info_b, chosen, stack_top, steps,
                        compare_summaries(info_a, info_b, by_line), by_line=by_line)
    if level_note is not None:
        report.notes.append(level_note)
    if python_a != python_b:
        report.notes.append("one input is a blocktrace trace and the other is not")
    for info in (info_a, info_b):
        if info.halts_not_errors:
            report.notes.append(
                f"{info.path}: {info.halts_not_errors} `error` value(s) naming a normal halt "
                "(Stop, Return, SelfDestruct: revm writes a frame's end so) read as no error")
    if (
        fields is None and not by_line and python_a and python_b
        and info_a.python and info_b.python
        and info_a.python.rsplit(".", 1)[0] != info_b.python.rsplit(".", 1)[0]
    ):
        report.notes.append(
            f"recorded on Python {info_a.python} and {info_b.python}: bytecode differs "
            "between versions; compare source lines with --by-line"
        )
    if steps.window_overflows:
        report.notes.append(
            f"{steps.window_overflows} divergent region(s) longer than the look-ahead "
            f"window ({window} steps); hunks after them may be merged (see --window)"
        )
    return report


def _level(path: str) -> str:
    from blocktrace.format import TraceError as FormatError
    from blocktrace.format import TraceReader

    try:
        return TraceReader(path).level
    except FormatError:
        return "op"  # not readable as a trace: normalise says why


def _at_one_level(
    info_a: TraceInfo, info_b: TraceInfo, fields: Sequence[str], comparer: Comparer,
    window: int = DEFAULT_WINDOW, by_line: bool = False, walks: bool = True,
) -> tuple[Iterator[Step], Iterator[Step], str | None, skip.Skip | None, bool]:
    """The two blocktrace traces' steps at the coarser of their levels (see
    ``levels``), the note saying so when the levels differ, the differ's ``skip``
    when the steps can be passed over as bytes (``skip.pair``; not when ``walks`` is
    False), and whether the steps are already grouped by source line (``by_line``:
    ``skip.line_pair``)."""
    level_a, level_b = _level(info_a.path), _level(info_b.path)
    info_a.level, info_b.level = level_a, level_b
    level = levels.coarser(level_a, level_b)
    coarse_path = info_a.path if level == level_a else info_b.path

    def starts() -> set[levels.StartKey]:
        return levels.line_starts_of(normalise(coarse_path))

    note = (f"compared at level {level}: A is {_a(level_a)}-level trace, B {_a(level_b)}-level"
            " one" + (" (line starts taken from the line-level trace: a line only the "
                      "op-level run started is not compared)" if level == "line" else ""))
    # The byte walks read a line by its shape; the reference decodes it.  They agree
    # on every line a trace's chain vouches for, not on damaged ones (tests/fuzz's
    # walks corpus): a tampered trace is read by the reference alone.
    walks = walks and not (_tampered(info_a.path) or _tampered(info_b.path))
    if level == "call" and walks and (fast := skip.call_pair(info_a, info_b, fields)) is not None:
        return fast[0], fast[1], None if level_a == level_b else note, fast[2], False
    if level == "call":  # the call tree and its exceptions, at any level
        stream_a = levels.call_steps(info_a.path, info_a)
        stream_b = levels.call_steps(info_b.path, info_b)
    elif not walks:
        stream_a, stream_b = normalise(info_a.path, info_a), normalise(info_b.path, info_b)
    elif level_a == level_b and by_line and (
        grouped := skip.line_pair(info_a, info_b, fields, comparer, window)
    ) is not None:
        return grouped[0], grouped[1], None, grouped[2], True
    elif level_a == level_b and not by_line and (
        fast := skip.pair(info_a, info_b, fields, None, comparer, window)
    ) is not None:
        return fast[0], fast[1], None, fast[2], False
    elif level_a == level_b or by_line or (
        fast := skip.level_pair(info_a, info_b, level_a, level_b, fields, starts, window)
    ) is None:
        stream_a, stream_b = normalise(info_a.path, info_a), normalise(info_b.path, info_b)
    else:
        return fast[0], fast[1], note, fast[2], False
    if level_a == level_b:
        return stream_a, stream_b, None, None, False
    if level == "line":
        stream_a = levels.project(stream_a, level, starts) if level_a == "op" else stream_a
        stream_b = levels.project(stream_b, level, starts) if level_b == "op" else stream_b
    return stream_a, stream_b, note, None, False


def _tampered(path: str) -> bool:
    """Whether the blocktrace trace at ``path`` fails its chain check: its index's
    pass (built once and kept, as ``diff``'s note on the chain reads it after the
    report), or no index at all (no usable trace: the reference says why)."""
    from blocktrace.format import TraceError as FormatError
    from blocktrace.format import TraceReader

    try:
        index = TraceReader(path).index()
    except (FormatError, OSError):
        return True
    return index is None or index.status == "tampered"


def _a(level: str) -> str:
    return f"an {level}" if level == "op" else f"a {level}"


_VIEW_OPTIONAL = ("opName", "error", "returnData", "line", "code", "function", "file", "thread",
                  "locals", "globals", "event")


def step_view(step: Step, near: str | None = None) -> dict[str, Any]:
    """One step as the report shows it: canonical EIP-3155 numbers, Python context."""
    view: dict[str, Any] = {"step": step.index, "traceLine": step.lineno}
    view.update(canonical_step(step, _VIEW_OPTIONAL))
    source, missing = quote_source(step.file, step.line, near)
    if source is not None:
        view["source"] = source
    elif missing:
        view["sourceMissing"] = missing
    return view


__all__ += ["TraceError", "compare_summaries", "step_view"]
