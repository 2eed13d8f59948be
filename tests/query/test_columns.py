"""The ``ops``, ``calls`` and ``exceptions`` columns read in C (``_cscan.OpColumns``)
are the reference's (``query.columns.PyColumns``, every line decoded by the
format's Structs): the same tables from the same trace, whichever lines the C
path leaves to Python."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from blocktrace._native import extension
from blocktrace.format import TraceError, wholelines
from blocktrace.query import columns, tables
from blocktrace.query.tables import RunFacts, trace_batches

NATIVE = extension("blocktrace.format._cscan")
pytestmark = pytest.mark.skipif(
    NATIVE is None, reason="the C extension is not built, or BLOCKTRACE_PURE is set"
)


def _tables(path: Path, reference: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    with monkeypatch.context() as m:
        if reference:
            m.setattr(tables, "table_columns", columns.PyColumns)
        m.setattr(wholelines, "CHUNK", 4096)  # many buffers, lines across their ends
        m.setattr(tables, "BATCH_ROWS", 100)  # many batches
        import pyarrow as pa

        out: dict[str, list[pa.RecordBatch]] = {}
        for table, batch in trace_batches(str(path), RunFacts(str(path))):
            out.setdefault(table, []).append(batch)
    return {t: pa.Table.from_batches(b).combine_chunks() for t, b in out.items()}


def _same(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    native = _tables(path, False, monkeypatch)
    assert native == _tables(path, True, monkeypatch)
    return native


def test_a_trace_with_values_and_calls(queried: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _same(queried, monkeypatch)
    assert got["ops"].num_rows > 100 and got["values"].num_rows > 0  # type: ignore[attr-defined]


def test_odd_lines(oddlines: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads, clocks, generators resumed and thrown into, unwinds, non-ASCII
    names, escapes, return values of every JSON form: the same tables."""
    got: Any = _same(oddlines, monkeypatch)
    calls = got["calls"].to_pydict()
    assert {"call", "resume", "throw"} <= set(calls["kind"])
    assert {"return", "yield", "unwind"} <= set(calls["ended"])
    assert "KeyError" in calls["exception"] and "café" in calls["function"]
    assert len(set(calls["thread"])) >= 2 and None not in calls["clock_in"]
    assert {"null", "true", "false", "0", "-7", "1.5", "-0.0"} <= set(calls["value"])
    exceptions = got["exceptions"].to_pydict()
    assert {"raise", "handled"} <= set(exceptions["kind"])
    assert "the 'key' \"here\"" in "".join(filter(None, exceptions["message"]))
    assert None in exceptions["message"]  # ValueError() has none


