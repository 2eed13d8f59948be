"""An op-level trace against a line-level one on bytes (``skip.level_pair``:
``_cskip.project`` passing over the op lines the projection to level line leaves out,
and over what both traces have in common at that level) against the reference path
(every step decoded, ``levels.project`` in Python): the same report, byte for byte,
on real recordings and on them with steps inserted, removed, changed and moved at
random places, near exception lines and calls, either way round, with ``--fields``,
plain and compressed, with small read buffers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blocktrace
from blocktrace.eip3155 import diff_files, report, skip
from tests.fuzz.harness import rechain

from .test_diff_align import EDIT, _edited, _same
from .test_diff_lines import LINE_EDIT, _lined, program

pytestmark = pytest.mark.skipif(skip._c is None, reason="the C extension is not built "
                                "(or BLOCKTRACE_PURE is set): only the reference path runs")

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _record(path: Path, args: dict[str, Any], **options: Any) -> Path:
    with blocktrace.trace(blocktrace.ChainTracer(path, **options)):
        program(**args)
    return path


class Passed:
    """The steps the fast path passed over at level line (``skip._skip_levels``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.steps = 0
        real = skip._skip_levels

        def walk(*args: Any) -> tuple[int, ...]:
            got = real(*args)
            self.steps += got[0]
            return got

        monkeypatch.setattr(skip, "_skip_levels", walk)


def _reports(a: Path, b: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    for path in (a, b):  # re-chained, as a forger would: a TAMPERED trace is read by the
        if path.suffix == ".jsonl":  # reference alone (report._tampered), walks off
            path.write_bytes(rechain(path.read_bytes()))
    with monkeypatch.context() as patch:
        patch.setattr(report, "_TRACE_SOURCES", {})
        fast = diff_files(str(a), str(b), **options)
    with monkeypatch.context() as patch:
        patch.setattr(skip, "_c", None)
        patch.setattr(report, "_TRACE_SOURCES", {})
        reference = diff_files(str(a), str(b), **options)
    return fast, reference


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    where = tmp_path_factory.mktemp("levels")
    return {
        name: _record(where / f"{name}.jsonl", args, **options).read_bytes()
        .splitlines(keepends=True)
        for name, args, options in (
            ("op", {}, {}), ("line", {}, {"level": "line"}),
            ("line-more", {"every": 4}, {"level": "line"}))
    }


FIELDS = st.sampled_from([None, ("line", "function"), ("depth", "line", "pc", "gas"),
                          ("pc", "op", "line", "code")])


@SETTINGS
@given(edits=st.lists(EDIT, max_size=8), moves=st.lists(LINE_EDIT, max_size=4),
       line_edits=st.lists(EDIT, max_size=3), fields=FIELDS,
       max_hunks=st.sampled_from([0, 2, 5]), swap=st.booleans(),
       line=st.sampled_from(["line", "line-more"]))
def test_random_edits_across_levels_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    edits: list[tuple[str, float, int]], moves: list[tuple[str, float, int]],
    line_edits: list[tuple[str, float, int]], fields: tuple[str, ...] | None,
    max_hunks: int, swap: bool, line: str,
) -> None:
    """The op trace edited against the line trace (edited too, or of a run that went
    otherwise), either way round."""
    a, b = tmp_path / "op.jsonl", tmp_path / "line.jsonl"
    a.write_bytes(b"".join(_lined(_edited(base["op"], edits), moves)))
    b.write_bytes(b"".join(_edited(base[line], line_edits)))
    if swap:
        a, b = b, a
    fast, reference = _reports(a, b, monkeypatch, fields=fields, max_hunks=max_hunks)
    _same(fast, reference)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(EDIT, max_size=4), chunk=st.sampled_from([512, 2048, 8192]))
def test_small_buffers_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    edits: list[tuple[str, float, int]], chunk: int,
) -> None:
    monkeypatch.setattr(skip, "CHUNK", chunk)
    monkeypatch.setattr(skip, "_REFILL", chunk // 2)
    a, b = tmp_path / "op.jsonl", tmp_path / "line.jsonl"
    a.write_bytes(b"".join(_edited(base["op"], edits)))
    b.write_bytes(b"".join(base["line"]))
    fast, reference = _reports(a, b, monkeypatch)
    _same(fast, reference)


PROGRAMS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    # name: (the op trace's arguments, the line trace's, suffix)
    "the same run": ({"n": 300}, {"n": 300}, ".jsonl"),
    "a line added every 5th iteration": ({"n": 300}, {"n": 300, "every": 5}, ".jsonl"),
    "compressed": ({"n": 300}, {"n": 300, "every": 50}, ".jsonl.zst"),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
@pytest.mark.parametrize("max_hunks", [0, 5])
def test_real_recordings_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, max_hunks: int
) -> None:
    """Real recordings of a program at level op and of it (or it changed) at level line:
    the report is the reference's, and most steps were passed over as bytes."""
    args_op, args_line, suffix = PROGRAMS[name]
    a = _record(tmp_path / f"op{suffix}", args_op)
    b = _record(tmp_path / f"line{suffix}", args_line, level="line")
    passed = Passed(monkeypatch)
    for x, y in ((a, b), (b, a)):
        fast, reference = _reports(x, y, monkeypatch, max_hunks=max_hunks)
        _same(fast, reference)
        assert fast.notes and "compared at level line" in fast.notes[0]
    assert passed.steps > fast.steps.common // 2
