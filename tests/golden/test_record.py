"""Recording a test's run in golden form, compared with a stored golden as it is made."""

from __future__ import annotations

import os
from pathlib import Path

from blocktrace.golden.record import Recording
from blocktrace.golden.stabilise import Normaliser

ROOT = os.path.dirname(os.path.dirname(__file__))


def _work(n: int) -> list[str]:
    return [str(i) for i in range(n)]


def _record(workdir: Path, n: int = 50, **finish: str | None) -> Recording:
    rec = Recording(level="call", values=False, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]), workdir=str(workdir))
    rec.start()
    _work(n)
    rec.finish(None, **finish)
    return rec


def test_the_same_bytes_as_the_stored_golden_are_not_written(tmp_path: Path) -> None:
    first = _record(tmp_path)
    golden = tmp_path / "stored.jsonl"
    os.replace(first.path, golden)
    again = _record(tmp_path, against=str(golden))
    assert again.same
    assert not os.path.exists(again.path)
    assert not os.path.exists(again.raw_path)  # freed as soon as the golden form is made
    again.cleanup()
    assert sorted(os.listdir(tmp_path)) == ["stored.jsonl"]  # the caller's directory stays


def test_a_golden_that_differs_anywhere_gets_the_whole_golden_form(tmp_path: Path) -> None:
    plain = _record(tmp_path)
    expected = Path(plain.path).read_bytes()
    middle = len(expected) // 2
    variants = {
        "one byte changed": expected[:middle] + b"X" + expected[middle + 1:],
        "shorter": expected[:-1],
        "longer": expected + b"\n",
        "empty": b"",
        "other behaviour": Path(_record(tmp_path, n=51).path).read_bytes(),
    }
    for what, stored in variants.items():
        golden = tmp_path / "stored.jsonl"
        golden.write_bytes(stored)
        rec = _record(tmp_path, against=str(golden), fresh=str(tmp_path / "fresh.jsonl"))
        assert not rec.same, what
        assert rec.path == str(tmp_path / "fresh.jsonl")
        assert Path(rec.path).read_bytes() == expected, what
        assert golden.read_bytes() == stored  # the stored golden is only read
        rec.cleanup()
        assert not os.path.exists(rec.path)


def test_a_recording_of_its_own_makes_and_removes_its_directory() -> None:
    rec = Recording(level="call", values=False, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]))
    rec.start()
    _work(3)
    rec.finish(None)
    folder = os.path.dirname(rec.path)
    assert os.path.getsize(rec.path) > 0
    rec.cleanup()
    assert not os.path.exists(folder)
