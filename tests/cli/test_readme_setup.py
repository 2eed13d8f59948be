"""The README's set-up text, as a new user follows it on a fresh clone: where the
command lives after the demo, how to install extras from the checkout, what
``scripts/dev test`` runs and how long it takes."""

from __future__ import annotations

import subprocess
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
