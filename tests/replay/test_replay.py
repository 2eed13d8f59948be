"""``blocktrace run --record-inputs`` and ``blocktrace replay``, as real subprocesses."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.replay import read_inputs

PROGRAM = '''\
import os, random, sys
name = os.environ.get("GREETING", "hello")
line = sys.stdin.readline().strip()
for word in {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}:
    if word < "c":
        name += "!"
if os.getenv("LOUD"):
    line = line.upper()
print(name, line)
'''
RANDOM = PROGRAM + '''
if random.random() < 0.5:
    print("heads")
'''


def blocktrace(*args: str, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ)
    environ.pop("PYTHONHASHSEED", None)
    environ.update(env or {})
    result = subprocess.run([sys.executable, "-m", "blocktrace", *args], cwd=cwd, input=stdin,
                            capture_output=True, env=environ, timeout=120, check=False)
    return subprocess.CompletedProcess(result.args, result.returncode,
                                       result.stdout.decode(), result.stderr.decode())


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    (tmp_path / "prog.py").write_text(PROGRAM)
    run = blocktrace("run", "--record-inputs", "-o", "t.jsonl", "prog.py", cwd=tmp_path,
                     stdin=b"world\nnot read\n", env={"GREETING": "hi", "LOUD": "1"})
    assert run.returncode == 0, run.stderr
    return tmp_path / "t.jsonl"


def test_inputs_line_says_what_the_run_read(recorded: Path) -> None:
    header, inputs = read_inputs(str(recorded))
    assert inputs is not None
    assert inputs["event"] == "inputs"
    assert header["argv"] == ["prog.py"]
    assert inputs["cwd"] == str(recorded.parent)
    assert inputs["env"] == {"GREETING": "hi", "LOUD": "1"}  # only what it looked up
    assert base64.b64decode(inputs["stdin"]).startswith(b"world\n")
    assert inputs["pythonHashSeed"].isdigit() and inputs["pythonHashSeed"] != "0"
    assert inputs["python"].count(".") == 2 and inputs["options"]["module"] is False
    assert blocktrace("verify", str(recorded), cwd=recorded.parent).returncode == 0


def test_replay_same_behaviour(recorded: Path) -> None:
    # Another environment and no stdin here: replay supplies the recorded ones,
    # and the recorded hash seed (the set of strings is iterated in the same order).
    result = blocktrace("replay", "t.jsonl", cwd=recorded.parent, env={"LOUD": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("same behaviour, ") and result.stdout.endswith(" steps\n")
    assert "changed since the recording" not in result.stderr


def test_replay_reports_the_first_divergence(recorded: Path) -> None:
    prog = recorded.parent / "prog.py"
    prog.write_text(PROGRAM.replace('if os.getenv("LOUD"):', 'if not os.getenv("LOUD"):'))
    result = blocktrace("replay", "t.jsonl", cwd=recorded.parent)
    assert result.returncode == 1
    assert "first divergence at step" in result.stdout
    assert "POP_JUMP_IF" in result.stdout and 'if not os.getenv("LOUD"):' in result.stdout
    # the program was edited after the recording: replay says so, once, on stderr
    assert result.stderr.count("changed since the recording") == 1, result.stderr
    assert "prog.py changed since the recording (its SHA-256 differs)" in result.stderr


def test_a_divergence_with_the_same_code_names_no_changed_file(tmp_path: Path) -> None:
    # The program reads a file the recording does not keep: another run parts
    # ways with the same source, and replay must not blame the source.
    (tmp_path / "prog.py").write_text(
        "with open('data.txt') as f:\n    big = len(f.read()) > 3\n"
        "if big:\n    print('big')\nelse:\n    print('small')\n")
    (tmp_path / "data.txt").write_text("ab")
    run = blocktrace("run", "--record-inputs", "-o", "t.jsonl", "prog.py", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (tmp_path / "data.txt").write_text("abcdef")
    result = blocktrace("replay", "t.jsonl", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "first divergence at step" in result.stdout
    assert "changed since the recording" not in result.stderr, result.stderr


def test_replay_refusals_are_one_line(recorded: Path) -> None:
    here = recorded.parent

    def refused(trace: str, *extra: str, status: int = 2) -> str:
        result = blocktrace("replay", trace, *extra, cwd=here)
        assert result.returncode == status, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        return result.stderr

    plain = blocktrace("run", "-o", "plain.jsonl", "prog.py", cwd=here)
    assert plain.returncode == 0
    assert "no inputs recorded" in refused("plain.jsonl")
    tampered = here / "tampered.jsonl"
    tampered.write_text(recorded.read_text().replace('"GREETING":"hi"', '"GREETING":"ho"'))
    # a trace that fails its check: exit 1, as verify (README's convention)
    assert "tampered.jsonl is TAMPERED at line " in refused("tampered.jsonl", status=1)
    assert "no such file" in refused("missing.jsonl").lower() or "cannot read" in refused(
        "missing.jsonl")
    (here / "prog.py").rename(here / "moved.py")
    assert "the recorded program prog.py is missing" in refused("t.jsonl")


def test_other_python_version_is_refused_unless_by_line(tmp_path: Path) -> None:
    import blocktrace as bt

    (tmp_path / "prog.py").write_text("x = 1\n")
    path = tmp_path / "old.jsonl"
    tracer = bt.ChainTracer(path, argv=["prog.py"])
    tracer.write_event("inputs", {"python": "3.9.0", "cwd": str(tmp_path), "env": {},
                                  "stdin": "", "pythonHashSeed": "1", "options": {}})
    tracer.close("0", None)
    result = blocktrace("replay", "old.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert "recorded on Python 3.9.0" in result.stderr and "--by-line" in result.stderr
    by_line = blocktrace("replay", "--by-line", "old.jsonl", cwd=tmp_path)
    assert "recorded on Python" not in by_line.stderr


def test_deterministic_fixes_random_and_hash_seed(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(RANDOM)
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        run = blocktrace("run", "--deterministic", "--record-inputs", "-o", name, "prog.py",
                         cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        outs.append(run.stdout)
        _, inputs = read_inputs(str(tmp_path / name))
        assert inputs is not None
        assert (inputs["pythonHashSeed"], inputs["randomSeed"]) == ("0", 0)
    assert outs[0] == outs[1]
    assert blocktrace("diff", "a.jsonl", "b.jsonl", cwd=tmp_path).returncode == 0
    decoded: Any = msgspec.json.decode((tmp_path / "a.jsonl").read_bytes().splitlines()[0])
    assert decoded["argv"] == ["prog.py"]
