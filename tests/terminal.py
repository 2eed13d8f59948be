"""Running a real process whose stderr is a terminal (a pseudo-terminal)."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path


def on_pty(argv: list[str], cwd: Path | None = None,
           env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run ``argv`` with stderr on a pty, stdout on a pipe: (exit status, stdout,
    everything that reached the terminal)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=slave,
                                stdin=subprocess.DEVNULL, env=env)
    finally:
        os.close(slave)
    assert proc.stdout is not None
    seen = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=120), out, bytes(seen)
