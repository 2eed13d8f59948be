"""A trace's writer thread started once the trace fills its first buffer (the
default on two CPUs: ``ChainTracer`` with ``BLOCKTRACE_WRITER_THREAD`` unset;
issue 13, a run's fixed cost): whether it started or not, exits, signals, fork
and tracemalloc leave a sealed trace or a verifiable prefix, as with a thread
from the first line (tests/chain/test_writer_thread.py) or none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace import _native
from blocktrace.chain.verify import verify_file
from tests.chain.test_writer_thread import FORKS, interrupted

if _native.PURE:
    pytest.skip("C line writer switched off (BLOCKTRACE_PURE is set)", allow_module_level=True)
pytest.importorskip("blocktrace.chain._cwriter", reason="the C extension is not built")
try:
    _CPUS = len(os.sched_getaffinity(0))
except (AttributeError, OSError):
    _CPUS = os.cpu_count() or 1
if _CPUS < 2:
    pytest.skip("the writer's thread is the default on two CPUs only", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
_ENV = {**{k: v for k, v in os.environ.items() if k != "BLOCKTRACE_WRITER_THREAD"},
        "PYTHONPATH": str(ROOT)}

_START = """
import os, signal, sys, time
import blocktrace
from blocktrace.tracers.chain import ChainTracer
tracer = ChainTracer(sys.argv[1])
assert not tracer._writer.threaded, "a thread from the start"
def work(n):
    total = 0
    for i in range(n):
        total += i * 2
    return total
"""


def _python(tmp_path: Path, body: str, *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "prog.py"  # a file: code from -c is not in the default scope
    script.write_text(_START + body)
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "t.jsonl"), *args], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, env=env or _ENV,
    )


@pytest.mark.parametrize("n,threaded", [(20, "False"), (20000, "True")])
@pytest.mark.parametrize("how,status", [("exit", "sealed"), ("_exit", "unsealed"),
                                        ("kill", "unsealed")])
def test_exits_leave_a_sealed_trace_or_a_verifiable_prefix(
    tmp_path: Path, n: int, threaded: str, how: str, status: str
) -> None:
    result = _python(tmp_path, """
cm = blocktrace.trace(tracer)
cm.__enter__()
work(int(sys.argv[2]))
print(tracer._writer.threaded, flush=True)
how = sys.argv[3]
if how == "exit":
    sys.exit(0)  # the stepper's atexit stop seals
elif how == "_exit":
    os._exit(0)
else:
    os.kill(os.getpid(), signal.SIGKILL)
""", str(n), how)
    assert result.stdout.split() == [threaded], result.stderr
    assert verify_file(tmp_path / "t.jsonl").status == status


@pytest.mark.parametrize("before", [10, 20000])
def test_a_fork_keeps_the_deferred_start_in_the_parent(tmp_path: Path, before: int) -> None:
    """A fork before the trace filled a buffer: the parent's thread still starts
    once it does; after: it starts again at the parent's next line.  No thread of
    ours at the fork (no warning of a fork with threads), the trace sealed."""
    result = _python(tmp_path, FORKS, str(before),
                     env={**_ENV, "PYTHONWARNINGS": "error::DeprecationWarning"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.split() == [str(before > 10), "True"]
    assert verify_file(tmp_path / "t.jsonl").status == "sealed"


def test_ctrl_c_after_the_deferred_start_seals_the_trace(tmp_path: Path) -> None:
    """Ctrl-C once the thread runs: KeyboardInterrupt, the trace sealed.  The program
    is bounded (a few MB a second, 20 s at most: a run the signal does not end must
    not fill the disk) and killed when the test ends."""
    script = tmp_path / "loop.py"
    script.write_text(_START + """
with blocktrace.trace(tracer):
    work(2000)  # past the first buffer: the thread runs
    assert tracer._writer.threaded, "no thread"
    print("go", flush=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        work(100)
        time.sleep(0.02)
""")
    err = interrupted([sys.executable, str(script), str(tmp_path / "t.jsonl")], _ENV)
    assert "KeyboardInterrupt" in err
    result = verify_file(tmp_path / "t.jsonl")
    assert result.status == "sealed"


def test_the_thread_starts_under_tracemalloc_without_a_deadlock(tmp_path: Path) -> None:
    """The deferred start happens at a line, with tracemalloc hooking the raw
    allocators: the thread still allocates with malloc (no wait for the GIL)."""
    try:
        result = _python(tmp_path, """
import tracemalloc
tracemalloc.start()
with blocktrace.trace(tracer):
    print(work(20000), tracer._writer.threaded)
""")
    except subprocess.TimeoutExpired:
        pytest.fail("the traced program hung (a deadlock with the writer's thread)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["399980000", "True"]
    assert verify_file(tmp_path / "t.jsonl").status == "sealed"
