"""The first set-up is quiet: ``pip install -e .`` (what ``scripts/dev`` runs) builds the
editable wheel through setuptools' PEP 660 hook, and pip shows every warning that hook
raises to the new user.  Built here by the same hook, on a copy of the checkout, with
every warning shown."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_editable_build_raises_no_warning(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", reason="this venv has no setuptools (pip isolates builds)")
    source = tmp_path / "checkout"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "blocktrace", source / "blocktrace",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    out = tmp_path / "wheel"
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c",
         "import sys; from setuptools import build_meta; "
         "print(build_meta.build_editable(sys.argv[1]))", str(out)],
        cwd=source, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(out.glob("blocktrace-*.editable-*.whl")), done.stdout
    shown = done.stdout + done.stderr
    assert "Warning:" not in shown and "careful with folders" not in shown, shown[-3000:]
