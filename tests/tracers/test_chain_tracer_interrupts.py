"""Ctrl-C and the program's other signal handlers run wherever the main thread
is, inside the trace writer too: an interrupted line is written and chained, or
neither, so the trace of an interrupted run still verifies."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Buffer
from pathlib import Path

import pytest

import blocktrace
from blocktrace.chain.verify import verify_file


class InterruptingStream(io.BytesIO):
    """At its n-th write: raises KeyboardInterrupt once the data is written, as
    Ctrl-C's handler does when it runs right after the call; or fails the write
    itself with OSError (a full disk), writing nothing."""

    def __init__(self, at: int, fails: bool) -> None:
        super().__init__()
        self.at = at
        self.fails = fails
        self.writes = 0

    def write(self, data: Buffer, /) -> int:
        self.writes += 1
        if self.writes == self.at and self.fails:
            raise OSError(28, "No space left on device")
        n = super().write(data)
        if self.writes == self.at:
            raise KeyboardInterrupt
        return n


def _loop() -> int:
    total = 0
    for i in range(400):
        total += i
    return total


@pytest.mark.parametrize("at", [5, 16, 17, 33, 300])
def test_interrupted_after_a_write_the_chain_still_verifies(at: int, tmp_path: Path) -> None:
    stream = InterruptingStream(at, fails=False)
    tracer = blocktrace.ChainTracer(stream, buffer_size=1)  # a write() per line
    with pytest.raises(KeyboardInterrupt), blocktrace.trace(tracer):
        _loop()
    assert tracer.sealed
    path = tmp_path / "t.jsonl"
    path.write_bytes(stream.getvalue())
    result = verify_file(path)
    assert result.status == "sealed", result.reason
    assert result.summary is not None and result.summary["error"] == "KeyboardInterrupt"


@pytest.mark.parametrize("at", [5, 16, 17, 300])
def test_a_failed_write_detaches_and_what_was_written_verifies(
    at: int, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stream = InterruptingStream(at, fails=True)
    tracer = blocktrace.ChainTracer(stream, buffer_size=1)  # a write() per line
    with blocktrace.trace(tracer):
        result = _loop()
    assert result == sum(range(400))  # the program goes on
    assert "No space left" in capfd.readouterr().err
    assert not tracer.sealed
    path = tmp_path / "t.jsonl"
    path.write_bytes(stream.getvalue())
    assert verify_file(path).status == "unsealed"
    tracer.close("", "disk was full")  # the space is back: seal what there is
    path.write_bytes(stream.getvalue())
    sealed = verify_file(path)
    assert sealed.status == "sealed", sealed.reason
    assert sealed.summary is not None and sealed.summary["error"] == "disk was full"


def test_ctrl_c_on_a_traced_run_leaves_a_sealed_trace(tmp_path: Path, programs: Path) -> None:
    """SIGINT a traced endless loop a few times: each trace verifies sealed."""
    for attempt in range(3):
        trace = tmp_path / f"int{attempt}.jsonl"
        child = subprocess.Popen(
            [sys.executable, "-m", "blocktrace", "run", "--gas", "1000000", "-o", str(trace),
             str(programs / "endless.py")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 120
            while not (trace.exists() and trace.stat().st_size > 200_000 + attempt * 50_000):
                assert time.monotonic() < deadline, "the traced program wrote too little"
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGINT)
            _, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        # as python ends after an uncaught Ctrl-C: by SIGINT, once finished
        assert child.returncode == -signal.SIGINT, err
        assert err.decode().endswith("KeyboardInterrupt\n")
        assert "blocktrace" not in err.decode().split("endless.py")[-1]  # ends in the program
        result = verify_file(trace)
        assert result.status == "sealed", (attempt, result.reason)
        assert result.summary is not None and result.summary["error"] == "KeyboardInterrupt"
        trace.unlink()
