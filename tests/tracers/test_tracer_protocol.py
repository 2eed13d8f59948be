"""The tracer protocol: one active tracer, swapped with ``set_tracer``; ``start``
and ``stop``; ``OpEnd`` on request; ``DISABLE`` for tracers that ask for it."""

from __future__ import annotations

import sys

import blocktrace
from blocktrace import CallStart, OpEnd, OpException, OpStart, Recorder, Return, Stop
from blocktrace.events import TraceEvent
from blocktrace.tracers import VMState


def _work() -> int:
    total = 0
    for i in range(5):
        total += i
    return total


def test_set_tracer_returns_the_previous_one() -> None:
    assert blocktrace.get_tracer() is blocktrace.discard_trace
    rec = Recorder()
    assert blocktrace.set_tracer(rec) is blocktrace.discard_trace
    try:
        assert blocktrace.get_tracer() is rec
    finally:
        assert blocktrace.set_tracer(blocktrace.discard_trace) is rec


def test_start_and_stop() -> None:
    rec = Recorder()
    previous = blocktrace.set_tracer(rec)
    try:
        stepper = blocktrace.start(gas=10_000)
        result = _work()
        stopped = blocktrace.stop("done")
    finally:
        blocktrace.set_tracer(previous)
    assert stopped is stepper and result == 10
    assert blocktrace.stop() is None  # nothing running: nothing to stop
    first = rec.events[0]
    assert isinstance(first, CallStart) and first.kind == "enter"
    assert first.name == "test_start_and_stop"
    last = rec.events[-1]
    assert isinstance(last, Stop) and last.output == "done" and last.error is None
    assert last.gas_used == len(rec.of_type(OpStart)) == 10_000 - stepper.gas


def test_emit_goes_to_the_active_tracer() -> None:
    rec = Recorder()
    with blocktrace.trace(rec) as stepper:
        pass
    count = len(rec.events)
    previous = blocktrace.set_tracer(rec)  # starts a stepper (issue 17): its events come too
    try:
        blocktrace.emit(stepper, Stop("by hand", None, 0))
    finally:
        blocktrace.set_tracer(previous)
    assert rec.events[count:].count(Stop("by hand", None, 0)) == 1


def test_vm_state_during_events() -> None:
    seen: list[tuple[str, int, int, str | None, int]] = []

    def look(vm: VMState, event: TraceEvent, /) -> None:
        code = vm.code
        seen.append((type(event).__name__, vm.depth, vm.gas, code.co_name if code else None,
                     vm.offset))
        if type(event) is OpStart:
            assert vm.offset == event.pc
            frame = vm.frame
            assert frame is not None and frame.f_code is code

    with blocktrace.trace(look, gas=1000):
        _work()
    ops = [s for s in seen if s[0] == "OpStart"]
    assert [s[2] for s in ops] == list(range(1000, 1000 - len(ops), -1))
    assert {s[3] for s in ops} == {"test_vm_state_during_events", "_work"}
    assert seen[-1][0] == "Stop" and seen[-1][3] is None


def _raises() -> int:
    try:
        return 1 // 0
    except ZeroDivisionError:
        return -1


def test_op_end_on_request() -> None:
    plain = Recorder()
    with blocktrace.trace(plain):
        _raises()
    assert plain.of_type(OpEnd) == []
    rec = Recorder(op_end=True)
    with blocktrace.trace(rec):
        result = _raises()
    assert result == -1
    ends = rec.of_type(OpEnd)
    assert ends
    # Every OpEnd closes the op just before it in the same frame, never a raising one.
    open_ops: dict[int, OpStart] = {}
    for r in rec.records:
        e = r.event
        if type(e) is OpStart:
            open_ops[r.depth] = e
        elif type(e) is OpEnd:
            started = open_ops.pop(r.depth)
            assert (e.pc, e.code) == (started.pc, started.code)
        elif type(e) is OpException and e.kind == "raise":
            open_ops.pop(r.depth, None)
    raising = next(e for e in rec.of_type(OpException) if e.kind == "raise")
    assert all(not (end.pc == raising.pc and end.code == raising.code) for end in ends)
    assert result == _raises()


def test_a_tracer_may_disable_instruction_sites() -> None:
    """A tracer with ``may_disable`` that answers DISABLE sees each site once."""
    sites: list[tuple[int, int]] = []

    class OncePerSite:
        may_disable = True

        def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
            if type(event) is OpStart:
                sites.append((event.code, event.pc))
                return sys.monitoring.DISABLE
            return None

    with blocktrace.trace(OncePerSite()):
        result = _work()
    assert result == 10
    assert len(sites) == len(set(sites))
    # Another run sees everything again (DISABLE does not linger).
    rec = Recorder()
    with blocktrace.trace(rec):
        _work()
    loop_ops = [e for e in rec.of_type(OpStart) if e.op_name == "FOR_ITER"]
    assert len(loop_ops) == 6


def test_returns_carry_their_values() -> None:
    rec = Recorder()
    with blocktrace.trace(rec):
        _work()
        _raises()
    values = [(e.kind, e.value) for e in rec.of_type(Return)]
    assert values == [("return", 10), ("return", -1)]
