"""Several threads: depth per thread, events tagged with the thread, and the
chain written from all of them still verifies."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest

import blocktrace
from blocktrace import CallStart, OpStart, Recorder, Return, Stop
from blocktrace.chain.verify import verify_file

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _leaf(n: int) -> int:
    return n * 2


def _work(n: int, out: list[int], gate: threading.Barrier) -> None:
    gate.wait()  # both threads run traced code at the same time
    total = 0
    for i in range(n):
        total += _leaf(i)
    out.append(total)


def _two_threads() -> list[int]:
    out: list[int] = []
    gate = threading.Barrier(2)
    threads = [threading.Thread(target=_work, args=(200, out, gate)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_depth_per_thread_and_thread_numbers() -> None:
    rec = Recorder()
    with blocktrace.trace(rec):
        result = _two_threads()
    assert result == [39800, 39800]
    assert {r.thread for r in rec.records} == {1, 2, 3}
    stacks: dict[int, list[int]] = {}
    for r in rec.records:
        e = r.event
        stack = stacks.setdefault(r.thread, [])
        if type(e) is CallStart:
            assert r.depth == len(stack) + 1, r
            stack.append(e.code)
        elif type(e) is Return:
            assert stack.pop() == e.code and r.depth == len(stack) + 1, r
        elif type(e) is OpStart:
            assert stack and stack[-1] == e.code, r
    for thread in (2, 3):
        calls = [r for r in rec.records if r.thread == thread and type(r.event) is CallStart]
        # Thread.run is the stdlib: _work is at depth 1 of its own thread.
        assert calls[0].event.name == "_work" and calls[0].depth == 1  # type: ignore[union-attr]
        assert len(calls) == 201 and {c.depth for c in calls[1:]} == {2}
        assert stacks[thread] == []
    # Gas is one budget for the run, charged by every thread.
    gases = [r.gas for r in rec.records if type(r.event) is OpStart]
    assert gases == sorted(gases, reverse=True) and len(set(gases)) == len(gases)


def test_the_chain_of_a_threaded_run_verifies(tmp_path: Path) -> None:
    path = tmp_path / "threads.jsonl"
    tracer = blocktrace.ChainTracer(path, genesis="threads")
    with blocktrace.trace(tracer):
        result = _two_threads()
    assert result == [39800, 39800]
    check = verify_file(path, genesis="threads")
    assert check.status == "sealed", check.reason
    lines = path.read_bytes().splitlines()
    tagged = [_decode(line).get("thread") for line in lines[1:-1]]
    first = tagged.index(2) if 2 in tagged else len(tagged)
    # Once a second thread runs traced code, every line names its thread.
    assert set(tagged[first:]) == {1, 2, 3}
    assert all(t is None for t in tagged[:first])
    threads_of = {}
    for line in lines[1:-1]:
        event = _decode(line)
        if event.get("event") == "call" and event["name"] == "_work":
            threads_of[event["thread"]] = event["depth"]
    assert threads_of == {2: 1, 3: 1}


def _started_work() -> int:
    return sum(_leaf(i) for i in range(5))


def _start_while_running() -> int:
    t = threading.Thread(target=_started_work)
    t.start()  # the new thread's first call comes while this one runs traced code
    total = 0
    for i in range(100):
        total += i
    t.join()
    return total


def _consistent(records: list[Any]) -> None:
    stacks: dict[int, list[int]] = {}
    for r in records:
        e = r.event
        assert r.depth >= 1, r
        stack = stacks.setdefault(r.thread, [])
        if type(e) is CallStart:
            assert r.depth == len(stack) + 1, r
            stack.append(e.code)
        elif type(e) is Return:
            assert stack and stack.pop() == e.code and r.depth == len(stack) + 1, r
        elif type(e) is OpStart:
            assert stack and stack[-1] == e.code and r.depth == len(stack), r


def test_a_second_thread_arriving_mid_callback_does_not_take_the_first_ones_state() -> None:
    """The switch to serialised callbacks when a second thread first runs traced
    code: the first thread may be part-way through a callback then (a Python
    callback can lose the GIL anywhere).  With a tiny switch interval that
    happened in most runs: the first thread's ops came out at the new thread's
    depth 0, or the new thread's at the wrong depth."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(60):
            rec = Recorder()
            with blocktrace.trace(rec):
                assert _start_while_running() == 4950
            _consistent(rec.records)
            assert {r.thread for r in rec.records} == {1, 2}
    finally:
        sys.setswitchinterval(interval)


def test_a_thread_running_only_library_code_is_not_a_thread_of_the_trace(
    tmp_path: Path,
) -> None:
    """A thread that runs no code in scope (pytest-xdist's execnet receiver, a
    library's worker) is not one of the trace's threads, whatever events it
    sends: its exceptions (RAISE/EXCEPTION_HANDLED are global events, sent for
    every code object) used to number it, so the trace switched to naming each
    line's thread -- in the pure stepper, at random, as the thread happened to
    raise while a test was traced."""
    path = tmp_path / "t.jsonl"
    tracer = blocktrace.ChainTracer(path, genesis="threads")
    with blocktrace.trace(tracer):
        before = _leaf(1)
        t = threading.Thread(target=os.makedirs, args=(str(tmp_path),), kwargs={"exist_ok": True})
        t.start()
        t.join()
        after = _leaf(2)
    assert (before, after) == (2, 4)
    lines = path.read_bytes().splitlines()
    assert all("thread" not in _decode(line) for line in lines[1:-1])
    assert verify_file(path, genesis="threads").status == "sealed"


