"""Nothing of blocktrace reaches the traced program: a tracer that raises is
detached, the program's result is the same, the failure is reported."""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

import blocktrace
from blocktrace import CallStart, OpStart, Recorder, Stop, Tee
from blocktrace.chain.verify import verify_file
from blocktrace.events import TraceEvent
from blocktrace.tracers import VMState


class Breaks:
    """A tracer written by a user (in scope: this file is the user's code)."""

    def __init__(self, after: int, error: type[BaseException] = RuntimeError) -> None:
        self.after = after
        self.calls = 0
        self.error = error

    def __call__(self, vm: VMState, event: TraceEvent, /) -> None:
        self.calls += 1
        if self.calls == self.after + 1:  # once, as a signal handler's Ctrl-C would
            raise self.error("tracer broke")


def _program() -> int:
    total = 0
    for i in range(30):
        try:
            total += 10 // (i % 7)
        except ZeroDivisionError:
            total -= 1
    return total


EXPECTED = _program()


@pytest.mark.parametrize("after", [0, 1, 5, 100])
def test_failing_tracer_is_detached(after: int, capfd: pytest.CaptureFixture[str]) -> None:
    tracer = Breaks(after)
    before = blocktrace.get_tracer()
    with blocktrace.trace(tracer) as stepper:
        result = _program()
    assert result == EXPECTED
    assert tracer.calls == after + 1  # never called again once it failed
    assert blocktrace.get_tracer() is before
    assert len(stepper.failures) == 1 and "tracer broke" in stepper.failures[0]
    err = capfd.readouterr().err
    assert err.count("\n") == 1
    assert "blocktrace: tracer Breaks failed" in err and "RuntimeError: tracer broke" in err


def test_a_tracer_of_the_users_own_code_does_not_trace_itself() -> None:
    seen: list[str] = []

    def mine(vm: VMState, event: TraceEvent, /) -> None:
        if type(event) is CallStart:
            seen.append(event.name)

    with blocktrace.trace(mine):
        _program()
    assert seen[:2] == [
        "test_a_tracer_of_the_users_own_code_does_not_trace_itself",
        "_program",
    ]
    assert not any("mine" in name for name in seen)


