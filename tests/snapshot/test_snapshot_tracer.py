"""SnapshotTracer in this process, under the real stepper: which steps, what
they hold, and the uncatchable step limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import blocktrace
from blocktrace.snapshot import CappedOutput, FeedInput, SnapshotTracer


def trace_source(
    tmp_path: Path, source: str, *, max_steps: int = 500, output_limit: int = 10_000,
    input: str = "",
) -> tuple[list[dict[str, Any]], SnapshotTracer, BaseException | None]:
    path = tmp_path / "main.py"
    path.write_text(source)
    out = CappedOutput(output_limit)
    raw: list[bytes] = []
    tracer = SnapshotTracer(max_steps=max_steps, output=out, emit=raw.append)
    code = compile(source, str(path), "exec")
    saved = sys.stdout, sys.stdin
    sys.stdout = out
    sys.stdin = FeedInput(input, out)
    error: BaseException | None = None
    try:
        with blocktrace.trace(tracer, include=[str(tmp_path)]):
            exec(code, {"__name__": "__main__"})
    except BaseException as exc:  # the program's own error, or the halt
        error = exc
    finally:
        sys.stdout, sys.stdin = saved
    return [msgspec.json.decode(r) for r in raw], tracer, error


PROGRAM = """\
def square(n):
    result = n * n
    return result

xs = [1, 2]
ys = xs
ys.append(square(3))
print(xs)
"""


def test_steps_follow_the_program(tmp_path: Path) -> None:
    steps, _, error = trace_source(tmp_path, PROGRAM)
    assert error is None
    shape = [(s["event"], s["line"], s["function"]) for s in steps]
    assert shape == [
        ("line", 1, "<module>"),
        ("line", 5, "<module>"),
        ("line", 6, "<module>"),
        ("line", 7, "<module>"),
        ("call", 1, "square"),
        ("line", 2, "square"),
        ("line", 3, "square"),
        ("return", 3, "square"),
        ("line", 8, "<module>"),
        ("return", 8, "<module>"),
    ]
    ret = steps[7]
    assert [f["name"] for f in ret["stack"]] == ["<module>", "square"]
    assert ret["stack"][1]["variables"] == {"n": 3, "result": 9, "__return__": 9}
    last = steps[-1]
    module_vars = last["stack"][0]["variables"]
    assert module_vars["xs"] == module_vars["ys"]  # aliasing: one heap object
    ref = str(module_vars["xs"][1])
    assert last["heap"][ref]["members"] == [[0, 1], [1, 2], [2, 9]]
    assert last["heap"][str(module_vars["square"][1])]["name"] == "square(n)"
    assert last["stdout"] == "[1, 2, 9]\n"
    assert steps[0]["stdout"] == ""


def test_exception_step_carries_the_error(tmp_path: Path) -> None:
    steps, _, error = trace_source(tmp_path, "x = 1\ny = x / 0\n")
    assert isinstance(error, ZeroDivisionError)
    assert steps[-1]["event"] == "exception"
    assert steps[-1]["error"] == {"type": "ZeroDivisionError", "message": "division by zero",
                                  "line": 2}


def test_library_code_makes_no_steps(tmp_path: Path) -> None:
    source = (
        "import json, textwrap\ntext = textwrap.fill('word ' * 500)\ndata = json.dumps([text])\n"
    )
    steps, _, error = trace_source(tmp_path, source)
    assert error is None
    assert [s["line"] for s in steps] == [1, 2, 3, 3]
    assert all(f["name"] == "<module>" for s in steps for f in s["stack"])


@pytest.mark.parametrize(
    "source",
    [
        "while True:\n    pass\n",
        "while True: pass\n",
        "while True:\n    try:\n        while True:\n            pass\n"
        "    except BaseException:\n        pass\n",
        "def f(n):\n    return f(n + 1)\n"
        "try:\n    f(0)\nexcept BaseException:\n    while True: pass\n",
    ],
    ids=["loop", "one-line-loop", "except-BaseException", "recursion"],
)
def test_step_limit_ends_the_run_uncatchably(tmp_path: Path, source: str) -> None:
    steps, tracer, error = trace_source(tmp_path, source, max_steps=40)
    assert isinstance(error, blocktrace.HaltRun)
    assert tracer.halted == "steps"
    assert len(steps) == 41
    assert steps[-1]["event"] == "step_limit"
    assert steps[-1]["error"]["type"] == "LimitExceeded"
    assert "40 steps" in steps[-1]["error"]["message"]


def test_output_cap_stops_the_run(tmp_path: Path) -> None:
    steps, tracer, error = trace_source(
        tmp_path, "while True:\n    print('spam')\n", max_steps=10_000, output_limit=100
    )
    assert isinstance(error, blocktrace.HaltRun)
    assert tracer.halted == "output"
    assert len(steps[-1]["stdout"]) == 100
    assert steps[-1]["error"]["message"] == "stopped: output over 100 characters"


def test_input_is_echoed_and_then_eof(tmp_path: Path) -> None:
    source = "a = input('a? ')\nb = input('b? ')\n"
    steps, _, error = trace_source(tmp_path, source, input="one\n")
    assert isinstance(error, EOFError)
    assert steps[-1]["stdout"] == "a? one\nb? "


def test_generators_and_classes(tmp_path: Path) -> None:
    source = (
        "class Box:\n    def __init__(self, v):\n        self.v = v\n"
        "def gen():\n    yield Box(1)\n    yield Box(2)\n"
        "boxes = list(gen())\n"
    )
    steps, _, error = trace_source(tmp_path, source)
    assert error is None
    events = [s["event"] for s in steps]
    assert events.count("call") >= 4  # class body, gen, two __init__
    last = steps[-1]
    boxes = last["heap"][str(last["stack"][0]["variables"]["boxes"][1])]
    assert boxes["category"] == "list" and len(boxes["members"]) == 2
    first_box = last["heap"][str(boxes["members"][0][1][1])]
    assert first_box == {"type": "Box", "category": "object", "members": [["v", 1]]}


SETTRACE_SHAPES = """\
def deco(f):
    return f

