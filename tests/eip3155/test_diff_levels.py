"""An op-level trace against a line-level one on bytes (``skip.level_pair``:
``_cskip.project`` passing over the op lines the projection to level line leaves out,
and over what both traces have in common at that level) against the reference path
(every step decoded, ``levels.project`` in Python): the same report, byte for byte,
on real recordings and on them with steps inserted, removed, changed and moved at
random places, near exception lines and calls, either way round, with ``--fields``,
plain and compressed, with small read buffers."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocktrace.eip3155 import skip

from .diffing import NEEDS_C, SETTINGS, Walked, checked, examples, record, recordings, reports, same
from .test_diff_align import EDIT, _edited
from .test_diff_lines import LINE_EDIT, _lined, program

pytestmark = NEEDS_C


_record = partial(record, program)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    where = tmp_path_factory.mktemp("levels")
    return recordings(program, where, (
        ("op", {}, {}), ("line", {}, {"level": "line"}),
        ("line-more", {"every": 4}, {"level": "line"})))


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
    checked(a, b, monkeypatch, swap=swap, fields=fields, max_hunks=max_hunks)


@examples(10)
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
    checked(a, b, monkeypatch)


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
    passed = Walked(monkeypatch, "_skip_levels")
    for x, y in ((a, b), (b, a)):
        fast, reference = reports(x, y, monkeypatch, max_hunks=max_hunks)
        same(fast, reference)
        assert fast.notes and "compared at level line" in fast.notes[0]
    assert passed.count > fast.steps.common // 2
