"""Shared fixtures: the real client traces in ../shared/refdata/eip3155/."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFDATA = ROOT.parent / "shared" / "refdata" / "eip3155"
CLIENTS = ("besu", "eels", "erigon", "evmone", "geth", "nethermind", "nimbus", "revm")
TESTS = ("statetest1", "stackUnderflow_nonzeroMem", "00000936-mixed-1", "negative_refund")


def trace(client: str, test: str) -> Path:
    """Path of a real client trace; skips the test when the reference data is absent."""
    path = REFDATA / client / f"{test}.jsonl"
    if not path.is_file():
        pytest.skip(f"reference traces not available ({REFDATA} is missing)")
    return path


def lines_of(client: str, test: str) -> list[str]:
    return trace(client, test).read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
