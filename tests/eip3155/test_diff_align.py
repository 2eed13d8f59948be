"""The diff's look-ahead on bytes (``_cskip.look``, and ``_cskip.align`` passing over
divergent regions once the hunks kept in full are found) against the reference path
(every step decoded, ``differ._look_ahead`` in Python): the same report, byte for
byte, on real traces with steps inserted, removed and changed at random places and
spacings, near the ends, near exception lines, at both levels and in compressed form."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocktrace.eip3155 import skip

from .diffing import NEEDS_C, SETTINGS, checked, examples, record, recordings, reports, same

pytestmark = NEEDS_C


def inner(i: int) -> int:
    if i % 7 == 3:
        try:
            raise ValueError(i)
        except ValueError:
            return -i
    return i * 2


def program(n: int = 40, every: int = 0) -> int:
    total = 0
    for i in range(n):
        total += inner(i)
        if every and i % every == 0:
            total -= 1  # (B's statement: steps inserted every ``every`` iterations)
    return total


_record = partial(record, program)


_reports = reports
class Used:
    """What the fast paths did: regions found by ``look``, and regions of unequal
    sides passed by ``align``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.looked = 0
        self.passed = 0
        real_look, real_skip = skip._look, skip._skip

        def look(*args: Any) -> tuple[int, int] | None:
            got = real_look(*args)
            self.looked += got is not None
            return got

        def walk(*args: Any) -> tuple[int, ...]:
            got = real_skip(*args)
            self.passed += got[3] != got[4]  # (differing steps unlike on each side)
            return got

        monkeypatch.setattr(skip, "_look", look)
        monkeypatch.setattr(skip, "_skip", walk)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    where = tmp_path_factory.mktemp("align")
    return recordings(program, where, ((level, {}, {"level": level}) for level in ("op", "line")))


def _ops(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(b'{"pc"')]


def _say(mine: bytes, theirs: bytes) -> bytes:
    """``mine`` saying ``theirs``'s step, its own gas and hash kept."""
    gas = mine.index(b',"gas":')
    gas_end = mine.index(b",", gas + 1)
    their_gas = theirs.index(b',"gas":')
    their_end = theirs.index(b",", their_gas + 1)
    body = theirs[their_end:theirs.index(b',"hash":')]
    return theirs[:their_gas] + mine[gas:gas_end] + body + mine[mine.index(b',"hash":'):]


EDIT = st.tuples(st.sampled_from(["insert", "remove", "change", "repeat"]),
                 st.floats(0, 1, exclude_max=True), st.integers(1, 12))


def _edited(lines: list[bytes], edits: list[tuple[str, float, int]]) -> list[bytes]:
    """The trace's lines with op lines inserted (a run of the op lines before the
    place, again: a loop's body run once more), removed, saying a nearby step, or
    saying the step before them (a run of like steps: the look-ahead's first case,
    a changed step, must come before its nearest point)."""
    out = list(lines)
    for kind, where, size in edits:
        ops = _ops(out)
        k = int(where * len(ops))
        at = ops[k]
        if kind == "insert":
            run = [out[i] for i in ops[max(0, k - size):k]] or [out[at]]
            out[at:at] = run
        elif kind == "remove":
            for i in sorted(ops[k:k + size], reverse=True):
                del out[i]
        elif kind == "change":
            out[at] = _say(out[at], out[ops[min(len(ops) - 1, k + size)]])
        else:  # the step at the place said again by the op lines after it
            for i in ops[k + 1:k + 1 + size]:
                out[i] = _say(out[i], out[at])
    return out


@SETTINGS
@given(edits=st.lists(EDIT, min_size=1, max_size=10), max_hunks=st.sampled_from([0, 2, 5]),
       window=st.sampled_from([2000, 64, 63, 100]), swap=st.booleans(),
       both=st.lists(EDIT, max_size=3))
