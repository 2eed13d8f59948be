"""Invariants over real traces with random mutations and respellings (hypothesis)."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocktrace.eip3155 import diff_files, read_all
from blocktrace.eip3155.writer import write_steps

from .helpers import CLIENTS, TESTS, lines_of, write_lines

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _as_int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) and value.startswith("0x") else int(value)


def _respell(value: Any, how: int) -> Any:
    """A number in another EIP-7756 spelling: JSON number, hex string, decimal string."""
    number = _as_int(value)
    if number < 0:
        return number
    return (number, hex(number), str(number))[how % 3]


@st.composite
def traces(draw: st.DrawFn) -> list[str]:
    """A real client trace, possibly mutated and respelled, as lines."""
    lines = lines_of(draw(st.sampled_from(CLIENTS)), draw(st.sampled_from(TESTS[:3])))
    count = len(lines)
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, count - 1))
        kind = draw(st.sampled_from(["drop", "copy", "pc", "gas", "stack", "respell"]))
        if kind == "drop":
            del lines[where]
        elif kind == "copy":
            lines.insert(where, lines[draw(st.integers(0, count - 1))])
        else:
            try:
                obj = json.loads(lines[where])
            except ValueError:
                continue
            if not isinstance(obj, dict) or "pc" not in obj:
                continue
            if kind == "pc":
                obj["pc"] = _as_int(obj["pc"]) + draw(st.integers(1, 5))
            elif kind == "gas":
                obj["gas"] = hex(_as_int(obj["gas"]) - draw(st.integers(1, 5)))
            elif kind == "stack" and obj.get("stack"):
                obj["stack"][-1] = hex(draw(st.integers(0, 2**256 - 1)))
            else:
                how = draw(st.integers(0, 2))
                for name in ("pc", "gas", "depth", "memSize", "refund"):
                    if name in obj:
                        obj[name] = _respell(obj[name], how)
            lines[where] = json.dumps(obj)
        count = len(lines)
    return lines


def _canonical_bytes(path: Path) -> bytes:
    steps, _ = read_all(str(path))
    out = io.BytesIO()
    write_steps(steps, out)
    return out.getvalue()


@SETTINGS
@given(traces())
def test_normalisation_is_idempotent(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        once = _canonical_bytes(write_lines(Path(tmp) / "t.jsonl", lines))
        (Path(tmp) / "n.jsonl").write_bytes(once)
        twice = _canonical_bytes(Path(tmp) / "n.jsonl")
        assert twice == once
        report = diff_files(str(Path(tmp) / "t.jsonl"), str(Path(tmp) / "n.jsonl"),
                            fields=["pc", "op", "gas", "depth", "stack", "error"])
        assert report.steps.equal


@SETTINGS
@given(traces())
def test_a_trace_equals_itself(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(write_lines(Path(tmp) / "t.jsonl", lines))
        report = diff_files(path, path)
        assert report.equal
        assert report.steps.first is None


@SETTINGS
@given(traces(), traces())
def test_diff_is_symmetric_in_the_first_divergence(a: list[str], b: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pa = str(write_lines(Path(tmp) / "a.jsonl", a))
        pb = str(write_lines(Path(tmp) / "b.jsonl", b))
        ab, ba = diff_files(pa, pb), diff_files(pb, pa)
        assert ab.steps.equal == ba.steps.equal
        if ab.steps.first is None:
            assert ba.steps.first is None
        else:
            assert ba.steps.first is not None
            assert ab.steps.first.step == ba.steps.first.step
            assert sorted(ab.steps.first.fields) == sorted(ba.steps.first.fields)
        assert (ab.steps.steps_a, ab.steps.steps_b) == (ba.steps.steps_b, ba.steps.steps_a)