def test_the_writers_lines_are_read_in_c(fib: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the header, the source lines and the summary reach Python's decoder."""
    left: list[str] = []
    line = tables._line

    def counted(columns: Any, d: Any, *args: Any) -> None:
        left.append(type(d).__name__)
        line(columns, d, *args)

    monkeypatch.setattr(tables, "_line", counted)
    got: Any = _tables(fib, False, monkeypatch)
    assert got["calls"].num_rows > 100 and got["exceptions"].num_rows == 2
    assert sorted(set(left)) == ["Header", "SourceLine", "Summary"]


def _edited(trace: Path, out: Path, edit: Callable[[bytes], bytes],
            prefix: bytes = b'{"pc":') -> Path:
    lines = trace.read_bytes().splitlines(keepends=True)
    ops = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    for i in ops[3:40:4]:  # every fourth of some lines
        lines[i] = edit(lines[i])
    out.write_bytes(b"".join(lines))
    return out


_CALL, _RETURN = b'{"event":"call"', b'{"event":"return"'


@pytest.mark.parametrize(
    ("name", "prefix", "edit"),
    [
        ("escaped function", _CALL, lambda b: b.replace(b'"name":"', b'"name":"\\u00e9')),
        ("unicode file", _CALL, lambda b: b.replace(b'"file":"', '"file":"é/'.encode())),
        ("thread 0", _CALL, lambda b: b.replace(b',"hash":', b',"thread":0,"hash":')),
        ("thread 2", _CALL, lambda b: b.replace(b',"hash":', b',"thread":2,"hash":')),
        ("clock", _CALL, lambda b: b.replace(b',"hash":', b',"clock":5,"hash":')),
        ("clock before thread", _CALL,
         lambda b: b.replace(b',"hash":', b',"clock":5,"thread":2,"hash":')),
        ("another kind", _CALL, lambda b: b.replace(b'"kind":"call"', b'"kind":"enter"')),
        ("big first line", _CALL, lambda b: b.replace(b'"firstLine":', b'"firstLine":99999')),
        ("float value", _RETURN, lambda b: b.replace(b'"value":', b'"value":1.0e3,"x":')),
        ("escaped value", _RETURN, lambda b: b.replace(b'"value":', b'"value":"\\/","x":')),
        ("negative value", _RETURN, lambda b: b.replace(b'"value":', b'"value":-0,"x":')),
        ("list value", _RETURN, lambda b: b.replace(b'"value":', b'"value":[1,"a"],"x":')),
        ("unwind", _RETURN, lambda b: b.replace(b'"kind":"return"', b'"kind":"unwind"')),
        ("return's thread", _RETURN, lambda b: b.replace(b',"hash":', b',"thread":3,"hash":')),
        ("uppercase gas", _RETURN, lambda b: b.replace(b'"gas":"0x7f', b'"gas":"0x7F')),
        ("error with escapes", b'{"pc"', lambda b: b.replace(b'"error":"', b'"error":"\\"x')),
        ("error kinds", b'{"pc"', lambda b: b.replace(b'"event":"raise"', b'"event":"reraise"')
         .replace(b'"error":"', b'"error":"a: b: ')),
        ("exception's thread", b'{"pc"', lambda b: b.replace(b',"hash":', b',"thread":2,"hash":')
         if b'"event"' in b else b),
    ],
)
def test_call_return_exception_lines_the_c_path_leaves_to_python(
    fib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, prefix: bytes,
    edit: Callable[[bytes], bytes],
) -> None:
    edited = _edited(fib, tmp_path / "t.jsonl", edit, prefix)
    if prefix == b'{"pc"':  # the two exception lines
        lines = fib.read_bytes().splitlines(keepends=True)
        edited.write_bytes(b"".join(edit(x) if b'"event":"' in x else x for x in lines))
    assert edited.read_bytes() != fib.read_bytes()
    _same(edited, monkeypatch)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("thread member", lambda b: b.replace(b',"hash":', b',"thread":2,"hash":')),
        ("escaped name", lambda b: b.replace(b'"opName":"', b'"opName":"\\u0041')),
        ("unicode name", lambda b: b.replace(b'"opName":"', '"opName":"é'.encode())),
        ("members reordered", lambda b: b.replace(b'{"pc":', b'{"op":0,"pc":', 1)),
        ("uppercase gas", lambda b: b.replace(b'"gas":"0x7f', b'"gas":"0x7F', 1)),
        ("big pc", lambda b: b.replace(b'{"pc":', b'{"pc":1234567890123456', 1)),
        ("negative depth", lambda b: b.replace(b'"depth":', b'"depth":-', 1)),
        ("space", lambda b: b.replace(b'"line":', b'"line": ', 1)),
        ("uppercase hash", lambda b: b[:-12] + b[-12:-3].upper() + b[-3:]),
        ("no hash", lambda b: b.replace(b',"hash":', b',"x":', 1)),
    ],
)
def test_lines_the_c_path_leaves_to_python(
    fib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
    edit: Callable[[bytes], bytes],
) -> None:
    _same(_edited(fib, tmp_path / "t.jsonl", edit), monkeypatch)


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b.replace(b'"gas":"0x', b'"gas":"0xzz', 1),  # not hex
        lambda b: b.replace(b'"gas":"0x', b'"gas":"0x1', 1),  # beyond int64
        lambda b: b.replace(b'{"pc":', b'{"pc":01', 1),  # not JSON
    ],
)
def test_bad_op_lines_are_the_same_error(
    fib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Callable[[bytes], bytes]
) -> None:
    path = _edited(fib, tmp_path / "t.jsonl", edit)
    problems = []
    for reference in (False, True):
        with pytest.raises(TraceError) as caught:
            _tables(path, reference, monkeypatch)
        problems.append(str(caught.value))
    assert problems[0] == problems[1]


def test_a_line_longer_than_the_bound_is_named(
    fib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = fib.read_bytes().splitlines(keepends=True)
    bound = max(map(len, lines)) + 10
    monkeypatch.setattr(wholelines, "MAX_LINE_BYTES", bound)
    path = tmp_path / "t.jsonl"
    for data, number in [
        (b"".join([*lines[:50], b"x" * bound + b"\n", *lines[50:]]), 51),
        (b"".join(lines[:60]) + b"x" * (bound + 1), 61),
    ]:
        path.write_bytes(data)
        for reference in (False, True):
            with pytest.raises(TraceError, match=f"line {number} is longer"):
                _tables(path, reference, monkeypatch)
    path.write_bytes(b"".join(lines[:60]) + b"x" * 100)  # torn: not read, as raw_lines does
    assert _same(path, monkeypatch)["ops"].num_rows > 0  # type: ignore[attr-defined]


def test_the_hash_member_is_read_whole_only_as_lowercase_hex(fib: Path) -> None:
    """The C reader's hash test (16 bytes at a time where SSE2 is there): a line is
    read whole only when its hash is 64 lowercase hex digits, whatever byte is
    put where, at either end of each 16-byte block."""
    native = extension("blocktrace.format._cscan")
    line = next(x for x in fib.read_bytes().splitlines() if x.startswith(b'{"pc":'))
    at = line.rindex(b'"hash":"') + 8
    for where in (0, 15, 16, 31, 32, 47, 48, 63):
        for byte in range(256):
            edited = line[: at + where] + bytes([byte]) + line[at + where + 1:]
            c = native.OpColumns()
            stop, pos, _ = c.feed(edited + b"\n", 0, 1, 1 << 17)
            whole = stop == columns.END and pos == len(edited) + 1
            assert whole == (chr(byte) in "0123456789abcdef"), (where, byte)
