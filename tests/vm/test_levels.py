"""Levels in the stepper: at ``line`` and ``call`` the hook produces only the
level's events, the bytes written are those of the reference (``op`` events
filtered in Python), C and pure Python agree, gas counts every instruction, and
every command reads every level."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import blocktrace
from blocktrace import ChainTracer, OpStart, Recorder, Tee
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.chain.verify import verify_file
from blocktrace.tracers import VMState, capabilities_of, set_tracer
from blocktrace.tracers.level import LevelFilter, level_tracer, only_level
from blocktrace.vm.hook import C_HOOK, Meter, PyMeter, python_instruction_hook
from blocktrace.vm.sites import SKIP

LEVELS = ("op", "line", "call")

PROGRAM = '''\
def square(x):
    y = x * x
    return y


def main():
    total = 0
    for i in range(6):
        total += square(i)
    try:
        {}["k"]
    except KeyError:
        total += 1
    values = [v * 2 for v in range(3)]
    print(total, values)


main()
'''


def _square(x: int) -> int:
    y = x * x
    return y


def _program() -> int:
    total = 0
    for i in range(5):
        total += _square(i)
    try:
        {}["k"]
    except KeyError:
        total += 1
    return total


class _OpFiltered:
    """The reference: a tracer that declares ``op`` (the stepper sends every
    event) and drops in Python what ``level`` does not keep."""

    level = "op"

    def __init__(self, chain: ChainTracer, level: Any) -> None:
        self._call = only_level(chain, level)
        self.record_failure = chain.record_failure

    def __call__(self, vm: VMState, event: Any, /) -> object:
        return self._call(vm, event)


def _stable(data: bytes) -> bytes:
    """The trace with what differs between two recordings of one run (start time,
    pid, argv, the run's duration) fixed, re-chained: equal bytes mean equal traces."""

    def edit(index: int, body: bytes) -> bytes:
        obj = json.loads(body + b"}")
        if index == 0:
            obj.update(start="", pid=0, argv=[])
        elif "gasUsed" in obj:
            obj["time"] = 0
        return json.dumps(obj, separators=(",", ":")).encode()[:-1]

    return rechain_trace(data, edit)


def _record(path: Path, tracer: Callable[[ChainTracer], Any], level: Any,
            **options: Any) -> bytes:
    chain = ChainTracer(path, genesis="levels", level=level, force=True, **options)
    with blocktrace.trace(tracer(chain)):
        _program()
    assert verify_file(path).status == "sealed"
    return path.read_bytes()


@pytest.mark.parametrize("locals_mode", ["off", "changes"])
@pytest.mark.parametrize("level", ["line", "call"])
def test_stepper_writes_the_bytes_of_the_python_filter(
    tmp_path: Path, level: str, locals_mode: str
) -> None:
    produced = _record(tmp_path / "stepper.jsonl", lambda c: c, level, locals=locals_mode)
    reference = _record(tmp_path / "filtered.jsonl", lambda c: _OpFiltered(c, level), level,
                        locals=locals_mode)
    assert _stable(produced) == _stable(reference)
    op = _record(tmp_path / "op.jsonl", lambda c: c, "op", locals=locals_mode)
    assert len(produced) < len(op) / (2 if level == "line" else 4)


def _bodies(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def test_gas_counts_every_instruction_at_every_level(tmp_path: Path) -> None:
    traces = {lv: _bodies(_record(tmp_path / f"{lv}.jsonl", lambda c: c, lv)) for lv in LEVELS}
    used = {lv: t[-1]["gasUsed"] for lv, t in traces.items()}
    assert used["op"] == used["line"] == used["call"]
    # Every line the coarser level keeps is, with its gas, a line of the finer one.
    op_lines = [{k: v for k, v in d.items() if k not in ("hash", "clock")} for d in traces["op"]]
    for lv in ("line", "call"):
        kept = [{k: v for k, v in d.items() if k != "hash"} for d in traces[lv][1:-1]]
        it = iter(op_lines[1:-1])
        assert all(any(line == other for other in it) for line in kept)
    assert not [d for d in traces["call"] if "pc" in d and "event" not in d]


def _uncounted(chain: ChainTracer) -> ChainTracer:
    chain.counts_gas = False  # type: ignore[attr-defined]
    return chain


def test_a_tracer_that_counts_no_gas_gets_no_instruction_events_at_call_level(
    tmp_path: Path,
) -> None:
    """``counts_gas = False`` (the calls-level golden's): at ``call`` level without a gas
    limit nothing is counted (gas stays the limit, gasUsed 0) and every other byte is
    the counted trace's; at ``line`` level, or with a gas limit, gas is counted."""
    counted = _bodies(_record(tmp_path / "counted.jsonl", lambda c: c, "call"))
    seen: list[int] = []

    def watching(chain: ChainTracer) -> ChainTracer:
        uncounted = _uncounted(chain)
        seen.append(capabilities_of(uncounted).counts_gas)
        return uncounted

    free = _bodies(_record(tmp_path / "free.jsonl", watching, "call"))
    assert seen == [False]
    assert int(counted[-1]["gasUsed"], 16) > 50 and free[-1]["gasUsed"] == "0x0"
    gases = {d["gas"] for d in free if "gas" in d}
    assert gases == {hex(2**63 - 1)}
    strip = ("gas", "gasUsed", "hash", "start", "pid", "time")
    assert [{k: v for k, v in d.items() if k not in strip} for d in free] == [
        {k: v for k, v in d.items() if k not in strip} for d in counted]
    for level, options in (("line", {}), ("call", {"gas": 10_000})):
        path = tmp_path / f"{level}-{len(options)}.jsonl"
        chain = _uncounted(ChainTracer(path, genesis="levels", level=level, force=True))
        with blocktrace.trace(chain, **options):
            _program()
        assert _bodies(path.read_bytes())[-1]["gasUsed"] == counted[-1]["gasUsed"], level


def test_a_tee_sends_each_tracer_its_own_level(tmp_path: Path) -> None:
    recorder = Recorder()
    tees: list[Tee] = []

    def tee(chain: ChainTracer) -> Tee:
        tees.append(Tee(chain, recorder))
        return tees[-1]

    teed = _record(tmp_path / "tee.jsonl", tee, "line")
    alone = _record(tmp_path / "alone.jsonl", lambda c: c, "line")
    assert _stable(teed) == _stable(alone)
    assert tees[0].level == "op" and Tee(recorder).level == "op" and Tee().level == "call"
    assert len(recorder.of_type(OpStart)) == int(_bodies(alone)[-1]["gasUsed"], 16)


def test_a_level_change_mid_run_switches_the_tables(tmp_path: Path) -> None:
    chain = ChainTracer(tmp_path / "switch.jsonl", genesis="levels", level="call")
    recorder = Recorder()
    tee = Tee(chain)
    with blocktrace.trace(tee) as stepper:
        _program()
        assert stepper.level == "call"
        tee.add(recorder)  # an op-level tracer: every instruction from here on
        assert stepper.level == "op"
        _program()
        tee.remove(recorder)
        assert stepper.level == "call"
        _program()
    lines = _bodies((tmp_path / "switch.jsonl").read_bytes())
    assert not [d for d in lines if "pc" in d and "event" not in d]
    ops = recorder.of_type(OpStart)
    assert ops and all(op.code == ops[0].code or op.pc >= 0 for op in ops)
    assert sum(1 for d in lines if d.get("event") == "call" and d["name"] == "_square") == 15


def test_out_of_gas_between_line_starts(tmp_path: Path) -> None:
    """A budget that ends on an instruction the level does not report halts
    there, as at ``op``: same exception line, same gas used."""
    results = {}
    for level in LEVELS:
        path = tmp_path / f"{level}.jsonl"
        chain = ChainTracer(path, genesis="levels", level=level)
        with pytest.raises(blocktrace.OutOfGas), blocktrace.trace(chain, gas=23):
            _program()
        lines = _bodies(path.read_bytes())
        errors = [{k: v for k, v in d.items() if k != "hash"} for d in lines
                  if d.get("error") and "pc" in d]
        results[level] = (errors, lines[-1]["gasUsed"])
    assert results["op"] == results["line"] == results["call"]
    assert results["op"][0][0]["error"].startswith("OutOfGas")


def test_trace_level_argument_and_refusals(tmp_path: Path) -> None:
    recorder = Recorder()
    with blocktrace.trace(recorder, level="line"):
        _program()
    starts = recorder.of_type(OpStart)
    assert starts and all(op.line_start for op in starts)
    chain = ChainTracer(tmp_path / "op.jsonl", level="op")
    with pytest.raises(ValueError, match="records level 'op'"):
        level_tracer(chain, "line")
    assert level_tracer(chain, "op") is chain
    assert capabilities_of(LevelFilter(recorder, "call")).level == "call"
    with pytest.raises(ValueError, match="level must be one of"):
        ChainTracer(tmp_path / "bad.jsonl", level="lines")  # type: ignore[arg-type]
    chain.close()


def test_set_tracer_started_stepper_honours_the_level(tmp_path: Path) -> None:
    chain = ChainTracer(tmp_path / "set.jsonl", genesis="levels", level="call")
    set_tracer(chain)
    try:
        _program()
    finally:
        set_tracer(blocktrace.discard_trace)
    lines = _bodies((tmp_path / "set.jsonl").read_bytes())
    assert lines[-1]["pass"] and not [d for d in lines if "pc" in d and "event" not in d]


# -- the hook with a meter, C against the Python reference ---------------------------------


class _VM:
    def __init__(self) -> None:
        self.site: object = None
        self.depth = 3


def _drive(factory: Callable[..., Any], meter_type: Any) -> list[Any]:
    code = _square.__code__
    first = OpStart(0, 1, "NOP", 1, 1, True)
    sites = {id(code): [first, SKIP, None, first]}
    log: list[Any] = []
    vm = _VM()
    meter = meter_type(3)

    def tracer(vm_: Any, event: Any) -> None:
        log.append(("tracer", event.pc, meter.used))

    def op_line(event: Any, gas: int, depth: int) -> bool:
        log.append(("op_line", gas, depth))
        return gas != 3  # the first: passed on to the tracer

    def missing(code_: Any, offset: int) -> Any:
        log.append(("missing", offset))
        return SKIP if offset == 2 else None

    def out_of_gas(code_: Any, offset: int) -> None:
        log.append(("out_of_gas", offset, meter.used))
        raise blocktrace.OutOfGas("out")

    def failed(exc: BaseException) -> None:
        log.append(("failed", type(exc).__name__))

    for with_op_line in (False, True):
        meter.gas = 3
        hook = factory(sites, vm, tracer, missing, out_of_gas, failed, "DISABLE",
                       op_line=op_line if with_op_line else None, meter=meter, skip=SKIP)
        for offset in (0, 1, 2, 3, 1):
            try:
                log.append(("result", hook(code, offset), meter.used, vm.site is first))
            except blocktrace.OutOfGas:
                log.append(("halted", meter.used))
    return log


@pytest.mark.skipif(not C_HOOK, reason="the C extension is not built (or BLOCKTRACE_PURE)")
def test_the_c_hook_with_a_meter_does_what_the_reference_does() -> None:
    from blocktrace.vm import _chook

    def c_hook(*args: Any, op_line: Any, meter: Any, skip: Any) -> Any:
        return _chook.InstructionHook(*args, op_line=op_line, meter=meter, skip=skip)

    def py_hook(*args: Any, op_line: Any, meter: Any, skip: Any) -> Any:
        return python_instruction_hook(*args, op_line, meter, skip)

    reference = _drive(py_hook, PyMeter)
    assert reference == _drive(c_hook, Meter)
    assert ("halted", 3) in reference and ("op_line", 3, 3) in reference


def test_meters_agree() -> None:
    for meter_type in {Meter, PyMeter}:
        m = meter_type(10)
        assert (m.gas, m.used, m.limit) == (10, 0, 10)
        m.gas = 4
        assert m.used == 6
        m.used = 12
        assert m.gas == -2
        with pytest.raises(ValueError):
            meter_type(-1)
        with pytest.raises(ValueError):
            m.gas = 11
    with pytest.raises(ValueError, match="gas must be 0 to 2"):
        blocktrace.Stepper(gas=-1)
    assert blocktrace.Stepper(gas=2**64 - 1).gas == 2**64 - 1  # run --gas takes up to this


# -- every level, the real commands ---------------------------------------------------------


def _cli(*args: str | Path, pure: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pure:
        env["BLOCKTRACE_PURE"] = "1"
    return subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("levels")
    (work / "prog.py").write_text(PROGRAM)
    for level in LEVELS:
        for pure in (False, True):
            out = work / f"{level}{'-pure' if pure else ''}.jsonl"
            proc = _cli("run", "--level", level, "--genesis", "g", "-o", out, work / "prog.py",
                        pure=pure)
            assert proc.returncode == 0 and proc.stdout == "56 [0, 2, 4]\n", proc
    return work


@pytest.mark.skipif(not C_HOOK, reason="the C extension is not built (or BLOCKTRACE_PURE)")
@pytest.mark.parametrize("level", LEVELS)
def test_c_and_pure_python_write_the_same_trace(recorded: Path, level: str) -> None:
    c = (recorded / f"{level}.jsonl").read_bytes()
    pure = (recorded / f"{level}-pure.jsonl").read_bytes()
    assert json.loads(c.splitlines()[0])["level"] == level
    assert _stable(c) == _stable(pure)


@pytest.mark.parametrize("level", LEVELS)
def test_verify_prove_diff_and_lines_read_every_level(
    recorded: Path, level: str, tmp_path: Path
) -> None:
    trace = recorded / f"{level}.jsonl"
    done = _cli("verify", trace)
    assert done.returncode == 0 and "valid and sealed" in done.stdout, done
    bundle = tmp_path / "bundle.json"
    assert _cli("prove", trace, "3", "-o", bundle).returncode == 0
    assert _cli("check-proof", bundle).returncode == 0
    same = _cli("diff", trace, recorded / f"{level}-pure.jsonl")
    assert same.returncode == 0, same
    lines = _cli("lines", trace)
    assert lines.returncode == 0, lines
    if level == "call":
        assert "call-level trace" in lines.stdout and "       6 | square" in lines.stdout
    else:
        assert "       6 |         total += square(i)" in lines.stdout, lines.stdout


def test_diff_of_two_levels_compares_at_the_coarser(recorded: Path, tmp_path: Path) -> None:
    for a, b, level in (("op", "line", "line"), ("line", "call", "call"), ("call", "op", "call")):
        same = _cli("diff", recorded / f"{a}.jsonl", recorded / f"{b}-pure.jsonl")
        assert same.returncode == 0, same
        assert f"compared at level {level}" in same.stdout
    (tmp_path / "prog.py").write_text(PROGRAM.replace("range(6)", "range(5)"))
    for level in ("line", "call"):
        out = tmp_path / f"{level}.jsonl"
        assert _cli("run", "--level", level, "-o", out, tmp_path / "prog.py").returncode == 0
    # One iteration fewer: found against the op-level trace, at the coarser level.
    differs = _cli("diff", recorded / "op.jsonl", tmp_path / "line.jsonl")
    assert differs.returncode == 1, differs
    assert "total += square(i)" in differs.stdout
    calls = _cli("diff", recorded / "call.jsonl", tmp_path / "call.jsonl")  # same level: call
    assert calls.returncode == 1 and "square" in calls.stdout, calls
    assert re.search(r"pc 0 +call +square", calls.stdout), calls.stdout  # a call step, named so
    assert "compared at level" not in calls.stdout


class _Box:
    pass


def _make() -> _Box:
    return _Box()


def _boxes() -> Any:
    yield _Box()
    yield _Box()
    yield _Box()  # resumed and left in C (the stepper's CallHook) from the second resume on
    got = yield _Box()
    return got


async def _boxed() -> _Box:
    return _Box()


async def _awaits() -> _Box:
    await _Suspend()
    await _Suspend()
    return await _boxed()


class _Suspend:
    def __await__(self) -> Any:
        yield _Box()


def _raises() -> None:
    raise ValueError(_Box())


N_LIFETIMES = 14


def _lifetimes() -> list[bool]:
    """Whether each object the program let go of is gone at once, as untraced:
    a returned value, yielded ones (generators resumed many times, a generator
    expression, a coroutine's awaits), a generator's return value, an exception
    that unwound a frame, and a generator dropped mid-way."""
    import weakref

    gone = [weakref.ref(_make())() is None]
    boxes = _boxes()
    for _ in range(4):
        gone.append(weakref.ref(next(boxes))() is None)
    try:
        boxes.send(_Box())
    except StopIteration as stop:
        ref = weakref.ref(stop.value)
    gone.append(ref() is None)
    made = (_Box() for _ in range(3))
    for _ in range(3):
        gone.append(weakref.ref(next(made))() is None)
    coro = _awaits()
    gone.append(weakref.ref(coro.send(None))() is None)
    gone.append(weakref.ref(coro.send(None))() is None)
    try:
        coro.send(None)
    except StopIteration as stop:
        ref = weakref.ref(stop.value)
    gone.append(ref() is None)
    try:
        _raises()
    except ValueError as exc:
        ref = weakref.ref(exc.args[0])
    gone.append(ref() is None)
    dropped = _boxes()
    next(dropped)
    next(dropped)
    ref = weakref.ref(dropped)
    del dropped
    gone.append(ref() is None)
    return gone


@pytest.mark.parametrize("level", ["op", "line", "call"])
@pytest.mark.parametrize("locals_", ["off", "on"])
def test_the_trace_keeps_no_returned_yielded_or_raised_object_alive(
    level: str, locals_: str, tmp_path: Path
) -> None:
    """At levels without op events the stepper kept the last Return as its site
    (the value with it) until the next call or return: a weakref's referent the
    program had dropped was still alive (more-itertools' lifecycle tests failed
    at `--level call` only)."""
    assert _lifetimes() == [True] * N_LIFETIMES
    tracer = ChainTracer(tmp_path / "t.jsonl", level=level, locals=locals_)  # type: ignore[arg-type]
    with blocktrace.trace(tracer):
        result = _lifetimes()
    assert result == [True] * N_LIFETIMES


def test_diff_counts_each_traces_steps_at_the_level_compared(recorded: Path) -> None:
    def steps(level: str) -> int:
        done = _cli("diff", "--json", recorded / f"{level}.jsonl",
                    recorded / f"{level}-pure.jsonl")
        return int(json.loads(done.stdout)["steps"][0])

    op, line, call = steps("op"), steps("line"), steps("call")
    assert 0 < call < line < op
    # A call-level trace has no op steps: its header said "0 steps" before.
    done = _cli("diff", recorded / "call.jsonl", recorded / "op.jsonl")
    a, b = done.stdout.splitlines()[:2]
    assert f", {call} steps at level call: calls, returns, exceptions" in a, done.stdout
    assert f", {op} steps, {call} at level call" in b, done.stdout
    assert f"same: {call} steps agree" in done.stdout
    done = _cli("diff", recorded / "op.jsonl", recorded / "line.jsonl")
    a, b = done.stdout.splitlines()[:2]
    assert f", {op} steps, {line} at level line" in a, done.stdout
    assert f", {line} steps" in b and "at level" not in b, done.stdout
    done = _cli("diff", recorded / "call.jsonl", recorded / "call-pure.jsonl")
    assert done.stdout.count(f", {call} steps at level call: calls, returns, exceptions") == 2


def test_show_of_a_call_level_trace_says_what_its_steps_are(recorded: Path) -> None:
    done = _cli("show", recorded / "call.jsonl", "999999")
    assert done.returncode == 2
    assert done.stderr.endswith("; at call level only exception lines are steps here: --line "
                                "numbers file lines)\n"), done.stderr
    done = _cli("show", recorded / "op.jsonl", "999999")
    assert done.returncode == 2 and "call level" not in done.stderr
