"""Helpers of the query tests: recording real traces, the reference client traces."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFDATA = ROOT.parent / "shared" / "refdata" / "eip3155"
Runner = Callable[..., subprocess.CompletedProcess[str]]
Check = Callable[[subprocess.CompletedProcess[str]], None]
CLIENTS = ("besu", "eels", "erigon", "evmone", "geth", "nethermind", "nimbus", "revm")


def record(
    blocktrace_cli: Runner, out: Path, program: Path, *options: str, args: tuple[str, ...] = ()
) -> Path:
    """``blocktrace run -o OUT OPTIONS PROGRAM ARGS``, which must succeed."""
    done = blocktrace_cli("run", "-o", out, "--force", *options, program, *args)
    assert done.returncode == 0, done.stderr
    return out


def lines_of(trace: Path) -> list[dict[str, Any]]:
    """The trace's lines decoded independently (the tests' oracle)."""
    return [json.loads(line) for line in trace.read_text().splitlines()]


def client_trace(client: str, test: str) -> Path:
    """A real client trace; skips when the reference data is absent."""
    path = REFDATA / client / f"{test}.jsonl"
    if not path.is_file():
        pytest.skip(f"reference traces not available ({REFDATA} is missing)")
    return path


def copy_to(trace: Path, where: Path) -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trace, where)
    return where
