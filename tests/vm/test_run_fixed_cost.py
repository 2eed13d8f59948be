"""What a run no longer computes afresh (issue 13, the per-run fixed cost), kept
for the process, stays true: scope decisions are shared only by scopes with the
same rules, a source file's fingerprint follows the file's changes, code objects'
level tables and call events are shared only at the same index, and a run's own
start and stop call no helper while PY_START is on (each would be learnt anew per
run: code run while the events are off forgets its DISABLE)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

import blocktrace
from blocktrace.tracers import chain as chain_module
from blocktrace.vm import sites
from blocktrace.vm.scope import Scope

_M = sys.monitoring


def _source_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(ln) for ln in path.read_bytes().splitlines()]
    return [{k: ln[k] for k in ("file", "sha256", "size")} for ln in lines
            if ln.get("event") == "source"]


def _module(tmp_path: Path, name: str, body: str) -> Any:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    code = compile(path.read_text(), str(path), "exec")
    namespace: dict[str, Any] = {"__name__": name}
    exec(code, namespace)
    return namespace


def test_scopes_with_other_rules_decide_apart(tmp_path: Path) -> None:
    mod = _module(tmp_path, "ruled", "def f():\n    return 1\n")
    code = mod["f"].__code__
    assert Scope().contains(code) is True
    assert Scope(exclude=[str(tmp_path)]).contains(code) is False  # not the default's answer
    assert Scope().contains(code) is True
    assert Scope(include=[os.devnull]).contains(code) is False
    # the same rules: the same decisions, one table for the process
    assert Scope(exclude=[str(tmp_path)])._by_file is Scope(exclude=[str(tmp_path)])._by_file
    assert Scope()._by_file is not Scope(exclude=[str(tmp_path)])._by_file


def _trace_calling(tmp_path: Path, mod: dict[str, Any], name: str) -> list[dict[str, Any]]:
    path = tmp_path / name
    with blocktrace.trace(blocktrace.ChainTracer(path, genesis="fixed")):
        mod["f"]()
    return _source_lines(path)


def test_a_source_files_fingerprint_follows_its_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain_module, "_SETTLED_NS", 0)  # kept however fresh (see below)
    mod = _module(tmp_path, "changing", "def f():\n    return 1\n")
    file = str(tmp_path / "changing.py")
    old = os.stat(file).st_mtime_ns - 10**10
    os.utime(file, ns=(old, old))
    first = [s for s in _trace_calling(tmp_path, mod, "a.jsonl") if s["file"] == file]
    assert file in chain_module._FINGERPRINTS
    again = [s for s in _trace_calling(tmp_path, mod, "b.jsonl") if s["file"] == file]
    assert again == first
    # Same size, same modification time: only the change time tells (a clock tick
    # later: within one the file system may not tell, which _SETTLED_NS is for).
    time.sleep(0.05)
    Path(file).write_text("def f():\n    return 2\n")
    os.utime(file, ns=(old, old))
    changed = [s for s in _trace_calling(tmp_path, mod, "c.jsonl") if s["file"] == file]
    assert changed[0]["size"] == first[0]["size"]
    assert changed[0]["sha256"] != first[0]["sha256"]
    import hashlib

    assert changed[0]["sha256"] == hashlib.sha256(Path(file).read_bytes()).hexdigest()


def test_a_file_changed_just_now_is_not_kept(tmp_path: Path) -> None:
    mod = _module(tmp_path, "fresh", "def f():\n    return 1\n")
    _trace_calling(tmp_path, mod, "a.jsonl")
    assert str(tmp_path / "fresh.py") not in chain_module._FINGERPRINTS


def test_code_info_shares_tables_and_calls_at_the_same_index_only() -> None:
    code = compile("x = 1\ny = x + 1\n", "<info-test>", "exec")
    one = sites.code_info(code, 5)
    line = one.table("line")
    enter = one.call("enter")
    two = sites.code_info(code, 5)
    assert two.table("line") is line and two.call("enter") is enter
    other = sites.code_info(code, 6)
    assert other.table("line") is not line
    assert other.call("enter").code == 6 and enter.code == 5


def _spy_learn(prefix: str) -> Iterator[list[CodeType]]:
    """The code objects under ``prefix`` whose PY_START reaches the stepper's Python
    ``_learn`` (a start the C call hook answers itself is not seen)."""
    import blocktrace.vm.stepper as stepper_module

    seen: list[CodeType] = []
    real = stepper_module.Stepper._learn
    own = os.path.dirname(blocktrace.__file__) + os.sep
    # The spy must not be code in scope itself: it lives under blocktrace's directory.
    spy_code = compile(
        "def learn(self, code, caller=None, own=None):\n"
        "    if code.co_filename.startswith(prefix):\n"
        "        seen.append(code)\n"
        "    return real(self, code, caller, own)\n",
        own + "_test_spy.py", "exec")
    namespace: dict[str, Any] = {"prefix": prefix, "seen": seen, "real": real}
    exec(spy_code, namespace)
    stepper_module.Stepper._learn = namespace["learn"]  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        stepper_module.Stepper._learn = real  # type: ignore[method-assign]


@pytest.fixture
def seen_starts() -> Iterator[list[CodeType]]:
    """The code objects whose PY_START the stepper's callback is given, of blocktrace's own."""
    yield from _spy_learn(os.path.dirname(blocktrace.__file__) + os.sep)


def _c_call_hooks() -> bool:
    import blocktrace.vm.stepper as stepper_module

    return stepper_module.CallHook is not None


def _run(path: Path) -> None:
    tracer = blocktrace.ChainTracer(path, genesis="fixed", level="call", force=True)
    previous = blocktrace.set_tracer(tracer)
    try:
        blocktrace.start()
        sum(range(10))
        blocktrace.stop()
    finally:
        blocktrace.set_tracer(previous)
        tracer.close()


def test_start_and_stop_call_few_helpers_with_py_start_on(
    tmp_path: Path, seen_starts: list[CodeType]
) -> None:
    for _ in range(3):  # warm: every helper ran once with the events off
        _run(tmp_path / "t.jsonl")
    seen_starts.clear()
    _run(tmp_path / "t.jsonl")
    names = sorted({c.co_qualname for c in seen_starts})
    # start(): nothing (the renderer is the one set_tracer's stepper made before the
    # events were on); stop(): the two frames on the stack when the events go off
    # (vm.stop and Stepper.stop), which the C call hook answers itself (out of scope
    # by their file).  Nothing else of blocktrace's.
    assert names == ([] if _c_call_hooks() else ["Stepper.stop", "stop"])


def test_code_out_of_scope_run_between_runs_is_turned_off_in_c(tmp_path: Path) -> None:
    """Library code run while tracing is off loses its DISABLE (Python instruments it
    afresh) and is seen again at the next run's first call: the C call hook answers
    it from the scope's decisions by file, without the stepper's Python callback."""
    if not _c_call_hooks():
        pytest.skip("the C call hook is not built (or BLOCKTRACE_PURE is set)")
    import textwrap as library

    library_dir = os.path.dirname(library.__file__) + os.sep
    for _ in range(2):
        library.dedent("  x\n")  # untraced, between runs
        gen = _spy_learn(library_dir)
        seen = next(gen)
        try:
            with blocktrace.trace(blocktrace.ChainTracer(tmp_path / "t.jsonl", force=True)):
                library.dedent("  x\n")
        finally:
            gen.close()
    assert library.dedent.__code__ not in seen
    assert seen == []


def _two_cpus() -> bool:
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) >= 2


@pytest.mark.skipif(not _two_cpus(), reason="the writer's thread is the default on two CPUs only")
def test_a_short_run_starts_no_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default (two CPUs, BLOCKTRACE_WRITER_THREAD unset) the C writer's thread
    starts once the trace has filled its first buffer: a run of a few hundred lines
    is written inline, starts no thread and its seal joins none.  A longer run gets
    the thread from its first full buffer on, and writes the same lines."""
    from blocktrace.chain.writer import threaded_by_default

    monkeypatch.delenv("BLOCKTRACE_WRITER_THREAD", raising=False)
    if not threaded_by_default():
        pytest.skip("no C writer here (BLOCKTRACE_PURE, or not built)")
    mod = _module(tmp_path, "shortrun", """
        def f(n):
            total = 0
            for i in range(n):
                total += i
            return total
        """)
    seen: dict[str, list[bool]] = {}

    def traced(name: str, n: int, **kw: Any) -> Any:
        tracer = blocktrace.ChainTracer(tmp_path / name, genesis="g", argv=["x"], **kw)
        seen[name] = [tracer._writer.threaded]
        with blocktrace.trace(tracer):
            mod["f"](n)
            seen[name].append(tracer._writer.threaded)
        seen[name].append(tracer._writer.thread_cpu_ns > 0)  # a thread ran (and ended)
        return tracer

    traced("short.jsonl", 20)
    assert seen["short.jsonl"] == [False, False, False]
    traced("long.jsonl", 3000)
    assert seen["long.jsonl"] == [False, True, True]
    traced("inline.jsonl", 3000, writer_thread=False)
    assert seen["inline.jsonl"] == [False, False, False]
    traced("from-the-start.jsonl", 20, writer_thread=True)
    assert seen["from-the-start.jsonl"] == [True, True, True]

    def bodies(name: str) -> list[bytes]:  # all but the header's start and the summary
        lines = (tmp_path / name).read_bytes().splitlines()
        return [line.rsplit(b',"hash":', 1)[0] for line in lines[1:-1]]

    assert len(bodies("long.jsonl")) > 3000
    assert bodies("long.jsonl") == bodies("inline.jsonl")
    from blocktrace.chain.verify import verify_file

    for name in seen:
        assert verify_file(tmp_path / name).status == "sealed"


