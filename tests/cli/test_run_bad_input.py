"""Bad input for ``blocktrace run``: one line on stderr, a non-zero exit, no
traceback, and nothing written over an existing trace."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from blocktrace.chain.verify import verify_file

Runner = Callable[..., subprocess.CompletedProcess[str]]
Check = Callable[[subprocess.CompletedProcess[str]], None]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["no_such_script.py"], "no such file"),
        (["-m", "no_such_module_here"], "no module named"),
        (["-m"], "-m: expected"),
        ([], "nothing to run"),
        (["--gas", "abc", "x.py"], "--gas"),
        (["--gas", "0", "x.py"], "--gas"),
        (["--gas", "-5", "x.py"], "--gas"),
        (["--locals", "maybe", "x.py"], "--locals"),
        (["--globals", "sometimes", "x.py"], "--globals"),
        (["--include", "no/such/path/or_module", "PROGRAM"], "neither an existing path"),
        (["--target", "nocolon", "PROGRAM"], "module:function"),
        (["--no-such-option", "PROGRAM"], "unrecognized"),
    ],
)
def test_bad_arguments(
    args: list[str], says: str, tmp_path: Path, programs: Path,
    blocktrace_cli: Runner, one_line_error: Check,
) -> None:
    args = [str(programs / "behaves.py") if a == "PROGRAM" else a for a in args]
    proc = blocktrace_cli("run", "-o", tmp_path / "t.jsonl", *args, cwd=tmp_path)
    one_line_error(proc)
    assert says in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "t.jsonl").exists()


def test_a_directory_is_not_a_script(
    tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    proc = blocktrace_cli("run", "-o", tmp_path / "t.jsonl", tmp_path)
    one_line_error(proc)
    assert "directory" in proc.stderr


def test_output_is_a_directory_or_unwritable(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    script = programs / "behaves.py"
    one_line_error(blocktrace_cli("run", "-o", tmp_path, script))
    proc = blocktrace_cli("run", "-o", tmp_path / "missing" / "t.jsonl", script)
    one_line_error(proc)
    assert "cannot write" in proc.stderr


def test_existing_trace_is_not_overwritten_without_force(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(b"precious\n")
    proc = blocktrace_cli("run", "-o", trace, programs / "behaves.py")
    one_line_error(proc)
    assert "--force" in proc.stderr
    assert proc.stdout == ""  # the program did not run either
    assert trace.read_bytes() == b"precious\n"

    forced = blocktrace_cli("run", "--force", "-o", trace, programs / "behaves.py")
    assert forced.returncode == 0
    assert verify_file(trace).status == "sealed"


def test_a_package_without_main(
    tmp_path: Path, blocktrace_cli: Runner, python_cli: Runner, one_line_error: Check
) -> None:
    (tmp_path / "pkg_no_main").mkdir()
    (tmp_path / "pkg_no_main" / "__init__.py").write_text("")
    plain = python_cli("-m", "pkg_no_main", cwd=tmp_path)
    traced = blocktrace_cli("run", "-o", "t.jsonl", "-m", "pkg_no_main", cwd=tmp_path)
    assert plain.returncode != 0
    one_line_error(traced)
    assert "cannot be directly executed" in traced.stderr
    assert not (tmp_path / "t.jsonl").exists()
