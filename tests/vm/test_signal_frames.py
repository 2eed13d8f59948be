"""A signal handler gets the program's frame under tracing, in every mode
(issue 11, item 5): ``blocktrace run`` of a program whose SIGALRM handler looks
at the frame it is given, against plain python.  Real processes."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests.vm.processes import run_in_mode

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer here")

PROGRAM = """\
import json, signal, sys, time
seen = []

def on_alarm(signum, frame):
    seen.append([frame.f_code.co_name, frame.f_code.co_filename == __file__])

def spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x

signal.signal(signal.SIGALRM, on_alarm)
assert signal.getsignal(signal.SIGALRM) is on_alarm
for _ in range(int(sys.argv[1])):
    signal.setitimer(signal.ITIMER_REAL, 0.002)
    spin(0.02)
    signal.setitimer(signal.ITIMER_REAL, 0)
print(json.dumps(seen))
"""


def _frames(argv: list[str], cwd: Path, pure: bool) -> list[list[object]]:
    return json.loads(run_in_mode(argv, cwd, pure).splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("values", ["off", "on"])
@pytest.mark.parametrize("pure", [False, True], ids=["c", "pure"])
def test_a_signal_handler_gets_the_programs_frame(tmp_path: Path, values: str, pure: bool) -> None:
    script = tmp_path / "alarm.py"
    script.write_text(PROGRAM)
    plain = _frames([sys.executable, str(script), "3"], tmp_path, pure)
    assert plain and all(own for _, own in plain)
    traced = _frames(
        [sys.executable, "-m", "blocktrace", "run", "-o", str(tmp_path / "t.jsonl"),
         "--locals", values, "--globals", values, "--gas", str(2**40), str(script), "8"],
        tmp_path, pure,
    )
    assert traced, "the alarm never fired"
    assert all(own for _, own in traced), traced  # never blocktrace's frame
    assert {name for name, _ in traced} <= {"spin", "<module>"}
