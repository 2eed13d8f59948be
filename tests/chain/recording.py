"""Real traces recorded by ``blocktrace run``: a small program to sign and prove things
about (tests/chain's checkpoint and proof tests, tests/cli's proof commands), and
tests/programs/behaves.py (verify, tamper and native-check tests)."""

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


BEHAVES = Path(__file__).resolve().parents[1] / "programs" / "behaves.py"


def record_behaves(trace: Path, *options: str, args: tuple[str, ...] = (), status: int = 0
                   ) -> Path:
    """Record tests/programs/behaves.py (given ``args``) as ``trace`` with ``blocktrace run
    options``; the run must end with ``status`` (behaves.py's own exit status)."""
    done = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", *options, "-o", str(trace), str(BEHAVES),
         *args],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == status, done.stderr
    return trace
