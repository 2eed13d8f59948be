"""``blocktrace run --max-size`` (issue 13 item 4): past the limit recording
stops, the program runs on to its own end (same output, same exit status), and
the trace is sealed saying why -- never a file cut short.

Real subprocesses, with the C extensions and with BLOCKTRACE_PURE=1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.chain.verify import verify_file
from tests.vm.processes import mode_env

_decode = msgspec.json.Decoder(dict[str, Any]).decode

# Busy enough to write far more than the limits below, with output after the
# point where recording stops, and an exit status of its own.
PROGRAM = """\
import sys

def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

print("start", flush=True)
print("total", work(int(sys.argv[1])))
print("end")
sys.exit(int(sys.argv[2]))
"""

_MODES = ["C", "pure"]


def _run(argv: list[str], tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=180,
                          env=mode_env(mode == "pure"), check=False)


def _blocktrace(tmp_path: Path, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "blocktrace", *args], tmp_path, mode)


def _lines(trace: Path) -> list[dict[str, Any]]:
    return [_decode(line) for line in trace.read_bytes().splitlines()]


@pytest.mark.parametrize("mode", _MODES)
def test_past_the_limit_the_program_runs_on_and_the_trace_is_sealed(tmp_path: Path,
                                                                    mode: str) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    python = _run([sys.executable, "prog.py", "20000", "3"], tmp_path, mode)
    trace = tmp_path / "t.jsonl"
    traced = _blocktrace(tmp_path, mode, "run", "--max-size", "64K", "-o", str(trace),
                         "prog.py", "20000", "3")
    assert python.returncode == traced.returncode == 3
    total = sum(i * i for i in range(20000))
    assert traced.stdout == python.stdout == f"start\ntotal {total}\nend\n"
    assert "blocktrace run: the trace reached --max-size 64 KiB after " in traced.stderr
    assert "recording stopped, the program ran on" in traced.stderr

    size = trace.stat().st_size
    lines = _lines(trace)
    summary = lines[-1]
    assert summary["error"] == "TraceSizeLimit"
    assert summary["pass"] is False
    assert summary["output"] == "3"  # the program's own exit status
    assert summary["maxSize"] == 64 * 1024
    ops = [line for line in lines if "pc" in line and "event" not in line]
    assert summary["step"] == len(ops)  # op lines recorded: the step recording stopped at
    assert int(summary["gasUsed"], 16) > len(ops)  # the program went on: every instruction counted
    # within the limit but for the last line written and the summary
    assert size - len(trace.read_bytes().splitlines(keepends=True)[-1]) <= 64 * 1024 + 1024
    assert size > 32 * 1024  # most of the room was used

    result = verify_file(trace)
    assert result.status == "sealed", result.reason
    check = _blocktrace(tmp_path, mode, "verify", str(trace))
    assert check.returncode == 0, check.stderr
    assert "valid and sealed" in check.stdout and "TraceSizeLimit" in check.stdout
    # The recording stopped, not the run: verify does not call it failed.
    assert "run failed" not in check.stdout, check.stdout
    assert (f"recording stopped at step {summary['step']} (TraceSizeLimit: the trace reached "
            f"its size limit, {64 * 1024} bytes); the run went on to its end: "
            f"{int(summary['gasUsed'], 16)} instructions, output '3'") in check.stdout, check.stdout


# Exceptions passing up from inner() through middle() before the limit: each is a step
# of its own in middle() as show, diff and view number steps, executing no instruction.
RAISING = """\
def inner(i):
    raise ValueError(i)

def middle(i):
    return inner(i)

def work(n):
    caught = 0
    for i in range(n):
        try:
            middle(i)
        except ValueError:
            caught += 1
    return caught

