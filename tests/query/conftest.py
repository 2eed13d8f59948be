"""Fixtures of the query tests: real traces recorded by the real command, a private cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT, Runner, record

pytest.importorskip("duckdb", reason="the query extra is not installed (pip install '.[query]')")
pytest.importorskip("pyarrow", reason="the query extra is not installed (pip install '.[query]')")


@pytest.fixture(scope="session")
def blocktrace_cli() -> Runner:
    """The real command in a subprocess, as tests/conftest.py's, with room for a loaded
    machine (importing DuckDB and pyarrow, exporting into the cache)."""

    def run(*args: str | Path, cwd: Path | str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "blocktrace", *map(str, args)], cwd=cwd, input="",
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    return run


@pytest.fixture(autouse=True)
def private_cache(
     tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's query cache is its own (the subprocesses inherit it)."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BLOCKTRACE_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def queried(
    tmp_path_factory: pytest.TempPathFactory, blocktrace_cli: Runner, programs: Path
) -> Path:
    """tests/programs/queried.py recorded with changed locals."""
    out = tmp_path_factory.mktemp("traces") / "queried.jsonl"
    return record(blocktrace_cli, out, programs / "queried.py", "--locals", "changes")


@pytest.fixture(scope="session")
def oddlines(
    tmp_path_factory: pytest.TempPathFactory, blocktrace_cli: Runner, programs: Path
) -> Path:
    """tests/programs/oddlines.py recorded with --clock (threads, generators, unwinds,
    non-ASCII names, escapes, every form of return value)."""
    out = tmp_path_factory.mktemp("traces") / "oddlines.jsonl"
    return record(blocktrace_cli, out, programs / "oddlines.py", "--clock")


@pytest.fixture(scope="session")
def fib(tmp_path_factory: pytest.TempPathFactory, blocktrace_cli: Runner) -> Path:
    """examples/fib.py 12 recorded."""
    out = tmp_path_factory.mktemp("traces") / "fib.jsonl"
    return record(blocktrace_cli, out, ROOT / "examples" / "fib.py", args=("12",))
