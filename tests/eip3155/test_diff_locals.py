"""``diff`` of two ``--locals on`` traces whose values differ: the walk judges two flat
locals objects in the writer's compact spelling itself (skip.c ``flat_cmp``: the same keys
in the same order, values that differ as bytes differ as canonical values) and leaves
every other pair to the reference's ``Comparer``.  The answer must be the reference's
whatever the values are: hypothesis writes values of every kind the writer makes (and
spellings it does not) into the line starts of a real recording, on both sides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocktrace.eip3155 import skip
from tests.eip3155.diffing import NEEDS_C, checked, examples, record

pytestmark = NEEDS_C


def program(n: int) -> int:
    total = 0
    for i in range(n):
        total += _step(i)
    return total


def _step(i: int) -> int:
    j = i * 2
    return j + 1


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = record(program, tmp_path_factory.mktemp("locals") / "a.jsonl", {"n": 40},
                  locals="on")
    return path.read_bytes().splitlines(keepends=True)


def _starts(lines: list[bytes]) -> list[int]:
    """The op lines that carry locals (the line starts)."""
    return [k for k, line in enumerate(lines) if line.startswith(b'{"pc"') and b'"locals":' in line]


def _with_locals(line: bytes, value: bytes) -> bytes:
    start = line.index(b'"locals":') + len(b'"locals":')
    end = line.index(b',"hash":')
    return line[:start] + value + line[end:]


_NAMES = st.sampled_from(["i", "j", "n", "total", "x", "é", "a b", "k\"q", "v\\w", "ab"])
_RENDERED = st.sampled_from([
    "<module #1>", "<Foo #3>", "<function _step at 0x7f12ab34cd>", "<Foo object at 0x10>",
    "x at 0xZZ", "<list #2>", "caf\u00e9", "tab\there", "quote\"d", "", "at 0x1", " at 0x",
])
_SCALARS = st.one_of(
    st.integers(-10**20, 10**20), st.integers(0, 9), _RENDERED, st.text(max_size=6),
    st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_NAMES, inner, max_size=3)), max_leaves=6)


@st.composite
def _pair(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Two locals objects as JSON: mostly the writer's compact spelling with the same
    keys (some values changed), sometimes keys moved, added, written twice, or values
    spelled otherwise (``1.0``, ``-0``, ``1e2``, an escape)."""
    keys = draw(st.lists(_NAMES, min_size=0, max_size=5, unique=True))
    a = {key: draw(_VALUES) for key in keys}
    b = dict(a)
    for key in keys:
        if draw(st.booleans()):
            b[key] = draw(_VALUES)
    how = draw(st.sampled_from(["same keys"] * 6 + ["moved", "added", "twice", "spelled"]))
    text_a, text_b = msgspec.json.encode(a), msgspec.json.encode(b)
    if how == "moved" and len(keys) > 1:
        text_b = msgspec.json.encode(dict(reversed(list(b.items()))))
    elif how == "added":
        text_b = msgspec.json.encode({**b, "extra": 1})
    elif how == "twice" and keys:
        text_b = text_b[:-1] + b"," + msgspec.json.encode(keys[0]) + b":" + \
            msgspec.json.encode(draw(_VALUES)) + b"}"
    elif how == "spelled" and keys:
        odd = draw(st.sampled_from([b"1.0", b"-0", b"1e2", b'"\\u0041"', b"0", b"1"]))
        text_b = text_b[:-1] + (b"," if len(text_b) > 2 else b"") + \
            msgspec.json.encode("zz") + b":" + odd + b"}"
        text_a = text_a[:-1] + (b"," if len(text_a) > 2 else b"") + \
            msgspec.json.encode("zz") + b":" + draw(st.sampled_from([b"1", b"65", b'"A"'])) + \
            b"}"
    return text_a, text_b


@examples(60)
@given(data=st.data())
def test_locals_differing_anywhere_diff_as_the_reference_diffs(
    recorded: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Any
) -> None:
    lines_a, lines_b = list(recorded), list(recorded)
    starts = _starts(recorded)
    for k in data.draw(st.lists(st.sampled_from(starts), min_size=1, max_size=12)):
        value_a, value_b = data.draw(_pair())
        lines_a[k] = _with_locals(lines_a[k], value_a)
        lines_b[k] = _with_locals(lines_b[k], value_b)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(lines_a))
    b.write_bytes(b"".join(lines_b))
    options = data.draw(st.sampled_from([{}, {"max_hunks": 0}, {"max_hunks": 1},
                                         {"max_hunks": 0, "ignore": ["locals"]},
                                         {"max_hunks": 0, "window": 8}]))
    checked(a, b, monkeypatch, **options)


