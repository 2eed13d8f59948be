"""``start()`` right after ``set_tracer`` goes on with the stepper ``set_tracer``
started (one start and stop per run, not two), and the trace is the one a
stepper started by ``start()`` alone would have written."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import blocktrace
from blocktrace.events import CallStart
from blocktrace.tracers import _swap, discard_trace, set_tracer
from blocktrace.vm import active_stepper


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def _record(path: Path, *, held: bool, level: str = "op", **start: Any) -> list[dict[str, Any]]:
    """The trace of ``_work(20)``: ``set_tracer`` then ``start()`` (``held``), or
    the tracer swapped in without a stepper and ``start()`` alone."""
    chain = blocktrace.ChainTracer(path, genesis="take-over", level=level,  # type: ignore[arg-type]
                                   argv=["x"])
    if held:
        set_tracer(chain)
    else:
        _swap(chain)
    try:
        blocktrace.start(**start)
        _work(20)
        blocktrace.stop()
    finally:
        set_tracer(discard_trace)
        chain.close()
    lines = [json.loads(ln) for ln in path.read_bytes().splitlines()]
    for line in lines:
        for volatile in ("start", "pid", "time", "hash"):
            line.pop(volatile, None)
    return lines


def test_start_goes_on_with_the_stepper_set_tracer_started(tmp_path: Path) -> None:
    chain = blocktrace.ChainTracer(tmp_path / "t.jsonl", genesis="take-over")
    set_tracer(chain)
    try:
        held = active_stepper()
        assert held is not None
        stepper = blocktrace.start(gas=10**6)
        assert stepper is held  # taken over, not dropped and replaced
        assert stepper.gas_limit == 10**6
        _work(3)
        blocktrace.stop()
    finally:
        set_tracer(discard_trace)
        chain.close()
    assert active_stepper() is None


def test_the_trace_is_the_one_start_alone_writes(tmp_path: Path) -> None:
    for level in ("op", "line", "call"):
        alone = _record(tmp_path / f"alone-{level}.jsonl", held=False, level=level, gas=10**7)
        taken = _record(tmp_path / f"held-{level}.jsonl", held=True, level=level, gas=10**7)
        assert taken == alone
        assert next(ln for ln in taken if ln.get("kind") == "enter")["name"] == "_record"
        assert any(ln.get("name") == "_work" for ln in taken)


def test_a_new_scope_traces_code_the_old_scope_turned_off(tmp_path: Path) -> None:
    """Library code called between ``set_tracer`` and ``start(include=...)`` was
    turned off (``DISABLE``) under the default scope; the new scope traces it."""
    path = tmp_path / "scope.jsonl"
    chain = blocktrace.ChainTracer(path, genesis="take-over")
    set_tracer(chain)
    try:
        textwrap.dedent("  a\n  b\n")  # out of the default scope: its start turned off
        blocktrace.start(include=[textwrap.__file__])
        textwrap.dedent("  c\n  d\n")
        blocktrace.stop()
    finally:
        set_tracer(discard_trace)
        chain.close()
    names = [json.loads(ln).get("name") for ln in path.read_bytes().splitlines()]
    assert "dedent" in names


def test_a_tracer_in_the_programs_code_does_not_trace_itself(tmp_path: Path) -> None:
    events: list[Any] = []

    def collect(vm: Any, event: Any) -> None:
        events.append(event)

    set_tracer(collect)
    try:
        blocktrace.start()
        _work(2)
        blocktrace.stop()
    finally:
        set_tracer(discard_trace)
    calls = [e.name for e in events if isinstance(e, CallStart)]
    assert calls[0] == "test_a_tracer_in_the_programs_code_does_not_trace_itself"
    assert "_work" in calls and "collect" not in calls


def test_code_out_of_one_runs_scope_is_traced_in_the_next_runs(tmp_path: Path) -> None:
    """A run turns code out of its scope off (``DISABLE``); a later run whose scope
    takes it in traces it, and one with the first run's scope again does not."""
    names = []
    for n, include in enumerate([None, [textwrap.__file__, __file__], None]):
        path = tmp_path / f"run{n}.jsonl"
        chain = blocktrace.ChainTracer(path, genesis="runs")
        _swap(chain)  # no stepper from set_tracer: each run is a stepper's own start
        try:
            blocktrace.start(include=include)
            textwrap.dedent("  a\n  b\n")
            blocktrace.stop()
        finally:
            _swap(discard_trace)
            chain.close()
        names.append({json.loads(ln).get("name") for ln in path.read_bytes().splitlines()})
    assert "dedent" not in names[0] and "dedent" in names[1] and "dedent" not in names[2]
