"""LevelFilter: a trace at ``line`` or ``call`` level keeps only that level's events,
says its level in the header, verifies, and counts gas for every instruction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

import blocktrace
from blocktrace.chain.verify import verify_file
from blocktrace.tracers.level import LevelFilter, level_tracer

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _square(x: int) -> int:
    y = x * x
    return y


def _fails() -> None:
    raise KeyError("k")


def _program() -> int:
    total = 0
    for i in range(4):
        total += _square(i)
    try:
        _fails()
    except KeyError:
        total += 1
    return total


def _record(tmp_path: Path, level: Any) -> list[dict[str, Any]]:
    path = tmp_path / f"{level}.jsonl"
    chain = blocktrace.ChainTracer(path, genesis="level", level=level)
    with blocktrace.trace(level_tracer(chain, level)):
        _program()
    assert verify_file(path).status == "sealed"
    return [_decode(line) for line in path.read_bytes().splitlines()]


def test_levels_keep_their_events_and_count_every_instruction(tmp_path: Path) -> None:
    op, line, call = (_record(tmp_path, level) for level in ("op", "line", "call"))
    assert op[0]["level"] == "op"  # format version 3: every header says its level
    assert line[0]["level"] == "line" and call[0]["level"] == "call"
    # Gas is instructions executed, whatever the level.
    assert op[-1]["gasUsed"] == line[-1]["gasUsed"] == call[-1]["gasUsed"]

    def events(lines: list[dict[str, Any]]) -> list[Any]:
        return [(d.get("event"), d.get("name"), d.get("kind")) for d in lines
                if d.get("event") in ("call", "return")]

    assert events(op) == events(line) == events(call)
    def ops_of(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(d["code"], d["pc"], d["line"], d["gas"]) for d in lines[1:-1]
                if "pc" in d and "event" not in d]

    ops, line_ops = ops_of(op), ops_of(line)
    assert not ops_of(call)
    # The line level keeps, in order and with the same gas, the op lines that start
    # a source-line range of their code object.
    assert 0 < len(line_ops) < len(ops)
    kept = set(line_ops)
    assert line_ops == [o for o in ops if o in kept]
    names = {d["code"]: d["name"] for d in op if d.get("event") == "call"}
    codes = {f.__qualname__: f.__code__ for f in (_square, _fails, _program)}
    checked = 0
    for code, pc, _line, _gas in line_ops:
        if names[code] in codes:  # (not the frame that entered the trace block)
            assert pc in {start for start, _end, _l in codes[names[code]].co_lines()}
            checked += 1
    assert checked
    # Exceptions are kept at every level.
    for lines in (op, line, call):
        assert [d["event"] for d in lines if d.get("event") in ("raise", "handled")] == [
            "raise", "raise", "handled"]


def test_bad_level_is_refused() -> None:
    with pytest.raises(ValueError, match="level must be one of op, line, call"):
        LevelFilter(blocktrace.discard_trace, "lines")  # type: ignore[arg-type]
    assert level_tracer(blocktrace.discard_trace, "op") is blocktrace.discard_trace