print(work(5000))
"""


@pytest.mark.parametrize("level", ["op", "call"])
def test_where_recording_stopped_is_counted_as_show_counts_steps(tmp_path: Path,
                                                                 level: str) -> None:
    """The summary's ``step`` counts instructions; verify says where recording stopped
    in the steps show, diff and view number (0-based: the trace holds steps 0 to N-1),
    with the instructions beside where they differ -- or, with no op lines to number
    (call level), in instructions, saying so."""
    (tmp_path / "prog.py").write_text(RAISING)
    trace = tmp_path / "t.jsonl"
    traced = _blocktrace(tmp_path, "C", "run", "--level", level, "--max-size", "64K",
                         "-o", str(trace), "prog.py")
    assert traced.returncode == 0 and traced.stdout == "5000\n", traced.stderr
    summary = _lines(trace)[-1]
    instructions = summary["step"]
    assert summary["error"] == "TraceSizeLimit" and instructions > 0
    assert (f"the trace reached --max-size 64 KiB after {instructions} instructions: "
            "recording stopped") in traced.stderr
    check = _blocktrace(tmp_path, "C", "verify", str(trace))
    assert check.returncode == 0 and "valid and sealed" in check.stdout, check.stderr
    if level == "call":
        assert f"recording stopped after {instructions} instructions (TraceSizeLimit" \
            in check.stdout, check.stdout
        return
    steps = verify_file(trace, keep_index=True).index
    assert steps is not None
    assert steps.steps > instructions  # the exceptions passing up are steps, not instructions
    assert (f"recording stopped at step {steps.steps}, after {instructions} instructions "
            "(TraceSizeLimit: the trace reached its size limit") in check.stdout, check.stdout
    # show numbers the same steps: the last one recorded is N-1, and there is no step N
    assert _blocktrace(tmp_path, "C", "show", str(trace), str(steps.steps - 1)).returncode == 0
    past = _blocktrace(tmp_path, "C", "show", str(trace), str(steps.steps))
    assert past.returncode == 2 and f"no step {steps.steps} " in past.stderr, past.stderr
    # --no-index: verify has no steps to count, and says instructions
    bare = _blocktrace(tmp_path, "C", "verify", "--no-index", str(trace))
    assert f"recording stopped after {instructions} instructions (TraceSizeLimit" in bare.stdout


@pytest.mark.parametrize("mode", _MODES)
def test_a_run_within_the_limit_is_untouched(tmp_path: Path, mode: str) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    trace = tmp_path / "t.jsonl"
    traced = _blocktrace(tmp_path, mode, "run", "--max-size", "1M", "-o", str(trace),
                         "prog.py", "10", "0")
    assert traced.returncode == 0, traced.stderr
    assert traced.stderr == ""
    summary = _lines(trace)[-1]
    assert summary["pass"] is True and "error" not in summary and "maxSize" not in summary
    assert verify_file(trace).status == "sealed"


@pytest.mark.parametrize(("text", "problem"), [
    ("0", "must be positive"), ("-5", "not a size"), ("1X", "not a size"),
    ("", "not a size"), ("1.5M", "not a size"), ("K", "not a size"),
])
def test_a_bad_size_is_one_line_and_exit_2(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    proc = _blocktrace(tmp_path, "C", "run", f"--max-size={text}", "prog.py", "1", "0")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and problem in proc.stderr and "--max-size" in proc.stderr
    assert not (tmp_path / "prog.trace.jsonl").exists()


def test_sizes_take_k_m_g_suffixes() -> None:
    from blocktrace.cli import byte_size

    assert byte_size("100") == 100
    assert byte_size("4K") == byte_size("4k") == 4096
    assert byte_size("2M") == 2 << 20
    assert byte_size("1G") == 1 << 30


@pytest.mark.parametrize("mode", _MODES)
def test_chain_tracer_max_size_in_a_program(tmp_path: Path, mode: str) -> None:
    """The library: ``ChainTracer(max_size=)`` under ``blocktrace.trace``."""
    (tmp_path / "lib.py").write_text(
        "import blocktrace\n"
        "tracer = blocktrace.ChainTracer('lib.jsonl', max_size=20_000)\n"
        "with blocktrace.trace(tracer):\n"
        "    total = 0\n"
        "    for i in range(20000):\n"
        "        total += i\n"
        "print(total, tracer.size_limited)\n")
    proc = _run([sys.executable, "lib.py"], tmp_path, mode)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{sum(range(20000))} True\n"
    summary = _lines(tmp_path / "lib.jsonl")[-1]
    assert summary["error"] == "TraceSizeLimit" and summary["maxSize"] == 20_000
    assert verify_file(tmp_path / "lib.jsonl").status == "sealed"


@pytest.mark.parametrize("mode", _MODES)
def test_trace_max_size_in_a_program(tmp_path: Path, mode: str) -> None:
    """The library: ``blocktrace.trace(tracer, max_size=)``; a tracer that
    writes no trace is refused."""
    (tmp_path / "lib.py").write_text(
        "import blocktrace\n"
        "tracer = blocktrace.ChainTracer('lib.jsonl')\n"
        "with blocktrace.trace(tracer, max_size=8192):\n"
        "    total = 0\n"
        "    for i in range(5000):\n"
        "        total += i\n"
        "print(total, tracer.size_limited, tracer.limit_step)\n"
        "try:\n"
        "    with blocktrace.trace(blocktrace.Recorder(), max_size=10):\n"
        "        pass\n"
        "except TypeError as exc:\n"
        "    print(exc)\n")
    proc = _run([sys.executable, "lib.py"], tmp_path, mode)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    summary = _lines(tmp_path / "lib.jsonl")[-1]
    assert out[0] == f"{sum(range(5000))} True {summary['step']}"
    assert out[1] == "max_size needs a tracer that writes a trace (a ChainTracer), not Recorder"
    assert summary["error"] == "TraceSizeLimit" and summary["maxSize"] == 8192
    assert summary["step"] > 0
    # set after the tracer was made: the limit is met a write buffer (64 KiB) at a time
    assert 8192 <= (tmp_path / "lib.jsonl").stat().st_size < 8192 + 65536 + 1024
    assert verify_file(tmp_path / "lib.jsonl").status == "sealed"
