"""Running a real interpreter with the C paths on or off (``BLOCKTRACE_PURE``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def mode_env(pure: bool) -> dict[str, str]:
    """This environment with the C paths on, or off (``BLOCKTRACE_PURE=1``)."""
    env = {k: v for k, v in os.environ.items() if k != "BLOCKTRACE_PURE"}
    if pure:
        env["BLOCKTRACE_PURE"] = "1"
    return env


def run_in_mode(argv: list[str], cwd: Path, pure: bool) -> str:
    """``argv``'s stdout; it must exit 0."""
    env = mode_env(pure)
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "blocktrace: cannot trace" not in proc.stderr, proc.stderr
    return proc.stdout
