"""The one reader: lines by number (raw, parsed, batches), sources, the chain
check, and one error for what is not a trace."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import blocktrace
from blocktrace.format import (
    FORMAT_VERSION,
    CallLine,
    Header,
    OpLine,
    ReturnLine,
    SourceLine,
    Summary,
    TraceError,
    TraceReader,
    UnknownLine,
    decode_line,
    rechain,
)


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i % 3
    return total


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reader") / "t.jsonl"
    out = io.BytesIO()
    with blocktrace.trace(blocktrace.ChainTracer(out, genesis="g", argv=["x"])):
        _work(20)
    path.write_bytes(out.getvalue())
    return path


def test_lines_as_structs(trace: Path) -> None:
    reader = TraceReader(trace)
    assert reader.version == FORMAT_VERSION and reader.level == "op"
    assert isinstance(reader.header, Header) and reader.header.genesis == "g"
    lines = list(reader.lines())
    kinds = {type(line) for _, line in lines}
    assert {Header, SourceLine, CallLine, OpLine, ReturnLine, Summary} <= kinds
    assert [n for n, _ in lines] == list(range(1, len(lines) + 1))
    summary = lines[-1][1]
    assert isinstance(summary, Summary) and summary.lines == len(lines) - 1
    assert summary.gas_used == sum(isinstance(x, OpLine) for _, x in lines)
    calls = [x for _, x in lines if isinstance(x, CallLine)]
    assert ("call", "_work") in {(c.kind_, c.name) for c in calls}


def test_ranges_and_batches_agree_with_the_whole(trace: Path) -> None:
    reader = TraceReader(trace)
    whole = list(reader.raw_lines())
    assert b"".join(raw for _, raw in whole) == trace.read_bytes()
    assert list(reader.raw_lines(5, 7)) == whole[4:11]
    assert list(reader.raw_lines(len(whole), 10)) == whole[-1:]
    assert list(reader.raw_lines(len(whole) + 1)) == []
    assert list(reader.raw_lines(3, 0)) == []
    batches = list(reader.batches(16, start=2))
    assert all(len(b) == 16 for b in batches[:-1])
    assert [x for b in batches for x in b] == whole[1:]
    with pytest.raises(ValueError):
        list(reader.raw_lines(0))


def test_verify_status_through_the_reader(trace: Path, tmp_path: Path) -> None:
    assert TraceReader(trace).verify().status == "sealed"
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(trace.read_bytes().splitlines(keepends=True)[:-1]))
    result = TraceReader(cut).verify()
    assert result.status == "unsealed"
    # A torn last line is not handed out.
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(trace.read_bytes()[:-5])
    assert len(list(TraceReader(torn).raw_lines())) == len(trace.read_bytes().splitlines()) - 1


def test_lines_of_a_trace_tampered_at_its_first_line(tmp_path: Path) -> None:
    """The index of a trace tampered at line 1 holds no checkpoint: lines past the
    first 1,024 are read from the start (it was an IndexError from the index)."""
    out = io.BytesIO()
    with blocktrace.trace(blocktrace.ChainTracer(out, genesis="g", argv=["x"])):
        _work(400)
    lines = out.getvalue().splitlines(keepends=True)
    assert len(lines) > 3000
    lines[0] = lines[0].replace(b'"genesis":"g"', b'"genesis":"h"', 1)
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join(lines))
    reader = TraceReader(edited)
    assert reader.verify().status == "tampered"
    index = reader.index()
    assert index is not None and index.checkpoints == 0
    for start in (1, 1025, 2100, len(lines)):
        assert list(reader.raw_lines(start, 2)) == [
            (n, lines[n - 1]) for n in range(start, min(start + 2, len(lines) + 1))]


def test_sources(trace: Path) -> None:
    sources = TraceReader(trace).sources()
    assert __file__ in sources
    assert sources[__file__].size == Path(__file__).stat().st_size


def test_unknown_kinds_are_tolerated(tmp_path: Path) -> None:
    bodies = [
        b'{"blocktrace":3,"hashAlg":"sha256","genesis":"g","level":"op"',
        b'{"event":"inputs","stdin":"abc"',
        b'{"event":"call","kind":"call","depth":1,"code":1,"name":"f","file":"f.py",'
        b'"firstLine":1,"clock":5',
        b'{"output":"0","gasUsed":"0x0","pass":true,"time":1,"lines":3',
    ]
    path = tmp_path / "t.jsonl"
    path.write_bytes(rechain(bodies, 3))
    lines = [x for _, x in TraceReader(path).lines()]
    assert isinstance(lines[1], UnknownLine) and lines[1].event == "inputs"
    assert isinstance(lines[2], CallLine)
    assert TraceReader(path).verify().status == "sealed"
    # Lines written in another member order are read by their members.
    assert isinstance(decode_line(b'{"op":1,"pc":2,"gas":"0x1","depth":1}'), OpLine)
    assert isinstance(decode_line(b'{"pass":true,"output":"","gasUsed":"0x0","time":0,'
                                  b'"lines":0}'), Summary)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"hello\n", "not a JSON object"),
        (b'{"pc":1}\n', "not a blocktrace header"),
        (b'{"blocktrace":9,"hashAlg":"sha256"}\n', "format version 9"),
        (b'{"blocktrace":3,"hashAlg":"sha256","level":"bytes"}\n', "unknown trace level"),
        (b'{"blocktrace":3', "no complete first line"),
        (b"[" * 10_000 + b"]" * 10_000 + b"\n", "not a JSON object"),
    ],
)
def test_one_error_for_what_is_not_a_trace(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=problem) as info:
        TraceReader(path)
    assert str(info.value).startswith(str(path))
    with pytest.raises(TraceError, match="is a directory"):
        TraceReader(tmp_path)
    with pytest.raises(TraceError, match="cannot read"):
        TraceReader(tmp_path / "missing")


def test_deep_nesting_in_a_line_is_a_trace_error(tmp_path: Path) -> None:
    deep = b'{"event":"x","v":' + b"[" * 10_000 + b"]" * 10_000
    path = tmp_path / "t.jsonl"
    path.write_bytes(rechain([b'{"blocktrace":3,"hashAlg":"sha256","genesis":"g"', deep], 3))
    reader = TraceReader(path)
    with pytest.raises(TraceError, match="nested too deeply"):
        list(reader.lines())
    result = reader.verify()
    assert result.status == "tampered" and "nested too deeply" in result.reason
