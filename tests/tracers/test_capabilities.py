"""Tracer capabilities (``wants_op_end``, ``may_disable``, ``fast_call``,
``record_failure``) are read on every ``set_tracer`` and every ``Tee`` change,
and a ``Tee`` combines its tracers'."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import blocktrace
from blocktrace import CallStart, ChainTracer, OpEnd, OpStart, Recorder, Return, Tee
from blocktrace.chain.verify import verify_file
from blocktrace.events import TraceEvent
from blocktrace.snapshot.streams import CappedOutput
from blocktrace.snapshot.tracer import SnapshotTracer
from blocktrace.tracers import Capabilities, VMState, capabilities_of, discard_trace
from blocktrace.views.tracefunc import LineView
from blocktrace.views.types import TypeTracer

DISABLE = sys.monitoring.DISABLE


def _work() -> int:
    total = 0
    for i in range(5):
        total += i
    return total


def _window(events: list[TraceEvent]) -> list[tuple[str, int, str]]:
    """The events of the first ``_work`` call (its CallStart to its Return), as
    (kind, pc, opName) -- comparable across runs (code indexes are not)."""
    out: list[tuple[str, int, str]] = []
    inside = False
    for e in events:
        if type(e) is CallStart and e.name == "_work":
            inside = True
        if inside:
            if type(e) is OpStart:
                out.append(("OpStart", e.pc, e.op_name))
            elif type(e) is OpEnd:
                out.append(("OpEnd", e.pc, ""))
            else:
                out.append((type(e).__name__, getattr(e, "pc", -1), ""))
            if type(e) is Return:
                break
    return out


def _reference(op_end: bool) -> list[tuple[str, int, str]]:
    rec = Recorder(op_end=op_end)
    with blocktrace.trace(rec):
        _work()
    return _window(rec.events)


def test_capabilities_resolve_defaults_once() -> None:
    assert capabilities_of(discard_trace) == Capabilities()
    assert capabilities_of(lambda vm, event: None) == Capabilities()
    assert capabilities_of(Recorder(op_end=True)).wants_op_end is True
    assert capabilities_of(Recorder()).wants_op_end is False

    class Odd:
        @property
        def may_disable(self) -> bool:
            raise RuntimeError("no")

        def __call__(self, vm: VMState, event: TraceEvent, /) -> None:
            pass

    assert capabilities_of(Odd()) == Capabilities()  # unreadable: absent


def test_op_end_recorder_set_during_a_run_gets_op_ends() -> None:
    """The issue's case: ``Recorder(op_end=True)`` swapped in after ``start``
    recorded 37 OpStart and 0 OpEnd."""
    rec = Recorder(op_end=True)
    with blocktrace.trace(discard_trace):
        previous = blocktrace.set_tracer(rec)
        _work()
        blocktrace.set_tracer(previous)
    assert _window(rec.events) == _reference(op_end=True)
    assert len(rec.of_type(OpEnd)) > 30


class _Spy:
    """Wraps a tracer object in place (its class becomes a subclass) to see the
    events the stepper sends it and its answers; its capabilities are its own."""

    @staticmethod
    def on(tracer: Any) -> Any:
        cls = type(tracer)

        def __call__(self: Any, vm: VMState, event: TraceEvent, /) -> object:
            answer = cls.__call__(self, vm, event)
            self.spied.append((event, answer))
            return answer

        tracer.__class__ = type("Spied" + cls.__name__, (cls,), {"__call__": __call__})
        tracer.spied = []
        op_line = vars(tracer).get("op_line")
        if op_line is not None:  # OpStarts it takes from plain values (Recorder)

            def spied_op_line(event: OpStart, gas: int, depth: int) -> bool:
                done = bool(op_line(event, gas, depth))
                if done:
                    tracer.spied.append((event, None))
                return done

            tracer.op_line = spied_op_line
        if vars(tracer).get("call_lines") is not None:
            # calls and returns the C call hooks hand a sink as values (Recorder's log)
            # never reach Python: the spy sees them through __call__ instead
            tracer.call_lines = None
        return tracer


def _snapshot() -> SnapshotTracer:
    return SnapshotTracer(max_steps=10**6, output=CappedOutput(10**6))


FACTORIES: dict[str, Callable[[Path], Any]] = {
    "recorder": lambda _: Recorder(),
    "recorder_op_end": lambda _: Recorder(op_end=True),
    "line_view": lambda _: LineView(_work),
    "type_tracer": lambda _: TypeTracer(),
    "snapshot": lambda _: _snapshot(),
}


def _check_spied(tracer: Any, reference: list[tuple[str, int, str]]) -> None:
    caps = capabilities_of(tracer)
    got = _window([e for e, _ in tracer.spied])
    if not caps.wants_op_end:
        reference = [r for r in reference if r[0] != "OpEnd"]
    if caps.may_disable:
        # Every site it turned off is seen once; the others as often as they ran.
        disabled = {(type(e), e.pc, e.code) for e, a in tracer.spied if a is DISABLE}
        seen = [(type(e), e.pc, e.code) for e, _ in tracer.spied if type(e) is OpStart]
        assert all(seen.count(site) == 1 for site in disabled)
        assert [r for r in got if r[0] != "OpStart"] == [
            r for r in reference if r[0] != "OpStart"
        ]
    else:
        assert got == reference, type(tracer).__name__


def test_every_built_in_tracer_swapped_in_mid_run_gets_what_it_asked_for(
    tmp_path: Path,
) -> None:
    full = _reference(op_end=True)
    plain = [r for r in full if r[0] != "OpEnd"]
    tracers = {name: _Spy.on(make(tmp_path)) for name, make in FACTORIES.items()}
    chain = ChainTracer(tmp_path / "chain.jsonl", genesis="swap")
    tee_chain = ChainTracer(tmp_path / "tee.jsonl", genesis="swap")
    tee_rec, tee_rec_end = Recorder(), Recorder(op_end=True)
    tee = Tee(tee_rec, tee_chain, tee_rec_end)
    lone_chain = ChainTracer(tmp_path / "lone.jsonl", genesis="swap")
    lone = Tee(lone_chain)
    after = Recorder()
    used: dict[str, Any] = {}
    op_lines: dict[str, Any] = {}
    with blocktrace.trace(discard_trace) as stepper:
        for name, tracer in [*tracers.items(), ("chain", chain), ("tee", tee),
                             ("lone", lone), ("discard", discard_trace), ("after", after)]:
            blocktrace.set_tracer(tracer)
            used[name] = (stepper._direct, stepper._op_end, stepper._may_disable)
            op_lines[name] = stepper._op_line
            _work()
            blocktrace.set_tracer(discard_trace)
    for name, tracer in tracers.items():
        _check_spied(tracer, full)
        caps = capabilities_of(tracer)
        assert used[name][1:] == (caps.wants_op_end, caps.may_disable), name
    # A site a tracer turned off does not stay off for the next one.
    assert _window(after.events) == plain
    # The C writer (or its Python twin) gets op lines from the hook, alone or in a Tee of one.
    assert op_lines["chain"] is chain.op_line
    assert op_lines["lone"] is lone_chain.op_line
    assert op_lines["tee"] is None
    assert used["tee"][1:] == (True, False)
    # In a Tee, each tracer gets its own kind: OpEnd only for the one that asked.
    assert _window(tee_rec.events) == plain
    assert _window(tee_rec_end.events) == full
    for traced in (chain, tee_chain, lone_chain):
        traced.close()
        path = Path(str(traced.path))
        assert verify_file(path, genesis="swap").status == "sealed"
        ops = [ln for ln in path.read_bytes().splitlines() if ln.startswith(b'{"pc":')]
        assert len(ops) >= len([r for r in plain if r[0] == "OpStart"])


def test_tee_combines_its_tracers_capabilities(tmp_path: Path) -> None:
    class Disabling:
        may_disable = True

        def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
            return DISABLE if type(event) is OpStart else None

    chain = ChainTracer(tmp_path / "t.jsonl")
    assert capabilities_of(Tee(chain)).op_line is chain.op_line
    assert capabilities_of(Tee(chain, Recorder())).op_line is None
    assert capabilities_of(Tee(Disabling(), Disabling())).may_disable is True
    assert capabilities_of(Tee(Disabling(), Recorder())).may_disable is False
    assert capabilities_of(Tee()).may_disable is False
    assert capabilities_of(Tee(Recorder(), Recorder(op_end=True))).wants_op_end is True
    assert capabilities_of(Tee(Recorder(), chain)).wants_op_end is False
    chain.close()


def test_a_tee_change_during_a_run_is_heard() -> None:
    """Adding a tracer that wants OpEnd to a running Tee (even one inside another
    Tee) turns OpEnd on; removing it turns it off."""
    first, late = Recorder(), Recorder(op_end=True)
    inner = Tee(first)
    outer = Tee(inner)
    with blocktrace.trace(outer) as stepper:
        assert not stepper._op_end
        inner.add(late)
        assert stepper._op_end and outer.wants_op_end
        _work()
        inner.remove(late)
        assert not stepper._op_end
        _work()
    assert _window(late.events) == _reference(op_end=True)
    windows = [e for e in first.events if type(e) is CallStart and e.name == "_work"]
    assert len(windows) == 2 and first.of_type(OpEnd) == []


def test_a_tee_of_disabling_tracers_disables_only_when_all_agree() -> None:
    seen: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}

    class Once:
        may_disable = True

        def __init__(self, name: str, every: bool) -> None:
            self.name, self.every = name, every

        def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
            if type(event) is OpStart:
                seen[self.name].append((event.code, event.pc))
                return DISABLE if self.every or event.op_name != "FOR_ITER" else None
            return None

    with blocktrace.trace(Tee(Once("a", True), Once("b", False))):
        _work()
    loops_a = [s for s in seen["a"] if seen["a"].count(s) > 1]
    assert loops_a and seen["a"] == seen["b"]  # b kept the loop site on for both
    assert all(seen["b"].count(s) == 1 for s in seen["b"] if s not in loops_a)


@pytest.mark.parametrize("position", ["alone", "with_recorder"])
def test_failure_in_a_fast_called_tee_member_is_recorded(
    tmp_path: Path, position: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.jsonl"
    chain = ChainTracer(path)
    tee = Tee(chain) if position == "alone" else Tee(chain, Recorder())
    with blocktrace.trace(tee):
        chain._out.close()  # the stream goes away mid-run
        _work()
    assert "ValueError" in capfd.readouterr().err
    assert verify_file(path).status == "unsealed"
