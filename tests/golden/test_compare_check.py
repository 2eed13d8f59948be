"""The stored golden's check during a differing ``ops`` comparison.

Where the C pass is built, the golden's chain is checked by the byte pass as it
compares the golden's lines (``fastcheck.Follower`` fed by ``_cskip.skip``), and
the rest -- the lines the reference path read, everything after the comparison
stopped -- by the follower's ``finish``; elsewhere ``check_chain`` on a thread.
Either way a tampered golden fails with the file named and the answer
``check_chain`` gives, wherever the tampering lies: before the first divergence,
in the common run after it that the pass hashes, past the last hunk, in the
summary or after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from blocktrace._native import extension
from blocktrace.eip3155 import skip
from blocktrace.eip3155.compare import Comparer
from blocktrace.eip3155.differ import diff_steps
from blocktrace.eip3155.normalise import TraceInfo
from blocktrace.format.fastcheck import Follower
from blocktrace.format.reader import check_chain
from blocktrace.golden.compare import GoldenCorrupt, compare_golden, fields_for
from blocktrace.golden.record import Recording
from blocktrace.golden.stabilise import Normaliser

ROOT = os.path.dirname(os.path.dirname(__file__))


def _loop(n: int, changed: bool) -> int:
    total = 0
    if changed:  # one more line executed near the start
        total = 1
    for i in range(n):
        total += i & 7
    return total


def _golden(workdir: Path, name: str, changed: bool, n: int = 400) -> bytes:
    rec = Recording(level="op", values=False, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]), workdir=str(workdir))
    rec.start(fresh=str(workdir / name))
    _loop(n, changed)
    rec.finish(None)
    return Path(rec.path).read_bytes()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """The golden's bytes and the path of a fresh trace that differs near the start."""
    work = tmp_path_factory.mktemp("goldens")
    golden = _golden(work, "golden.jsonl", False)
    _golden(work, "changed.jsonl", True)
    return golden, work / "changed.jsonl"


@pytest.fixture(autouse=True, params=[(skip.CHUNK, skip._HELD), (97, skip._HELD), (4096, 0)],
                ids=["4MiB", "97B", "4KiB-unheld"])
def pieces(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass reads the files in pieces of this size; the bytes its chain check has
    still to read are held up to this many (0: the check reads them itself)."""
    monkeypatch.setattr(skip, "CHUNK", request.param[0])
    monkeypatch.setattr(skip, "_HELD", request.param[1])


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _op_lines(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(b'{"pc":')]


def _edit_pc(lines: list[bytes], at: int) -> None:
    lines[at] = lines[at].replace(b'{"pc":', b'{"pc":9', 1)


def _edit_gas(lines: list[bytes], at: int) -> None:
    # the gas is not compared at ops level: the pass takes this line for the fresh one's
    start = lines[at].index(b'"gas":"0x') + 9
    digit = b"1" if lines[at][start:start + 1] != b"1" else b"2"
    lines[at] = lines[at][:start] + digit + lines[at][start + 1:]


def _edit_hash(lines: list[bytes], at: int) -> None:
    digit = b"0" if lines[at][-4:-3] != b"0" else b"1"
    lines[at] = lines[at][:-4] + digit + lines[at][-3:]


def _drop(lines: list[bytes], at: int) -> None:
    del lines[at]


def _swap(lines: list[bytes], at: int) -> None:
    lines[at], lines[at + 1] = lines[at + 1], lines[at]


Tamper = Callable[[list[bytes], int], None]
PLACES = {"early": 0.02, "after the divergence": 0.5, "near the end": 0.97}
TAMPERING: dict[str, Tamper] = {"edited pc": _edit_pc, "edited gas": _edit_gas,
                                "edited hash": _edit_hash, "dropped": _drop, "swapped": _swap}


def _check_like_check_chain(path: Path, fresh: Path) -> None:
    """compare_golden fails naming the file, with check_chain's status and line."""
    expected = check_chain(str(path))
    assert expected.status != "sealed"
    with pytest.raises(GoldenCorrupt) as failed:
        compare_golden(str(path), str(fresh), "op")
    message = str(failed.value)
    assert f"golden trace {path} is {expected.status}" in message
    if expected.line:
        assert f" at line {expected.line}:" in message
    assert expected.reason in message


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("how", TAMPERING)
def test_a_tampered_golden_fails_wherever_the_tampering_lies(
        tmp_path: Path, pair: tuple[bytes, Path], how: str, place: str) -> None:
    golden, fresh = pair
    lines = _lines(golden)
    ops = _op_lines(lines)
    at = ops[int(len(ops) * PLACES[place])]
    TAMPERING[how](lines, at)
    path = tmp_path / "golden.jsonl"
    path.write_bytes(b"".join(lines))
    _check_like_check_chain(path, fresh)


@pytest.mark.parametrize("how", ["appended", "summary edited", "summary gone", "torn"])
def test_a_golden_damaged_at_its_end_fails(tmp_path: Path, pair: tuple[bytes, Path],
                                          how: str) -> None:
    golden, fresh = pair
    lines = _lines(golden)
    if how == "appended":
        lines.append(lines[-2])
    elif how == "summary edited":
        lines[-1] = lines[-1].replace(b'"pass":true', b'"pass":false')
    elif how == "summary gone":
        del lines[-1]
    else:
        lines[-1] = lines[-1][:-10]
    path = tmp_path / "golden.jsonl"
    path.write_bytes(b"".join(lines))
    _check_like_check_chain(path, fresh)


def test_a_sound_golden_compares_and_the_pass_checked_its_common_run(
        tmp_path: Path, pair: tuple[bytes, Path]) -> None:
    """The comparison's report is the reference path's; with the C pass the chain of
    the common run was checked by the pass itself (the follower stands past it
    before its finish), and the finish's answer is check_chain's."""
    golden, fresh = pair
    path = tmp_path / "golden.jsonl"
    path.write_bytes(golden)
    diff = compare_golden(str(path), str(fresh), "op")
    assert not diff.equal and diff.steps is not None
    native = skip._c
    try:
        skip._c = None
        reference = compare_golden(str(path), str(fresh), "op")
    finally:
        skip._c = native
    assert reference.text == diff.text
    scan = extension("blocktrace.format._cscan")
    if native is None or scan is None:
        pytest.skip("the C pass is not built (BLOCKTRACE_PURE or no compiler)")
    fields = fields_for("op")
    info_g, info_f = TraceInfo(str(path)), TraceInfo(str(fresh))
    follower = Follower(scan, str(path))
    streams = skip.pair(info_g, info_f, fields, follower)
    assert streams is not None
    steps = diff_steps(streams[0], streams[1], Comparer(fields), max_hunks=1, stop_after=2,
                       skip=streams[2])
    assert steps.hunk_count == 1 and not steps.equal
    if skip._HELD:
        assert follower.code == 0 and follower.pos > len(golden) * 0.9
    result = follower.finish()
    expected = check_chain(str(path))
    assert (result.status, result.lines, result.head, result.header, result.genesis) == (
        expected.status, expected.lines, expected.head, expected.header, expected.genesis)
