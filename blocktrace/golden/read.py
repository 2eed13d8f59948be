"""Reading golden traces: the header, the call-level steps, the call stack at a line.

# TODO(format): use blocktrace.format -- these read lines with msgspec in one
# small private decoder until the format module's reader lands.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from blocktrace.eip3155.normalise import TraceInfo
from blocktrace.eip3155.reader import TraceError, open_trace
from blocktrace.eip3155.records import ABSENT, RawLine, Step, Summary

__all__ = ["Frame", "call_steps", "read_header", "source_hashes", "stack_at"]


class _Line(msgspec.Struct):
    """The members of a blocktrace line the golden comparison reads."""

    pc: int | None = None
    op: int | None = None
    depth: int | None = None
    line: int | None = None
    code: int | None = None
    thread: int | None = None
    event: str | None = None
    kind: str | None = None
    name: str | None = None
    file: str | None = None
    firstLine: int | None = None
    error: str | None = None
    value: msgspec.Raw = ABSENT
    sha256: str | None = None
    blocktrace: int | None = None
    python: str | None = None
    output: Any = None
    gasUsed: str | None = None
    passed: bool | None = msgspec.field(default=None, name="pass")


_decode = msgspec.json.Decoder(_Line).decode


def _lines(path: str) -> Iterator[tuple[int, _Line]]:
    with open_trace(path) as stream:
        for number, line in enumerate(stream, 1):
            try:
                yield number, _decode(line)
            except msgspec.MsgspecError as exc:
                raise TraceError(path, number, f"not a blocktrace line: {exc}") from None


def read_header(path: str) -> dict[str, Any]:
    """The first line of the trace as a dict (``TraceError`` if it is not a header)."""
    with open_trace(path) as stream:
        first = stream.readline()
    try:
        header = msgspec.json.decode(first)
    except msgspec.DecodeError:
        header = None
    if not isinstance(header, dict) or "blocktrace" not in header:
        raise TraceError(path, 1, "not a blocktrace trace (no header line)")
    return header


def call_steps(path: str, info: TraceInfo, values: bool = False) -> Iterator[Step]:
    """One step per call, return and exception line: the call tree, in order.

    ``event`` says what happened (``call``/``resume``/``throw``/``enter``,
    ``return``/``yield``/``unwind``, ``raise``/``reraise``/``handled``);
    ``values``: a return's value is carried as the step's ``locals``."""
    functions: dict[int, tuple[str, str]] = {}
    index = 0
    for number, line in _lines(path):
        if line.blocktrace is not None:
            info.python = line.python
            info.dialect = "blocktrace"
            info.gas_used = "instructions"
            info.evidence.header = True
            continue
        event = line.event
        if line.output is not None or line.gasUsed is not None:
            gas = int(line.gasUsed, 16) if line.gasUsed else None
            error = line.error or None
            output = line.output if isinstance(line.output, str) else str(line.output)
            info.summary = Summary(number, output, gas, line.passed, error)
            continue
        if line.pc is None and event not in ("call", "return"):
            continue  # source lines, tracer errors, kinds a later version adds
        name = file = None
        if line.code is not None:
            known = functions.get(line.code)
            if event == "call" or known is None:
                known = (line.name or "?", line.file or "?")
                if event == "call":
                    functions[line.code] = known
            name, file = known
        raw = RawLine(line=line.firstLine if event == "call" else line.line, code=line.code,
                      thread=line.thread)
        if event == "call":
            what = line.kind or "call"
        elif event == "return":
            what = line.kind or "return"
            if values:
                raw.locals = line.value
        else:
            what = event or "op"
        yield Step(index, number, line.pc or 0, line.op or 0, 0, line.depth or 1, ABSENT, raw,
                   line.error, what, name, file)
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
    target_thread = 1
    for number, line in _lines(path):
        if number > lineno:
            break
        thread = line.thread or 1
        stack = stacks.setdefault(thread, [])
        depth = line.depth
        if number == lineno:
            target_thread = thread
        if line.event == "call" and depth:
            del stack[depth - 1:]
            stack.append(Frame(line.name or "?", line.file or "?", line.firstLine or 0))
        elif line.event == "return" and depth:
            if number < lineno:
                del stack[depth - 1:]
        elif line.line and depth and 0 < depth <= len(stack):
            stack[depth - 1].line = line.line
    return stacks.get(target_thread, [])


def source_hashes(path: str) -> dict[str, str]:
    """``file`` -> SHA-256 of its content when the trace was written (its ``source`` lines)."""
    found: dict[str, str] = {}
    for _, line in _lines(path):
        if line.event == "source" and line.file is not None and line.sha256 is not None:
            found[line.file] = line.sha256
    return found
