"""The seal's summary line is written as bytes, member by member (a start and a stop
per test in a suite pay for every call there): it must be what encoding the
summary's members with msgspec, in their documented order, gives -- for every kind
of outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

import blocktrace
from blocktrace.tracers.chain import ChainTracer

_ORDER = ("output", "gasUsed", "pass", "time", "error", "maxSize", "step", "lines")


def _summary(path: Path) -> tuple[bytes, dict[str, Any]]:
    last = path.read_bytes().splitlines()[-1]
    members = json.loads(last)
    del members["hash"]
    return last, members


def _check(path: Path) -> dict[str, Any]:
    line, members = _summary(path)
    assert list(members) == [k for k in _ORDER if k in members]
    assert line.startswith(msgspec.json.encode(members)[:-1] + b',"hash":"')
    return members


def _loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


@pytest.mark.parametrize("level", ["op", "call"])
def test_a_passing_run(tmp_path: Path, level: str) -> None:
    path = tmp_path / "t.jsonl"
    with blocktrace.trace(ChainTracer(path, genesis="seal", level=level)):  # type: ignore[arg-type]
        _loop(50)
    members = _check(path)
    assert members["pass"] is True and "error" not in members
    assert int(members["gasUsed"], 16) > 50


def test_an_error_and_an_output_that_need_escaping(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with pytest.raises(ValueError), blocktrace.trace(ChainTracer(path, genesis="seal")):
        raise ValueError('a "quoted" \\ message, é, \u2028 and \x01')
    members = _check(path)
    assert members["pass"] is False
    assert members["error"] == 'ValueError: a "quoted" \\ message, é, \u2028 and \x01'
    path2 = tmp_path / "closed.jsonl"
    ChainTracer(path2, genesis="seal").close('out "\n" é', "not stopped")
    assert _check(path2)["output"] == 'out "\n" é'


def test_a_run_stopped_by_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with blocktrace.trace(ChainTracer(path, genesis="seal"), max_size=2000):
        _loop(500)
    members = _check(path)
    assert members["error"] == "TraceSizeLimit" and members["maxSize"] == 2000
    assert "step" in members
