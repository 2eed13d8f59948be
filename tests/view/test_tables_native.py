"""The viewer's native table pass (``blocktrace.view._ctables``) writes the same
files, byte for byte, as the Python reference pass, on real traces of varied
programs and levels and on hand-made lines the native reader must leave to
Python (escapes, floats, nested values, repeated names, huge numbers)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from blocktrace._native import extension
from blocktrace.format import TraceReader
from blocktrace.view import tables
from blocktrace.view.tables import Tables, _build_native, build_tables_reference

from .api_support import PROGRAM, record

NATIVE = extension("blocktrace.view._ctables")
pytestmark = pytest.mark.skipif(
    NATIVE is None, reason="the C extension blocktrace.view._ctables is not built "
    "(or BLOCKTRACE_PURE is set): only the reference pass runs")

THREADS = '''\
import threading

G = 0


def gen(n):
    for i in range(n):
        yield i * 1.5


def work(xs):
    global G
    d = {"a": [1, 2], "\\u00e9": "\\u00fc\\n"}
    t = (1, None, True)
    try:
        raise ValueError("x")
    except ValueError as e:
        msg = str(e)
    for v in gen(3):
        G += v
    return len(xs) + len(d) + len(t) + len(msg)


def worker():
    for k in range(3):
        work([k])


threads = [threading.Thread(target=worker) for _ in range(2)]
for th in threads:
    th.start()
for th in threads:
    th.join()


def deep(n):
    if n == 0:
        raise KeyError(n)
    return deep(n - 1)


try:
    deep(5)
except KeyError:
    pass
print(work([1, 2, 3]))
'''


def both(trace: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The tables of ``trace`` by the reference and by the native pass: the
    two directories, after checking that every file is the same."""
    reader = TraceReader(str(trace))
    reference, native = tmp_path / "reference", tmp_path / "native"
    reference.mkdir()
    native.mkdir()
    build_tables_reference(reader, str(reference))
    _build_native(NATIVE, reader, str(native))
    names = sorted(os.listdir(reference))
    assert names == sorted(os.listdir(native))
    for name in names:
        assert (reference / name).read_bytes() == (native / name).read_bytes(), name
    return reference, native


def loaded(directory: Path) -> Tables:
    meta_file = directory / "tables.msgpack"
    meta = msgspec.msgpack.decode(meta_file.read_bytes(), type=tables._Meta)
    return Tables(str(directory), meta, tables.CallTable.load(str(directory), meta.calls))