def test_library_threads_take_no_thread_number(tmp_path: Path) -> None:
    """Threads are numbered in the order they first run code in scope: a thread
    that only runs library code while several traced threads run (a pool's worker
    starting library functions no thread ran before, raising and handling
    exceptions there) takes no number."""
    gate = threading.Event()

    def first() -> None:
        gate.wait()
        _leaf(3)

    rec = Recorder()
    with blocktrace.trace(rec):
        a = threading.Thread(target=first)
        a.start()  # a second traced thread: the callbacks are serialised from here
        _leaf(1)
        with ThreadPoolExecutor(1) as pool:  # its worker runs only library code
            pool.submit(os.makedirs, str(tmp_path), exist_ok=True).result()
            pool.submit(textwrap.dedent, "  x").result()
            b = threading.Thread(target=_started_work)  # alive beside the worker
            b.start()
            b.join()
        gate.set()
        a.join()
    _consistent(rec.records)
    names = {r.thread: r.event.name for r in rec.records
             if type(r.event) is CallStart and r.depth == 1}
    assert names == {
        1: "test_library_threads_take_no_thread_number",
        2: "test_library_threads_take_no_thread_number.<locals>.first",
        3: "_started_work",
    }, names


def _one_after_another(target: Any, count: int) -> list[int]:
    """Runs ``target`` in ``count`` threads, each started once the one before has
    ended; the threads' idents."""
    idents: list[int] = []
    for _ in range(count):
        t = threading.Thread(target=target)
        t.start()
        t.join()
        assert t.ident is not None
        idents.append(t.ident)
    return idents


def _until_reused[T](run: Callable[[], tuple[bool, T]], tries: int = 25) -> T:
    """``run()`` -> (whether an ended thread's ident went to a later thread, what
    the test checks), run again until it did.  glibc most often hands a joined
    thread's stack, and with it its ident, to the next thread -- not always (a
    loaded machine, another thread started meanwhile): a run without a reused
    ident proves nothing and is not the test's outcome."""
    for _ in range(tries):
        reused, result = run()
        if reused:
            return result
    pytest.fail(f"no ident reused in {tries} runs: the test proves nothing here")


def _depth_one_calls(rec: Recorder) -> dict[int, list[str]]:
    calls: dict[int, list[str]] = {}
    for r in rec.records:
        if type(r.event) is CallStart and r.depth == 1:
            calls.setdefault(r.thread, []).append(r.event.name)
    return calls


def test_a_thread_that_gets_an_ended_threads_ident_gets_a_number_of_its_own() -> None:
    """CPython reuses a thread's ident once it has ended (start a thread, join
    it, start another: most often the same ident).  Threads were numbered by
    ident, so the second thread took the first one's number (and its depth):
    the trace said one thread ran both pieces of work."""
    def run() -> tuple[bool, Recorder]:
        rec = Recorder()
        with blocktrace.trace(rec):
            idents = _one_after_another(_started_work, 3)
        return len(set(idents)) < len(idents), rec

    rec = _until_reused(run)
    _consistent(rec.records)
    calls = _depth_one_calls(rec)
    assert calls == {
        1: ["test_a_thread_that_gets_an_ended_threads_ident_gets_a_number_of_its_own"
            ".<locals>.run"],
        2: ["_started_work"], 3: ["_started_work"], 4: ["_started_work"],
    }, calls


def test_a_reused_ident_gets_a_new_number_with_no_other_thread_in_between(
    tmp_path: Path,
) -> None:
    """The same when no other thread runs code in scope between the two: the
    starting thread runs only library code (here: this file, out of scope), so
    the callbacks never switch away from the ended thread before the new one,
    with its ident, arrives.  Its depth starts afresh too."""
    work = tmp_path / "reused_ident_work.py"
    work.write_text(textwrap.dedent("""\
        def leaf(n):
            return n + 1

        def work():
            total = 0
            for i in range(3):
                total += leaf(i)
            return total
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        import reused_ident_work  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    def run() -> tuple[bool, Recorder]:
        rec = Recorder()
        with blocktrace.trace(rec, include=[str(work)]):
            idents = _one_after_another(reused_ident_work.work, 3)
        return len(set(idents)) < len(idents), rec

    rec = _until_reused(run)
    assert type(rec.records[-1].event) is Stop  # at depth 0: no frame of the last thread runs
    _consistent(rec.records[:-1])
    calls = _depth_one_calls(rec)
    assert calls == {2: ["work"], 3: ["work"], 4: ["work"]}, calls
    assert {r.depth for r in rec.records if type(r.event) is CallStart} == {1, 2}


def test_a_thread_with_the_ident_of_the_thread_that_started_the_run_is_not_thread_1() -> None:
    """A run started on a thread that ends before the run is stopped: a later
    thread with its ident was taken for thread 1, at the ended thread's depth (by
    the C call hooks too, which know the starting thread by its ident)."""
    def starter(rec: Recorder, idents: list[int]) -> None:
        blocktrace.set_tracer(rec)
        blocktrace.start()
        _started_work()
        idents.append(threading.get_ident())

    def run() -> tuple[bool, Recorder]:
        rec = Recorder()
        idents: list[int] = []
        previous = blocktrace.get_tracer()
        try:
            first = threading.Thread(target=starter, args=(rec, idents))
            first.start()
            first.join()
            for _ in range(5):
                t = threading.Thread(target=_started_work)
                t.start()
                t.join()
                assert t.ident is not None
                idents.append(t.ident)
        finally:
            blocktrace.stop()
            blocktrace.set_tracer(previous)
        return idents[0] in idents[1:], rec

    rec = _until_reused(run)
    _consistent([r for r in rec.records if type(r.event) is not Stop])
    calls = _depth_one_calls(rec)
    assert calls.pop(1) == [starter.__qualname__]
    work = {thread: names for thread, names in calls.items() if names == ["_started_work"]}
    assert len(work) == 5, calls
