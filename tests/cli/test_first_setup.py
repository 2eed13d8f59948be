"""The first set-up is quiet: ``pip install -e .`` (what ``scripts/dev`` runs) builds the
editable wheel through setuptools' PEP 660 hook, and pip shows every warning that hook
raises to the new user.  Built here by the same hook, on a copy of the checkout, with
every warning shown.

pip runs that hook in an isolated build environment holding only what
``[build-system] requires`` names, fetched from the package index: the newest setuptools
that satisfies it, not whatever the test venv has (a venv made by ``python -m venv`` on
3.12+ has none).  So does this test: it installs the requirements into a directory of its
own once per test session (``pip install --target``) and runs the hook with nothing else
on the path (``python -S``, that directory added as a site directory).  Where the index
cannot be reached it uses the test venv's own setuptools, and skips, saying so, only when
there is none."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What pip says when it cannot reach the index (no network, no proxy, no mirror).
UNREACHABLE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Network is unreachable|Connection refused|ProxyError|Could not find a version that "
    r"satisfies the requirement|No matching distribution found")


def _requires() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requires: list[str] = pyproject["build-system"]["requires"]
    return requires


@pytest.fixture(scope="session")
def build_env(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A directory holding ``[build-system] requires`` from the index, as pip's isolated
    build environment does; None when the index cannot be reached but this venv has
    setuptools (the hook then runs on the venv's own)."""
    target = tmp_path_factory.mktemp("build-env")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-input", "--retries", "1", "--timeout", "30", "--target", str(target),
         *_requires()],
        capture_output=True, text=True, timeout=600, check=False)
    if done.returncode == 0:
        return target
    said = done.stdout + done.stderr
    if "No module named pip" not in said and not UNREACHABLE.search(said):
        raise AssertionError(f"pip could not install {_requires()}: {said[-2000:]}")
    if importlib.util.find_spec("setuptools") is None:
        last = said.strip().splitlines()[-1] if said.strip() else "no output"
        pytest.skip(f"the package index cannot be reached for {_requires()} ({last}) and "
                    "this venv has no setuptools")
    return None


def test_the_editable_build_raises_no_warning(tmp_path: Path, build_env: Path | None) -> None:
    source = tmp_path / "checkout"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "blocktrace", source / "blocktrace",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    out = tmp_path / "wheel"
    if build_env is None:  # the venv's setuptools
        command = [sys.executable, "-W", "always", "-c"]
        prelude = "import sys\n"
    else:  # only the build requirements and the standard library, as in pip's build env
        command = [sys.executable, "-S", "-W", "always", "-c"]
        prelude = f"import site, sys\nsite.addsitedir({str(build_env)!r})\n"
    code = prelude + (
        "import setuptools\n"
        "from setuptools import build_meta\n"
        "print('setuptools', setuptools.__version__, 'from', setuptools.__file__)\n"
        "print(build_meta.build_editable(sys.argv[1]))\n")
    done = subprocess.run([*command, code, str(out)], cwd=source, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    if build_env is not None:  # the hook ran on the setuptools the index gave
        assert f"from {build_env}" in done.stdout, done.stdout[:500]
    assert list(out.glob("blocktrace-*.editable-*.whl")), done.stdout
    shown = done.stdout + done.stderr
    assert "Warning:" not in shown and "careful with folders" not in shown, shown[-3000:]