def test_call_lines_pieces_are_made_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function traced again by another tracer (the next test of a suite) has its
    call line's pieces from the first (its ``CallStart`` is the same object, see
    ``vm.sites``), and the same line; a full table is dropped, not grown."""
    mod = _module(tmp_path, "pieces", "def f():\n    return 1\n")
    made: list[tuple[bytes, bytes, Any]] = []
    for name in ("a.jsonl", "b.jsonl"):
        tracer = blocktrace.ChainTracer(tmp_path / name, genesis="pieces", level="call")
        with blocktrace.trace(tracer):
            mod["f"]()
        made += [v for v in tracer._calls.values() if v[2].name == "f"]
    assert len(made) == 2 and made[0] is made[1]
    lines = [[ln for ln in (tmp_path / n).read_bytes().splitlines() if b'"name":"f"' in ln]
             for n in ("a.jsonl", "b.jsonl")]
    assert lines[0][0].split(b',"hash"')[0] == lines[1][0].split(b',"hash"')[0]
    monkeypatch.setattr(chain_module, "_CALL_PIECES_KEPT", len(chain_module._CALL_PIECES))
    kept = made[0]
    chain_module._call_line_pieces(sites.code_info(compile("1", "<p>", "eval"), 9).call("call"))
    assert len(chain_module._CALL_PIECES) == 1 and kept not in chain_module._CALL_PIECES.values()
