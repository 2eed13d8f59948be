"""``format.codes.code_postings``: each line's code number read by its bytes (the
code map's pass, views/codemap.py), on a real trace and on lines whose strings hold
the member's bytes escaped."""

from __future__ import annotations

from pathlib import Path

import msgspec

from blocktrace.format import TraceReader, decode_line
from blocktrace.format.codes import CODE_MEMBER, code_postings
from blocktrace.format.lines import CallLine, SourceLine
from tests.format.recording import record_exceptions

HASH = b',"hash":"' + b"0" * 64 + b'"}'


def test_the_postings_are_the_decoded_lines_codes(tmp_path: Path) -> None:
    trace = record_exceptions(tmp_path, 30)
    every = 16
    found = code_postings(TraceReader(trace).raw_lines(), every)
    assert found is not None
    chunks: dict[int, set[int]] = {}
    calls: dict[int, CallLine] = {}
    sources = []
    for number, raw in TraceReader(trace).raw_lines():
        line = decode_line(raw)
        if isinstance(line, SourceLine):
            sources.append(number)
        code = getattr(line, "code", None)
        if code is not None:
            chunks.setdefault(code, set()).add((number - 1) // every)
            if isinstance(line, CallLine):
                calls.setdefault(code, line)
    assert {code: list(posting) for code, posting in found.chunks.items()} == {
        code: sorted(posting) for code, posting in chunks.items()}
    assert found.calls == calls and found.sources == sources
    assert len(calls) >= 2 and max(len(p) for p in found.chunks.values()) > 1


def test_a_string_holding_the_members_bytes_escaped_is_not_the_member() -> None:
    error = msgspec.json.encode('"code":9, "code":8')
    assert CODE_MEMBER not in error
    line = (b'{"pc":2,"op":83,"gas":"0x10","gasCost":"0x0","depth":1,"opName":"X","error":'
            + error + b',"line":4,"code":3,"event":"exception"' + HASH)
    found = code_postings([(1, line)], 10)
    assert found is not None and list(found.chunks) == [3]


def test_a_code_member_that_is_not_a_number_asks_for_the_whole_trace() -> None:
    line = b'{"pc":2,"op":83,"gas":"0x10","depth":1,"line":4,"code":"3"' + HASH
    assert code_postings([(1, line)], 10) is None
