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


class _Holder:
    pass


def _give(h: object) -> object:
    return h


def _twice(h: object) -> None:
    _give(h)
    _give(h)  # the second call and return go through the C call hooks


def test_a_cycle_through_a_recorded_value_is_collected() -> None:
    """The log lets the garbage collector see the values it keeps (not the
    stepper's events, which cannot reach it): a value that holds the Recorder."""
    import gc
    import weakref

    import blocktrace
    from blocktrace.tracers.recorder import Recorder

    r = Recorder()
    h = _Holder()
    h.r = r  # type: ignore[attr-defined]
    with blocktrace.trace(r):
        _twice(h)
    assert sum(type(e) is Return and e.value is h for e in r.events) == 2
    gone = weakref.ref(h)
    del r, h
    gc.collect()
    assert gone() is None


@pytest.mark.skipif(_crecord is None or _chook is None,
                    reason="the C extensions are not built (or BLOCKTRACE_PURE is set)")
def test_values_past_a_record_are_kept_as_tuples() -> None:
    """A depth past 32 bits (the records keep 32) still reads back as given."""
    import threading

    assert _crecord is not None and _chook is not None
    log = _crecord.Log(Return)

    class VM:
        depth = 2**35

    vm = VM()
    code = _give.__code__
    start = CallStart("call", 3, "_give", "f.py", 1)
    entries = {id(code): (start, b"", b"", 3)}
    meter = _chook.Meter(100)
    hooks = [_chook.CallHook(k, vm, meter, entries, print, print, line=log.line,
                             thread=threading.get_ident()) for k in (0, 1)]
    assert hooks[0].sink is log and hooks[1].sink is log
    hooks[0](code, 0)
    hooks[1](code, 7, "v")
    assert log.entries(0) == [(start, 2**35 + 1, 100, 1),
                              (Return("return", 3, 7, "v"), 2**35 + 1, 100, 1)]
