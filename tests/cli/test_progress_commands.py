"""Commands that read a large trace show progress on a terminal, never in a pipe
(issue 13 item 5): ``verify``, ``diff``, ``lines`` as real processes whose
stderr is a pseudo-terminal, with ``BLOCKTRACE_PROGRESS_DELAY=0`` so that a
trace of a few megabytes is enough (the default waits a second)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.terminal import on_pty

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

PROGRAM = """\
total = 0
for i in range(60000):
    total += i % 7
print(total)
"""


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("progress")
    (where / "prog.py").write_text(PROGRAM)
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", f"{name}.jsonl",
                        "prog.py"], cwd=where, check=True, capture_output=True, timeout=300)
    assert (where / "a.jsonl").stat().st_size > 4_000_000
    return where


@pytest.mark.parametrize(("command", "label"), [
    (["verify", "a.jsonl"], b"verify a.jsonl: "),
    (["diff", "a.jsonl", "b.jsonl"], b"diff a.jsonl b.jsonl: "),
    (["lines", "a.jsonl"], b"lines a.jsonl: "),
])
def test_a_terminal_shows_progress_and_a_pipe_nothing(traces: Path, command: list[str],
                                                      label: bytes) -> None:
    argv = [sys.executable, "-m", "blocktrace", *command]
    status, out, err = on_pty(argv, traces, {**os.environ, "BLOCKTRACE_PROGRESS_DELAY": "0"})
    assert status == 0, err
    assert label in err and b"% of " in err
    assert err.endswith(b"\r\x1b[K")  # wiped: what follows starts on a clean line
    piped = subprocess.run(argv, cwd=traces, capture_output=True, timeout=300,
                           env={**os.environ, "BLOCKTRACE_PROGRESS_DELAY": "0"})
    assert piped.returncode == 0
    assert piped.stderr == b""
    assert piped.stdout == out  # the output itself is the same


def test_a_whole_lines_read_tells_its_progress_itself(traces: Path) -> None:
    """``lines`` of a plain trace reports its bytes read from its own loop: a
    follower thread looking at the file's position can wait for the GIL longer
    than the reading takes (it drew nothing in some runs of the test above)."""
    from blocktrace.views.lines import view_trace

    seen: list[int] = []
    view_trace(str(traces / "a.jsonl"), None, seen.append)
    size = (traces / "a.jsonl").stat().st_size
    assert len(seen) > 10 and seen == sorted(seen) and size * 0.9 < seen[-1] <= size
