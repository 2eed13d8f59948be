"""A line start's locals read from the frame itself (3.13: without its
``f_locals`` proxy, ``_cvalues.frame_items``) are what ``f_locals`` holds, and
``--locals changes`` never misses a change, whichever way the program made it:
the C paths write the same bytes as the pure reference (``BLOCKTRACE_PURE=1``)."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from blocktrace._native import extension

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vm"))
from processes import run_in_mode

_cvalues = extension("blocktrace.tracers._cvalues")
needs_c = pytest.mark.skipif(_cvalues is None,
                             reason="the C extension is not built (or BLOCKTRACE_PURE)")

# Every way a program changes what a line start shows, each followed by a line
# that reads the result (the test looks for it in the trace).
PROGRAM = textwrap.dedent('''
    import sys

    class Obj:
        pass

    def append_to(xs, v):
        xs.append(v)

    def grow(n):
        xs = [1, 2]
        append_to(xs, n)              # a list appended to by a callee
        seen = len(xs)
        d = {"k": 1}
        alias = d
        alias["k"] = n + 100          # a dict mutated through another name
        seen = d["k"]
        o = Obj()
        o.attr = n                    # an object's attribute (shown by number: the same)
        seen = o.attr
        t = (1, [n])
        t[1].append(7)                # a list inside a tuple
        seen = t
        gone = "here"
        del gone                      # a local deleted
        seen = 0
        gone = "here"                 # and bound again to an equal value
        seen = 1
        return seen

    def counter():
        count = 0
        def bump():
            nonlocal count
            count += 1                # a cell changed by a closure
            return count
        bump()
        seen = count
        bump()
        seen = count
        return seen

    def writes():
        v = 1
        exec("w = 2")                 # exec into the frame's locals
        sys._getframe().f_locals["v"] = 41   # a write through f_locals (3.13: to the frame)
        seen = v
        sys._getframe().f_locals["extra"] = 5  # a name that is no fast local
        seen = v
        return seen

    def gen(n):
        acc = []
        for i in range(n):
            acc.append(i)
            yield i                   # the generator's locals across resumes
            acc.append(-i)
        return acc

    def comprehension(n):
        base = [n] * 2
        out = [
            b + i
            for i, b in enumerate(base)
            if b
        ]
        return out

    for n in range(3):
        grow(n)
        counter()
        writes()
        for _ in gen(3):
            pass
        comprehension(n)
''')


def bodies(path: Path) -> list[bytes]:
    """The trace's lines without hash, header and summary (they name pid and time)."""
    return [line[: line.rindex(b',"hash":')] for line in path.read_bytes().splitlines()[1:-1]]


def run(tmp_path: Path, mode: str, pure: bool) -> list[bytes]:
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    out = tmp_path / f"t-{mode}-{pure}.jsonl"
    run_in_mode([sys.executable, "-m", "blocktrace", "run", "--genesis", "g", "--locals", mode,
                 "-o", str(out), str(prog)], tmp_path, pure)
    return bodies(out)


def shown(lines: list[bytes], line_no: int) -> list[dict[str, Any]]:
    """The locals shown at each line start of source line ``line_no``."""
    out = []
    for body in lines:
        if f',"line":{line_no},'.encode() in body and b'"locals":' in body:
            out.append(json.loads(body + b"}")["locals"])
    return out


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(PROGRAM.splitlines(), 1) if text in line)


@needs_c
@pytest.mark.parametrize("mode", ["changes", "on"])
def test_every_kind_of_change_is_shown_as_the_reference_shows_it(tmp_path: Path,
                                                                mode: str) -> None:
    ours, theirs = run(tmp_path, mode, False), run(tmp_path, mode, True)
    assert ours == theirs
    if mode != "changes":
        return
    # the lines after each change show it (changes: only what changed)
    assert [s.get("xs") for s in shown(ours, line_of("seen = len(xs)"))] == [
        "[1, 2, 0]", "[1, 2, 1]", "[1, 2, 2]"]
    assert [s.get("d") for s in shown(ours, line_of('seen = d["k"]'))] == [
        "{'k': 100}", "{'k': 101}", "{'k': 102}"]
    assert all("t" in s for s in shown(ours, line_of("    seen = t")))
    assert [s.get("t") for s in shown(ours, line_of("    seen = t"))] == [
        "(1, [0, 7])", "(1, [1, 7])", "(1, [2, 7])"]
    after_del = shown(ours, line_of("seen = 0"))
    assert all("gone" not in s for s in after_del)  # gone: not shown, not "changed"
    rebound = shown(ours, line_of("seen = 1"))
    assert rebound and all(s.get("gone") == "'here'" for s in rebound)  # shown again
    first = line_of("seen = count")
    assert [s.get("count") for s in shown(ours, first)] == [1] * 3
    assert [s.get("count") for s in shown(ours, first + 2)] == [2] * 3
    # 3.13 writes f_locals through to the frame; 3.12's f_locals is a copy (v unchanged)
    written = 41 if sys.version_info >= (3, 13) else None
    assert [s.get("v") for s in shown(ours, line_of("seen = v"))] == [written] * 3
    assert [s.get("extra") for s in shown(ours, line_of('f_locals["extra"]') + 1)] == [5] * 3
    acc = [s["acc"] for s in shown(ours, line_of("acc.append(-i)")) if "acc" in s]
    assert acc[:3] == ["[0]", "[0, 0, 1]", "[0, 0, 1, -1, 2]"]


