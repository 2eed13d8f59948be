"""A line's kind by its first bytes has one home: ``blocktrace.format.lines``
(``HEADER_PREFIX`` ... ``SUMMARY_PREFIX``, ``is_plain_op``) and, for C, the format's
``csrc/linekinds.h``.  Every line blocktrace writes starts as its kind says, the
C spelling is the Python one, and the readers that go by bytes (the golden rewrite
and record, the viewer's tables, the code map, the lines view, the differ's line
source) spell no prefix of their own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace.format import TraceError, TraceReader, lines
from blocktrace.format.lines import (
    CallLine,
    ExceptionLine,
    Header,
    OpLine,
    ReturnLine,
    SourceLine,
    Summary,
    line_type,
)

_PACKAGE = Path(lines.__file__).parents[1]

_PROGRAM = """\
import threading

def g(i):
    if i % 3 == 0:
        raise KeyError(i)
    return i

def f(n):
    total = 0
    for i in range(n):
        try:
            total += g(i)
        except KeyError:
            total -= 1
    return total

def gen():
    yield 1
    yield 2

t = threading.Thread(target=f, args=(5,))
t.start()
t.join()
print(f(10), sum(gen()))
"""

_PREFIXES = {
    Header: lines.HEADER_PREFIX,
    Summary: lines.SUMMARY_PREFIX,
    CallLine: lines.CALL_PREFIX,
    ReturnLine: lines.RETURN_PREFIX,
    SourceLine: lines.SOURCE_PREFIX,
    OpLine: lines.OP_PREFIX,
    ExceptionLine: lines.OP_PREFIX,
}


def _record(tmp_path: Path, *options: str) -> Path:
    program = tmp_path / "kinds.py"
    program.write_text(_PROGRAM)
    trace = tmp_path / f"t{'-'.join(options)}.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "-o", str(trace), *options, str(program)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return trace


@pytest.mark.parametrize("options", [(), ("--locals", "on"), ("--level", "call", "--clock"),
                                     ("--level", "line", "--locals", "changes")])
def test_every_line_written_starts_as_its_kind_says(tmp_path: Path,
                                                    options: tuple[str, ...]) -> None:
    trace = _record(tmp_path, *options)
    raws = trace.read_bytes().splitlines()
    seen = set()
    for number, raw in enumerate(raws, 1):
        kind = line_type(raw)
        seen.add(kind)
        assert raw.startswith(_PREFIXES[kind]), (number, raw)
        # no line of another kind starts so (the op prefix is shared by op and exception)
        others = {p for k, p in _PREFIXES.items() if p != _PREFIXES[kind]}
        assert not any(raw.startswith(p) for p in others if not _PREFIXES[kind].startswith(p))
        assert lines.is_header(raw) == (kind is Header) == (number == 1)
        assert lines.is_summary(raw) == (kind is Summary) == (number == len(raws))
        assert lines.is_call(raw) == (kind is CallLine)
        assert lines.is_source(raw) == (kind is SourceLine)
        assert lines.is_plain_op(raw) == (kind is OpLine)
        if kind not in (Header, Summary, OpLine, ExceptionLine):
            assert raw.startswith(lines.EVENT_PREFIX)
    assert {Header, Summary, CallLine, ReturnLine, SourceLine, ExceptionLine} <= seen
    assert (OpLine in seen) == ("call" not in options)


def test_an_op_line_with_a_local_named_event_is_not_taken_as_plain() -> None:
    """The byte test errs towards decoding: a plain op line whose values name
    ``event`` is not called plain (a reader going by bytes decodes it)."""
    raw = (b'{"pc":2,"op":1,"gas":"0x9","gasCost":"0x1","depth":1,"opName":"NOP","line":1,'
           b'"code":1,"locals":{"event":"1"},"hash":"' + b"0" * 64 + b'"}')
    assert line_type(raw) is ExceptionLine or line_type(raw) is OpLine
    assert not lines.is_plain_op(raw)


def _c_defines() -> dict[str, bytes]:
    text = (_PACKAGE / "format" / "csrc" / "linekinds.h").read_text()
    found = {}
    for name, literal in re.findall(r'^#define (LINE_\w+_PREFIX) ("(?:[^"\\]|\\.)*")$', text,
                                    re.MULTILINE):
        found[name] = literal[1:-1].encode().decode("unicode_escape").encode()
    return found


def test_the_c_spelling_is_the_python_one() -> None:
    defines = _c_defines()
    assert defines == {
        "LINE_HEADER_PREFIX": lines.HEADER_PREFIX,
        "LINE_OP_PREFIX": lines.OP_PREFIX,
        "LINE_EVENT_PREFIX": lines.EVENT_PREFIX,
        "LINE_CALL_PREFIX": lines.CALL_PREFIX,
        "LINE_RETURN_PREFIX": lines.RETURN_PREFIX,
        "LINE_SOURCE_PREFIX": lines.SOURCE_PREFIX,
        "LINE_SUMMARY_PREFIX": lines.SUMMARY_PREFIX,
    }


# The readers that tell kinds by bytes, and the one spelling of each prefix they
# must not carry themselves (Python, and C inside a string literal).
_READERS = [
    "golden/stabilise.py", "golden/record.py", "golden/compare.py", "golden/csrc/stabilise.c",
    "view/tables.py", "views/codemap.py", "views/lines.py", "cli/cat.py",
    "eip3155/clientpass.py", "format/csrc/scan.c",
]


def _spellings(c: bool) -> list[str]:
    """Each prefix as a literal starts: ``b'{"pc":`` in Python, ``"{\\"pc\\":`` in C."""
    texts = [prefix.decode() for prefix in _c_defines().values()]
    if c:
        return ['"' + text.replace('"', '\\"') for text in texts]
    return ["b'" + text for text in texts]


@pytest.mark.parametrize("reader", _READERS)
def test_readers_by_bytes_spell_no_line_kind_of_their_own(reader: str) -> None:
    text = (_PACKAGE / reader).read_text()
    for spelling in _spellings(reader.endswith(".c")):
        assert spelling not in text, (reader, spelling)


def test_skip_spells_no_source_prefix() -> None:
    """skip.py's line source is the format's (the rest of eip3155/ is the differ's)."""
    text = (_PACKAGE / "eip3155" / "skip.py").read_text()
    assert "b'" + lines.SOURCE_PREFIX.decode() not in text


def test_decode_object_names_a_line_that_is_not_a_json_object(tmp_path: Path) -> None:
    trace = _record(tmp_path)
    reader = TraceReader(str(trace))
    number, raw = next(reader.raw_lines(2, 1))
    assert reader.decode_object(number, raw)["event"] in ("call", "source")
    for bad, why in ((b"[1,2]\n", "Expected `object`, got `array`"), (b"{\n", "truncated"),
                     (b"[" * 10_000 + b"]" * 10_000, "")):
        with pytest.raises(TraceError) as err:
            reader.decode_object(7, bad)
        assert err.value.lineno == 7
        assert "not a JSON object" in str(err.value) and why in str(err.value)
