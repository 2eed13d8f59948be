"""The checkpoints a run writes cover the whole version 3 trace, summary included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from blocktrace.chain.checkpoint import Checkpoint
from blocktrace.chain.proof import TraceFile


def _bt(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_the_last_periodic_checkpoint_covers_the_outcome(tmp_path: Path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("t = 0\nfor i in range(200):\n    t += i\nprint(t)\n")
    trace = tmp_path / "t.jsonl"
    done = _bt("run", "-o", trace, "--checkpoint-every", "64", prog)
    assert done.returncode == 0, done.stderr
    whole = TraceFile(trace)
    assert whole.sealed and whole.outcome_in_tree
    assert whole.tree_lines == len(trace.read_bytes().splitlines())  # the summary too
    last = Path(f"{trace}.cp.{whole.tree_size}")
    assert last.exists(), sorted(p.name for p in tmp_path.iterdir())
    cp = Checkpoint.parse(last.read_text())
    assert (cp.size, cp.root) == (whole.tree_size, whole.root())
    out = _bt("verify", trace, "--checkpoint", last)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the run's outcome (the summary line) is covered" in out.stdout
    earlier = min(tmp_path.glob("t.jsonl.cp.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    assert earlier != last
    out = _bt("verify", trace, "--checkpoint", earlier)
    assert out.returncode == 0 and "the outcome is not covered" in out.stdout