def frame_program() -> None:
    """Frames of every kind, for ``test_frame_items_are_f_locals``."""

    def closure() -> Any:
        a = 1

        def inner(b: int) -> Any:
            nonlocal a
            a += b
            c = [
                a
                for a in range(3)  # a hidden comprehension variable of the same name
            ]
            return a, c

        inner(2)
        return inner(3)

    def gen(n: int) -> Any:
        for i in range(n):
            x = [
                i
                for _ in range(2)
            ]
            yield x
        try:
            raise ValueError
        except ValueError as e:  # unbound again after the handler
            y = e
        del y

    def cellarg(p: int) -> Any:
        def f() -> int:
            return p
        p = 3
        return f

    def writes() -> int:
        v = 1
        exec("w = 2")
        sys._getframe().f_locals["zz"] = 3  # an extra local: f_locals read
        v = 2
        return v

    def reorder() -> int:
        a = 1
        b = 2
        del a
        c = 3
        a = 4  # 3.12: a moves to the end of f_locals (deleted at a read, then bound again)
        del b, c  # the order here: b, c, a on 3.12; a, b, c on 3.13 (the frame's)
        b = 5
        return a + b

    closure()
    list(gen(3))
    reorder()
    cellarg(1)()
    writes()
    textwrap.fill("some words to wrap " * 10, 20)
    re.findall(r"\w+", "a bb ccc")
    json.loads(json.dumps({"a": [1, {"b": None}]}))


@needs_c
def test_frame_items_are_f_locals() -> None:
    """At every line of a range of frames (closures, cells, free variables,
    comprehensions inlined in their function, generators, exception names,
    exec, the standard library), the pairs read from the frame are the
    f_locals proxy's, in its order, the same objects."""
    assert _cvalues is not None
    monitoring = sys.monitoring
    tool = next(t for t in range(5, 0, -1) if monitoring.get_tool(t) is None)
    read, fallback, differ = 0, 0, []
    reordered: list[list[str]] = []

    def on_line(code: Any, line: int) -> Any:
        nonlocal read, fallback
        if code is test_frame_items_are_f_locals.__code__:
            return monitoring.DISABLE  # its cells change as this runs
        frame = sys._getframe(1)
        got = _cvalues.frame_items(frame)
        if got is None:
            fallback += 1
            return
        read += 1
        if code.co_name == "reorder" and line == line_of_frame_program("del b, c"):
            reordered.append([n for n, _ in got])
        want = list(frame.f_locals.items())  # (3.12: after got's own update, none to do)
        if [(n, id(v)) for n, v in got] != [(n, id(v)) for n, v in want]:
            differ.append((code.co_name, line, [n for n, _ in got], [n for n, _ in want]))

    monitoring.use_tool_id(tool, "test_values_frames")
    try:
        monitoring.register_callback(tool, monitoring.events.LINE, on_line)
        monitoring.set_events(tool, monitoring.events.LINE)
        frame_program()
    finally:
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.LINE, None)
        monitoring.free_tool_id(tool)
    assert differ == []
    assert read > 200 and fallback >= 1
    # 3.13: writes() after its f_locals write (the proxy's); 3.12: cells and free variables
    assert reordered == ([["b", "c", "a"]] if sys.version_info < (3, 13) else [["a", "b", "c"]])


def line_of_frame_program(text: str) -> int:
    import inspect
    lines, first = inspect.getsourcelines(frame_program)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_no_tool_id_left_taken() -> None:
    assert all(sys.monitoring.get_tool(t) != "test_values_frames" for t in range(6))


def test_program_lines_are_where_the_test_looks() -> None:
    for text in ("seen = len(xs)", 'seen = d["k"]', "seen = 0", "seen = count"):
        assert re.search(re.escape(text), PROGRAM)
