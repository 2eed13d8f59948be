"""Coexistence: the stepper claims a free sys.monitoring tool id, works beside
another tool (a coverage-like one on id 1 here) and leaves sys.monitoring as it
found it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import CodeType

import pytest

import blocktrace
from blocktrace import CallStart, Recorder

M = sys.monitoring
E = M.events


def _covered(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def _tools() -> dict[int, str | None]:
    return {i: M.get_tool(i) for i in range(6)}


class CoverageLike:
    """What coverage.py does on 3.12+: id 1, PY_START globally, LINE locally."""

    def __init__(self, code: CodeType) -> None:
        self.code = code
        self.lines: list[int] = []
        self.starts = 0

    def on_start(self, code: CodeType, offset: int) -> object:
        if code is self.code:
            self.starts += 1
            return None
        return M.DISABLE

    def on_line(self, code: CodeType, line: int) -> object:
        self.lines.append(line)
        return None


@pytest.fixture
def coverage_like() -> Iterator[CoverageLike]:
    assert M.get_tool(1) is None
    cov = CoverageLike(_covered.__code__)
    M.use_tool_id(1, "coverage-like")
    M.register_callback(1, E.PY_START, cov.on_start)
    M.register_callback(1, E.LINE, cov.on_line)
    M.set_events(1, E.PY_START)
    M.set_local_events(1, cov.code, E.LINE)
    try:
        yield cov
    finally:
        M.set_local_events(1, cov.code, 0)
        M.set_events(1, 0)
        M.register_callback(1, E.PY_START, None)
        M.register_callback(1, E.LINE, None)
        M.free_tool_id(1)


def test_leaves_sys_monitoring_as_it_found_it() -> None:
    before = _tools()
    rec = Recorder()
    with blocktrace.trace(rec) as stepper:
        during = _tools()
        _covered(3)
    assert before == _tools()
    claimed = [i for i in range(6) if during[i] != before[i]]
    assert len(claimed) == 1 and during[claimed[0]] == "blocktrace"
    assert claimed[0] not in (0, 1)  # the debugger's and coverage's ids are left free
    assert stepper._tool is None
    # Nothing fires any more: a later call is not seen by the (stopped) recorder.
    count = len(rec.events)
    _covered(3)
    assert len(rec.events) == count


def test_works_beside_a_coverage_like_tool(coverage_like: CoverageLike) -> None:
    rec = Recorder()
    with blocktrace.trace(rec):
        result = _covered(4)
    assert result == 6
    assert any(e.name == "_covered" for e in rec.of_type(CallStart))
    # The other tool saw the same run, and is untouched by our stop.
    first = _covered.__code__.co_firstlineno
    assert coverage_like.starts == 1
    assert set(coverage_like.lines) == {first + 1, first + 2, first + 3, first + 4}
    assert M.get_tool(1) == "coverage-like"
    assert M.get_events(1) == E.PY_START
    assert M.get_local_events(1, _covered.__code__) == E.LINE
    assert M.register_callback(1, E.LINE, coverage_like.on_line) == coverage_like.on_line
    seen = len(coverage_like.lines)
    _covered(2)
    assert len(coverage_like.lines) > seen  # it goes on working after we stopped
    assert coverage_like.starts == 2


def test_takes_what_is_left_and_fails_cleanly_when_nothing_is() -> None:
    free = [i for i in range(6) if M.get_tool(i) is None]
    taken: list[int] = []
    try:
        for i in free[:-1]:
            M.use_tool_id(i, f"other-{i}")
            taken.append(i)
        rec = Recorder()
        with blocktrace.trace(rec):
            _covered(2)
        assert any(e.name == "_covered" for e in rec.of_type(CallStart))
        assert M.get_tool(free[-1]) is None
        M.use_tool_id(free[-1], "the last one")
        taken.append(free[-1])
        before = blocktrace.get_tracer()
        with pytest.raises(RuntimeError, match="tool id"), blocktrace.trace(Recorder()):
            pass
        assert blocktrace.get_tracer() is before
        assert blocktrace.vm.active_stepper() is None
    finally:
        for i in taken:
            M.free_tool_id(i)
    assert [i for i in range(6) if M.get_tool(i) is None] == free


def test_one_run_at_a_time() -> None:
    with blocktrace.trace(Recorder()), pytest.raises(RuntimeError, match="already tracing"):
        blocktrace.start()
    assert blocktrace.vm.active_stepper() is None
