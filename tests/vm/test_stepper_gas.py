"""Gas: a step budget whose end halts the program for good."""

from __future__ import annotations

import io
import sys

import pytest

import blocktrace
from blocktrace import OpException, OpStart, OutOfGas, Recorder, Stop
from blocktrace.chain.verify import verify_file

ATTEMPTS: list[str] = []


def _swallow() -> None:
    n = 0
    while True:
        try:
            n += 1
        except Exception:
            ATTEMPTS.append("except Exception")


def _carry_on() -> None:
    while True:
        try:
            _swallow()
        except BaseException:
            ATTEMPTS.append("except BaseException")
        ATTEMPTS.append("after the try")


def _finally() -> None:
    try:
        _swallow()
    finally:
        ATTEMPTS.append("finally")  # runs its first instruction at most: halted again


@pytest.mark.parametrize("program", [_swallow, _carry_on, _finally])
def test_out_of_gas_cannot_be_swallowed_or_survived(program: object) -> None:
    ATTEMPTS.clear()
    rec = Recorder()
    with pytest.raises(OutOfGas), blocktrace.trace(rec, gas=200):
        program()  # type: ignore[operator]
    assert ATTEMPTS == []
    stop = rec.events[-1]
    assert isinstance(stop, Stop)
    assert stop.error == "OutOfGas"
    assert stop.gas_used == 200
    assert len(rec.of_type(OpStart)) == 200
    oog = [e for e in rec.of_type(OpException) if e.error_type == "OutOfGas"]
    assert len(oog) == 1
    assert [r.gas for r in rec.records if type(r.event) is OpStart][-1] == 1


def test_out_of_gas_is_a_base_exception() -> None:
    assert issubclass(OutOfGas, blocktrace.HaltRun)
    assert issubclass(OutOfGas, BaseException) and not issubclass(OutOfGas, Exception)


def test_enough_gas_changes_nothing() -> None:
    def work() -> int:
        return sum(i * i for i in range(10))

    unlimited = Recorder()
    with blocktrace.trace(unlimited):
        expected = work()
    used = unlimited.events[-1]
    assert isinstance(used, Stop)
    budget = Recorder()
    with blocktrace.trace(budget, gas=used.gas_used):  # exactly enough
        result = work()
    stop = budget.events[-1]
    assert isinstance(stop, Stop)
    assert result == expected == 285
    assert stop.error is None and stop.gas_used == used.gas_used
    assert [r.gas for r in budget.records if type(r.event) is OpStart][-1] == 1


def test_out_of_gas_trace_is_sealed_and_says_so() -> None:
    out = io.BytesIO()
    tracer = blocktrace.ChainTracer(out, genesis="gas")
    with pytest.raises(OutOfGas), blocktrace.trace(tracer, gas=50):
        _carry_on()
    assert tracer.sealed
    path_bytes = out.getvalue()
    assert b'"error":"OutOfGas"' in path_bytes.splitlines()[-1]
    assert b'"gasUsed":"0x32"' in path_bytes.splitlines()[-1]


def test_out_of_gas_trace_verifies(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "gas.jsonl"
    tracer = blocktrace.ChainTracer(path)
    with pytest.raises(OutOfGas), blocktrace.trace(tracer, gas=30):
        _swallow()
    result = verify_file(path)
    assert result.status == "sealed"
    assert result.summary is not None and result.summary["error"] == "OutOfGas"
    assert result.summary["pass"] is False


def test_tracing_is_off_after_a_halt() -> None:
    rec = Recorder()
    with pytest.raises(OutOfGas), blocktrace.trace(rec, gas=10):
        _swallow()
    # The program goes on normally once the with block is left.
    ATTEMPTS.clear()
    assert blocktrace.vm.active_stepper() is None
    assert sum(range(5)) == 10
    again = Recorder()
    with blocktrace.trace(again):
        x = sum(range(3))
    assert x == 3 and isinstance(again.events[-1], Stop) and again.events[-1].error is None


def test_out_of_gas_in_the_with_body_itself() -> None:
    """The frame that entered ``trace()`` runs out: its ``with`` still closes the run."""
    rec = Recorder()
    n = 0
    with pytest.raises(OutOfGas), blocktrace.trace(rec, gas=40):
        while True:
            n += 1
    stop = rec.events[-1]
    assert isinstance(stop, Stop) and stop.error == "OutOfGas" and stop.gas_used == 40
    assert 0 < n < 40
    assert blocktrace.vm.active_stepper() is None


class _Context:
    def __enter__(self) -> _Context:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


def _raises() -> None:
    raise KeyError("k")


def _handlers() -> int:
    total = 0
    for _ in range(2):
        try:
            _raises()
        except KeyError:
            total += 1
        try:
            try:
                _raises()
            except KeyError as exc:
                total += len(exc.args)
        finally:
            total += 1
        with _Context():
            total += 1
    return total


@pytest.mark.parametrize("chain", [False, True], ids=["Recorder", "ChainTracer"])
def test_a_halt_anywhere_leaves_no_handled_exception_behind(chain: bool) -> None:
    # Out of gas at every instruction in turn, handlers' entries and clean-ups
    # among them: an exception raised at a POP_EXCEPT, or between PUSH_EXC_INFO's
    # save and the clean-up's restore, left KeyError('k') as sys.exception() in
    # the frames it unwound to (and as the __context__ of the next exception).
    rec = Recorder()
    with blocktrace.trace(rec, gas=10_000):
        _handlers()
    needed = rec.events[-1].gas_used  # type: ignore[attr-defined]
    assert 50 < needed < 10_000
    for gas in range(1, needed):
        rec = Recorder()
        out = io.BytesIO()
        tracer = blocktrace.ChainTracer(out) if chain else rec
        with pytest.raises(OutOfGas), blocktrace.trace(tracer, gas=gas):
            _handlers()
        assert sys.exception() is None, f"gas={gas}: {sys.exception()!r} left handled"
        if chain:
            lines = out.getvalue().splitlines()
            assert b'"gasUsed":"%s"' % hex(gas).encode() in lines[-1], (gas, lines[-1])
            assert sum(b'"error":"OutOfGas' in line for line in lines) == 2, (gas, lines[-3:])
        else:
            assert rec.events[-1].gas_used == gas  # type: ignore[attr-defined]
            assert len(rec.of_type(OpStart)) == gas
            assert [e.error_type for e in rec.of_type(OpException)].count("OutOfGas") == 1