def test_flat_locals_that_differ_everywhere_are_judged_without_python(
    recorded: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench's case (a value that differs at every line start, integers and the
    writer's ``<Type #n>`` strings): every hunk after those kept in full is passed by
    the walk, and the reference's judge (``skip._judge``) is asked about few of them."""
    lines_a, lines_b = list(recorded), list(recorded)
    for k in _starts(recorded):
        for lines, n in ((lines_a, 40), (lines_b, 41)):
            lines[k] = _with_locals(lines[k], b'{"n":%d,"f":"<function #2>","i":7}' % n)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(lines_a))
    b.write_bytes(b"".join(lines_b))
    asked = []
    real = skip._judge

    def judge(*args: Any) -> Any:
        inner = real(*args)

        def counted(x: bytes, y: bytes) -> bool:
            asked.append(1)
            return inner(x, y)

        return counted

    monkeypatch.setattr(skip, "_judge", judge)
    fast, _ = checked(a, b, monkeypatch, max_hunks=0)
    assert fast.steps.hunk_count > 50
    # (left to it: a line start within SYNC steps of a hunk the walk has not confirmed)
    assert len(asked) * 10 < fast.steps.hunk_count, (len(asked), fast.steps.hunk_count)


# Locals spelled differently that are the same canonical values (the reference says
# "same"), and near misses that differ: at every line start, after no hunk kept in full.
_SPELLINGS = [
    (b'{"x":1,"y":2}', b'{"y":2,"x":1}'),  # keys moved: sorted, the same
    (b'{"x":1,"x":2}', b'{"x":3,"x":2}'),  # a key twice: the last is kept
    (b'{"A":1,"\\u0041":2}', b'{"A":3,"\\u0041":2}'),  # the same key, spelled twice
    (b'{"f":"<f at 0x7f01>"}', b'{"f":"<f at 0x7f02>"}'),  # addresses are masked
    (b'{"f":"<f at 0xab>","n":1}', b'{"f":"<f at 0xcd>","n":2}'),
    (b'{"x":1.0}', b'{"x":1.00}'),  # one float
    (b'{"x":-0}', b'{"x":0}'),  # one integer
    (b'{"x":"\\u0041"}', b'{"x":"A"}'),  # an escape
    (b'{"x":"\\u00e9"}', b'{"x":"\xc3\xa9"}'),
    (b'{"x":{"a":1,"b":2}}', b'{"x":{"b":2,"a":1}}'),  # nested, keys sorted too
    (b'{"x":[1,2]}', b'{"x":[1,3]}'),  # nested and different
    (b'{"x":1}', b'{"x":2}'),  # flat and different
    (b'{"x":"<Foo #1>","y":true}', b'{"x":"<Foo #2>","y":true}'),
    (b'{"x":1}', b'{"y":1}'),  # another key
    (b'{"x":1}', b'{"x":1,"y":null}'),  # one more
    (b'{"x":100000000000000000000}', b'{"x":100000000000000000001}'),  # past 18 digits
]


@pytest.mark.parametrize(("value_a", "value_b"), _SPELLINGS)
def test_locals_spelled_otherwise_diff_as_the_reference_diffs(
    recorded: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value_a: bytes,
    value_b: bytes
) -> None:
    lines_a, lines_b = list(recorded), list(recorded)
    first, *rest = _starts(recorded)
    # (a first difference: the walk passes hunks only once the differ has found one)
    lines_a[first] = _with_locals(lines_a[first], b'{"zz":1}')
    lines_b[first] = _with_locals(lines_b[first], b'{"zz":2}')
    for k in rest:
        lines_a[k] = _with_locals(lines_a[k], value_a)
        lines_b[k] = _with_locals(lines_b[k], value_b)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(lines_a))
    b.write_bytes(b"".join(lines_b))
    for options in ({"max_hunks": 0}, {"max_hunks": 0, "by_line": True}):
        checked(a, b, monkeypatch, **options)
