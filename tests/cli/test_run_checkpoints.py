"""`blocktrace run --checkpoint-every/--checkpoint-seconds/--sign-key`: checkpoints written
while the run goes on, each verifiable against the finished trace, the later trace provably
extending every earlier one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

ROOT = Path(__file__).resolve().parents[2]
FIB = ROOT / "examples" / "fib.py"


def blocktrace(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def _size(path: Path) -> int:
    return int(path.name.rsplit(".", 1)[1])


def test_signed_checkpoints_during_a_run_verify_and_chain(tmp_path: Path) -> None:
    assert blocktrace("keygen", "example.com/ci", "--out", "ci", cwd=tmp_path).returncode == 0
    run = blocktrace("run", "-o", "f.jsonl", "--checkpoint-every", "200", "--sign-key",
                     "ci.key", FIB, "8", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "sum of the first 8 Fibonacci numbers: 33" in run.stdout
    checkpoints = sorted(tmp_path.glob("f.jsonl.cp.*"), key=_size)
    # every 200 lines -> every 13 leaves of 16 lines, plus one at the seal
    sizes = [_size(p) for p in checkpoints]
    assert len(sizes) >= 5 and sizes[:3] == [13, 26, 39], sizes
    last = checkpoints[-1]
    ok = blocktrace("verify", "f.jsonl", "--checkpoint", last, "--pubkey", "ci.pub", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "matches the whole tree" in ok.stdout
    for earlier in checkpoints[:-1]:
        since = blocktrace("verify", "f.jsonl", "--since", earlier, "--pubkey", "ci.pub",
                           cwd=tmp_path)
        assert since.returncode == 0, since.stdout + since.stderr
        assert "extends the earlier checkpoint" in since.stdout


def test_unsigned_checkpoints_by_time(tmp_path: Path) -> None:
    run = blocktrace("run", "-o", "g.jsonl", "--checkpoint-seconds", "0.001", FIB, "12",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    checkpoints = list(tmp_path.glob("g.jsonl.cp.*"))
    assert len(checkpoints) >= 2  # at least one while running and the last one
    text = max(checkpoints, key=_size).read_text()
    assert text.startswith("blocktrace/trace/")  # a checkpoint body, unsigned


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sign-key", "ci.key"], "--checkpoint-every"),
        (["--checkpoint-every", "10", "--sign-key", "missing.key"], "missing.key"),
        (["--checkpoint-every", "0"], "must be positive"),
        (["--checkpoint-seconds", "soon"], "not a number"),
    ],
)
def test_bad_checkpoint_options_are_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = blocktrace("run", "-o", "h.jsonl", *args, FIB, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "h.jsonl").exists()
