"""``blocktrace diff`` as a user runs it: a real subprocess, exit codes, output."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import lines_of, trace, write_lines


def _diff(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", "diff", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )


def test_same_traces_exit_0() -> None:
    done = _diff(str(trace("geth", "negative_refund")), str(trace("nethermind", "negative_refund")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1].startswith("same: 411 steps")
    assert done.stderr == ""
    assert "\x1b[" not in done.stdout  # piped: no colour


def test_different_traces_exit_1_and_name_the_step(tmp_path: Path) -> None:
    lines = lines_of("geth", "00000936-mixed-1")
    lines[9] = lines[9].replace('"gas":"0x', '"gas":"0x1', 1)
    mutated = write_lines(tmp_path / "m.jsonl", lines)
    done = _diff(str(trace("erigon", "00000936-mixed-1")), str(mutated))
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "first divergence at step 9 (depth 1)" in out
    assert "last common step 8: A line 9, B line 9" in out
    assert "* gas" in out
    assert "@@ hunk 1: -9,1 +9,1 @@" in out
    assert out.rstrip().splitlines()[-1].startswith("different: 1 hunk(s)")


def test_json_output(tmp_path: Path) -> None:
    lines = lines_of("revm", "negative_refund")
    del lines[299]
    mutated = write_lines(tmp_path / "m.jsonl", lines)
    done = _diff("--json", str(trace("besu", "negative_refund")), str(mutated))
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert {"equal", "steps", "firstDivergence", "hunks", "summary"} <= set(report)
    assert report["equal"] is False
    assert report["steps"] == [411, 410]
    first = report["firstDivergence"]
    assert first["step"] == 299
    assert first["a"]["traceLine"] == first["b"]["traceLine"] == 300  # B line 300 was 301
    assert set(first["fields"]) <= {"pc", "op", "gas", "depth", "stack"} and first["fields"]
    assert first["a"]["depth"] == 2  # inside the CREATE2
    assert [(h["aStart"], h["aCount"], h["bCount"]) for h in report["hunks"]] == [(299, 1, 0)]
    assert report["summary"]["equal"] is True
    assert report["inputs"]["b"]["dialect"] == "revm"
    assert report["inputs"]["b"]["noiseLines"] == 14


def test_json_for_equal_traces() -> None:
    done = _diff("--json", str(trace("eels", "statetest1")), str(trace("nimbus", "statetest1")))
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["equal"] is True and report["firstDivergence"] is None
    assert report["hunks"] == [] and report["steps"] == [6, 6]


def test_missing_file_exit_2_one_line(tmp_path: Path) -> None:
    done = _diff(str(tmp_path / "absent.jsonl"), str(trace("geth", "statetest1")))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "absent.jsonl" in done.stderr
    assert "Traceback" not in done.stderr


def test_not_a_trace_exit_2_names_file_and_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n")
    done = _diff(str(trace("geth", "statetest1")), str(text))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"blocktrace diff: {text}:1: not an EIP-3155 trace (no op lines and no summary)")
    bad = write_lines(tmp_path / "bad.jsonl", [*lines_of("geth", "statetest1")[:3],
                                               '{"pc":"zz","op":1,"gas":"0x1"}'])
    done = _diff(str(bad), str(trace("geth", "statetest1")))
    assert done.returncode == 2
    assert f"{bad}:4: `pc` is not a number" in done.stderr
    assert done.stderr.count("\n") == 1
    wrong = write_lines(tmp_path / "wrong.jsonl", ['{"pc":1,"op":1,"gas":"0x1","depth":[1]}'])
    done = _diff(str(wrong), str(trace("geth", "statetest1")))
    assert done.returncode == 2
    assert f"{wrong}:1: not an EIP-3155 line" in done.stderr and "$.depth" in done.stderr


@pytest.mark.parametrize("args", [["--fields", "pc,nonsense"], ["--stack-top", "-1"],
                                  ["--dialect", "parity"], ["--ignore", "pc,op,gas,depth,stack"]])
def test_bad_options_exit_2(args: list[str]) -> None:
    done = _diff(*args, str(trace("geth", "statetest1")), str(trace("besu", "statetest1")))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def _run_in_pty(args: list[str], env: dict[str, str]) -> str:
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "blocktrace", "diff", *args],
                            stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal_without_no_color(tmp_path: Path) -> None:
    lines = lines_of("geth", "statetest1")
    lines[2] = lines[2].replace('"pc":2', '"pc":3')
    mutated = str(write_lines(tmp_path / "m.jsonl", lines))
    base = str(trace("geth", "statetest1"))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\x1b[31m" in _run_in_pty([base, mutated], env)
    assert "\x1b[" not in _run_in_pty([base, mutated], {**env, "NO_COLOR": "1"})


def _revm_inspector_trace(tmp_path: Path, test: str) -> Path:
    """revm's op lines for ``test``, ended as revm's EIP-3155 inspector (pyrevm,
    foundry) ends a trace: one summary line whose ``stateRoot`` is 32 zero bytes,
    a placeholder -- the inspector does not compute the root."""
    ops = [line for line in lines_of("revm", test) if line.startswith('{"pc"')]
    last_gas = int(json.loads(ops[-1])["gas"], 16)
    summary = {"stateRoot": "0x" + "00" * 32, "output": "0x",
               "gasUsed": hex(0x2D1CC4 - last_gas), "pass": True, "fork": "CANCUN"}
    return write_lines(tmp_path / "revm-inspector.jsonl", [*ops, json.dumps(summary)])


def test_a_zero_state_root_is_a_placeholder_not_a_difference(tmp_path: Path) -> None:
    inspector = _revm_inspector_trace(tmp_path, "statetest1")
    done = _diff(str(trace("eels", "statetest1")), str(inspector))
    assert done.returncode == 0, done.stdout
    assert "stateRoot" in done.stdout and "placeholder" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("same: 6 steps")
    report = json.loads(_diff("--json", str(trace("eels", "statetest1")), str(inspector)).stdout)
    assert report["summary"]["differences"] == []
    assert any("all zeros" in note for note in report["summary"]["notes"])
    # a real root that differs is still a difference
    other = [line.replace('"0x' + "00" * 32, '"0x01' + "00" * 31, 1)
             for line in inspector.read_text().splitlines()]
    changed = write_lines(tmp_path / "other-root.jsonl", other)
    done = _diff(str(trace("eels", "statetest1")), str(changed))
    assert done.returncode == 1 and "stateRoot" in done.stdout


def test_revm_normal_halts_are_not_errors() -> None:
    """revm writes ``"error":"Return"`` on the RETURN that ends a frame normally."""
    done = _diff("--fields", "pc,op,error", str(trace("eels", "negative_refund")),
                 str(trace("revm", "negative_refund")))
    assert done.returncode == 1  # the TSTORE fault is worded differently: a real difference
    assert "@@ hunk 1: -408,1 +408,1 @@" in done.stdout and "hunk 2" not in done.stdout
    assert "1 `error` value(s) naming a normal halt" in done.stdout


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_json_keys_are_camel_case_and_versioned(tmp_path: Path) -> None:
    lines = lines_of("geth", "00000936-mixed-1")
    lines[9] = lines[9].replace('"gas":"0x', '"gas":"0x1', 1)
    mutated = write_lines(tmp_path / "m.jsonl", lines)
    done = _diff("--json", str(trace("erigon", "00000936-mixed-1")), str(mutated))
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert next(iter(report)) == "version" and report["version"] == 2
    keys = _keys(report)
    assert not [k for k in keys if "_" in k], keys
    assert {"firstDivergence", "lastCommon", "aLine", "bLine", "aStart", "aCount", "bStart",
            "bCount", "aLines", "bLines", "hunkCount", "byLine", "stackTop"} <= keys
    assert report["firstDivergence"]["lastCommon"] == {"step": 8, "aLine": 9, "bLine": 9}
    # every top-level key is documented in docs/DIFF.md's schema
    schema = (Path(__file__).parents[2] / "docs" / "DIFF.md").read_text()
    undocumented = [key for key in report if f'"{key}"' not in schema]
    assert not undocumented