def test_random_insertions_removals_and_changes_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    edits: list[tuple[str, float, int]], max_hunks: int, window: int, swap: bool,
    both: list[tuple[str, float, int]],
) -> None:
    """B is A edited; A is the recording, or the recording edited too (``both``)."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    lines = _edited(base["op"], both)
    a.write_bytes(b"".join(lines))
    b.write_bytes(b"".join(_edited(lines, edits)))
    checked(a, b, monkeypatch, swap=swap, max_hunks=max_hunks, window=window)


@examples(15)
@given(edits=st.lists(EDIT, min_size=1, max_size=6), max_hunks=st.sampled_from([0, 5]))
def test_edits_across_levels_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    edits: list[tuple[str, float, int]], max_hunks: int,
) -> None:
    """A line trace against an edited op trace, and a line trace edited against itself."""
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    a.write_bytes(b"".join(base["line"]))
    b.write_bytes(b"".join(_edited(base["op"], edits)))
    c.write_bytes(b"".join(_edited(base["line"], edits)))
    for x, y in ((a, b), (a, c)):
        fast, reference = reports(x, y, monkeypatch, max_hunks=max_hunks)
        same(fast, reference)


PROGRAMS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    # name: (A's arguments, B's, the tracer's options)
    "a statement in the loop body": ({"n": 300}, {"n": 300, "every": 1}, {}),
    "a statement every 5th iteration": ({"n": 300}, {"n": 300, "every": 5}, {}),
    "with locals": ({"n": 200}, {"n": 200, "every": 3}, {"locals": "on"}),
    "compressed": ({"n": 300}, {"n": 300, "every": 2}, {}),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
@pytest.mark.parametrize("max_hunks", [0, 5])
def test_statements_added_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, max_hunks: int
) -> None:
    """Real recordings of a program and the program with a statement added in its
    loop: the report is the reference's, and the regions were found on the bytes."""
    args_a, args_b, options = PROGRAMS[name]
    suffix = ".jsonl.zst" if name == "compressed" else ".jsonl"
    a = _record(tmp_path / f"a{suffix}", args_a, **options)
    b = _record(tmp_path / f"b{suffix}", args_b, **options)
    used = Used(monkeypatch)
    for x, y in ((a, b), (b, a)):
        fast, reference = reports(x, y, monkeypatch, max_hunks=max_hunks)
        same(fast, reference)
        assert fast.steps.hunk_count > 20
    if name != "with locals":  # (values differ as bytes: the reference judges them)
        assert used.looked > 0 or used.passed > 0
        if max_hunks == 0:
            assert used.passed > 0, "align should pass regions of steps inserted"


def test_the_walk_reads_on_only_where_the_lines_run_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps inserted make B's lines take more bytes than A's: the buffers stay within
    a few reads' size however long the traces (none read on for the other's sake)."""
    monkeypatch.setattr(skip, "CHUNK", 4096)
    monkeypatch.setattr(skip, "_REFILL", 2048)
    a = _record(tmp_path / "a.jsonl", {"n": 1500})
    b = _record(tmp_path / "b.jsonl", {"n": 1500, "every": 1})
    sizes: list[int] = []
    real: Callable[..., bool] = skip._Source.more

    def more(self: Any) -> bool:
        got = real(self)
        sizes.append(len(self.buf))
        return got

    monkeypatch.setattr(skip._Source, "more", more)
    fast, reference = reports(a, b, monkeypatch, max_hunks=0)
    same(fast, reference)
    assert sizes and max(sizes) < 4 * 4096


@pytest.mark.parametrize("max_hunks", [0, 5])
@pytest.mark.parametrize("where", [0.3, 0.6])
def test_a_changed_step_in_a_run_of_like_steps_is_the_look_aheads_first_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    max_hunks: int, where: float,
) -> None:
    """A step changed at the start of a run of like steps: the look-ahead takes it as one
    changed step (its first case) before any nearer point off the diagonal."""
    lines = _edited(base["op"], [("repeat", where, 8)] * 3)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(lines))
    ops = _ops(lines)
    at = ops[int(where * len(ops)) + 1]
    changed = list(lines)
    changed[at] = changed[at].replace(b'"pc":', b'"pc":9', 1)  # (another pc)
    b.write_bytes(b"".join(changed))
    fast, reference = reports(a, b, monkeypatch, max_hunks=max_hunks)
    same(fast, reference)
    assert fast.steps.hunk_count >= 1