@pytest.mark.parametrize("options", [
    ("--locals", "changes", "--globals", "changes"),
    ("--locals", "on", "--globals", "on"),
    ("--level", "line", "--locals", "changes"),
    ("--level", "call",),
    ("--locals", "off"),
])
def test_the_native_pass_writes_the_references_tables(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    trace = record(tmp_path, *options, program=THREADS, name="threads")
    _, native = both(trace, tmp_path)
    built = loaded(native)
    assert len(built.meta.threads) >= 2  # the main thread and the workers (a number may be reused)
    assert built.meta.calls > 20
    if "--level" not in options or "line" in options:
        assert built.steps > 100 and built.meta.hits
    assert built.meta.exceptions  # raise and handled
    assert built.meta.has_values == ("on" in options or "changes" in options)


def test_the_native_pass_on_the_servers_program(tmp_path: Path) -> None:
    trace = record(tmp_path)
    _, native = both(trace, tmp_path)
    built = loaded(native)
    total = built.meta.names.index("total")
    assert built.meta.postings[total][1] >= 5  # main's total 0, 0, 11, 33, 66 and add's


def _lines(trace: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in trace.read_text().splitlines()]


HASH = "0" * 64


def _op(pc: int, gas: int, line: int = 2, code: int = 2, depth: int = 2, **more: object) -> str:
    body = (f'{{"pc":{pc},"op":1,"gas":"0x{gas:x}","gasCost":"0x1","depth":{depth},'
            f'"opName":"NOP","line":{line},"code":{code}')
    for key, value in more.items():
        body += f',"{key}":' + (value if isinstance(value, str) else json.dumps(value))
    return body + f',"hash":"{HASH}"}}'


def test_hand_made_lines_the_native_reader_leaves_to_python(tmp_path: Path) -> None:
    real = record(tmp_path, "--locals", "changes")
    lines = real.read_text().splitlines()
    call = next(i for i, line in enumerate(lines) if '"name":"main"' in line)
    made = [
        _op(0, 900, locals='{"x":1}'),
        _op(2, 899, locals='{"x":true}'),  # 1 -> true: a change
        _op(4, 898, locals='{"x":1.0}'),  # -> 1.0: a change
        _op(6, 897, locals='{"x":1.0}'),  # the same text: none
        _op(8, 896, locals='{"x":1e0}'),  # an exponent: Python reads it
        _op(10, 895, locals='{"x":"a\\"b","y":"\\u00e9t\\u00e9"}'),  # \\u: Python
        _op(12, 894, locals='{"\\u0078":2}'),  # an escaped name (x): Python
        _op(14, 893, locals='{"x":[1,{"a":null}]}'),  # nested: Python
        _op(16, 892, locals='{"x":3,"x":4}'),  # a repeated name: Python
        _op(18, 891, locals='{"\u00e9":"\u00fc","n":-12,"big":1234567890123456789012}'),
        _op(18, 891),  # the same instruction again: the step before
        _op(20, 890, thread=1),  # thread 1 named: another instruction than no thread
        _op(20, 890),
        _op(22, 889, globals='{"G":1}'),
        _op(24, 888, code=77, globals='{"G":2}'),  # a code no call line named
        _op(26, 887, depth=70000),  # deeper than the record's 16 bits: clipped
        _op(28, 886, line=0),
        '{"event":"return","kind":"return","depth":2,"code":2,"pc":30,"gas":"0x375",'
        f'"value":[1,2],"hash":"{HASH}"}}',
        _op(32, 885, depth=1, code=1, line=9, locals='{"x":"\\\\"}'),
        '{"event":"return","kind":"unwind","depth":1,"code":1,"pc":34,"gas":"0x374",'
        f'"value":null,"thread":5,"hash":"{HASH}"}}',  # a thread with no frames
        _op(36, 883, depth=1, code=1, line=10, locals='{"x":"\\\\"}', extra="1"),
    ]
    trace = tmp_path / "made.trace.jsonl"
    trace.write_text("\n".join([*lines[:call + 1], *made]) + "\n")
    reference, _ = both(trace, tmp_path)
    built = loaded(reference)
    changes = list(built.changes_of("x", 0))
    assert len(changes) >= 8, changes  # 1, true, 1.0, 1e0, "a\"b", 2, [..], 4, ...
    assert "\u00e9" in built.meta.names and "big" in built.meta.names


def test_a_number_beyond_64_bits_is_the_references(tmp_path: Path) -> None:
    real = record(tmp_path, "--locals", "changes")
    lines = real.read_text().splitlines()
    call = next(i for i, line in enumerate(lines) if '"name":"main"' in line)
    huge = _op(2**70, 900)
    trace = tmp_path / "huge.trace.jsonl"
    trace.write_text("\n".join([*lines[:call + 1], _op(1, 901), huge, _op(3, 899)]) + "\n")
    with pytest.raises(OverflowError):
        _build_native(NATIVE, TraceReader(str(trace)), str(tmp_path))
    directory = tmp_path / "built"
    directory.mkdir()
    meta, _ = tables.build_tables(TraceReader(str(trace)), str(directory))  # the reference's
    reference = tmp_path / "reference"
    reference.mkdir()
    expected, _ = build_tables_reference(TraceReader(str(trace)), str(reference))
    assert meta == expected and meta.steps >= 3


def test_a_value_changing_from_1_to_true_is_a_change(tmp_path: Path) -> None:
    """The reference compares recorded values by their JSON text (1 == True in
    Python, but the program's variable did change)."""
    program = "def f():\n    x = 1\n    x = True\n    x = 1.0\n    return x\n\n\nf()\n"
    trace = record(tmp_path, program=program, name="flip")
    _, native = both(trace, tmp_path)
    built = loaded(native)
    assert len(list(built.changes_of("x", 0))) == 3


def test_the_tables_of_a_torn_trace(tmp_path: Path) -> None:
    trace = record(tmp_path, program=PROGRAM)
    data = trace.read_bytes()
    torn = tmp_path / "torn.trace.jsonl"
    torn.write_bytes(data[: len(data) * 2 // 3])
    _, native = both(torn, tmp_path)
    assert loaded(native).steps > 10
