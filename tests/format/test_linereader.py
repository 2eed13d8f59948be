"""The op, call and return lines' one C reader (format/csrc/linereader.h), as its two
users take them: the viewer's tables (view/_ctables.TablesPass) and the query export's
columns (format/_cscan.OpColumns).  One reader decides what each of those lines is;
each user refuses only what it cannot hold (the columns: values, a clock on an op line,
text that is not plain ASCII, another gasCost), and every line either takes is one the
format's Structs decode as that kind (format.decode_line)."""

from __future__ import annotations

import pytest

from blocktrace.format import decode_line
from blocktrace.format.lines import CallLine, OpLine, ReturnLine

ctables = pytest.importorskip("blocktrace.view._ctables")
cscan = pytest.importorskip("blocktrace.format._cscan")

HASH = b',"hash":"' + b"0123456789abcdef" * 4 + b'"}'
OP = (b'{"pc":2,"op":83,"gas":"0x10","gasCost":"0x1","depth":1,"opName":"RETURN_VALUE",'
      b'"line":4,"code":0')
CALL = (b'{"event":"call","kind":"call","depth":1,"code":0,"name":"f","file":"a.py",'
        b'"firstLine":1')
RETURN = b'{"event":"return","kind":"return","depth":1,"code":0,"pc":4,"gas":"0xf"'

# (line, taken by the tables, taken by the columns)
LINES = [
    (OP + HASH, True, True),
    (OP + b',"thread":2' + HASH, True, True),
    (OP + b',"thread":2,"clock":5' + HASH, True, False),
    (OP + b',"locals":{"x":1,"y":"\xc3\xa9","z":-0.5}' + HASH, True, False),
    (OP + b',"locals":{},"globals":{"g":null}' + HASH, True, False),
    (OP + b',"locals":{"x":1,"x":2}' + HASH, False, False),
    (OP + b',"locals":{"x\\n":1}' + HASH, False, False),
    (OP + b',"locals":{"x":1e5}' + HASH, False, False),
    (OP + b',"locals":{"x":[1]}' + HASH, False, False),
    (OP.replace(b'"0x1"', b'"0x01"') + HASH, True, False),
    (OP.replace(b'"0x10"', b'"0x' + b"1" * 17 + b'"') + HASH, False, False),
    (OP.replace(b'"0x10"', b'"0X10"') + HASH, False, False),
    (OP.replace(b'"pc":2', b'"pc":02') + HASH, False, False),
    (OP + HASH.replace(b"abc", b"ABC"), False, False),
    (OP + HASH[:-1], False, False),
    (OP + b',"thread":x' + HASH, False, False),
    (CALL + HASH, True, True),
    (CALL + b',"thread":3,"clock":7' + HASH, True, True),
    (CALL.replace(b'"f"', b'"\xc3\xa9"') + HASH, True, False),
    (CALL.replace(b'"f"', b'"a\\tb"') + HASH, True, False),
    (CALL.replace(b'"f"', b'"\\u0041"') + HASH, False, False),
    (CALL.replace(b'"f"', b'"\xc3"') + HASH, False, False),
    (CALL.replace(b'"f"', b'"\xed\xa0\x80"') + HASH, False, False),  # a surrogate
    (CALL.replace(b'"kind":"call"', b'"kind":"Call1"') + HASH, True, True),
    (RETURN + b',"value":null' + HASH, True, True),
    (RETURN + b',"value":"s","thread":2' + HASH, True, True),
    (RETURN + b',"value":-12' + HASH, True, True),
    (RETURN + HASH, True, False),
    (RETURN + b',"value":1.5' + HASH, True, False),
    (RETURN + b',"value":-0' + HASH, True, False),
    (RETURN + b',"value":"\xc3\xa9"' + HASH, True, False),
    (RETURN + b',"value":1e5' + HASH, False, False),
    (RETURN + b',"value":{}' + HASH, False, False),
]


def _tables_take(line: bytes) -> bool:
    tables = ctables.TablesPass(1 << 20)
    tables.code(0, 0)  # (a call line is taken for a code the tables know)
    stop, pos, number = tables.feed(line + b"\n", 0, 2)
    return bool(stop == 0 and pos == len(line) + 1 and number == 3)


def _columns_take(line: bytes) -> bool:
    code, pos, number = cscan.OpColumns().feed(line + b"\n", 0, 2, 1 << 20)
    return bool(code == 0 and pos == len(line) + 1 and number == 3)


@pytest.mark.parametrize(("line", "tables", "columns"), LINES,
                         ids=[str(i) for i in range(len(LINES))])
def test_each_reader_takes_the_lines_it_can_hold(line: bytes, tables: bool,
                                                 columns: bool) -> None:
    assert (_tables_take(line), _columns_take(line)) == (tables, columns)


@pytest.mark.parametrize("line", [line for line, tables, columns in LINES if tables or columns],
                         ids=lambda line: line[:24].decode("utf-8", "replace"))
def test_a_line_either_takes_the_structs_decode_as_its_kind(line: bytes) -> None:
    kind = {ord("p"): OpLine, ord("e"): CallLine if b'"call"' in line[:16] else ReturnLine}
    assert type(decode_line(line)) is kind[line[2]]
