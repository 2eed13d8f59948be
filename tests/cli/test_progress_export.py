"""``blocktrace export`` shows its progress on a terminal, told from its own reading
loops: each format's loop calls the progress line's ``look`` once per piece it
reads (a follower thread alone may wait for the GIL longer than a short pass
takes, and draw nothing).  What is drawn is tested, never when: the commands run
with ``BLOCKTRACE_PROGRESS_DELAY=0``, and the loops' looks are checked by the
file positions they see."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from blocktrace import progress as progress_module
from blocktrace.progress import Progress
from tests.terminal import on_pty

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

PROGRAM = """\
def step(i):
    return i % 7

total = 0
for i in range(4000):
    total += step(i)
print(total)
"""


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("export-progress")
    (where / "prog.py").write_text(PROGRAM)
    subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", "a.jsonl", "prog.py"],
                   cwd=where, check=True, capture_output=True, timeout=300)
    assert (where / "a.jsonl").stat().st_size > 1_000_000
    return where / "a.jsonl"


def positions_seen(path: Path) -> tuple[list[int], Callable[[], None]]:
    """A ``tick`` that notes this process's read position in ``path`` each time it is
    called (the position a progress line's ``look`` shows)."""
    seen: list[int] = []
    wanted = {os.path.realpath(path)}

    def tick() -> None:
        at = progress_module._read_positions(wanted)
        assert at is not None, "called while the file is not open"
        seen.append(at)

    return seen, tick


def assert_followed(seen: list[int], size: int, in_order: bool = True) -> None:
    """Looks all along the pass; ``in_order``: each further than the one before (where
    the loop's reader is the only one open on the file)."""
    assert len(seen) >= 4, seen  # the pieces are 64 KiB here: one look each
    assert seen[0] < size // 2 and max(seen) > size * 0.9
    assert not in_order or seen == sorted(seen)


@pytest.mark.parametrize("kind", ["perfetto", "speedscope"])
def test_a_timelines_loop_looks_once_a_piece(trace: Path, tmp_path: Path, kind: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from blocktrace.format import wholelines
    from blocktrace.query.timeline import write_perfetto, write_speedscope

    monkeypatch.setattr(wholelines, "CHUNK", 64 << 10)
    seen, tick = positions_seen(trace)
    write = write_perfetto if kind == "perfetto" else write_speedscope
    out = io.BytesIO()
    write([str(trace)], ["sealed"], out, tick=tick)
    assert_followed(seen, trace.stat().st_size)
    assert (b'"traceEvents"' if kind == "perfetto" else b'"profiles"') in out.getvalue()


def test_the_parquet_loop_looks_once_a_piece(trace: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyarrow")
    from blocktrace.format import wholelines
    from blocktrace.query.dataset import export_trace

    monkeypatch.setattr(wholelines, "CHUNK", 64 << 10)
    seen, tick = positions_seen(trace)
    done = export_trace(str(trace), str(tmp_path / "ds"), tick=tick)
    assert done.status == "sealed"
    # (the verifier reads the file too: without the C paths it opens it apart, and
    # the furthest position of the two is what a look sees)
    assert_followed(seen, trace.stat().st_size, in_order=False)


def test_a_client_traces_parquet_loop_looks_too(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from blocktrace.query.dataset import export_trace
    from tests.query.helpers import client_trace

    lines = client_trace("geth", "negative_refund").read_bytes().splitlines(keepends=True)
    ops = [line for line in lines if b'"pc"' in line]
    rest = [line for line in lines if b'"pc"' not in line]
    long = tmp_path / "geth.jsonl"
    long.write_bytes(b"".join(ops * 30 + rest))
    seen, tick = positions_seen(long)
    done = export_trace(str(long), str(tmp_path / "ds"), tick=tick)
    assert done.lines >= 4096 * 2
    assert len(seen) >= 2 and seen == sorted(seen)


def test_a_timelines_verification_tells_its_progress(trace: Path) -> None:
    """Before a timeline is written each trace is verified, a pass of its own: it tells
    a progress line the bytes it has read (``verify_file``'s)."""
    from blocktrace.query.dataset import verify_or_refuse

    class Told:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def update(self, done: int) -> None:
            self.seen.append(done)

    told = Told()
    assert verify_or_refuse(str(trace), False, told).status == "sealed"
    assert told.seen and told.seen == sorted(told.seen)
    assert told.seen[-1] > trace.stat().st_size * 0.9  # (the summary line may be read after)


def test_look_draws_where_the_files_are_read(trace: Path) -> None:
    """``look`` draws the share read as the file's position says, from the calling
    thread (the follower thread stopped first: only ``look`` can draw)."""
    master, slave = os.openpty()
    try:
        terminal = open(slave, "w", closefd=False)  # noqa: SIM115 (closed below)
        progress = Progress(trace.stat().st_size, "export x", stream=terminal)
        progress._first = progress._next = 0.0  # the delay passed
        progress.follow([str(trace)])
        follower = progress._follower
        assert follower is not None
        progress._stop_following.set()
        follower.join()
        with open(trace, "rb", buffering=0) as f:
            f.read(trace.stat().st_size // 2)
            progress.look()
        terminal.flush()
        drawn = os.read(master, 4096)
        assert drawn.startswith(b"\rexport x:  50% of ")
        progress.close()
        terminal.close()
    finally:
        os.close(master)
        os.close(slave)


def test_look_does_nothing_without_a_terminal(trace: Path) -> None:
    out = io.StringIO()
    progress = Progress(trace.stat().st_size, "export x", stream=out)
    progress.follow([str(trace)])
    with open(trace, "rb") as f:
        f.read(1000)
        progress.look()
    progress.close()
    assert out.getvalue() == ""


@pytest.mark.parametrize("kind", ["perfetto", "speedscope", "parquet"])
def test_export_on_a_terminal_shows_progress_and_in_a_pipe_nothing(
        trace: Path, tmp_path: Path, kind: str) -> None:
    if kind == "parquet":
        pytest.importorskip("pyarrow")
    env = {**os.environ, "BLOCKTRACE_PROGRESS_DELAY": "0"}
    argv = [sys.executable, "-m", "blocktrace", "export", str(trace), "--to", kind,
            str(tmp_path / "pty.out")]
    kept = Path(f"{trace}.idx")
    kept.unlink(missing_ok=True)
    status, out, err = on_pty(argv, tmp_path, env)
    assert status == 0, err
    assert b"pty.out" in out
    label = b"export " + (str(trace).encode() if kind == "parquet" else kind.encode()) + b": "
    assert label in err and b"% of " in err
    verifying = b"export " + kind.encode() + b": verify " + str(trace).encode() + b": "
    if kind != "parquet":  # a timeline verifies each trace first, in a pass of its own
        assert verifying in err
        # that pass kept the trace's index: the next export says what verify says from it
        assert kept.exists()
        argv[-1] = str(tmp_path / "pty2.out")
        status, out, err = on_pty(argv, tmp_path, env)
        assert status == 0 and verifying not in err and b"% of " in err, err
    assert err.endswith(b"\r\x1b[K")  # wiped: what follows starts on a clean line
    argv[-1] = str(tmp_path / "pipe.out")
    piped = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=300, env=env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == b""
