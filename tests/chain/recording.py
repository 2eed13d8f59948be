"""A real trace to sign and prove things about: a small program recorded by
``blocktrace run`` (tests/chain's checkpoint and proof tests, tests/cli's proof commands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """\
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
print(fib(6))
"""


def record(directory: Path, name: str = "t.jsonl") -> Path:
    """Record PROGRAM as ``directory/name`` with ``blocktrace run``."""
    script = directory / f"{name}.py"
    script.write_text(PROGRAM)
    out = directory / name
    done = subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", str(out), str(script)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return out
