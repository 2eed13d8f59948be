"""A program's signal handler that raises while the trace's bytes are being
handed to the file must not break the chain.

An exception raised between a buffer handed on and the line writer's note of it
made the writer hand that buffer on again: the trace showed a few hundred lines
twice and verified as tampered (found by tests/cli/test_run_like_python.py's
alarm test failing about one run in four after ``--max-size`` put a Python
function on the write path).  Many short alarms make the handler land there in
every case of this test before the fix (measured: 4 of 4 failed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from blocktrace.chain.verify import verify_file
from blocktrace.format.compressed import zstd_available
from tests.conftest import Runner

PROGRAM = '''
import signal
import sys

class Timeout(Exception):
    pass

def on_alarm(signum, frame):
    raise Timeout("too slow")

def spin():
    n = 0
    while n < 20_000_000:  # an alarm that never came ends the run (and fails the test)
        n += 1

signal.signal(signal.SIGALRM, on_alarm)
caught = 0
for _ in range(int(sys.argv[1])):
    try:  # set inside: an alarm that comes before spin() (a loaded machine) is caught too
        signal.setitimer(signal.ITIMER_REAL, 0.002)
        spin()
    except Timeout:
        caught += 1
print(caught)
'''

CASES = [(".jsonl", None, 40), (".jsonl", "1G", 40), (".jsonl.zst", None, 40),
         (".jsonl.gz", "1G", 40)]
"""A compressed trace's writer takes a buffer in one step and says so (its
frames are cut, compressed and written by its own thread, where no handler
runs): no signal is put off for it."""


@pytest.mark.parametrize(("suffix", "max_size", "alarms"), CASES)
def test_alarms_raising_while_the_trace_is_written_leave_a_sealed_trace(
    tmp_path: Path, blocktrace_cli: Runner, suffix: str, max_size: str | None, alarms: int
) -> None:
    """``--max-size`` counts bytes in a Python function between the writer and the
    file: when a handler raises there, the file's position says what went in."""
    if suffix == ".jsonl.zst" and not zstd_available():
        pytest.skip("the zstd extra is not installed")
    script = tmp_path / "alarms.py"
    script.write_text(PROGRAM)
    trace = tmp_path / f"t{suffix}"
    limit = ["--max-size", max_size] if max_size else []
    done = blocktrace_cli("run", *limit, "-o", trace, script, str(alarms), timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{alarms}\n", "")
    check = verify_file(trace)
    assert check.status == "sealed", check.reason
