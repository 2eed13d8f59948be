"""The suite keeps ``query``'s and the viewer's caches in its own temporary
directory (tests/conftest.py), not in the user's ``~/.cache/blocktrace``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_the_commands_the_tests_run_cache_in_the_session_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    code = ("from blocktrace.query.dataset import cache_dir\n"
            "from blocktrace.view.tables import cache_root\n"
            "print(cache_dir()); print(cache_root())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    base = tmp_path_factory.getbasetemp()
    for where in done.stdout.split():
        assert Path(where).is_relative_to(base), (where, base)
