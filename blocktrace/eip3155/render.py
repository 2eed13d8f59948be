"""Showing a ``DiffReport``: the ``--json`` object, and text for a terminal."""

from __future__ import annotations

from typing import Any

import msgspec

from blocktrace.eip3155.compare import Comparer, canonical_stack, canonical_value
from blocktrace.eip3155.differ import Hunk
from blocktrace.eip3155.levels import coarser
from blocktrace.eip3155.normalise import TraceInfo
from blocktrace.eip3155.opcodes import evm_op_name
from blocktrace.eip3155.records import Step, Summary
from blocktrace.eip3155.report import DiffReport, quote_source, step_view
from blocktrace.format.callline import json_text

__all__ = ["DIFF_JSON_VERSION", "render_json", "render_text"]

DIFF_JSON_VERSION = 2
"""The schema of ``diff --json`` (docs/DIFF.md): 2 since 0.2, every key camelCase;
0.1's object had no version and mixed key styles."""


def _summary_view(summary: Summary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    view: dict[str, Any] = {"traceLine": summary.lineno}
    for name, value in (("output", summary.output), ("gasUsed", summary.gasUsed),
                        ("pass", summary.passed), ("error", summary.error),
                        ("stateRoot", summary.stateRoot)):
        if value is not None:
            view[name] = value
    return view


def _input_view(info: TraceInfo) -> dict[str, Any]:
    return {
        "path": json_text(info.path), "dialect": info.dialect, "gasUsedMeaning": info.gas_used,
        "python": info.python, "lines": info.lines, "steps": info.steps,
        "opLines": info.op_lines, "stopsDropped": info.stops_dropped,
        "faultLinesMerged": info.merged, "frameExits": info.frame_exits,
        "noiseLines": info.noise, "ignoredLines": info.ignored,
        "haltsNotErrors": info.halts_not_errors,
    }


def _hunk_view(hunk: Hunk, report: DiffReport) -> dict[str, Any]:
    return {
        "aStart": hunk.a_start, "aCount": hunk.a_count,
        "bStart": hunk.b_start, "bCount": hunk.b_count,
        "aLines": [hunk.a_steps[0].lineno, hunk.a_steps[-1].lineno] if hunk.a_steps else None,
        "bLines": [hunk.b_steps[0].lineno, hunk.b_steps[-1].lineno] if hunk.b_steps else None,
        "a": [step_view(step, report.a.path) for step in hunk.a_steps],
        "b": [step_view(step, report.b.path) for step in hunk.b_steps],
    }


def report_object(report: DiffReport) -> dict[str, Any]:
    steps = report.steps
    first = steps.first
    last = steps.last_common
    return {
        "version": DIFF_JSON_VERSION,
        "equal": report.equal,
        "steps": [steps.steps_a, steps.steps_b],
        "fields": list(report.fields),
        "byLine": report.by_line,
        "stackTop": report.stack_top,
        "firstDivergence": None if first is None else {
            "step": first.step,
            "fields": first.fields,
            "a": None if first.a is None else step_view(first.a, report.a.path),
            "b": None if first.b is None else step_view(first.b, report.b.path),
            "lastCommon": None if last is None else {
                "step": last[0].index, "aLine": last[0].lineno, "bLine": last[1].lineno,
            },
        },
        "hunks": [_hunk_view(hunk, report) for hunk in steps.hunks],
        "hunkCount": steps.hunk_count,
        "differing": [steps.differing_a, steps.differing_b],
        "common": steps.common,
        "summary": {
            "equal": not report.summary.differences,
            "differences": report.summary.differences,
            "a": _summary_view(report.summary.a),
            "b": _summary_view(report.summary.b),
            "notes": report.summary.notes,
        },
        "inputs": {"a": _input_view(report.a), "b": _input_view(report.b)},
        "notes": report.notes,
    }


def render_json(report: DiffReport) -> str:
    return msgspec.json.encode(report_object(report)).decode() + "\n"


class _Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _value_text(step: Step, name: str, stack_top: int | None) -> str:
    if name == "opName":
        return _op_name(step)
    value = getattr(step, name)
    if value is None:
        return "-"
    if name == "gas":
        return hex(value)
    if name in ("gasCost",):
        number = canonical_value(name, value)
        return "-" if number is None else hex(number)  # type: ignore[arg-type]
    if name == "op":
        return f"{value} {_op_name(step)}"
    if name == "stack":
        words = canonical_stack(value)
        top = list(reversed(words))[: stack_top or 4]
        more = len(words) - len(top)
        return f"[{len(words)}] top " + ", ".join(top) + (f", +{more}" if more > 0 else "")
    if name in ("locals", "globals"):
        return msgspec.json.encode(value).decode()
    return str(value)


def _op_name(step: Step) -> str:
    """The step's own ``opName``, else the EVM mnemonic (nethermind omits it)."""
    if step.opName:
        return step.opName
    return evm_op_name(step.op) if step.code is None else f"op {step.op}"


def _where(step: Step, near: str | None) -> str:
    if step.function is None and step.line is None:
        return ""
    place = f"{step.function or '?'} {step.file or '?'}:{step.line}"
    source, missing = quote_source(step.file, step.line, near)
    return place + (f"  | {source}" if source else f"  ({missing})" if missing else "")


def _step_line(step: Step, near: str | None) -> str:
    name = _op_name(step)
    text = f"step {step.index:<6} L{step.lineno:<6} d{step.depth} pc {step.pc:<5} {name:<14} "
    if step.function is not None or step.line is not None:
        text += _where(step, near)
    else:
        text += f"gas {step.gas:#x}"
        if step.stack is not None:
            words = canonical_stack(step.stack)
            text += f" stack[{len(words)}]" + (f" top {words[-1]}" if words else "")
    if step.error:
        text += f"  error: {step.error}"
    return text


def _side_by_side(report: DiffReport, a: Step, b: Step, marked: list[str],
                  style: _Style) -> list[str]:
    names = list(report.fields)
    for extra in ("opName", "error"):
        if extra not in names and (extra == "opName" or getattr(a, extra) or getattr(b, extra)):
            names.append(extra)
    width = 44
    head_a = f"{'A line ' + str(a.lineno):<{width}}"
    out = [f"    {'':<10} {style.bold(head_a)} {style.bold(f'B line {b.lineno}')}"]
    for name in names:
        if name not in marked and getattr(a, name) is None and getattr(b, name) is None:
            continue  # absent on both sides (thread, locals, ... when not recorded)
        va = _short(_value_text(a, name, report.stack_top), width)
        vb = _short(_value_text(b, name, report.stack_top), width)
        if name in marked:
            out.append(f"  * {name:<10} {style.red(f'{va:<{width}}')} {style.green(vb)}")
        else:
            out.append(f"    {name:<10} {va:<{width}} {vb}")
    if "stack" in marked and a.stack is not None and b.stack is not None:
        wa = list(reversed(canonical_stack(a.stack)))
        wb = list(reversed(canonical_stack(b.stack)))
        for depth in range(max(len(wa), len(wb))):
            x = wa[depth] if depth < len(wa) else "-"
            y = wb[depth] if depth < len(wb) else "-"
            if x != y:
                out.append(f"    stack item {depth} from the top: A {x}, B {y}")
                break
    for name in ("locals", "globals"):
        if name in marked:
            out.extend(_mapping_changes(name, getattr(a, name), getattr(b, name)))
    for label, step, near in (("A", a, report.a.path), ("B", b, report.b.path)):
        where = _where(step, near)
        if where:
            out.append(f"    {label} at {where}")
    return out


def _mapping_changes(name: str, a: dict[str, Any] | None,
                     b: dict[str, Any] | None) -> list[str]:
    """The names whose rendered values differ between two locals/globals snapshots."""
    a, b = a or {}, b or {}
    out = []
    for key in dict.fromkeys([*a, *b]):
        va = canonical_value("locals", a.get(key, None)) if key in a else None
        vb = canonical_value("locals", b.get(key, None)) if key in b else None
        if va != vb:
            shown_a = _short(msgspec.json.encode(a[key]).decode(), 40) if key in a else "(unset)"
            shown_b = _short(msgspec.json.encode(b[key]).decode(), 40) if key in b else "(unset)"
            out.append(f"    {name} {key}: A {shown_a}, B {shown_b}")
        if len(out) >= 8:
            out.append(f"    … (more {name} differ)")
            break
    return out


def _counted(info: TraceInfo, other: TraceInfo, compared: int, by_line: bool) -> str:
    """A trace's steps, and, when the two are compared at a coarser level than this
    trace's own, how many that level holds (the number ``compared``)."""
    level = coarser(info.level, other.level)
    if by_line:
        return f"{info.steps} steps"
    if level == info.level == "call":  # a call-level trace has no op steps of its own
        return f"{compared} steps at level call: calls, returns, exceptions"
    if level != info.level:
        return f"{info.steps} steps, {compared} at level {level}"
    return f"{info.steps} steps"


def _info_line(label: str, info: TraceInfo, counted: str) -> str:
    extras = []
    if info.stops_dropped:
        extras.append(f"{info.stops_dropped} STOP dropped")
    if info.merged:
        extras.append(f"{info.merged} fault line(s) merged")
    if info.frame_exits:
        extras.append(f"{info.frame_exits} frame exit(s)")
    if info.noise:
        extras.append(f"{info.noise} non-JSON line(s) skipped")
    more = f"; {', '.join(extras)}" if extras else ""
    python = f", Python {info.python}" if info.python else ""
    return f"{label}: {info.path} ({info.dialect}{python}, {counted}{more})"


def render_text(report: DiffReport, colour: bool = False) -> str:
    style = _Style(colour)
    steps = report.steps
    out = [_info_line("A", report.a, _counted(report.a, report.b, steps.steps_a, report.by_line)),
           _info_line("B", report.b, _counted(report.b, report.a, steps.steps_b, report.by_line)),
           ("compared per source line: " if report.by_line else "compared: ")
           + ", ".join(report.fields)
           + (f" (stack: top {report.stack_top})" if report.stack_top is not None else "")]
    first = steps.first
    if first is not None:
        out.append("")
        depth = first.a.depth if first.a is not None else first.b.depth if first.b else "?"
        out.append(style.bold(f"first divergence at step {first.step} (depth {depth})"))
        last = steps.last_common
        if last is None:
            out.append("  no common step before it")
        else:
            out.append(f"  last common step {last[0].index}: A line {last[0].lineno}, "
                       f"B line {last[1].lineno}, pc {last[0].pc} {_op_name(last[0])}")
        if first.a is not None and first.b is not None:
            out.extend(_side_by_side(report, first.a, first.b, first.fields, style))
        else:
            ended, other, step = ("A", "B", first.b) if first.a is None else ("B", "A", first.a)
            out.append(f"  {ended} ended; {other} goes on:")
            assert step is not None
            out.append("    " + _step_line(step, report.a.path if ended == "B" else report.b.path))
        out.append("")
        for number, hunk in enumerate(steps.hunks, 1):
            header = (f"@@ hunk {number}: -{hunk.a_start},{hunk.a_count} "
                      f"+{hunk.b_start},{hunk.b_count} @@")
            if hunk.a_steps and hunk.b_steps:
                fields = report_comparer(report).differing(hunk.a_steps[0], hunk.b_steps[0])
                if fields:
                    header += f" first pair differs in {', '.join(fields)}"
            out.append(style.bold(header))
            for step in hunk.a_steps:
                out.append(style.red("- " + _step_line(step, report.a.path)))
            if hunk.a_count > len(hunk.a_steps):
                out.append(style.dim(f"- … {hunk.a_count - len(hunk.a_steps)} more"))
            for step in hunk.b_steps:
                out.append(style.green("+ " + _step_line(step, report.b.path)))
            if hunk.b_count > len(hunk.b_steps):
                out.append(style.dim(f"+ … {hunk.b_count - len(hunk.b_steps)} more"))
        if steps.hunk_count > len(steps.hunks):
            out.append(f"… {steps.hunk_count - len(steps.hunks)} more hunk(s) "
                       "(see --max-hunks)")
    summary = report.summary
    if summary.differences or summary.notes:
        out.append("")
        for name in summary.differences:
            va = _summary_field(summary.a, name)
            vb = _summary_field(summary.b, name)
            out.append(style.red(f"summary {name} differs: A {va}, B {vb}"))
        for note in summary.notes:
            out.append(style.dim(f"note: {note}"))
    for note in report.notes:
        out.append(style.dim(f"note: {note}"))
    out.append("")
    unit = "source lines" if report.by_line else "steps"
    if report.equal:
        out.append(style.green(
            f"same: {steps.steps_a} {unit} agree on {', '.join(report.fields)}"))
    else:
        parts = []
        if steps.hunk_count:
            parts.append(
                f"{steps.hunk_count} hunk(s): {steps.differing_a} step(s) of A and "
                f"{steps.differing_b} of B differ, {steps.common} in common")
        if summary.differences:
            parts.append(f"summary differs on {', '.join(summary.differences)}")
        out.append(style.red("different: " + "; ".join(parts)
                             + f" (A {steps.steps_a} {unit}, B {steps.steps_b})"))
    return "\n".join(out) + "\n"


def report_comparer(report: DiffReport) -> Comparer:
    return Comparer(report.fields, report.stack_top)


def _summary_field(summary: Summary | None, name: str) -> object:
    if summary is None:
        return None
    return getattr(summary, "passed" if name == "pass" else name)
