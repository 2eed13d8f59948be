"""``blocktrace lines --function NAME`` reads through the trace's index: only the
chunks holding lines of the code objects in or around the function, found in
the trace's code map (``TRACE.idx.codes``) -- and shows exactly what reading the
whole trace shows.  Real recordings of a real program."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace.format import TraceReader
from blocktrace.views.codemap import CODES_FORMAT, code_map
from blocktrace.views.lines import render_json, render_text, view_trace

PROGRAM = '''\
import functools


def deco(f):
    @functools.wraps(f)
    def wrapper(*a):
        return f(*a)
    return wrapper


@deco
def decorated(x):
    return x + 1


class Shape:
    def area(self, k):
        return sum([i * k for i in range(3)])


def outer(n):
    def inner(m):
        return m * 2
    return [inner(i) for i in range(n)]


def gen(n):
    for i in range(n):
        yield i


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def main():
    t = 0
    for j in range(6):
        t += fib(11)
        t += decorated(j) + Shape().area(j) + sum(outer(3)) + sum(gen(4))
        t += (lambda q: q + 1)(j)
    print(t)


main()
'''

FUNCTIONS = ["fib", "decorated", "area", "Shape.area", "Shape", "outer", "inner",
             "outer.<locals>.inner", "gen", "main", "deco", "wrapper", "<lambda>", "nowhere"]


def _record(tmp_path: Path, *options: str) -> Path:
    (tmp_path / "prog.py").write_text(PROGRAM)
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", *options, "-o", "t.jsonl", "prog.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "t.jsonl"


@pytest.mark.parametrize("options", [("--locals", "on"), ("--level", "line"), ("--level", "call")])
def test_each_function_reads_as_the_whole_trace_shows_it(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    path = str(_record(tmp_path, *options))
    whole = view_trace(path)
    for function in FUNCTIONS:
        through_index = view_trace(path, function)
        assert render_text(through_index, function) == render_text(whole, function), function
        assert render_json(through_index, function) == render_json(whole, function), function
    assert Path(path + ".idx.codes").read_bytes().startswith(CODES_FORMAT)


def test_a_function_reads_only_the_chunks_its_code_is_in(tmp_path: Path) -> None:
    path = str(_record(tmp_path))
    reader = TraceReader(path)
    cmap = code_map(reader)
    assert cmap is not None
    chunks = len(range(0, cmap.lines, cmap.every))
    assert chunks >= 8  # the trace spans many of the index's chunks
    by_name = {name: number for number, (name, _, _) in cmap.codes.items()}
    assert len(cmap.chunks([by_name["Shape.area"]])) <= chunks // 2
    assert len(cmap.chunks([by_name["fib"]])) >= chunks - 2  # fib is most of the run
    lines = [n for n, raw in reader.raw_lines(1) if b'"name":"Shape.area"' in raw]
    assert {(n - 1) // cmap.every for n in lines} <= set(cmap.chunks([by_name["Shape.area"]]))


def test_a_stale_or_edited_code_map_is_rebuilt(tmp_path: Path) -> None:
    path = _record(tmp_path, "--locals", "on")
    expected = render_text(view_trace(str(path)), "area")
    side = Path(str(path) + ".idx.codes")
    assert render_text(view_trace(str(path), "area"), "area") == expected
    data = bytearray(side.read_bytes())
    data[-1] ^= 0xFF  # edited: its own hash no longer matches
    side.write_bytes(bytes(data))
    assert render_text(view_trace(str(path), "area"), "area") == expected
    assert side.read_bytes() != bytes(data)  # rebuilt and stored again
    # a map of another recording of the same file name: its head does not match
    other = tmp_path / "other"
    other.mkdir()
    (other / "prog.py").write_text(PROGRAM.replace("range(3)", "range(5)"))
    stale = side.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "--locals", "on", "--force", "-o",
         str(path), "prog.py"], cwd=other, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    side.write_bytes(stale)
    fresh = render_text(view_trace(str(path)), "area")
    assert render_text(view_trace(str(path), "area"), "area") == fresh != expected
    assert side.read_bytes() != stale


def test_the_command_names_a_function_no_traced_source_defines(tmp_path: Path) -> None:
    _record(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "lines", "t.jsonl", "--function", "nowhere"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().endswith("no traced source defines 'nowhere'")
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "lines", "t.jsonl", "--function", "Shape.area"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "return sum([i * k for i in range(3)])" in proc.stdout
