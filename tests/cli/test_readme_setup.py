"""The README's set-up text, as a new user follows it on a fresh clone: where the
command lives after the demo, how to install extras from the checkout, what
``scripts/dev test`` runs and how long it takes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setup_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("## Set up"):readme.index("## Record")]


def test_readme_says_where_blocktrace_lives_after_the_demo() -> None:
    setup = _setup_section()
    assert ".venv-3.X/bin/blocktrace" in setup
    assert ". .venv-3.13/bin/activate" in setup


def test_the_demo_ends_with_the_activate_line() -> None:
    script = (ROOT / "scripts" / "dev").read_text()
    demo = script[script.index("demo() {"):script.index("run_tests() {")]
    assert 'say "  . $bin/activate' in demo and "$bin/blocktrace --help" in demo
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "dev")], check=False,
                          timeout=120).returncode == 0


def test_readme_installs_extras_from_the_checkout() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[server]'" in _setup_section()
    assert "pip install 'blocktrace[server]'; blocktrace serve" not in readme  # PyPI, not here


def test_readme_says_what_scripts_dev_test_runs_and_how_long() -> None:
    setup = _setup_section()
    assert "BLOCKTRACE_PURE=1" in setup and "minutes per Python version" in setup


def _chosen(python: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BLOCKTRACE_PYTHON=python)
    return subprocess.run(["bash", str(ROOT / "scripts" / "dev"), "python"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_demo_uses_blocktrace_python_when_it_is_set(tmp_path: Path) -> None:
    # Not the newest Python found: the one the user named (the README lists it first).
    done = _chosen(sys.executable)
    assert done.returncode == 0, done.stderr
    version, path = done.stdout.split(" ", 1)
    assert version == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert path.strip() == sys.executable
    # One that will not do is said, not passed over for another.
    old = tmp_path / "python3.11"
    old.write_text("#!/bin/sh\nexit 1\n")
    old.chmod(0o755)
    done = _chosen(str(old))
    assert done.returncode == 1 and not done.stdout
    assert done.stderr.strip() == (f"BLOCKTRACE_PYTHON={old} is not a CPython 3.12 or newer "
                                   "(blocktrace is built on sys.monitoring)")
    # One that runs but fails (a pyenv shim of a version not selected) says why.
    shim = tmp_path / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    done = _chosen(str(shim))
    assert done.returncode == 1
    assert done.stderr.strip().endswith("): pyenv: python3.12: command not found"), done.stderr
    done = _chosen(str(tmp_path / "missing"))
    assert done.returncode == 1 and "no such command" in done.stderr


def test_documented_install_commands_install_this_version() -> None:
    """PyPI's blocktrace is the 0.0.16 seed tool: a command block that says
    `pip install 'blocktrace[...]'` installs a package without these commands."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = doc.read_text().split("```")[1::2]
        for line in (line.strip() for block in blocks for line in block.splitlines()):
            if re.match(r"pip install\s+['\"]?blocktrace\b", line):
                raise AssertionError(f"{doc.name}: {line!r} installs PyPI's 0.0.16")