@deco
def g(a):
    return a + 1

def gen(n):
    for i in range(n):
        yield i

def outer():
    k = 3
    def inner():
        return k
    return inner()

sq = lambda x: x * x
total = sum(v * 2 for v in [1, 2])
class A:
    x = 1
    def m(self):
        return self.x
def catcher():
    try:
        yield 1
    except ValueError:
        yield 2
it = catcher()
next(it)
it.throw(ValueError("again"))
print(g(1), list(gen(2)), outer(), sq(3), total, A().m())
"""

_SETTRACE = """\
import json, sys
path = sys.argv[1]
code = compile(open(path).read(), path, "exec")
shape = []
def tracer(frame, event, arg):
    if frame.f_code.co_filename != path:
        return None
    if event in ("call", "line", "return", "exception"):
        shape.append((event, frame.f_lineno, frame.f_code.co_qualname))
    return tracer
sys.settrace(tracer)
try:
    exec(code, {"__name__": "__main__"})
finally:
    sys.settrace(None)
print(json.dumps(shape))
"""


def test_steps_are_sys_settrace_events(tmp_path: Path) -> None:
    """The steps are the events Python Tutor and willow show, which are
    sys.settrace's: a lambda's, a class body's and a generator expression's
    first line after their call, a generator's resumption (and throw) as a
    call at the line it goes on from.  (A frame left by an exception makes no
    step, where settrace has a "return": not in this program.)"""
    steps, _, error = trace_source(tmp_path, SETTRACE_SHAPES)
    assert error is None
    ours = [[s["event"], s["line"], s["function"]] for s in steps]
    script = tmp_path / "settrace.py"
    script.write_text(_SETTRACE)
    program = tmp_path / "program.py"
    program.write_text(SETTRACE_SHAPES)
    done = subprocess.run([sys.executable, str(script), str(program)], capture_output=True,
                          text=True, timeout=60, check=True)
    reference = json.loads(done.stdout.splitlines()[-1])
    # settrace's first event is the module's "call"; the snapshot's first step is its line 1
    assert reference[0][0::2] == ["call", "<module>"]
    assert ours == reference[1:]
