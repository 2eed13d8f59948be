"""Reading golden traces through the format's reader: call-level steps, the call stack
at a line, the source text a trace committed to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from blocktrace.eip3155.normalise import TraceInfo
from blocktrace.eip3155.reader import trace_sources
from blocktrace.eip3155.records import ABSENT, RawLine, Step, Summary
from blocktrace.format import (
    CallLine,
    ExceptionLine,
    Header,
    OpLine,
    ReturnLine,
    TraceReader,
    read_source,
)
from blocktrace.format import Summary as SummaryLine

__all__ = ["Frame", "call_steps", "source_text", "stack_at"]

_encode = msgspec.json.encode


def call_steps(path: str, info: TraceInfo, values: bool = False) -> Iterator[Step]:
    """One step per call, return and exception line: the call tree, in order.

    ``event`` says what happened (``call``/``resume``/``throw``/``enter``,
    ``return``/``yield``/``unwind``, ``raise``/``reraise``/``handled``);
    ``values``: a return's value is carried as the step's ``locals``."""
    reader = TraceReader(path)
    info.python = reader.header.python
    info.dialect = "blocktrace"
    info.gas_used = "instructions"
    info.evidence.header = True
    functions: dict[int, tuple[str, str]] = {}
    index = 0
    for number, line in reader.lines(2):
        kind = type(line)
        if kind is SummaryLine:
            assert isinstance(line, SummaryLine)
            info.summary = Summary(number, line.output, int(line.gasUsed, 16), line.passed,
                                   line.error or None)
            continue
        if kind is CallLine:
            assert isinstance(line, CallLine)
            functions[line.code] = (line.name, line.file)
            raw = RawLine(line=line.firstLine, code=line.code, thread=line.thread)
            what, depth, error, pc, op = line.kind_, line.depth, None, 0, 0
        elif kind is ReturnLine:
            assert isinstance(line, ReturnLine)
            raw = RawLine(code=line.code, thread=line.thread)
            if values:
                raw.locals = msgspec.Raw(_encode(line.value))
            what, depth, error, pc, op = line.kind_, line.depth, None, line.pc, 0
        elif kind is ExceptionLine:
            assert isinstance(line, ExceptionLine)
            raw = RawLine(line=line.line, code=line.code, thread=line.thread)
            what, depth, error, pc, op = line.event, line.depth, line.error, line.pc, line.op
        else:
            continue
        name, file = functions.get(raw.code if isinstance(raw.code, int) else 0, ("?", "?"))
        yield Step(index, number, pc, op, 0, depth, ABSENT, raw, error, what, name, file)
        index += 1
    info.lines = index
    info.steps = index
    info.done = True


@dataclass(slots=True)
class Frame:
    function: str
    file: str
    line: int


def stack_at(path: str, lineno: int) -> list[Frame]:
    """The call stack (outermost first) when line ``lineno`` of the trace was written,
    on that line's thread."""
    stacks: dict[int, list[Frame]] = {}
    target = 1
    for number, line in TraceReader(path).lines(2, max(0, lineno - 1)):
        thread = getattr(line, "thread", None) or 1
        stack = stacks.setdefault(thread, [])
        if number == lineno:
            target = thread
        if isinstance(line, CallLine):
            del stack[line.depth - 1:]
            stack.append(Frame(line.name, line.file, line.firstLine))
        elif isinstance(line, ReturnLine):
            if number < lineno:
                del stack[line.depth - 1:]
        elif isinstance(line, OpLine | ExceptionLine) and line.line and 0 < line.depth <= len(
                stack):
            stack[line.depth - 1].line = line.line
    return stacks.get(target, [])


def source_text(path: str, root: str) -> dict[str, list[str] | str]:
    """For each file the trace at ``path`` committed to (its ``source`` lines; a
    relative name is under ``root``): its lines, or why they cannot be shown
    ("source missing or changed: ...")."""
    out: dict[str, list[str] | str] = {}
    for name, entry in trace_sources(TraceReader(path)).items():
        where = name if os.path.isabs(name) else os.path.join(root, name)
        text = read_source(msgspec.structs.replace(entry, file=where))
        out[name] = text.text.splitlines() if text.text is not None else text.reason
    return out


def header_of(path: str) -> Header:
    return TraceReader(path).header


__all__ += ["header_of"]
