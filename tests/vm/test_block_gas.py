"""Gas by basic blocks: at ``call`` level (no gas limit, one thread) code without
an exception table, not a generator, is charged per jump and return
(``vm.hook.PyBlocks``, ``_chook.Blocks``) instead of per ``INSTRUCTION`` event,
and the trace is byte for byte the one counted per instruction: the same gas on
every return and exception line, the same gas used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_levels import _OpFiltered, _stable

import blocktrace
from blocktrace import ChainTracer
from blocktrace.chain.verify import verify_file
from blocktrace.vm import active_stepper
from blocktrace.vm.hook import C_HOOK, Blocks, PyBlocks
from blocktrace.vm.sites import block_counts

_E = sys.monitoring.events
_seen: list[tuple[str, int]] = []


def _note_events() -> None:
    """What the caller's code object sends (read by the tests: counted by blocks?)."""
    stepper = active_stepper()
    caller = sys._getframe(1).f_code
    if stepper is not None and stepper._tool is not None:
        _seen.append((caller.co_name, sys.monitoring.get_local_events(stepper._tool, caller)))


def _fib(n: int) -> int:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


def _loops(n: int) -> int:
    _note_events()
    total = 0
    for i in range(n):
        if i % 3 == 0:
            continue
        if i > 40:
            break
        j = 0
        while j < i:
            j += 2
            if j == 7 or (j > 30 and not i % 2):
                total -= 1
        total += j if j else -1
    else:
        total += 1
    return total


class _Vec:
    def __init__(self, v: int) -> None:
        self.v = v

    def __add__(self, other: _Vec) -> _Vec:
        return _Vec(self.v + (other.v if other.v > 0 else -other.v))


def _implicit(n: int) -> int:
    v = _Vec(1)
    for i in range(n):
        v = v + _Vec(i - 5)  # __add__ and __init__ start without a CALL of ours
    return v.v


def _key(x: int) -> int:
    return -x if x % 2 else x


def _raiser(n: int) -> int:
    if n > 3:
        raise ValueError(n)
    return _raiser(n + 1)


def _calls_raiser() -> int:
    return _raiser(0)


class _Count:
    def __init__(self) -> None:
        self.i = 0

    def __iter__(self) -> _Count:
        return self

    def __next__(self) -> int:
        self.i += 1
        if self.i > 4:
            raise StopIteration  # a RAISE in __next__, and in the caller's FOR_ITER
        return self.i


def _gen(n: int) -> Iterator[int]:
    for i in range(n):
        yield _key(i)  # a generator (counted by instructions) calling counted code


def _closure(n: int) -> int:
    k = n + 1

    def inner(x: int) -> int:
        return x * k if x else k

    return inner(n) + inner(0)


def _matcher(x: object) -> int:
    match x:
        case [a, b]:
            return int(a) + int(b)
        case {"k": v}:
            return int(v)
        case int() if x > 3:
            return x
        case _:
            return 0


_WIDE = "def _wide(n):\n    x = 0\n" + "".join(
    f"    v{i} = n + {i}\n" for i in range(300)
) + "    if n:\n        x = v299\n    return x\n"
exec(compile(_WIDE, __file__ + "-wide", "exec"))  # EXTENDED_ARG everywhere


def _program() -> int:
    total = _fib(9) + _loops(60) + _implicit(12)
    total += sum(sorted(range(9), key=_key))  # calls from C
    try:
        _calls_raiser()
    except ValueError:
        total += 1
    for v in _Count():
        total += v
    total += sum(_gen(5)) + _closure(3) + _closure(4)
    for x in ([1, 2], {"k": 3}, 5, 1, "s"):
        total += _matcher(x)
    total += globals()["_wide"](1) + globals()["_wide"](0)
    return total


def _record(path: Path, tracer: Callable[[ChainTracer], Any], level: Any,
            body: Callable[[], object] = _program) -> bytes:
    chain = ChainTracer(path, genesis="blocks", level=level, force=True)
    with blocktrace.trace(tracer(chain)):
        body()
    assert verify_file(path).status == "sealed"
    return path.read_bytes()


def test_the_program_is_counted_by_blocks() -> None:
    counts = {f.__name__: block_counts(f.__code__) for f in (_fib, _loops, _implicit, _key,
                                                             _raiser, _matcher, _program)}
    assert all(v is not None for k, v in counts.items() if k != "_program"), counts
    assert block_counts(_program.__code__) is None  # try/except: an exception table
    assert block_counts(_gen.__code__) is None  # a generator


def test_call_level_gas_by_blocks_is_gas_by_instructions(tmp_path: Path) -> None:
    _seen.clear()
    produced = _record(tmp_path / "call.jsonl", lambda c: c, "call")
    assert _seen and all(e & _E.BRANCH and not e & _E.INSTRUCTION for _, e in _seen), _seen
    reference = _record(tmp_path / "filtered.jsonl", lambda c: _OpFiltered(c, "call"), "call")
    assert _stable(produced) == _stable(reference)
    lines = [json.loads(line) for line in produced.splitlines()]
    assert int(lines[-1]["gasUsed"], 16) > 1000
    assert sum(1 for d in lines if d.get("event") == "return") > 100


