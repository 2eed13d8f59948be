"""A ``call``-level trace against another (of any level) on bytes (``skip.call_pair``:
``_cskip.calls`` passing over the op lines unread and over the call and return lines
both traces have in common) against the reference path (``levels.call_steps``: each
trace normalised whole, then read again for its call-level steps): the same report,
byte for byte, on real recordings, plain and compressed, and on them with op lines,
calls and returns inserted, removed and changed at random places (every edited trace
re-chained, as a forger would: a TAMPERED trace is read by the reference alone), either
way round, with ``--fields``, with small read buffers; and the same error when both
traces hold a line the reference refuses."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocktrace.eip3155 import TraceError, diff_files, skip
from tests.fuzz.harness import rechain

from .diffing import NEEDS_C, SETTINGS, Walked, checked, examples, record, recordings, reports, same
from .test_diff_align import EDIT, _edited, program

pytestmark = NEEDS_C


_record = partial(record, program)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    where = tmp_path_factory.mktemp("calls")
    return recordings(program, where, (
        ("op", {}, {}), ("line", {}, {"level": "line"}), ("call", {}, {"level": "call"}),
        ("call-more", {"every": 4}, {"level": "call"}),
        ("long-op", {"n": 200}, {}), ("long-call", {"n": 200}, {"level": "call"}),
        ("long-call-more", {"n": 200, "every": 4}, {"level": "call"})))


def _events(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(b'{"event":"call"')
            or line.startswith(b'{"event":"return"')]


CALL_EDIT = st.tuples(st.sampled_from(["remove", "twice", "pc", "value", "file", "gas",
                                       "name", "event"]),
                      st.floats(0, 1, exclude_max=True), st.integers(1, 9))


def _called(lines: list[bytes], edits: list[tuple[str, float, int]]) -> list[bytes]:
    """The trace's lines with a call or return line removed, said twice, at another pc,
    returning another value, naming another file, gas or function, or made an
    exception line's event."""
    out = list(lines)
    for kind, where, size in edits:
        events = _events(out)
        if not events:
            return out
        at = events[int(where * len(events))]
        line = out[at]
        if kind == "remove":
            del out[at]
        elif kind == "twice":
            out[at:at] = [line]
        elif kind == "pc":
            out[at] = line.replace(b'"pc":', b'"pc":%d' % size, 1)
        elif kind == "value":
            out[at] = line.replace(b'"value":', b'"value":[%d,' % size, 1).replace(
                b',"hash"', b'],"hash"', 1) if b'"value":' in line else line
        elif kind == "file":
            out[at] = line.replace(b'"file":"', b'"file":"/elsewhere%d' % size, 1)
        elif kind == "gas":
            out[at] = line.replace(b'"gas":"0x', b'"gas":"0x%d' % size, 1)
        elif kind == "name":
            out[at] = line.replace(b'"name":"', b'"name":"x', 1)
        else:
            out[at] = line.replace(b'{"event":"call"', b'{"event":"raise"', 1).replace(
                b'{"event":"return"', b'{"event":"handled"', 1)
    return out


FIELDS = st.sampled_from([None, ("pc", "function"), ("depth", "pc", "gas"),
                          ("pc", "op", "line", "code", "file"), ("function", "file", "depth")])


@SETTINGS
@given(edits=st.lists(EDIT, max_size=6), calls=st.lists(CALL_EDIT, max_size=4),
       call_edits=st.lists(CALL_EDIT, max_size=4), fields=FIELDS,
       max_hunks=st.sampled_from([0, 2, 5]), swap=st.booleans(),
       other=st.sampled_from(["op", "line", "call"]), call=st.sampled_from(["call", "call-more"]))
def test_random_edits_at_level_call_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    edits: list[tuple[str, float, int]], calls: list[tuple[str, float, int]],
    call_edits: list[tuple[str, float, int]], fields: tuple[str, ...] | None,
    max_hunks: int, swap: bool, other: str, call: str,
) -> None:
    """A trace of any level edited (op lines and call lines) against a call trace
    (edited too, or of a run that went otherwise), either way round."""
    a, b = tmp_path / "other.jsonl", tmp_path / "call.jsonl"
    lines = base[other]
    if other != "call":
        lines = _edited(lines, edits)
    a.write_bytes(rechain(b"".join(_called(lines, calls))))
    b.write_bytes(rechain(b"".join(_called(base[call], call_edits))))
    checked(a, b, monkeypatch, swap=swap, fields=fields, max_hunks=max_hunks)


@examples(10)
@given(calls=st.lists(CALL_EDIT, max_size=4), chunk=st.sampled_from([512, 2048, 8192]),
       other=st.sampled_from(["op", "line"]))
