"""A newcomer's first mistakes on the command line: a misspelt command, a script given
without ``run``, a misspelt option. Each is one line on stderr, exit 2, naming the command
and what was probably meant -- the real command in a subprocess."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

Runner = Callable[..., CompletedProcess[str]]
Check = Callable[[CompletedProcess[str]], None]


@pytest.mark.parametrize(("args", "said"), [
    (["rnu", "prog.py"], "blocktrace: unknown command 'rnu'; did you mean 'run'? (see --help)"),
    (["veriyf", "t.jsonl"],
     "blocktrace: unknown command 'veriyf'; did you mean 'verify'? (see --help)"),
    (["prog.py"],
     "blocktrace: unknown command 'prog.py'; to trace it: blocktrace run prog.py (see --help)"),
    (["run", "--levl", "op", "prog.py"],
     "blocktrace run: unrecognized arguments: --levl; did you mean '--level'? (see --help)"),
    (["verify", "t.jsonl", "--hea", "00"],
     "blocktrace verify: unrecognized arguments: --hea 00; did you mean '--head'? (see --help)"),
    (["diff", "a.jsonl", "b.jsonl", "--jsno"],
     "blocktrace diff: unrecognized arguments: --jsno; did you mean '--json'? (see --help)"),
])
def test_a_mistake_names_the_command_and_what_was_meant(
    args: list[str], said: str, tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    (tmp_path / "prog.py").write_text("print('ran')\n")
    proc = blocktrace_cli(*args, cwd=tmp_path)
    one_line_error(proc)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == said + "\n"


def test_an_unknown_command_far_from_any_lists_them(
    blocktrace_cli: Runner, one_line_error: Check
) -> None:
    proc = blocktrace_cli("frobnicate")
    one_line_error(proc)
    assert proc.returncode == 2
    assert proc.stderr.startswith("blocktrace: unknown command 'frobnicate'; the commands: run, "
                                  "verify, show,")
    assert "check-proof" in proc.stderr and "export" in proc.stderr


@pytest.mark.parametrize("args", [
    ["verify", "bad\x1b[31mname\x0b.jsonl"],  # a file name: CliError's line
    ["run", "--lev\x1b[2Jel", "op", "prog.py"],  # an option: argparse's line
])
def test_control_characters_from_the_command_line_are_shown_escaped(
    args: list[str], tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    """Escape sequences in what the user typed (or a script passed on) must not reach
    the terminal raw: they recolour or clear it, and hide the message."""
    proc = blocktrace_cli(*args, cwd=tmp_path)
    one_line_error(proc)
    assert proc.returncode == 2
    assert not any(c < " " and c != "\n" for c in proc.stderr), repr(proc.stderr)
    assert "\\x1b[" in proc.stderr


ROOT = Path(__file__).resolve().parents[2]


def _interpreter(candidates: list[str], check: str) -> str:
    """The first candidate that runs and for which ``check`` exits 0, else skip."""
    import subprocess

    for candidate in candidates:
        try:
            done = subprocess.run([candidate, "-c", check], capture_output=True, timeout=60,
                                  check=False)
        except OSError:
            continue
        if done.returncode == 0:
            return candidate
    pytest.skip(f"no interpreter for this case among {candidates}")


def _in_checkout(python: str, *args: str) -> CompletedProcess[str]:
    """``python -m blocktrace ARGS`` from the checkout, as a newcomer types it there."""
    import subprocess

    return subprocess.run([python, "-m", "blocktrace", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("args", [["run", "examples/fib.py", "3"], ["verify", "x.jsonl"],
                                  ["--help"]])
def test_a_python_blocktrace_was_not_installed_into_is_told_so(
    args: list[str], one_line_error: Check
) -> None:
    """The base interpreter under this venv (no msgspec): it was an ImportError's traceback."""
    import sys

    python = _interpreter([getattr(sys, "_base_executable", "")], "import sys, importlib.util; "
                          "sys.exit(importlib.util.find_spec('msgspec') is not None)")
    proc = _in_checkout(python, *args)
    one_line_error(proc)
    assert proc.returncode == 2
    assert "msgspec is not installed in this Python" in proc.stderr
    assert "README" in proc.stderr


def test_python_3_11_is_told_what_is_needed(one_line_error: Check) -> None:
    """``python3 -m blocktrace`` in a checkout where python3 is 3.11 (pyenv's global here)."""
    import glob
    import os
    import shutil

    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = [shutil.which("python3.11") or "", shutil.which("python3") or "",
             *sorted(glob.glob(os.path.join(pyenv, "versions", "3.11*", "bin", "python3")))]
    python = _interpreter([f for f in found if f],
                          "import sys; sys.exit(sys.version_info[:2] != (3, 11))")
    proc = _in_checkout(python, "run", "examples/fib.py", "3")
    one_line_error(proc)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("blocktrace: needs CPython 3.12 or newer")