def test_a_gas_limit_counts_by_instructions(tmp_path: Path) -> None:
    _seen.clear()
    chain = ChainTracer(tmp_path / "t.jsonl", genesis="blocks", level="call", force=True)
    with blocktrace.trace(chain, gas=10**9):
        _loops(10)
    assert _seen and all(e & _E.INSTRUCTION for _, e in _seen), _seen


def _starts_inside() -> int:
    """A counted function that starts and stops tracing itself, mid-loop (a
    stepper of its own: its frame is counted by blocks from after the call)."""
    total = 0
    for i in range(20):
        if i == 5:
            set_back = blocktrace.set_tracer(_STARTED[0])
            stepper = blocktrace.Stepper()
            stepper.start()
            _STARTED.append(getattr(stepper._blocks, "frames", None))  # (no branch of ours)
        total += _key(i)
        if i == 15:
            stepper.stop()
            blocktrace.set_tracer(set_back)
    return total


_STARTED: list[Any] = []


def test_tracing_started_inside_a_counted_function(tmp_path: Path) -> None:
    used = {}
    for name, make in (("call", lambda c: c), ("filtered", lambda c: _OpFiltered(c, "call"))):
        chain = ChainTracer(tmp_path / f"{name}.jsonl", genesis="inside", level="call")
        _STARTED[:] = [make(chain)]
        _starts_inside()
        chain.close()
        used[name] = _stable((tmp_path / f"{name}.jsonl").read_bytes())
        if name == "call":
            assert _STARTED[1] and _STARTED[1][0][0] is _starts_inside.__code__
    assert used["call"] == used["filtered"]


def test_a_second_thread_turns_counting_by_blocks_off(tmp_path: Path) -> None:
    """Gas stays exact where it is deterministic: the total of a run whose second
    thread starts while a counted frame owes instructions."""

    def work() -> int:
        return _loops(30) + _fib(6)

    def run() -> int:
        total = _loops(30)
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        return total + _fib(6)

    used = []
    for name, make in (("call", lambda c: c), ("filtered", lambda c: _OpFiltered(c, "call"))):
        path = tmp_path / f"{name}.jsonl"
        _record(path, make, "call", run)
        used.append(json.loads(path.read_bytes().splitlines()[-1])["gasUsed"])
    assert used[0] == used[1]


@pytest.mark.parametrize("kind", ["python", "c"])
def test_blocks_charge_from_where_the_frame_came_to(kind: str) -> None:
    if kind == "c" and Blocks is PyBlocks:
        pytest.skip("the C extension is not built (or BLOCKTRACE_PURE)")
    factory = PyBlocks if kind == "python" else Blocks
    from blocktrace.vm.hook import Meter

    meter = Meter(2**63 - 1)
    code = _loops.__code__
    counts = block_counts(code)
    assert counts is not None
    lost: list[tuple[Any, int, int]] = []
    blocks = factory(meter, {id(code): counts}, lambda *a: lost.append(a), threading.get_ident())
    n = memoryview(counts).cast("I")
    blocks.push(code, 0)
    blocks(code, 10, 4)  # ran 0..10, jumped to 4
    assert meter.used == n[6] - n[0]
    blocks(code, 8, 30)  # ran 4..8
    assert meter.used == n[6] - n[0] + n[5] - n[2]
    blocks.charge(code, 34)  # ran 30..34 (an exception there)
    blocks.charge(code, 34)  # (and again: nothing more)
    total = n[6] - n[0] + n[5] - n[2] + n[18] - n[15]
    assert meter.used == total
    blocks(_fib.__code__, 2, 4)  # a frame it does not know: the fallback
    assert lost == [(_fib.__code__, 2, 4)] and meter.used == total
    blocks.leave(code, 36)
    assert meter.used == total + n[19] - n[18]
    blocks.leave(code, 40)  # nothing left to leave
    assert meter.used == total + n[19] - n[18]


@pytest.mark.skipif(not C_HOOK, reason="the C extension is not built (or BLOCKTRACE_PURE)")
def test_c_and_pure_python_count_the_same(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_block_gas import _program\n"
        "def main():\n"
        "    t = 0\n"
        "    for i in range(3):\n"
        "        t += _program() if i else 0\n"
        "    print(t)\n"
        "main()\n"
    )
    out = {}
    for pure in (False, True):
        path = tmp_path / f"{pure}.jsonl"
        env = {"BLOCKTRACE_PURE": "1"} if pure else {}
        proc = subprocess.run(
            [sys.executable, "-m", "blocktrace", "run", "--level", "call", "--genesis", "g",
             "--include", str(Path(__file__).parent), "--include", str(tmp_path),
             "-o", path, script],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, **env},
        )
        assert proc.returncode == 0, proc.stderr
        out[pure] = _stable(path.read_bytes())
    assert out[False] == out[True]
