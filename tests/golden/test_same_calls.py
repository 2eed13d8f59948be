"""``golden.compare._same_calls``: two calls goldens that differ only in return values
are told apart from any other difference on the bytes, a piece at a time -- the same
verdict as the whole files' ``without_values`` at every piece size, memory held to
the pieces whatever the goldens' size, and a damaged or thread-naming golden left
to the step comparison."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from blocktrace.format import linesource
from blocktrace.format.callline import without_values
from blocktrace.golden import compare
from blocktrace.golden.record import Recording
from blocktrace.golden.stabilise import Normaliser

ROOT = os.path.dirname(os.path.dirname(__file__))
_VALUE = [0]


def _give(i: int) -> int:
    return _VALUE[0] + (i & 1)


def _golden(path: Path, value: int, calls: int) -> Path:
    """A calls golden (return values kept, as stored before session 9) of ``calls``
    calls returning ``value`` or ``value + 1``."""
    _VALUE[0] = value
    rec = Recording(level="call", values=False, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]), workdir=str(path.parent))
    rec.return_values = True
    rec.start(fresh=str(path))
    for i in range(calls):
        _give(i)
    rec.finish(None)
    return Path(rec.path)


@pytest.fixture(scope="module")
def goldens(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("calls")
    one = _golden(where / "one.jsonl", 1, 300)
    data = one.read_bytes()
    made = {
        "one": one,
        "values": _golden(where / "values.jsonl", 20, 300),
        "more": _golden(where / "more.jsonl", 1, 301),
        "fewer": _golden(where / "fewer.jsonl", 1, 299),
    }
    for name, damaged in {
        "torn": data[:-20],
        "thread": data.replace(b',"hash":', b',"thread":1,"hash":', 1),
        "edited": data.replace(b'"_give"', b'"_gift"', 1),
        "no-hash": data.replace(b',"hash":"', b',"hush":"', 1),
        "empty": b"",
    }.items():
        made[name] = where / f"{name}.jsonl"
        made[name].write_bytes(damaged)
    assert b'"value":1' in data and b'"value":21' in made["values"].read_bytes()
    return made


def _whole(a: Path, b: Path) -> bool:
    """The verdict on the whole files (what _same_calls gave before it read in pieces)."""
    one = without_values(a.read_bytes())
    return one is not None and one == without_values(b.read_bytes())


@pytest.mark.parametrize("chunk", [31, 97, 4096, linesource.CHUNK])
def test_the_verdict_is_the_whole_files_at_any_piece_size(
        goldens: dict[str, Path], chunk: int) -> None:
    one = goldens["one"]
    assert compare._same_calls(str(one), str(goldens["values"]), chunk)
    assert compare._same_calls(str(goldens["values"]), str(one), chunk)
    for name, path in goldens.items():
        for a, b in ((one, path), (path, one)):
            assert compare._same_calls(str(a), str(b), chunk) == _whole(a, b), (name, a, b)
            if name not in ("one", "values"):
                assert not compare._same_calls(str(a), str(b), chunk), name


def test_memory_is_the_pieces_whatever_the_goldens_size(
        goldens: dict[str, Path], tmp_path: Path) -> None:
    """Two goldens of 4 MB each read 64 KiB at a time hold well under one golden's size
    (reading them whole held both)."""
    copies = 0
    data = {}
    for name in ("one", "values"):
        body = goldens[name].read_bytes()
        copies = (4 << 20) // len(body) + 1
        # many goldens' lines end to end: not a trace, but lines of the same kinds
        data[name] = tmp_path / f"{name}.jsonl"
        data[name].write_bytes(body * copies)
    assert data["one"].stat().st_size > 4 << 20
    tracemalloc.start()
    try:
        same = compare._same_calls(str(data["one"]), str(data["values"]), 64 << 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert same and copies > 10
    assert peak < 1 << 20, peak
