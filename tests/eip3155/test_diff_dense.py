"""Traces that part every few lines, ``--by-line`` and an op trace against a line trace:
once the differ keeps no more hunks in full, the walks over their steps
(``_cskip.lines``, ``_cskip.project``) pass over the divergent regions too, as the
differ's look-ahead aligns them (``region_of`` over each side's steps read ahead), and
the look-ahead itself is answered on the bytes (``_cskip.steps_look``).  Against the
reference path (every step decoded, ``differ._look_ahead`` in Python): the same report,
byte for byte, on real recordings of a loop that gained a call on a line of its own,
with random edits on top, with ``--fields``, windows, small read buffers, either way
round, plain and compressed."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocktrace.eip3155 import skip

from .diffing import NEEDS_C, SETTINGS, checked, examples, record, recordings, reports, same
from .test_diff_align import EDIT, _edited
from .test_diff_lines import LINE_EDIT, _lined

pytestmark = NEEDS_C


def extra(i: int) -> int:
    return i * 2 + 1


def program(n: int = 40, every: int = 0, fault: int = 0) -> int:
    total = 0
    for i in range(n):
        total += extra(i) if i % 7 == 3 else i
        if every and i % every == 0:
            total -= extra(0)  # (B's call on a line of its own, every ``every`` iterations)
        if fault and i % fault == fault - 1:
            try:
                total += [1][i]  # an IndexError, handled
            except IndexError:
                total -= 1
    return total


_record = partial(record, program)


class Counted:
    """What the walks over steps passed as hunks (``_skip_lines``/``_skip_levels``'
    third number), and how often the look-ahead was answered on bytes (``_look_steps``
    giving a region)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hunks = 0
        self.looked = 0
        for name in ("_skip_lines", "_skip_levels"):
            monkeypatch.setattr(skip, name, self._walk(getattr(skip, name)))
        real_look = skip._look_steps

        def look(*args: Any) -> tuple[int, int] | None:
            got = real_look(*args)
            self.looked += got is not None
            return got

        monkeypatch.setattr(skip, "_look_steps", look)

    def _walk(self, real: Any) -> Any:
        def walk(*args: Any) -> tuple[int, ...]:
            got: tuple[int, ...] = real(*args)
            self.hunks += got[2]
            return got

        return walk


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    where = tmp_path_factory.mktemp("dense")
    return recordings(program, where, (
        ("op", {}, {}), ("op-own", {"every": 1}, {}), ("op-own3", {"every": 3}, {}),
        ("line-own", {"every": 1}, {"level": "line"}), ("line", {}, {"level": "line"}),
        ("line-own2", {"every": 2}, {"level": "line"}),
        ("locals", {}, {"locals": "on"}), ("locals-own", {"every": 2}, {"locals": "on"})))


PAIRS = {  # (A, B, by_line)
    "by-line": ("op", "op-own", True), "by-line every 3rd": ("op", "op-own3", True),
    "by-line with locals": ("locals", "locals-own", True),
    "op against line": ("op", "line-own", False), "op against line every 2nd":
    ("op-own3", "line-own2", False), "line against line": ("line", "line-own", False),
}
FIELDS = st.sampled_from([None, ("line", "function"), ("depth", "line", "pc"),
                          ("line", "locals"), ("pc", "op", "line", "code"),
                          ("depth", "line", "pc", "gas")])


@SETTINGS
@given(pair=st.sampled_from(list(PAIRS)), edits=st.lists(EDIT, max_size=5),
       moves=st.lists(LINE_EDIT, max_size=4), other=st.lists(EDIT, max_size=3), fields=FIELDS,
       max_hunks=st.sampled_from([0, 1, 5]), window=st.sampled_from([2000, 64, 63, 8]),
       swap=st.booleans())
def test_random_edits_of_traces_that_part_often_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]], pair: str,
    edits: list[tuple[str, float, int]], moves: list[tuple[str, float, int]],
    other: list[tuple[str, float, int]], fields: tuple[str, ...] | None, max_hunks: int,
    window: int, swap: bool,
) -> None:
    """Two recordings that part every few lines, each edited at random (steps inserted,
    removed, changed, moved to other lines)."""
    name_a, name_b, by_line = PAIRS[pair]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(_edited(base[name_a], other)))
    b.write_bytes(b"".join(_lined(_edited(base[name_b], edits), moves)))
    checked(a, b, monkeypatch, swap=swap, by_line=by_line, fields=fields,
            max_hunks=max_hunks, window=window)


@examples(12)
@given(pair=st.sampled_from(list(PAIRS)), edits=st.lists(EDIT, max_size=3),
       chunk=st.sampled_from([512, 2048, 8192]), max_hunks=st.sampled_from([0, 5]))
