"""blocktrace.progress: a line on a terminal after a second of work, nothing in a pipe.

Each test runs a real process whose stderr is a pseudo-terminal (``os.openpty``)
or a pipe, and reads what it wrote there.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from blocktrace.progress import DELAY, Progress
from tests.terminal import on_pty

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

# A pass over 1,000,000 bytes in 20 batches taking ``SECONDS`` in all.
_WORK = textwrap.dedent("""
    import sys, time
    from blocktrace.progress import Progress
    seconds = float(sys.argv[1])
    total = 1_000_000
    with Progress(total if sys.argv[2] == "known" else None, "verify big.jsonl") as progress:
        for i in range(1, 21):
            time.sleep(seconds / 20)
            progress.update(total * i // 20)
    sys.stderr.write("done\\n")
    print("out")
""")


def _on_pty(*argv: str, env: dict[str, str] | None = None) -> tuple[bytes, bytes, int]:
    """Run ``python -c WORK argv`` with stderr on a pty: (stdout, stderr bytes, status)."""
    status, out, err = on_pty([sys.executable, "-c", _WORK, *argv],
                              env={**os.environ, **(env or {})})
    return out, err, status


def test_a_terminal_shows_the_line_after_a_second_and_wipes_it() -> None:
    out, err, status = _on_pty("2.0", "known")
    assert status == 0 and out == b"out\n"
    assert b"verify big.jsonl:" in err and b"% of 1.0 MB" in err
    assert b"/s" in err  # the rate
    drawn = err.rindex(b"verify big.jsonl:")
    wiped = err.rindex(b"\r\x1b[K")
    assert wiped > drawn  # the last thing before "done" is the wipe
    assert err.endswith(b"done\r\n")  # the pty turns \n into \r\n
    assert b"\n" not in err[:err.rindex(b"done")]  # redrawn in place, one line


def test_an_unknown_total_shows_the_bytes_done() -> None:
    _, err, status = _on_pty("1.6", "unknown")
    assert status == 0
    assert b"verify big.jsonl: " in err and b"%" not in err


def test_work_under_the_delay_draws_nothing_on_a_terminal() -> None:
    # A delay far above the work's 0.3 s: a loaded machine's late wake-ups must not
    # carry the work past it (the default second is timed in-process below).
    out, err, status = _on_pty("0.3", "known", env={"BLOCKTRACE_PROGRESS_DELAY": "30"})
    assert status == 0 and out == b"out\n"
    assert err == b"done\r\n"


def _to_the_end(master: int) -> bytes:
    """What is left to read on a pty once its terminal side is closed, to its end
    (EIO): every byte written there, however late the tty layer hands it on -- not
    a silence taken for the end."""
    rest = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the end
                return bytes(rest)
            if not chunk:
                return bytes(rest)
            rest += chunk
    raise AssertionError(f"no end of the terminal in 120 s: {bytes(rest)!r}")


def test_the_first_line_comes_a_second_after_the_start_not_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default delay, by the clock the line is drawn against (not by how much
    work a slow or a fast machine does in a second): updates as fast as they come
    on a real terminal; the first thing drawn comes once a second has passed."""
    monkeypatch.delenv("BLOCKTRACE_PROGRESS_DELAY", raising=False)
    master, slave = os.openpty()
    seen = bytearray()
    try:
        with open(slave, "w", closefd=True) as tty:
            entered = time.monotonic()
            with Progress(1_000_000, "verify big.jsonl", stream=tty) as progress:
                done = 0
                while not seen and time.monotonic() < entered + 60:
                    done = min(done + 1000, 999_000)
                    progress.update(done)
                    if select.select([master], [], [], 0)[0]:
                        seen += os.read(master, 4096)
                drawn_by = time.monotonic()
        seen += _to_the_end(master)  # the wipe
    finally:
        os.close(master)
    assert seen.startswith(b"\rverify big.jsonl:"), bytes(seen)
    assert drawn_by - entered >= DELAY == 1.0
    assert seen.endswith(b"\r\x1b[K")  # wiped at the end


def test_the_delay_can_be_set() -> None:
    _, err, _ = _on_pty("0.5", "known", env={"BLOCKTRACE_PROGRESS_DELAY": "0"})
    assert b"verify big.jsonl:" in err


def test_a_pipe_gets_nothing_however_long_the_work() -> None:
    proc = subprocess.run([sys.executable, "-c", _WORK, "1.6", "known"], capture_output=True,
                          env={**os.environ, "BLOCKTRACE_PROGRESS_DELAY": "0"}, timeout=120)
    assert proc.returncode == 0
    assert proc.stderr == b"done\n" and proc.stdout == b"out\n"


def test_a_file_gets_nothing(tmp_path: Path) -> None:
    log = tmp_path / "err.log"
    with log.open("wb") as f:
        proc = subprocess.run([sys.executable, "-c", _WORK, "0.4", "known"], stderr=f,
                              stdout=subprocess.DEVNULL,
                              env={**os.environ, "BLOCKTRACE_PROGRESS_DELAY": "0"}, timeout=120)
    assert proc.returncode == 0
    assert log.read_bytes() == b"done\n"
