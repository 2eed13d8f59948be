"""A real trace full of exception lines (which diff merges into the op step before
them): what the index's step counting and checkpoints are tested on; and waiting
for the file system's clock to tick."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_PROGRAM = """\
def g(i):
    raise KeyError(i)
def f(i):
    try:
        g(i)
    except KeyError:
        return i
for i in range(N):
    f(i)
"""


def record_exceptions(tmp: Path, n: int, name: str = "t.jsonl") -> Path:
    """Record the program raising and catching ``n`` times (~32 lines each) as
    ``tmp/name`` with ``blocktrace run``."""
    program = tmp / "exceptions.py"
    program.write_text(_PROGRAM.replace("N", str(n)))
    trace = tmp / name
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "-o", str(trace), str(program)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return trace


def next_tick(directory: Path, ctime_ns: int) -> None:
    """Wait until the file system's clock (a coarse one) has passed ``ctime_ns``:
    a change made in the tick the index was built in cannot be told by its
    times (the case the inode and the head check are for)."""
    probe = directory / ".tick"
    while True:
        probe.write_bytes(b"")
        if os.stat(probe).st_ctime_ns > ctime_ns:
            probe.unlink()
            return
