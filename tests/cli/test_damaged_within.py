"""Damage past the header, where a reader meets it in the middle of its work.

``blocktrace verify`` says what the file is (here TAMPERED at line N: exit 1),
and the readers say the same.  Found by tests/fuzz/test_fuzz_one_answer.py:
``lines`` exited 2 "not a JSON object" for a line whose byte was flipped
(verify: TAMPERED there, 1), and ``show`` let an ``IndexError`` out as a
traceback when a kept index, re-stamped for the damaged file (anyone who can
write the trace can do that: the index is a cache, never evidence), counted a
step the damaged lines no longer hold.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace.format.identity import FileIdentity
from blocktrace.format.index import Stamp, decode_index, encode_index

EXAMPLE = Path(__file__).parents[2] / "examples" / "fib.py"


def _bt(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", *map(str, args)], capture_output=True,
        text=True, timeout=180, env=env, check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _recorded(tmp_path: Path, env: dict[str, str]) -> tuple[Path, list[bytes]]:
    trace = tmp_path / "t.jsonl"
    done = _bt("run", "-o", trace, EXAMPLE, "5", env=env)
    assert done.returncode == 0, done.stderr
    return trace, trace.read_bytes().splitlines(keepends=True)


def _verify(trace: Path, env: dict[str, str]) -> tuple[int, str]:
    done = _bt("verify", "--no-index", trace, env=env)
    return done.returncode, done.stdout + done.stderr


def _one_line_no_traceback(stderr: str, command: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"blocktrace {command}: "), stderr


@pytest.mark.parametrize("at", [0, 20, -3], ids=["first byte", "a byte inside", "in its hash"])
def test_lines_says_a_line_damaged_inside_is_tampered_as_verify_does(
    tmp_path: Path, env: dict[str, str], at: int
) -> None:
    trace, lines = _recorded(tmp_path, env)
    k = 12  # line 12: past the header and the first source and call lines
    raw = bytearray(lines[k - 1])
    raw[at - 1 if at < 0 else at] = 0xAB  # -3: the hash's hex (the line ends '"}\n')
    lines[k - 1] = bytes(raw)
    trace.write_bytes(b"".join(lines))
    status, said = _verify(trace, env)
    assert status == 1 and f"TAMPERED at line {k}" in said, said

    done = _bt("lines", trace, env=env)
    _one_line_no_traceback(done.stderr, "lines")
    assert done.returncode == 1, done.stderr
    assert f"TAMPERED at line {k}" in done.stderr


def test_show_of_a_step_a_restamped_index_counts_answers_as_verify(
    tmp_path: Path, env: dict[str, str]
) -> None:
    trace, lines = _recorded(tmp_path, env)
    done = _bt("verify", trace, env=env)  # keeps the index of the undamaged trace
    assert done.returncode == 0, done.stderr
    idx = Path(f"{trace}.idx")
    index = decode_index(idx.read_bytes())
    assert index is not None
    last_step = index.steps - 1
    # an op line near the end no longer reads as one: the same bytes in number,
    # so the index's last line and head still match the file
    k = len(lines) - 12
    assert lines[k - 1].startswith(b'{"pc":')
    lines[k - 1] = b"x" + lines[k - 1][1:]
    trace.write_bytes(b"".join(lines))
    index.stamp = Stamp(FileIdentity.of_stat(trace.stat()), index.stamp.kind)  # the forger's
    idx.write_bytes(encode_index(index))
    status, said = _verify(trace, env)
    assert status == 1 and f"TAMPERED at line {k}" in said, said

    done = _bt("show", trace, str(last_step), env=env)
    _one_line_no_traceback(done.stderr, "show")
    assert done.returncode == 1, done.stderr
    assert "where it is TAMPERED" in done.stderr and f"line {k}" in done.stderr
    assert done.stdout == ""
