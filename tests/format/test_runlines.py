"""``format.runlines``: the source, exception, tracer-error and summary lines' bodies
are the JSON msgspec writes for the dict of their members, in the format's order
(docs/FORMAT.md), without the closing brace the hash member follows; and a recorded
trace's lines of those kinds are the writer's bytes through them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.format import TraceReader, decode_line
from blocktrace.format.callline import json_text
from blocktrace.format.lines import ExceptionLine, SourceLine, Summary
from blocktrace.format.runlines import (
    exception_body,
    source_body,
    summary_body,
    tracer_error_body,
)


def _body(members: dict[str, Any]) -> bytes:
    return msgspec.json.encode(members)[:-1]


@pytest.mark.parametrize("file", ["/tmp/a.py", 'd"q\\/é.py', "/tmp/\udcff.py"])
@pytest.mark.parametrize("text", [None, "", 'x = "\\n"\n\t\u2028'])
def test_a_source_line(file: str, text: str | None) -> None:
    members: dict[str, Any] = {"event": "source", "file": json_text(file),
                               "sha256": "ab" * 32, "size": 12}
    if text is not None:
        members["text"] = text
    assert source_body(file, "ab" * 32, 12, text) == _body(members)


@pytest.mark.parametrize("tail", [b"", b',"thread":2', b',"thread":2,"clock":99'])
def test_an_exception_line(tail: bytes) -> None:
    body = exception_body(12, 100, 0x7FFF, 3, "CALL", 'ValueError: "no"\n', 7, 4, "raise",
                          tail)
    assert body == _body({"pc": 12, "op": 100, "gas": "0x7fff", "gasCost": "0x0",
                          "depth": 3, "opName": "CALL", "error": 'ValueError: "no"\n',
                          "line": 7, "code": 4, "event": "raise"}) + tail
    line = decode_line(body + b',"hash":"' + b"0" * 64 + b'"}')
    assert isinstance(line, ExceptionLine) and line.event == "raise"


def test_a_tracer_error_line() -> None:
    assert tracer_error_body('boom "x"') == _body({"event": "tracerError",
                                                   "error": 'boom "x"'})


@pytest.mark.parametrize(("error", "max_size", "step"),
                         [(None, None, None), ("ZeroDivisionError", None, 5),
                          ("TraceSizeLimit", 4096, None), ("TraceSizeLimit", 4096, 17)])
def test_a_summary(error: str | None, max_size: int | None, step: int | None) -> None:
    members: dict[str, Any] = {"output": "out\n", "gasUsed": "0x1f", "pass": error is None,
                               "time": 123456}
    if error is not None:
        members["error"] = error
    if max_size is not None:
        members["maxSize"] = max_size
        if step is not None:
            members["step"] = step
    members["lines"] = 40
    assert summary_body("out\n", 31, error, 123456, 40, max_size, step) == _body(members)


def test_a_recorded_trace_holds_these_bytes(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("try:\n    1 / 0\nexcept ZeroDivisionError:\n    pass\nprint('hi')\n")
    trace = tmp_path / "t.jsonl"
    done = subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", str(trace),
                           str(program)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kinds = set()
    for _, raw in TraceReader(trace).raw_lines():
        body = raw[: raw.rindex(b',"hash":')]
        line = decode_line(raw)
        if isinstance(line, SourceLine):
            data = program.read_bytes()
            assert body == source_body(line.file, hashlib.sha256(data).hexdigest(), len(data),
                                       line.text)
        elif isinstance(line, ExceptionLine):
            assert body == exception_body(line.pc, line.op, int(line.gas, 16), line.depth,
                                          line.opName, line.error, line.line, line.code,
                                          line.event)
        elif isinstance(line, Summary):
            assert line.error is None
            assert body == summary_body(line.output, int(line.gasUsed, 16), None, line.time,
                                        line.lines)
        else:
            continue
        kinds.add(type(line))
    assert kinds == {SourceLine, ExceptionLine, Summary}
