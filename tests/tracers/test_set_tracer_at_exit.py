"""``set_tracer(ChainTracer())`` is all a program needs (issue 17, item 0): the
tracer writes to a default file, setting it starts tracing, and the trace is
sealed at interpreter exit with the program's outcome.  Real interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace.chain.verify import verify_file

PROGRAM = """\
import os, sys
import blocktrace

{setup}

def work(n):
    total = 0
    for i in range(n):
        total += i
    return total

print("result", work(10))
mode = sys.argv[1]
if mode == "exit":
    sys.exit(3)
if mode == "raise":
    raise ValueError("boom")
if mode == "os_exit":
    sys.stdout.flush()
    os._exit(5)
if mode == "caught_exit":
    try:
        sys.exit(4)
    except SystemExit:
        pass
"""

LITERAL = "blocktrace.set_tracer(blocktrace.ChainTracer())"


def _run(tmp_path: Path, mode: str, setup: str = LITERAL) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM.format(setup=setup))
    return subprocess.run(
        [sys.executable, str(script), mode], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )


def _ops(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines() if ln.startswith(b'{"pc":')]


@pytest.mark.parametrize(
    ("mode", "status", "error"),
    [
        ("normal", 0, None),
        ("exit", 3, "SystemExit: 3"),
        ("raise", 1, "ValueError: boom"),
        ("caught_exit", 0, None),
    ],
)
def test_the_literal_usage_records_and_seals_at_exit(
    tmp_path: Path, mode: str, status: int, error: str | None
) -> None:
    proc = _run(tmp_path, mode)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == "result 45\n"
    path = tmp_path / "blocktrace.jsonl"
    assert f"blocktrace: writing the trace to {path}\n" in proc.stderr
    if mode == "raise":
        assert proc.stderr.rstrip().endswith("ValueError: boom")
    result = verify_file(path)
    assert result.status == "sealed", result.reason
    summary = result.summary
    assert summary is not None
    assert summary["output"] == str(status)
    assert summary["pass"] is (error is None)
    assert summary.get("error") == error
    assert len(_ops(path)) > 50  # the loop in work() ran traced
    calls = [ln for ln in path.read_bytes().splitlines() if b'"name":"work"' in ln]
    assert len(calls) == 1


def test_os_exit_leaves_a_trace_that_verifies_unsealed(tmp_path: Path) -> None:
    proc = _run(tmp_path, "os_exit")
    assert proc.returncode == 5 and proc.stdout == "result 45\n"
    result = verify_file(tmp_path / "blocktrace.jsonl")
    assert result.status == "unsealed", result.reason
    assert result.lines >= 1


def test_the_default_file_is_never_overwritten(tmp_path: Path) -> None:
    first = tmp_path / "blocktrace.jsonl"
    first.write_text("precious\n")
    proc = _run(tmp_path, "normal")
    assert first.read_text() == "precious\n"
    second = tmp_path / "blocktrace-1.jsonl"
    assert f"writing the trace to {second}\n" in proc.stderr
    assert verify_file(second).status == "sealed"


def test_set_tracer_then_start_without_stop_seals_at_exit(tmp_path: Path) -> None:
    """The issue's program: ``set_tracer(ChainTracer("t.jsonl")); start()`` and
    no ``stop()`` left the header line only."""
    setup = 'blocktrace.set_tracer(blocktrace.ChainTracer("t.jsonl")); blocktrace.start(gas=10**6)'
    proc = _run(tmp_path, "exit", setup)
    assert proc.returncode == 3
    path = tmp_path / "t.jsonl"
    result = verify_file(path)
    assert result.status == "sealed", result.reason
    assert result.summary is not None and result.summary["output"] == "3"
    assert len(_ops(path)) > 50
    # start() took over from the stepper set_tracer started: one "enter", no doubles
    enters = [ln for ln in path.read_bytes().splitlines() if b'"kind":"enter"' in ln]
    assert len(enters) == 1
    gas = [int(ln.split(b'"gas":"')[1].split(b'"')[0], 16) for ln in _ops(path)[:1]]
    assert gas == [10**6]


def test_setting_discard_stops_what_set_tracer_started(tmp_path: Path) -> None:
    setup = (
        'chain = blocktrace.ChainTracer("t.jsonl")\n'
        "blocktrace.set_tracer(chain)\n"
        "x = sum(range(3))\n"
        "blocktrace.set_tracer(blocktrace.discard_trace)\n"
        "assert chain.sealed and blocktrace.vm.active_stepper() is None"
    )
    proc = _run(tmp_path, "normal", setup)
    assert proc.returncode == 0, proc.stderr
    result = verify_file(tmp_path / "t.jsonl")
    assert result.status == "sealed" and result.summary is not None
    assert result.summary["pass"] is True
