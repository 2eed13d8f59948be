"""The fuzz harness's memory cap (harness.memory_cap) must not fail a command
that uses little memory.  pyarrow's default allocator (mimalloc) reserves a GiB
of address space at its first allocation; when that allocation came right after
the cap was set, the GiB fitted under it and nothing after it did, so
``export --to parquet`` failed with ``ArrowMemoryError: malloc of size 256
failed`` (CI, 3.12, test_fuzz_one_answer's worker).  The harness gives pyarrow
the system allocator, which asks for what it uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


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
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "system"
