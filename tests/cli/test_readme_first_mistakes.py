"""What a new user types wrong in the first hour, after reading the README: a command half
given, a script without ``run``, a misspelt command, nothing on stdin. Each is one line on
stderr naming the command and what to give, exit 2, never a traceback, and nothing waits
for input that will not come."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (arguments, text the one line must hold)
MISTAKES = [
    ([], "required: COMMAND"),
    (["examples/fib.py"], "to trace it: blocktrace run examples/fib.py"),
    (["verfy", "fib.trace.jsonl"], "did you mean 'verify'?"),
    (["run"], "nothing to run: give a script (or -m MODULE)"),
    (["run", "fib.py"], "fib.py: no such file"),
    (["show", "fib.trace.jsonl"], "required: STEP[:COUNT]"),
    (["show", "fib.trace.jsonl", "99999"], "no step 99999 (the trace has"),
    (["diff", "fib.trace.jsonl"], "required: B"),
    (["query", "fib.trace.jsonl"], "required: SQL"),
    (["export", "fib.trace.jsonl", "--to", "perfetto"], "--to: expected 2 arguments"),
    (["replay", "fib.trace.jsonl"], "no inputs recorded (record with blocktrace run "
                                    "--record-inputs)"),
    (["snapshot"], "no request on stdin: give a SCRIPT, or a JSON request"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("first-hour")
    (work / "examples").mkdir()
    (work / "examples" / "fib.py").write_bytes((ROOT / "examples" / "fib.py").read_bytes())
    done = subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", "fib.trace.jsonl",
                           "examples/fib.py", "3"], cwd=work, capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return work


@pytest.mark.parametrize(("args", "says"), MISTAKES, ids=[" ".join(m[0]) or "-" for m in MISTAKES])
def test_a_first_mistake_is_one_line(work: Path, args: list[str], says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "blocktrace", *args], cwd=work,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("blocktrace"), lines[0]
    assert says in lines[0], lines[0]
    assert not done.stdout
