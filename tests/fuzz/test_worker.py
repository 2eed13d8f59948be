"""The shared command worker (worker.py) never hangs the suite: a command it
does not answer in time fails the test that asked, saying so."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from .worker import Worker


def test_a_worker_that_does_not_answer_fails_in_time(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    worker = Worker()
    try:
        assert worker.run(["verify", missing]).returncode == 2  # it answers
        os.kill(worker.proc.pid, signal.SIGSTOP)  # (what the watchdog cannot end)
        started = time.monotonic()
        with pytest.raises(AssertionError, match="did not answer within 2 s"):
            worker.run(["verify", missing], timeout=2)
        assert time.monotonic() - started < 60
        assert worker.proc.poll() is not None  # killed, not left stopped
    finally:
        worker.close()
