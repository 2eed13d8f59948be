"""A program that forks under ``blocktrace run``: the trace is the parent's.

Until session 6 the child went on writing into the parent's file (its lines,
its seal), so any program that forked -- ``multiprocessing`` with its default
start method on Linux -- left a trace that verified as *tampered*; and with the
writer's threads on, Python warned the program of a fork with threads
(``DeprecationWarning``, an error under ``-W error``).  Now the child writes
nothing to the trace (docs/FORMAT.md, "Processes"), the parent's trace verifies
sealed, and the program prints and exits exactly as under python.  Real
subprocesses, with the C paths and with BLOCKTRACE_PURE=1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace.chain.verify import verify_file
from blocktrace.format.compressed import zstd_available
from tests.vm.processes import mode_env

FORKS = """\
import os, sys

def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

pid = os.fork()
if pid == 0:
    print("child", work(30000))  # enough lines to fill several of the writer's buffers
    sys.stdout.flush()
    if sys.argv[1] == "_exit":
        os._exit(3)
    # "on": the child runs to the end of the script and exits as a program does
else:
    _, status = os.waitpid(pid, 0)
    print("child exited", os.waitstatus_to_exitcode(status))
    print("parent", work(20000))
"""

POOL = """\
import multiprocessing as mp

def square_sum(x):
    total = 0
    for i in range(3000):
        total += i * x
    return total

if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        print(sum(pool.map(square_sum, range(40))))
"""

_SUFFIXES = ["jsonl", "jsonl.gz", "jsonl.zst"]


def _both(tmp_path: Path, program: str, suffix: str, args: list[str], *, pure: bool = False,
          warnings: str | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                subprocess.CompletedProcess[str], Path]:
    script = tmp_path / "prog.py"
    script.write_text(program)
    env = mode_env(pure)
    if warnings is not None:
        env["PYTHONWARNINGS"] = warnings
    trace = tmp_path / f"prog.{suffix}"
    plain = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    traced = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "-o", str(trace), "--force", str(script),
         *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    return plain, traced, trace


def _same_run_and_sealed(plain: subprocess.CompletedProcess[str],
                         traced: subprocess.CompletedProcess[str], trace: Path) -> None:
    assert traced.returncode == plain.returncode, traced.stderr
    assert traced.stdout == plain.stdout
    assert traced.stderr == plain.stderr  # no warning of ours, none of Python's
    result = verify_file(str(trace))
    assert result.status == "sealed", (result.status, result.reason)


@pytest.mark.parametrize("suffix", _SUFFIXES)
@pytest.mark.parametrize("how", ["_exit", "on"])
def test_a_forked_child_leaves_the_parent_s_trace_sealed(tmp_path: Path, suffix: str,
                                                         how: str) -> None:
    if suffix.endswith("zst") and not zstd_available():
        pytest.skip("zstd is not installed (pip install 'blocktrace[zstd]')")
    plain, traced, trace = _both(tmp_path, FORKS, suffix, [how])
    _same_run_and_sealed(plain, traced, trace)
    assert "child exited 3" in traced.stdout or how == "on"


def test_a_forked_child_leaves_the_parent_s_trace_sealed_pure(tmp_path: Path) -> None:
    plain, traced, trace = _both(tmp_path, FORKS, "jsonl", ["on"], pure=True)
    _same_run_and_sealed(plain, traced, trace)


def test_a_multiprocessing_pool_leaves_a_sealed_trace(tmp_path: Path) -> None:
    plain, traced, trace = _both(tmp_path, POOL, "jsonl", [])
    _same_run_and_sealed(plain, traced, trace)


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.zst"])
def test_a_fork_under_w_error_is_not_broken_by_our_threads(tmp_path: Path, suffix: str) -> None:
    """Python 3.12+ warns at a fork when the process has other threads (it counts
    the OS's, native ones too): blocktrace's writer threads end before a fork."""
    if suffix.endswith("zst") and not zstd_available():
        pytest.skip("zstd is not installed (pip install 'blocktrace[zstd]')")
    plain, traced, trace = _both(tmp_path, FORKS, suffix, ["_exit"],
                                 warnings="error::DeprecationWarning")
    assert plain.returncode == 0, plain.stderr
    _same_run_and_sealed(plain, traced, trace)
