"""``diff --by-line`` on bytes (``skip.line_pair``: ``_cskip.lines`` passing over the
groups of steps by source line both traces have in common) against the reference path
(every step decoded, ``lines.by_line`` grouping them in Python): the same report, byte
for byte, on real recordings and on them with steps inserted, removed, changed and
moved to other lines at random places, near the ends, near exception lines and calls,
with and without ``--fields``, plain and compressed, with small read buffers."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import blocktrace
from blocktrace.eip3155 import skip

from .diffing import NEEDS_C, SETTINGS, Walked, checked, examples, record, recordings, reports, same
from .test_diff_align import EDIT, _edited, _ops

pytestmark = NEEDS_C


def leaf(i: int) -> int:
    if i % 5 == 2:
        try:
            return [j for j in range(3)][i]  # an IndexError, handled
        except IndexError:
            return -1
    return i + 1


def program(n: int = 30, every: int = 0) -> int:
    total = 0
    for i in range(n):
        total += leaf(i); total += sum(k for k in range(2))  # noqa: E702 (one line)
        if every and i % every == 0:
            total -= 1  # (B's statement: a line added every ``every`` iterations)
    return total


_record = partial(record, program)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    where = tmp_path_factory.mktemp("lines")
    return recordings(program, where, (("op", {}, {}), ("line", {}, {"level": "line"}),
                                       ("locals", {}, {"locals": "on"})))


FIELDS = st.sampled_from([None, ("line", "function"), ("depth", "line", "pc"),
                          ("line", "locals"), ("function", "file", "line", "thread"),
                          ("line", "opName", "error")])

LINE_EDIT = st.tuples(st.sampled_from(["line", "zero", "depth", "pc", "value"]),
                      st.floats(0, 1, exclude_max=True), st.integers(1, 3))


def _lined(lines: list[bytes], edits: list[tuple[str, float, int]]) -> list[bytes]:
    """The trace's lines with an op line moved to another source line (a group split
    or joined), to line 0 (a step that belongs to the line before), one call deeper,
    at another pc, or with other values (its group's key kept)."""
    out = list(lines)
    for kind, where, size in edits:
        ops = _ops(out)
        at = ops[int(where * len(ops))]
        line = out[at]
        if kind == "pc":
            out[at] = line.replace(b'"pc":', b'"pc":9', 1)
            continue
        if kind == "value":
            out[at] = line.replace(b'"locals":{', b'"locals":{"x":%d,' % size, 1)
            continue
        if kind == "depth":
            start = line.index(b'"depth":') + 8
            end = line.index(b",", start)
            out[at] = line[:start] + b"%d" % (int(line[start:end]) + 1) + line[end:]
            continue
        start = line.index(b'"line":') + 7
        end = line.index(b",", start)
        number = 0 if kind == "zero" else int(line[start:end]) + size
        out[at] = line[:start] + b"%d" % number + line[end:]
    return out


@SETTINGS
@given(edits=st.lists(EDIT, max_size=8), moves=st.lists(LINE_EDIT, max_size=6),
       both=st.lists(LINE_EDIT, max_size=3), fields=FIELDS, max_hunks=st.sampled_from([0, 2, 5]),
       window=st.sampled_from([2000, 64, 8]), swap=st.booleans(),
       kind=st.sampled_from(["op", "line", "locals"]))
def test_random_edits_by_line_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    edits: list[tuple[str, float, int]], moves: list[tuple[str, float, int]],
    both: list[tuple[str, float, int]], fields: tuple[str, ...] | None, max_hunks: int,
    window: int, swap: bool, kind: str,
) -> None:
    """B is A edited; A is the recording, or the recording edited too (``both``)."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    lines = _lined(base[kind], both)
    a.write_bytes(b"".join(lines))
    b.write_bytes(b"".join(_lined(_edited(lines, edits), moves)))
    checked(a, b, monkeypatch, swap=swap, by_line=True, fields=fields, max_hunks=max_hunks,
                               window=window)


@examples(10)
@given(edits=st.lists(EDIT, max_size=4), moves=st.lists(LINE_EDIT, max_size=4),
       chunk=st.sampled_from([512, 2048, 8192]))
def test_small_buffers_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    edits: list[tuple[str, float, int]], moves: list[tuple[str, float, int]], chunk: int,
) -> None:
    """Groups across the ends of the read buffer: given back at a group's start and
    walked again after the read."""
    monkeypatch.setattr(skip, "CHUNK", chunk)
    monkeypatch.setattr(skip, "_REFILL", chunk // 2)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(base["op"]))
    b.write_bytes(b"".join(_lined(_edited(base["op"], edits), moves)))
    checked(a, b, monkeypatch, by_line=True)


PROGRAMS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]] = {
    # name: (A's arguments, B's, the tracer's options, suffix)
    "the same run": ({"n": 300}, {"n": 300}, {}, ".jsonl"),
    "a line added every 5th iteration": ({"n": 300}, {"n": 300, "every": 5}, {}, ".jsonl"),
    "a line added every iteration": ({"n": 300}, {"n": 300, "every": 1}, {}, ".jsonl"),
    "line level": ({"n": 300}, {"n": 300, "every": 7}, {"level": "line"}, ".jsonl"),
    "with locals": ({"n": 200}, {"n": 200}, {"locals": "on"}, ".jsonl"),
    "compressed": ({"n": 300}, {"n": 300, "every": 4}, {}, ".jsonl.zst"),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
@pytest.mark.parametrize("max_hunks", [0, 5])
def test_real_recordings_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, max_hunks: int
) -> None:
    """Real recordings of a program and of the program with a line added in its loop:
    the report is the reference's, and most groups were passed over as bytes."""
    args_a, args_b, options, suffix = PROGRAMS[name]
    a = _record(tmp_path / f"a{suffix}", args_a, **options)
    b = _record(tmp_path / f"b{suffix}", args_b, **options)
    passed = Walked(monkeypatch, "_skip_lines")
    for x, y in ((a, b), (b, a)):
        fast, reference = reports(x, y, monkeypatch, by_line=True, max_hunks=max_hunks)
        same(fast, reference)
    # (a hunk every few groups: the differ reads those itself)
    assert passed.count > (0 if name == "a line added every iteration"
                            else fast.steps.common // 2)


def test_a_group_longer_than_the_buffer_is_read_by_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-line loop of many steps (one group) with small buffers: the same report,
    and the buffers stay within a few reads' size."""
    monkeypatch.setattr(skip, "CHUNK", 4096)
    monkeypatch.setattr(skip, "_REFILL", 2048)

    def one_line(n: int) -> int:
        return sum([i * 2 for i in range(n)] + [i for i in range(n)])

    paths = []
    for name, n in (("a", 400), ("b", 401)):
        path = tmp_path / f"{name}.jsonl"
        with blocktrace.trace(blocktrace.ChainTracer(path)):
            one_line(n)
            one_line(3)
        paths.append(path)
    sizes: list[int] = []
    real = skip._Source.more

    def more(self: Any) -> bool:
        got = real(self)
        sizes.append(len(self.buf))
        return got

    monkeypatch.setattr(skip._Source, "more", more)
    fast, reference = reports(paths[0], paths[1], monkeypatch, by_line=True)
    same(fast, reference)
    assert sizes and max(sizes) < 4 * 4096


def _group_starts(lines: list[bytes]) -> list[int]:
    """The places of the op lines that start a group (``lines.by_line``'s rule)."""
    starts: list[int] = []
    key: tuple[object, ...] | None = None
    for i in _ops(lines):
        step = json.loads(lines[i])
        mine = (step.get("depth"), step.get("code"), step.get("line"), step.get("thread"))
        if step.get("line") and mine != key:
            starts.append(i)
            key = mine
    return starts


@pytest.mark.parametrize(("kind", "edit", "fields"), [
    ("op", "pc", ("line", "pc")), ("locals", "value", None), ("op", "pc", ("line", "opName"))])
def test_a_group_whose_first_step_differs_is_the_references_hunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    kind: str, edit: str, fields: tuple[str, ...] | None,
) -> None:
    """B's group at each of many places differs in its first step only (its key kept):
    the hunk the reference finds there, wherever the pass stands when it comes."""
    lines = base[kind]
    starts = [i for i in _group_starts(lines) if edit == "pc" or b'"locals":{' in lines[i]]
    a = tmp_path / "a.jsonl"
    a.write_bytes(b"".join(lines))
    b = tmp_path / "b.jsonl"
    for at in starts[len(starts) // 3::max(1, len(starts) // 25)]:
        changed = list(lines)
        changed[at] = (changed[at].replace(b'"pc":', b'"pc":9', 1) if edit == "pc"
                       else changed[at].replace(b'"locals":{', b'"locals":{"x":1,', 1))
        b.write_bytes(b"".join(changed))
        fast, reference = reports(a, b, monkeypatch, by_line=True, fields=fields, max_hunks=0)
        same(fast, reference)
        assert reference.steps.hunk_count == (fields != ("line", "opName"))


@pytest.mark.parametrize(("old", "new"), [
    (b'"line":', b'"line":100000000000000000000'), (b'"code":', b'"code":-'),
    (b'"depth":', b'"depth":-'), (b'"line":', b'"line":0')])
def test_keys_the_walk_does_not_read_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    old: bytes, new: bytes,
) -> None:
    """A group's first step with a line number past 18 digits or a negative code number
    or depth, in both traces (whatever they mean): no error, the reference's report."""
    lines = list(base["op"])
    starts = _group_starts(lines)
    for at in starts[len(starts) // 2:len(starts) // 2 + 3]:
        lines[at] = lines[at].replace(old, new, 1)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(lines))
    b.write_bytes(b"".join(_edited(lines, [("remove", 0.8, 2)])))
    fast, reference = reports(a, b, monkeypatch, by_line=True)
    same(fast, reference)


def quoted(n: int) -> int:
    said = 'she said "yes} \\ then, twice'  # (a quote, a brace, a backslash: escaped in JSON)
    total = 0
    for i in range(n):
        total += len(said) + i
    return total


def test_locals_with_escaped_strings_are_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line after the first few holds a local whose JSON string has an escaped
    quote, a brace and an escaped backslash, longer than sixteen bytes (``string_end``
    reads those sixteen at a time; a quote taken for the string's end there would end
    the locals at the brace): the walk passes over the groups as the reference reads
    them, and the report is the reference's."""
    lines = record(quoted, tmp_path / "recorded.jsonl", {"n": 60}, locals="on").read_bytes()
    assert b'she said \\"yes} \\\\\\\\ then' in lines  # (repr's \\ escaped again)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(lines)
    edited = lines.splitlines(keepends=True)
    at = _group_starts(edited)[-20]
    edited[at] = edited[at].replace(b'"line":', b'"line":9', 1)  # a group on another line
    b.write_bytes(b"".join(edited))
    passed = Walked(monkeypatch, "_skip_lines")
    fast, _ = checked(a, b, monkeypatch, by_line=True)
    assert fast.steps.hunk_count >= 1
    assert passed.count > fast.steps.common // 2
