"""The Recorder's log in C (``blocktrace.tracers._crecord.Log``, a sink of the stepper's
C hooks): the events and records a Recorder gives back are those of the pure-Python
Recorder (``BLOCKTRACE_PURE=1``), on a program with recursion, generators,
exceptions, odd return values, a thread and a gas budget past 64 bits; real
processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from blocktrace._native import extension
from blocktrace.events import CallStart, Return
from tests.vm.processes import run_in_mode

_crecord = extension("blocktrace.tracers._crecord")
_chook = extension("blocktrace.vm._chook")

PROGRAM = r'''
import sys, threading
import blocktrace
from blocktrace.tracers.recorder import Recorder
from blocktrace.vm.stepper import active_stepper

sys.setswitchinterval(100)

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

ODD = [None, True, 2**63, -(2**63), 10**40, "s" * 300, 1.5, (1, [2]), object]

def odd(i):
    return ODD[i]

def gen(n):
    for i in range(n):
        yield i

def deep(n):
    if n == 0:
        raise ValueError("bottom")
    return deep(n - 1)

def caught():
    try:
        deep(3)
    except ValueError:
        return "caught"

def worker(out):
    out.append(fib(4))

def main(threads):
    fib(7)
    for i in range(len(ODD)):
        odd(i)
    list(gen(3))
    caught()
    if threads:
        out = []
        t = threading.Thread(target=worker, args=(out,))
        t.start()
        t.join()
        fib(3)

def show(r):
    for rec in r.records:
        e = rec.event
        shown = repr(e) if type(e).__name__ != "Return" or type(e.value) is not type else (
            "Return(%s, %s, %s, %s)" % (e.kind, e.code, e.pc, e.value.__name__))
        print(rec.depth, rec.gas, rec.thread, shown)
    assert all(a is b.event for a, b in zip(r.events, r.records))

for gas, threads in ((None, False), (2**64 - 1, False), (None, True)):
    r = Recorder()
    with blocktrace.trace(r, gas=gas):
        main(threads)
        entries = active_stepper()._call_entries
    print("entries", None if entries is None else len(entries) > 0)
    show(r)
    r.events  # read twice: the same
    show(r)
'''


def _records(tmp_path: Path, pure: bool) -> list[str]:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    return run_in_mode([sys.executable, str(script)], tmp_path, pure).splitlines()


@pytest.mark.skipif(_crecord is None or _chook is None,
                    reason="the C extensions are not built (or BLOCKTRACE_PURE is set)")
def test_the_c_log_records_what_the_pure_recorder_records(tmp_path: Path) -> None:
    c = _records(tmp_path, False)
    pure = _records(tmp_path, True)
    # the C call hooks took the Recorder's calls (not the pure run's, nor with a thread)
    assert [line for line in c if line.startswith("entries")] == [
        "entries True", "entries True", "entries None"]
    assert [line for line in pure if line.startswith("entries")] == ["entries None"] * 3
    strip = [line for line in c if not line.startswith("entries")]
    assert strip == [line for line in pure if not line.startswith("entries")]
    assert sum("Return(kind='return'" in line for line in strip) > 30
    assert any("unwind" in line for line in strip)
    assert any(line.split()[2] == "2" for line in strip)  # the second thread's events


@pytest.mark.skipif(_crecord is None, reason="the C log is not built (or BLOCKTRACE_PURE is set)")
def test_the_log_keeps_entries_in_order_and_builds_returns_when_read() -> None:
    assert _crecord is not None
    log = _crecord.Log(Return)
    start = CallStart("call", 1, "f", "f.py", 1)
    assert log.op(start, 5, 2) is True
    assert log.op(start, 2**64 - 1, 2) is True  # past 64 bits: kept as given
    log.append(("x", 1, 2, 3))
    with pytest.raises(TypeError):
        log.append(("too", "short"))
    with pytest.raises(TypeError):
        log.line(b"{}")
    assert len(log) == 3
    assert log.entries(0) == [(start, 2, 5, 1), (start, 2, 2**64 - 1, 1), ("x", 1, 2, 3)]
    assert log.entries(2) == [("x", 1, 2, 3)] and log.entries(9) == []