def test_small_buffers_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    calls: list[tuple[str, float, int]], chunk: int, other: str,
) -> None:
    monkeypatch.setattr(skip, "CHUNK", chunk)
    monkeypatch.setattr(skip, "_REFILL", chunk // 2)
    a, b = tmp_path / "other.jsonl", tmp_path / "call.jsonl"
    a.write_bytes(rechain(b"".join(_called(base[other], calls))))
    b.write_bytes(b"".join(base["call-more"]))
    checked(a, b, monkeypatch)


PROGRAMS: dict[str, tuple[dict[str, Any], dict[str, Any], str, str]] = {
    # name: (the other trace's arguments, the call trace's, the other's level, suffix)
    "the same run, op": ({"n": 300}, {"n": 300}, "op", ".jsonl"),
    "the same run, line": ({"n": 300}, {"n": 300}, "line", ".jsonl"),
    "the same run, call": ({"n": 300}, {"n": 300}, "call", ".jsonl"),
    "a statement added every 5th iteration": ({"n": 300}, {"n": 300, "every": 5}, "op",
                                              ".jsonl"),
    "compressed": ({"n": 300}, {"n": 300, "every": 50}, "op", ".jsonl.zst"),
    "compressed, line": ({"n": 300, "every": 50}, {"n": 300}, "line", ".jsonl.zst"),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
@pytest.mark.parametrize("max_hunks", [0, 5])
def test_real_recordings_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, max_hunks: int
) -> None:
    """Real recordings of a program at some level and of it (or it changed) at level
    call: the report is the reference's, and most steps were passed over as bytes."""
    args_other, args_call, level, suffix = PROGRAMS[name]
    a = _record(tmp_path / f"other{suffix}", args_other, level=level)
    b = _record(tmp_path / f"call{suffix}", args_call, level="call")
    passed = Walked(monkeypatch, "_skip_calls")
    for x, y in ((a, b), (b, a)):
        fast, reference = reports(x, y, monkeypatch, max_hunks=max_hunks)
        same(fast, reference)
        if level != "call":
            assert fast.notes and "compared at level call" in fast.notes[0]
    assert passed.count > fast.steps.common // 3


def _renamed(lines: list[bytes]) -> list[bytes]:
    """Every call line naming another file (the program recorded from another path)."""
    return [line.replace(b'"file":"', b'"file":"/elsewhere', 1)
            if line.startswith(b'{"event":"call"') else line for line in lines]


def _echoed(lines: list[bytes]) -> list[bytes]:
    """After every return line, the op line before it said again (its gas, pc, depth and
    code: the reference merges it into that step, as a fault's second line)."""
    out: list[bytes] = []
    last = None
    for line in lines:
        out.append(line)
        if line.startswith(b'{"pc"'):
            last = line
        elif line.startswith(b'{"event":"return"') and last is not None:
            out.append(last)
    return out


def _regassed(lines: list[bytes]) -> list[bytes]:
    """Every fifth return line with another gas."""
    out = list(lines)
    returns = [i for i, line in enumerate(out) if line.startswith(b'{"event":"return"')]
    for i in returns[::5]:
        out[i] = out[i].replace(b'"gas":"0x7', b'"gas":"0x6', 1)
    return out


def _raised_after_returns(op: list[bytes], call: list[bytes]
                          ) -> tuple[list[bytes], list[bytes]]:
    """Every sixth return line of both traces said twice, then an exception line saying
    the op trace's op line before the returns again: the reference merges it into that
    step there (its pc, depth and code, an event), not in the call trace."""
    raised: list[bytes] = []
    out_op: list[bytes] = []
    last = None
    for line in op:
        out_op.append(line)
        if line.startswith(b'{"pc"'):
            last = line
        elif line.startswith(b'{"event":"return"') and last is not None:
            raised.append(last[:last.index(b',"hash":')] + b',"error":"E","event":"raise"}\n')
            if len(raised) % 6 == 0:
                out_op.extend([line, raised[-1]])
    out_call: list[bytes] = []
    returns = 0
    for line in call:
        out_call.append(line)
        if line.startswith(b'{"event":"return"'):
            returns += 1
            if returns % 6 == 0 and returns <= len(raised):
                out_call.extend([line, raised[returns - 1]])
    return out_op, out_call


@pytest.mark.parametrize("fields", [None, ("pc", "function", "file"), ("pc", "depth", "gas")])
@pytest.mark.parametrize("change", ["renamed", "echoed", "every", "gas", "raised"])
def test_traces_whose_lines_differ_in_what_is_compared_or_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
    fields: tuple[str, ...] | None, change: str,
) -> None:
    """Call lines naming another file, return lines with another gas (here and there, or
    all after a run that went otherwise), op lines that merge into the step before a
    return line, an exception line after two return lines that merges into the op step
    before them:
    the walk passes them only where the compared fields do not see the difference."""
    a, b = tmp_path / "op.jsonl", tmp_path / "call.jsonl"
    op = base["long-op"]
    call = base["long-call-more" if change == "every" else "long-call"]
    if change == "renamed":
        call = _renamed(call)
    elif change == "echoed":
        op = _echoed(op)
    elif change == "gas":
        call = _regassed(call)
    elif change == "raised":
        op, call = _raised_after_returns(op, call)
    a.write_bytes(rechain(b"".join(op)))
    b.write_bytes(rechain(b"".join(call)))
    passed = Walked(monkeypatch, "_skip_calls")
    fast, reference = reports(a, b, monkeypatch, fields=fields, max_hunks=1000)
    same(fast, reference)
    if change in ("echoed", "raised"):
        assert fast.a.merged > reference.b.merged
    elif fields is None:  # (neither the file nor the gas compared: most are passed)
        assert passed.count > fast.steps.common // 3


def test_a_trace_with_a_bad_line_in_each_fails_on_as_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: dict[str, list[bytes]],
) -> None:
    """The reference reads each trace whole before its first step: A's error is the one
    raised even where B's comes first (the fast path reads both in step)."""
    bad = b'{"pc":"x","op":1,"gas":"0x5"}\n'
    op, call = list(base["op"]), list(base["call"])
    op.insert(len(op) - 3, bad)
    call.insert(4, bad)
    a, b = tmp_path / "op.jsonl", tmp_path / "call.jsonl"
    a.write_bytes(rechain(b"".join(op)))
    b.write_bytes(rechain(b"".join(call)))
    errors = []
    for pure in (False, True):
        with monkeypatch.context() as patch:
            if pure:
                patch.setattr(skip, "_c", None)
            with pytest.raises(TraceError) as raised:
                diff_files(str(a), str(b))
            errors.append(str(raised.value))
    assert errors[0] == errors[1]
    assert str(a) in errors[0]