def test_tee_records_the_failure_and_the_chain_still_verifies(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tee.jsonl"
    chain = blocktrace.ChainTracer(path, genesis="tee")
    rec = Recorder()
    broken = Breaks(20)
    with blocktrace.trace(Tee(broken, chain, rec)):
        result = _program()
    assert result == EXPECTED
    assert broken.calls == 21
    assert isinstance(rec.events[-1], Stop)
    assert len(rec.of_type(OpStart)) > 100  # the others went on
    result_check = verify_file(path, genesis="tee")
    assert result_check.status == "sealed", result_check.reason
    lines = path.read_bytes().splitlines()
    errors = [line for line in lines if line.startswith(b'{"event":"tracerError"')]
    assert len(errors) == 1 and b"RuntimeError: tracer broke" in errors[0]
    assert lines.index(errors[0]) > 20
    summary = result_check.summary
    assert summary is not None and summary["pass"] is False
    assert "tracer failed" in summary["error"]
    assert "detached" in capfd.readouterr().err


def test_failing_chain_writer_detached_and_program_unchanged(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The trace's own stream fails (closed under it, as a full disk would)."""
    path = tmp_path / "closed.jsonl"
    chain = blocktrace.ChainTracer(path)
    with blocktrace.trace(chain):
        chain._out.close()  # the stream goes away mid-run
        result = _program()
    assert result == EXPECTED
    assert "ValueError" in capfd.readouterr().err
    # What was written before the failure still checks, unsealed.
    assert verify_file(path).status == "unsealed"


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_non_exception_errors_from_a_tracer_pass_through(error: type[BaseException]) -> None:
    """Ctrl-C during tracing interrupts the program as it would untraced."""
    with pytest.raises(error), blocktrace.trace(Breaks(3, error)):
        _program()
    assert blocktrace.vm.active_stepper() is None


def _runaway(n: int) -> int:
    return _runaway(n + 1)


def test_a_tracer_that_recurses_forever_is_detached(capfd: pytest.CaptureFixture[str]) -> None:
    calls = 0

    def bottomless(vm: VMState, event: TraceEvent, /) -> None:
        nonlocal calls
        calls += 1
        if calls == 10:
            _runaway(0)

    with blocktrace.trace(bottomless) as stepper:
        result = _program()
    assert result == EXPECTED
    assert len(stepper.failures) == 1 and "RecursionError" in stepper.failures[0]
    assert "RecursionError" in capfd.readouterr().err


def _down(n: int) -> int:
    return _down(n + 1)


def _to_the_limit() -> str:
    try:
        _down(0)
    except RecursionError as exc:
        return type(exc).__name__
    return "no limit"


def test_the_programs_own_recursion_error_detaches_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.jsonl"
    chain = blocktrace.ChainTracer(path)
    rec = Recorder()
    tee = Tee(rec, chain)
    with blocktrace.trace(tee) as stepper:
        result = _to_the_limit()
    assert result == "RecursionError"
    assert stepper.failures == [] and tee.tracers == [rec, chain]
    assert "detached" not in capfd.readouterr().err
    assert verify_file(path).status == "sealed"
    downs = [e for e in rec.of_type(CallStart) if e.name == "_down"]
    assert len(downs) > 500


class _Timeout(Exception):
    pass


_RUNG: list[int] = []
"""One entry per alarm the handler took (appended before it raises)."""


def _on_alarm(signum: int, frame: object) -> None:
    _RUNG.append(signum)
    raise _Timeout("too slow")


def _spin(limit: int = -1) -> None:
    """Count to ``limit``, or until the next alarm rings however fast the
    machine: the handler's exception ends the loop, or (lost) the handler's mark.

    Every 256 counts it asks for the handlers of signals already come to run
    (``signal.pthread_sigmask`` blocking nothing: a system call that then checks,
    not a wait).  The kernel gives the process's ``SIGALRM`` to any thread that
    does not block it, and this process can have threads of no Python (DuckDB's
    workers, once tests/query ran here).  On CPython 3.12 (POSIX) a signal another
    thread took does not break the main thread's evaluation loop: its handler runs
    when the main thread next takes the GIL, a collection is due (none here) or C
    code checks for signals -- in a loop that does none of these, traced or not,
    maybe never (CI: 2,000,000 steps, then the handler ran in ``_out_of_gas``,
    formatting an int).  3.13 breaks the main thread's loop whichever thread took
    it.  The check runs the handler only when the loop missed it: where an alarm
    lands (mostly in blocktrace's callbacks) is as before."""
    rung = len(_RUNG)
    n = 0
    while n != limit and len(_RUNG) == rung:
        n += 1
        if not n & 255:
            signal.pthread_sigmask(signal.SIG_BLOCK, ())


def test_signal_handler_exceptions_are_the_programs(tmp_path: Path) -> None:
    path = tmp_path / "alarm.jsonl"
    chain = blocktrace.ChainTracer(path)
    rec = Recorder()
    tee = Tee(rec, chain)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    outcomes = []
    # A gc callback (hypothesis installs one in this process) can be where the
    # handler runs, and the interpreter swallows exceptions from gc callbacks.
    gc_callbacks = gc.callbacks[:]
    gc.callbacks.clear()
    # Likewise a weakref callback (WeakSet._remove) run by a collection of earlier
    # tests' garbage: collect it now, and no collection while the alarms fly.
    gc.collect()
    gc.disable()
    try:
        # A lost timeout ends the spin all the same (the handler's mark), whatever
        # the machine's speed: no step budget that a fast machine runs through
        # before 20 ms are up (as the CLI's alarm test did in CI with --gas).  The
        # budget only bounds the file should the handler never run at all.
        rung = len(_RUNG)
        with blocktrace.trace(tee, gas=2_000_000) as stepper:
            _spin(1)  # learnt before any alarm: the alarm lands in the traced loop
            for _ in range(4):
                try:  # set inside: an alarm that comes before spin() is caught too
                    signal.setitimer(signal.ITIMER_REAL, 0.02)
                    _spin()
                except _Timeout as exc:
                    outcomes.append(str(exc))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        gc.callbacks[:] = gc_callbacks
        gc.enable()
    assert outcomes == ["too slow"] * 4
    assert len(_RUNG) - rung == 4  # no alarm's exception lost
    assert stepper.failures == [] and tee.tracers == [rec, chain]
    assert verify_file(path).status == "sealed"


def test_belongs_to_program() -> None:
    from blocktrace.tracers import belongs_to_program

    def caught(fn: Callable[[], object]) -> BaseException:
        try:
            fn()
        except BaseException as exc:
            return exc
        raise AssertionError("did not raise")

    assert belongs_to_program(KeyboardInterrupt())
    assert belongs_to_program(SystemExit(0))
    assert not belongs_to_program(caught(lambda: 1 // 0))
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        assert belongs_to_program(caught(lambda: _on_alarm(signal.SIGALRM, None)))
    finally:
        signal.signal(signal.SIGALRM, previous)
    # Once the handler is gone, the same exception is nobody's handler's.
    assert not belongs_to_program(caught(lambda: _on_alarm(signal.SIGALRM, None)))
