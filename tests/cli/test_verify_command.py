"""``blocktrace verify``: exit statuses, the human line, ``--json``, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.chain.verify import verify_file
from tests.chain.recording import record_behaves

Runner = Callable[..., subprocess.CompletedProcess[str]]
Check = Callable[[subprocess.CompletedProcess[str]], None]
_decode = msgspec.json.Decoder(dict[str, Any]).decode


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_behaves(tmp_path_factory.mktemp("verify") / "sealed.jsonl", "--genesis", "g-1")


def _head(trace: Path) -> str:
    head = _decode(trace.read_bytes().splitlines()[-1])["hash"]
    assert isinstance(head, str)
    return head


def test_sealed(sealed: Path, blocktrace_cli: Runner) -> None:
    proc = blocktrace_cli("verify", sealed)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert "valid and sealed" in proc.stdout and _head(sealed) in proc.stdout
    anchored = blocktrace_cli("verify", "--head", _head(sealed), "--genesis", "g-1", sealed)
    assert anchored.returncode == 0


def test_json_shape_sealed(sealed: Path, blocktrace_cli: Runner) -> None:
    proc = blocktrace_cli("verify", "--json", sealed)
    assert proc.returncode == 0
    out = _decode(proc.stdout)
    assert proc.stdout.count("\n") == 1
    assert out["file"] == str(sealed)
    assert out["status"] == "sealed" and out["valid"] is True
    assert out["lines"] == len(sealed.read_bytes().splitlines())
    assert out["head"] == _head(sealed)
    assert out["genesis"] == "g-1"
    assert out["summary"]["pass"] is True and out["summary"]["output"] == "0"
    assert "hash" not in out["summary"]
    assert "reason" not in out and "line" not in out


def test_tampered_exit_1(sealed: Path, tmp_path: Path, blocktrace_cli: Runner) -> None:
    lines = sealed.read_bytes().splitlines(keepends=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(lines[:4] + lines[5:]))
    proc = blocktrace_cli("verify", bad)
    assert proc.returncode == 1
    assert "TAMPERED at line 5" in proc.stdout
    out = _decode(blocktrace_cli("verify", "--json", bad).stdout)
    assert out["status"] == "tampered" and out["valid"] is False and out["line"] == 5
    assert out["reason"]
    wrong_head = blocktrace_cli("verify", "--head", "0" * 64, sealed)
    assert wrong_head.returncode == 1
    wrong_genesis = blocktrace_cli("verify", "--genesis", "g-2", sealed)
    assert wrong_genesis.returncode == 1


def test_unsealed_exit_3(sealed: Path, tmp_path: Path, blocktrace_cli: Runner) -> None:
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(sealed.read_bytes().splitlines(keepends=True)[:-1]))
    proc = blocktrace_cli("verify", cut)
    assert proc.returncode == 3
    assert "UNSEALED" in proc.stdout
    out = _decode(blocktrace_cli("verify", "--json", cut).stdout)
    assert out["status"] == "unsealed" and out["valid"] is False
    assert "summary" not in out


@pytest.mark.parametrize(
    "content",
    [
        None,  # missing
        b"",  # empty
        b"not json at all\n",
        b'{"name": "another JSON file", "version": 3}\n',
        b"[1, 2, 3]\n",
        b"\x00\xff\xfe binary\n\x01",
        b'{"blocktrace":99,"hashAlg":"sha256","hash":"' + b"0" * 64 + b'"}\n',
        b'{"blocktrace":1,"hashAlg":"md5","hash":"' + b"0" * 64 + b'"}\n',
    ],
)
def test_unusable_input_exit_2_one_line(
    content: bytes | None, tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    path = tmp_path / "input.jsonl"
    if content is not None:
        path.write_bytes(content)
    proc = blocktrace_cli("verify", path)
    assert proc.returncode == 2
    one_line_error(proc)
    assert str(path) in proc.stderr
    assert proc.stdout == ""
    if content in (None, b"[1, 2, 3]\n"):
        out = _decode(blocktrace_cli("verify", "--json", path).stdout)
        assert out["status"] == "unusable" and out["valid"] is False and out["reason"]
    assert verify_file(path).status == "unusable"


def test_a_directory_is_unusable(
    tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    proc = blocktrace_cli("verify", tmp_path)
    assert proc.returncode == 2
    one_line_error(proc)
    assert "directory" in proc.stderr


def test_usage_errors(blocktrace_cli: Runner, one_line_error: Check) -> None:
    one_line_error(blocktrace_cli("verify"))
    one_line_error(blocktrace_cli("verify", "--bogus", "x"))


def test_killed_mid_run_leaves_an_unsealed_trace(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner
) -> None:
    """SIGKILL a traced endless loop once it has flushed a good part of its trace:
    the complete lines check, the file says unsealed, never valid."""
    trace = tmp_path / "killed.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-m", "blocktrace", "run", "--gas", "1000000", "-o", str(trace),
         str(programs / "endless.py")],  # the budget bounds the file if the kill is late
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if trace.exists() and trace.stat().st_size > 300_000:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the traced program wrote too little")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL
    proc = blocktrace_cli("verify", "--json", trace)
    assert proc.returncode == 3, proc.stdout
    out = _decode(proc.stdout)
    assert out["status"] == "unsealed"
    assert out["lines"] > 1000
    # Every complete line is there up to the reported head.
    lines = trace.read_bytes().split(b"\n")
    assert _decode(lines[out["lines"] - 1])["hash"] == out["head"]


@pytest.mark.parametrize("head", ["zzz", "", "0" * 63, "g" * 64, "0" * 65])
def test_a_head_that_is_not_64_hex_digits_is_a_usage_error(
    head: str, sealed: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    proc = blocktrace_cli("verify", "--head", head, sealed)
    assert proc.returncode == 2 and proc.stdout == ""
    one_line_error(proc)
    assert "64 hex digits" in proc.stderr
    # a head in capitals, with spaces around it (pasted), is still the head
    assert blocktrace_cli("verify", "--head", f" {_head(sealed).upper()}\n", sealed).returncode == 0


def test_help_lists_every_exit_status(blocktrace_cli: Runner) -> None:
    listing = blocktrace_cli("--help").stdout
    assert "checkpoint rejected (4)" in " ".join(listing.split())
    assert "4 checkpoint rejected" in " ".join(blocktrace_cli("verify", "--help").stdout.split())


def test_verify_counts_steps_as_diff_and_show_do(tmp_path: Path, blocktrace_cli: Runner) -> None:
    # An exception passing up out of a callee into a caller that catches it gets a line in the
    # caller after the callee's return: a step of its own as diff, show and view number steps
    # (docs/FORMAT.md), an instruction of none (gasUsed). verify said the instructions as steps.
    (tmp_path / "exc.py").write_text(
        "def callee():\n    raise ValueError('x')\n\n"
        "def caller():\n    try:\n        callee()\n    except ValueError:\n        return 1\n\n"
        "caller()\n"
    )
    trace = tmp_path / "e.jsonl"
    assert blocktrace_cli("run", "-o", trace, tmp_path / "exc.py").returncode == 0
    summary = _decode(trace.read_bytes().splitlines()[-1])
    instructions = int(summary["gasUsed"], 16)
    diff = blocktrace_cli("diff", trace, trace)
    steps = int(diff.stdout.split(" steps", 1)[0].rsplit(" ", 1)[1])
    assert steps == instructions + 1, diff.stdout  # the caller's exception line
    show = blocktrace_cli("show", trace, str(steps))
    assert f"the trace has {steps} steps" in show.stderr, show.stderr
    for args in ((), ("--no-index",)):
        done = blocktrace_cli("verify", trace, *args)
        assert done.returncode == 0, done.stderr
        counted = (f"run passed, {steps} steps ({instructions} instructions);" if not args
                   else f"run passed, {instructions} instructions;")
        assert counted in done.stdout, done.stdout
        assert f"{instructions} steps" not in done.stdout


_STOPPED = {
    "OutOfGas": ("--gas", "150"),
    "TraceSizeLimit": ("--max-size", "16K"),
    "KeyboardInterrupt": (),
    "unsealed": (),
    "the whole run": (),
}


@pytest.mark.parametrize("how", list(_STOPPED))
def test_verify_json_says_where_a_trace_stopped_as_show_and_diff_count(
    how: str, tmp_path: Path, blocktrace_cli: Runner
) -> None:
    """``verify --json`` carries ``steps`` and, for a trace that stopped before
    its program's end, ``stoppedAtStep``: the number ``show`` gives ("the trace
    has N steps") and ``diff`` counts (it had only the summary's ``step``, an
    instruction count, and ``gasUsed``)."""
    program = tmp_path / "prog.py"
    program.write_text(
        "import os, signal, sys\n"
        "def f(i):\n    try:\n        return 10 // (i % 3)\n    except ZeroDivisionError:\n"
        "        return 0\n"
        "t = sum(f(i) for i in range(120))\n"
        "if sys.argv[1:] == ['int']:\n    os.kill(os.getpid(), signal.SIGINT)\n"
        "t += sum(f(i) for i in range(5))\n"
    )
    trace = tmp_path / "t.jsonl"
    blocktrace_cli("run", *_STOPPED[how], "-o", trace, program,
                   *(["int"] if how == "KeyboardInterrupt" else []))
    if how == "unsealed":
        lines = trace.read_bytes().splitlines(keepends=True)
        trace.write_bytes(b"".join(lines[: len(lines) // 2]))
    summary = _decode(trace.read_bytes().splitlines()[-1])
    if how not in ("unsealed", "the whole run"):
        assert summary.get("error") == how, summary
    proc = blocktrace_cli("verify", "--json", trace)
    out = _decode(proc.stdout)
    assert out["status"] == ("unsealed" if how == "unsealed" else "sealed"), out
    steps = out["steps"]
    assert out.get("stoppedAtStep") == (None if how == "the whole run" else steps), out
    show = blocktrace_cli("show", trace, str(steps))
    assert f"no step {steps} (the trace has {steps} steps" in show.stderr, show.stderr
    assert blocktrace_cli("show", trace, str(steps - 1)).returncode == 0
    diff = blocktrace_cli("diff", trace, trace)
    assert f"t.jsonl (blocktrace, Python {sys.version.split()[0]}, {steps} steps" in diff.stdout
    if how == "TraceSizeLimit":  # the human line says the same step
        assert f"recording stopped at step {steps} " in blocktrace_cli("verify", trace).stdout
    assert "steps" not in _decode(blocktrace_cli("verify", "--json", "--no-index", trace).stdout)
