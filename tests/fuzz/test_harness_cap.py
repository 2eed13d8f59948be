"""The fuzz harness's memory cap (harness.memory_cap) must not fail a command
that uses little memory.  pyarrow's default allocator (mimalloc) reserves a GiB
of address space at its first allocation; when that allocation came right after
the cap was set, the GiB fitted under it and nothing after it did, so
``export --to parquet`` failed with ``ArrowMemoryError: malloc of size 256
failed`` (CI, 3.12, test_fuzz_one_answer's worker).  The harness gives pyarrow
the system allocator, which asks for what it uses.

Nor must it count address space that threads reserve: glibc gives each new
thread a 64 MiB malloc arena and an 8 MiB stack, so how much a command reserved
depended on how many threads were alive at once (DuckDB's first connection: 9
threads, ~650 MiB; a fresh worker's ``query`` peaked at 892-952 MiB of the
GiB).  The cap counts the memory a command can write (``RLIMIT_DATA``), and
still stops one that needs more than the headroom."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _run_without_arrow_pool(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run in a fresh process whose environment names no pyarrow allocator; it
    must exit 0."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.parametrize("first", ["after the harness", "before the harness"])
def test_pyarrow_allocates_right_after_the_cap(first: str) -> None:
    pytest.importorskip("pyarrow")
    arrow = "import pyarrow as pa; pa.default_memory_pool(); "
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); "
            + (arrow if first == "before the harness" else "")
            + "from fuzz.harness import MEMORY_HEADROOM, memory_cap; "
            + (arrow if first == "after the harness" else "")
            + "cap = memory_cap(MEMORY_HEADROOM); cap.__enter__(); "
            "pa.repeat(pa.scalar(1, pa.int64()), 10); "
            "print(pa.default_memory_pool().backend_name)")
    done = _run_without_arrow_pool(code)
    assert done.stdout.strip() == "system"


def _capped(body: str) -> subprocess.CompletedProcess[str]:
    """``body`` run under the harness's cap in a fresh process."""
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
            "from fuzz.harness import MEMORY_HEADROOM, memory_cap\n"
            "with memory_cap(MEMORY_HEADROOM):\n"
            + "".join(f"    {line}\n" for line in body.splitlines()))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_threads_that_allocate_little_fit_under_the_cap() -> None:
    # 24 threads alive at once, each allocating a few bytes: each gets an arena of
    # its own (up to 8 a core) and a stack.  Under a cap on address space the
    # 16th could not start ("can't start new thread") on a 2-core machine.
    done = _capped(
        "import threading\n"
        "here = threading.Barrier(25)\n"
        "def work():\n"
        "    bytearray(1000)\n"
        "    here.wait(60)\n"
        "threads = [threading.Thread(target=work, daemon=True) for _ in range(24)]\n"
        "for t in threads: t.start()\n"
        "here.wait(60)\n"
        "for t in threads: t.join()\n"
        "print('all started')")
    assert done.returncode == 0 and done.stdout == "all started\n", done.stderr[-2000:]


def test_the_cap_still_stops_a_command_that_needs_more_than_the_headroom() -> None:
    done = _capped("try:\n"
                   "    held = [bytes(1 << 20) for _ in range(MEMORY_HEADROOM >> 19)]\n"
                   "except MemoryError:\n"
                   "    print('MemoryError')")
    assert done.returncode == 0 and done.stdout == "MemoryError\n", (done.stdout,
                                                                      done.stderr[-2000:])


def test_the_system_allocator_is_the_capped_commands_and_the_workers_only() -> None:
    # The harness once set ARROW_DEFAULT_MEMORY_POOL when imported: the whole suite (which
    # imports it) and one test file outside tests/fuzz then ran pyarrow on two allocators.
    pytest.importorskip("pyarrow")
    code = (f"import os, sys; sys.path.insert(0, {str(TESTS)!r})\n"
            "from fuzz.harness import MEMORY_HEADROOM, memory_cap\n"
            "import pyarrow as pa\n"
            "print(os.environ.get('ARROW_DEFAULT_MEMORY_POOL'))\n"
            "before = pa.default_memory_pool().backend_name\n"
            "with memory_cap(MEMORY_HEADROOM):\n"
            "    print(pa.default_memory_pool().backend_name)\n"
            "print(pa.default_memory_pool().backend_name == before)\n")
    done = _run_without_arrow_pool(code)
    assert done.stdout.splitlines() == ["None", "system", "True"], done.stdout


def test_the_workers_get_the_system_allocator() -> None:
    from .harness import ARROW_POOL
    from .worker import Worker

    worker = Worker({k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"})
    try:
        assert ARROW_POOL == {"ARROW_DEFAULT_MEMORY_POOL": "system"}
        assert worker.run(["--help"]).returncode == 0  # (started and serving)
        env = Path(f"/proc/{worker.proc.pid}/environ").read_bytes().split(b"\0")
        assert b"ARROW_DEFAULT_MEMORY_POOL=system" in env
    finally:
        worker.close()
