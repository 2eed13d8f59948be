"""Regression tests for the reader bugs the version 4 fuzzing found
(test_fuzz_v4.py), each on real traces and as the command really runs (in a
process apart from the tests': the shared worker, worker.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import PROGRAM, run_at_once
from .worker import shared

LOOP = "total = 0\nfor i in range(400):\n    total += i * i\nprint(total)\n"
"""A program whose trace has more than 1,024 lines (a whole chunk of the index)."""


@dataclass
class Said:
    returncode: int
    stdout: str
    stderr: str


def _bt(*argv: str | Path, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> Said:
    """``blocktrace ARGV`` in a process apart from the tests': ``run`` in its own,
    the readers one after another in the shared worker (worker.py; a process
    each cost ~0.2 s)."""
    if argv[0] != "run":
        done = shared().run(argv, env=env, cwd=cwd)
        return Said(done.returncode, done.stdout.decode("utf-8", "replace"),
                    done.stderr.decode("utf-8", "replace"))
    ran = subprocess.run([sys.executable, "-m", "blocktrace", *map(str, argv)],
                         capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
                         check=False)
    return Said(ran.returncode, ran.stdout, ran.stderr)


def _edit_in_place(path: Path, number: int) -> bytes:
    """Change one digit of line ``number``'s body, keeping the file's size and
    modification time (what ``touch -r`` after an edit gives): the index kept
    beside it still matches its stamp and its head."""
    stamp = path.stat()
    lines = path.read_bytes().splitlines(keepends=True)
    line = bytearray(lines[number - 1])
    at = line.index(b'"gas":"0x') + 9
    line[at] = ord("6") if line[at] != ord("6") else ord("5")
    lines[number - 1] = bytes(line)
    path.write_bytes(b"".join(lines))
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    return bytes(line)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The traces these tests edit, recorded once (each test edits a copy)."""
    d = tmp_path_factory.mktemp("regressions-v4")
    (d / "loop.py").write_text(LOOP)
    out = {"loop": d / "loop.jsonl", "fuzzseed": d / "fuzzseed.jsonl",
           "compact": d / "fuzzseed.jsonl.zst"}
    run_at_once(*(["-m", "blocktrace", "run", "-o", out[name], source]
                  for name, source in (("loop", d / "loop.py"), ("fuzzseed", PROGRAM),
                                       ("compact", PROGRAM))), cwd=d)
    return out


def _copy(recorded: Path, to: Path) -> None:
    to.write_bytes(recorded.read_bytes())


@pytest.mark.parametrize(("program", "number"), [
    pytest.param("loop", 1500, id="a whole chunk"),
    pytest.param("loop", 20, id="the first chunk"),
    pytest.param("fuzzseed", 100, id="after the last whole chunk"),
])
def test_show_does_not_take_an_edited_trace_for_its_index(
    program: str, number: int, recorded: dict[str, Path], tmp_path: Path
) -> None:
    """show read lines through the index kept beside the trace, which matched the
    edited file's size, modification time and head: it printed the edited line
    with exit 0 and no note, as if the trace were sealed."""
    trace = tmp_path / "t.jsonl"
    _copy(recorded[program], trace)
    assert _bt("verify", trace, cwd=tmp_path).returncode == 0  # keeps t.jsonl.idx
    assert (tmp_path / "t.jsonl.idx").is_file()
    assert trace.read_bytes().count(b"\n") >= number
    edited = _edit_in_place(trace, number)
    for argv in (["--line", trace, str(number)], ["--line", trace, f"{number - 1}:3"]):
        done = _bt("show", *argv, cwd=tmp_path)
        assert "Traceback" not in done.stderr, done.stderr
        assert edited not in done.stdout.encode() or "TAMPERED" in done.stderr, (argv, done)
        assert done.returncode != 0 or "TAMPERED" in done.stderr, (argv, done)
    assert _bt("verify", trace, cwd=tmp_path).returncode == 1


@pytest.mark.parametrize("unverified", [False, True])
def test_query_of_a_compact_trace_whose_first_frame_is_edited(
    unverified: bool, recorded: dict[str, Path], tmp_path: Path
) -> None:
    """The first frame of a compact .zst fails its head check, so not even the
    header can be read: query took the file for a client trace, and reading it
    as one ended in a CompressedDataError traceback."""
    pytest.importorskip("duckdb")
    zstandard = pytest.importorskip("zstandard")
    from .frames import split

    trace = tmp_path / "t.jsonl.zst"
    _copy(recorded["compact"], trace)
    data = trace.read_bytes()
    first = next(f for f in split(data) if f.kind == "data")
    lines = zstandard.ZstdDecompressor().decompress(data[first.start : first.end])
    assert b'"genesis":"' in lines
    edited = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True).compress(
        lines.replace(b'"genesis":"', b'"genesis":"x', 1))
    trace.write_bytes(data[: first.start] + edited + data[first.end :])
    argv = ["query", *(["--allow-unverified"] if unverified else []), trace,
            "select count(*) from ops"]
    done = _bt(*argv, cwd=tmp_path, env={"BLOCKTRACE_CACHE": str(tmp_path / "cache")})
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (1, 2), done
    assert done.stderr.count("\n") == 1 and "do not match the hash" in done.stderr, done.stderr


def test_readers_do_not_take_an_edited_trace_for_their_caches(
    recorded: dict[str, Path], tmp_path: Path
) -> None:
    """The index (and query's and the viewer's caches) were keyed by the trace's
    size and modification time: after an edit in place that kept both, lines and
    cat said nothing of the tampering (the index's 'sealed'), and query answered
    from the dataset it had exported before the edit, exit 0."""
    pytest.importorskip("duckdb")
    trace = tmp_path / "t.jsonl"
    env = {**os.environ, "BLOCKTRACE_CACHE": str(tmp_path / "cache")}
    _copy(recorded["fuzzseed"], trace)
    sql = "select count(*) from ops"
    for argv in (["verify", trace], ["query", trace, sql]):
        done = _bt(*argv, env=env)
        assert done.returncode == 0, done
    _edit_in_place(trace, 100)
    for argv, status in ((["lines", trace], 0), (["cat", trace], 0), (["query", trace, sql], 1)):
        done = _bt(*argv, env=env)
        assert done.returncode == status, (argv, done)
        assert "Traceback" not in done.stderr and "TAMPERED" in done.stderr, (argv, done.stderr)
