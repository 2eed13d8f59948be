"""Tracing does not change the depth at which a program meets its recursion
limit (issue 11, item 5): ``blocktrace run`` against plain python, in every mode
(C paths and ``BLOCKTRACE_PURE=1``, values recorded or not), real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.vm.processes import run_in_mode

PROGRAM = """\
import sys
if len(sys.argv) > 1:
    sys.setrecursionlimit(int(sys.argv[1]))
deepest = 0
def down(n):
    global deepest
    deepest = n
    return down(n + 1)
try:
    down(0)
except RecursionError:
    print("deepest", deepest)

def caught(n):
    try:
        return caught(n + 1)
    except RecursionError:
        return n
print("caught", caught(0))

class Node:
    def __init__(self, below):
        self.below = below
def build(n):
    return Node(build(n + 1))
try:
    build(0)
except RecursionError as exc:
    print("build", type(exc).__name__)
print("limit", sys.getrecursionlimit())
"""

INCODE = """\
import sys
import blocktrace
if len(sys.argv) > 2:
    sys.setrecursionlimit(int(sys.argv[2]))
blocktrace.set_tracer(blocktrace.Recorder() if sys.argv[1] == "rec" else blocktrace.ChainTracer())
""" + PROGRAM.split("\n", 3)[3]


@pytest.mark.parametrize("limit", [None, "60"])
@pytest.mark.parametrize("values", ["off", "on"])
@pytest.mark.parametrize("pure", [False, True], ids=["c", "pure"])
def test_blocktrace_run_meets_the_limit_where_python_does(
    tmp_path: Path, limit: str | None, values: str, pure: bool
) -> None:
    script = tmp_path / "deep.py"
    script.write_text(PROGRAM)
    extra = [limit] if limit else []
    expected = run_in_mode([sys.executable, str(script), *extra], tmp_path, pure)
    assert "deepest" in expected
    traced = run_in_mode(
        [sys.executable, "-m", "blocktrace", "run", "-o", str(tmp_path / "t.jsonl"),
         "--locals", values, "--globals", values, str(script), *extra],
        tmp_path, pure,
    )
    assert traced == expected


@pytest.mark.parametrize("tracer", ["rec", "chain"])
def test_a_program_that_sets_a_tracer_meets_the_limit_where_python_does(
    tmp_path: Path, tracer: str
) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text(PROGRAM)
    incode = tmp_path / "incode.py"
    incode.write_text(INCODE)
    expected = run_in_mode([sys.executable, str(plain), "60"], tmp_path, False)
    assert run_in_mode([sys.executable, str(incode), tracer, "60"], tmp_path, False) == expected