def test_small_buffers_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]], pair: str,
    edits: list[tuple[str, float, int]], chunk: int, max_hunks: int,
) -> None:
    """Regions across the ends of the read buffer: given back before the region (or the
    hunk not yet followed by steps in common) and walked again after the read."""
    monkeypatch.setattr(skip, "CHUNK", chunk)
    monkeypatch.setattr(skip, "_REFILL", chunk // 2)
    name_a, name_b, by_line = PAIRS[pair]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(base[name_a]))
    b.write_bytes(b"".join(_edited(base[name_b], edits)))
    checked(a, b, monkeypatch, by_line=by_line, max_hunks=max_hunks)


RECORDED: dict[str, tuple[dict[str, Any], dict[str, Any], str, bool, str]] = {
    # name: (A's arguments, B's, B's level, by_line, suffix)
    "by-line": ({"n": 400}, {"n": 400, "every": 1}, "op", True, ".jsonl"),
    "by-line, every 2nd, faults": ({"n": 400, "fault": 9}, {"n": 400, "every": 2, "fault": 9},
                                   "op", True, ".jsonl"),
    "by-line, compressed": ({"n": 400}, {"n": 400, "every": 1}, "op", True, ".jsonl.zst"),
    "op against line": ({"n": 400}, {"n": 400, "every": 1}, "line", False, ".jsonl"),
    "op against line, every 3rd, faults": ({"n": 400, "fault": 11},
                                           {"n": 400, "every": 3, "fault": 11}, "line", False,
                                           ".jsonl"),
    "op against line, compressed": ({"n": 400}, {"n": 400, "every": 1}, "line", False,
                                     ".jsonl.zst"),
}


@pytest.mark.parametrize("name", list(RECORDED))
@pytest.mark.parametrize("max_hunks", [0, 5])
def test_real_recordings_that_part_every_few_lines_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, max_hunks: int
) -> None:
    """A loop and the loop with a call on a line of its own (a hunk every iteration or
    every few), recorded: the report is the reference's either way round, and the walks
    passed most hunks over as bytes, the look-ahead answered on bytes."""
    args_a, args_b, level, by_line, suffix = RECORDED[name]
    a = _record(tmp_path / f"a{suffix}", args_a)
    b = _record(tmp_path / f"b{suffix}", args_b, level=level)
    counted = Counted(monkeypatch)
    for x, y in ((a, b), (b, a)):
        fast, reference = reports(x, y, monkeypatch, by_line=by_line, max_hunks=max_hunks)
        same(fast, reference)
        assert reference.steps.hunk_count > 100
    if "faults" not in name:  # (a look-ahead that meets an exception line is the reference's)
        assert counted.looked > 0
    total = fast.steps.hunk_count + reference.steps.hunk_count  # (the two ways round)
    assert counted.hunks > total // 2, (counted.hunks, total)


@pytest.mark.parametrize("window", [63, 8])
def test_a_window_under_the_walks_leaves_the_regions_to_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    """With a look-ahead window under 64 steps (the walks' second window) no region is
    passed or looked at on bytes: the differ's own windows answer."""
    a = _record(tmp_path / "a.jsonl", {"n": 200})
    b = _record(tmp_path / "b.jsonl", {"n": 200, "every": 1})
    c = _record(tmp_path / "c.jsonl", {"n": 200, "every": 1}, level="line")
    counted = Counted(monkeypatch)
    for x, y, by_line in ((a, b, True), (a, c, False)):
        fast, reference = reports(x, y, monkeypatch, by_line=by_line, max_hunks=0,
                                  window=window)
        same(fast, reference)
        assert fast.steps.hunk_count > 100
    assert counted.hunks == counted.looked == 0


def twins(n: int = 40, every: int = 0) -> int:
    """Two functions of one name on one line (two code numbers, one ``function``), one
    of them called every eleventh iteration, in B at other iterations than in A."""
    one, two = (lambda i: i + 1), (lambda i: i + 2)
    total = extra(1)  # (its code number the same in both)
    for i in range(n):
        total += (two if i % 11 == (5 if every else 0) else one)(i)
        if every and i % every == 0:
            total -= extra(0)
    return total


@pytest.mark.parametrize("by_line", [True, False])
@pytest.mark.parametrize("fields", [None, ("depth", "line", "function")])
def test_two_code_numbers_of_one_function_are_the_references_to_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_line: bool,
    fields: tuple[str, ...] | None,
) -> None:
    """Steps whose code numbers differ but name one function (two lambdas on one line):
    the same step to the reference where the compared fields see no more than the
    function's name; the walks cannot tell from the bytes, so they leave such a pair,
    and a window holding one, to the reference."""
    a = record(twins, tmp_path / "a.jsonl", {"n": 300})
    b = record(twins, tmp_path / "b.jsonl", {"n": 300, "every": 2},
               **({} if by_line else {"level": "line"}))
    counted = Counted(monkeypatch)
    for x, y in ((a, b), (b, a)):
        fast, reference = reports(x, y, monkeypatch, by_line=by_line, max_hunks=0,
                                  fields=fields)
        same(fast, reference)
        assert reference.steps.hunk_count > 50
    assert counted.hunks > 0
