"""Recording a test's run in golden form, compared with a stored golden as it is made."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blocktrace.chain.verify import verify_file
from blocktrace.golden.record import Recording, _SpawnWatch
from blocktrace.golden.stabilise import Normaliser
from blocktrace.tracers.level import Level

ROOT = os.path.dirname(os.path.dirname(__file__))


def _item(i: int) -> str:
    return str(i)


def _work(n: int) -> list[str]:
    return [_item(i) for i in range(n)]  # (n calls: a calls golden without values holds
    # no return values, so n is seen in the calls)


def _record(workdir: Path, n: int = 50, one_pass: bool = True, **start: str | None) -> Recording:
    rec = Recording(level="call", values=False, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]), workdir=str(workdir),
                    one_pass=one_pass)
    rec.start(**start)
    _work(n)
    rec.finish(None)
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


class _Thing:
    pass


def _gen(n: int) -> Iterator[int]:
    yield from range(n)


def _fails() -> None:
    raise ValueError(f"no {_Thing()!r} under {ROOT}")  # an address and the root's path


def _program(unsettled: bool, elsewhere: Callable[[], object]) -> object:
    out: list[object] = [_work(3), sum(_gen(4)), elsewhere()]
    try:
        _fails()
    except ValueError as exc:  # (the exception lines are written in Python)
        out.append(type(exc).__name__)
    if unsettled:  # returned strings (written by the C call hook) holding volatile values
        out.append(repr(_Thing()))
        out.append(os.path.join(ROOT, "x"))
    return out


def _elsewhere(tmp_path: Path) -> Callable[[], object]:
    """A function in a file of pytest's temporary directory (``<tmp>`` in golden form)."""
    module = tmp_path / "elsewhere.py"
    module.write_text("def elsewhere():\n    return [len(str(i)) for i in range(3)]\n")
    space: dict[str, Any] = {}
    exec(compile(module.read_text(), str(module), "exec"), space)
    return space["elsewhere"]  # type: ignore[no-any-return]


def _run(rec: Recording, unsettled: bool, elsewhere: Callable[[], object],
         against: str | None = None) -> None:
    start = functools.partial(rec.start, against=against)  # (locals rendered alike)
    _traced(start, rec.finish, unsettled, elsewhere)


def _traced(start: Callable[[], None], finish: Callable[[None], None], unsettled: bool,
            elsewhere: Callable[[], object]) -> None:
    start()  # this function is traced from here: the same locals in every recording
    _program(unsettled, elsewhere)
    finish(None)


@pytest.mark.parametrize("level", ["call", "line", "op"])
@pytest.mark.parametrize("values", [False, True])
@pytest.mark.parametrize("unsettled", [False, True])
def test_one_pass_makes_the_golden_form_the_recording_then_stabilise_makes(
        tmp_path: Path, level: Level, values: bool, unsettled: bool) -> None:
    elsewhere = _elsewhere(tmp_path)
    made: list[bytes] = []
    for one_pass in (True, False):
        rules = Normaliser(ROOT, ["the-test"], temp=str(tmp_path))
        rec = Recording(level=level, values=values, include=[__file__, str(tmp_path)],
                        exclude=None, rules=rules, workdir=str(tmp_path), one_pass=one_pass)
        _run(rec, unsettled, elsewhere)
        if not one_pass or not unsettled:  # (unsettled: when C wrote such a return line)
            assert rec.second_pass == (not one_pass)
        made.append(Path(rec.path).read_bytes())
        rec.cleanup()
    one, two = made
    assert one == two  # goldens stored before the one pass still compare equal, byte for byte
    stored = tmp_path / "stored.jsonl"
    for what, golden in (("same", two), ("differs early", two[:30] + b"X" + two[31:])):
        stored.write_bytes(golden)
        rec = Recording(level=level, values=values, include=[__file__, str(tmp_path)],
                        exclude=None, rules=Normaliser(ROOT, ["the-test"], temp=str(tmp_path)),
                        workdir=str(tmp_path))
        _run(rec, unsettled, elsewhere, against=str(stored))
        assert rec.same == (what == "same"), what
        assert os.path.exists(rec.path) != rec.same, what
        if not rec.same:
            assert Path(rec.path).read_bytes() == two, what
        rec.cleanup()
    assert b'"file":"golden/test_record.py"' in one and b'"file":"<tmp>/elsewhere.py"' in one
    assert b" at 0x?" in one and ROOT.encode() not in one and b"<tmp>" in one
    (tmp_path / "made.jsonl").write_bytes(one)
    assert verify_file(tmp_path / "made.jsonl").status == "sealed"


def test_a_stored_golden_made_in_two_passes_is_the_same_in_one(tmp_path: Path) -> None:
    reference = _record(tmp_path, one_pass=False)  # recorded, then stabilise: as before
    assert reference.second_pass
    again = _record(tmp_path, against=reference.path)
    assert again.same and not again.second_pass and not os.path.exists(again.path)
    assert Path(_record(tmp_path).path).read_bytes() == Path(reference.path).read_bytes()


def test_the_spawn_watch_notes_the_first_process_start_while_armed() -> None:
    command = [sys.executable, "-c", "pass"]
    expected = f"subprocess.Popen {command!r}"[:200]
    _SpawnWatch.arm()
    subprocess.run(command, check=True)
    subprocess.run([sys.executable, "-c", "pass", "second"], check=True)  # the first one counts
    assert _SpawnWatch.disarm() == expected
    subprocess.run(command, check=True)  # not armed: nothing noted
    _SpawnWatch.arm()
    assert _SpawnWatch.disarm() is None
    # the Python hook (the reference, BLOCKTRACE_PURE=1) notes the same for the same event
    saved = (_SpawnWatch.active, _SpawnWatch.seen)
    try:
        _SpawnWatch.active, _SpawnWatch.seen = True, None
        _SpawnWatch._hook("builtins.id", (1,))
        _SpawnWatch._hook("subprocess.Popen", (sys.executable, command, None, None))
        assert _SpawnWatch.seen == expected
    finally:
        _SpawnWatch.active, _SpawnWatch.seen = saved


def test_a_golden_is_recorded_with_the_inline_writer(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOCKTRACE_WRITER_THREAD", "1")  # what any other trace would get
    rec = Recording(level="call", values=False, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]), workdir=str(tmp_path))
    rec.start()
    writer = rec._chain._writer  # type: ignore[union-attr]
    threaded = getattr(writer, "threaded", False)
    _work(3)
    rec.finish(None)
    rec.cleanup()
    assert threaded is False


def _counted(workdir: Path, counts_gas: bool, against: str | None = None,
             one_pass: bool = True) -> Recording:
    rec = Recording(level="call", values=False, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]), workdir=str(workdir),
                    one_pass=one_pass)
    rec.counts_gas = counts_gas
    rec.start(against=against, fresh=str(workdir / f"fresh-{counts_gas}-{one_pass}.jsonl"))
    _work(50)
    rec.finish(None)
    return rec


def test_a_calls_golden_counts_no_gas_and_says_so(tmp_path: Path) -> None:
    """Gas is not compared at calls level: a calls golden is recorded without counting
    instructions (no per-instruction event), which its header says."""
    import json

    rec = _record(tmp_path)
    assert not rec.counts_gas
    lines = [json.loads(line) for line in Path(rec.path).read_bytes().splitlines()]
    assert lines[0]["gas"] == "uncounted" and lines[0]["level"] == "call"
    assert lines[-1]["gasUsed"] == "0x0"
    assert {d["gas"] for d in lines if "gas" in d and "event" in d} == {hex(2**63 - 1)}
    assert verify_file(rec.path).status == "sealed"
    for level in ("line", "op"):
        other = Recording(level=level, values=False, include=[__file__], exclude=None,
                          rules=Normaliser(ROOT, ["the-test"]), workdir=str(tmp_path))
        assert other.counts_gas


@pytest.mark.parametrize("one_pass", [True, False])
def test_a_calls_golden_of_the_counted_form_compares_equal(tmp_path: Path,
                                                           one_pass: bool) -> None:
    """A calls golden stored before gas went uncounted (gas counted, no header member)
    is not the same bytes, but the same behaviour: compare_golden finds it equal, and
    the plugin's update rewrites it in the new form (``_older_form``)."""
    from blocktrace.golden.compare import compare_golden
    from blocktrace.golden.plugin import _older_form

    old = _counted(tmp_path, True)
    assert b'"gas":"uncounted"' not in Path(old.path).read_bytes()
    assert verify_file(old.path).status == "sealed"
    rec = _counted(tmp_path, False, against=old.path)
    if not one_pass:  # the same bytes either way
        two = _counted(tmp_path, False, one_pass=False)
        assert two.second_pass
        assert Path(two.path).read_bytes() == Path(rec.path).read_bytes()
    assert not rec.same
    assert compare_golden(old.path, rec.path, "call").equal
    assert _older_form(old.path, rec.path) and not _older_form(rec.path, rec.path)
    diff = subprocess.run([sys.executable, "-m", "blocktrace", "diff", old.path, rec.path],
                          capture_output=True, text=True, timeout=120, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr


_VALUE = [0]


def _give() -> int:
    return _VALUE[0]


def _gives(workdir: Path, value: int, calls: int, name: str, valued: bool = True) -> str:
    """A calls golden of ``calls`` calls returning ``value``; ``valued``: in the form
    stored before calls goldens without values left return values out."""
    _VALUE[0] = value
    rec = Recording(level="call", values=False, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]), workdir=str(workdir))
    rec.return_values = valued
    rec.start(fresh=str(workdir / name))
    for _ in range(calls):
        _give()
    rec.finish(None)
    return rec.path


def test_calls_goldens_differing_only_in_return_values_compare_equal_without_decoding(
        tmp_path: Path) -> None:
    """At calls level without values the return values are not compared: two goldens
    whose lines differ only there (and so in their hashes) are equal, found on the
    bytes (no steps decoded); any other difference, or a damaged stored golden, is
    not taken for that.  (Goldens stored with return values, before calls goldens
    without values left them out.)"""
    from blocktrace.golden.compare import GoldenCorrupt, compare_golden

    one = _gives(tmp_path, 1, 3, "one.jsonl")
    two = _gives(tmp_path, 2, 3, "two.jsonl")
    assert Path(one).read_bytes() != Path(two).read_bytes()
    fast = compare_golden(one, two, "call")
    assert fast.equal and fast.steps is None
    valued = compare_golden(one, two, "call", values=True)
    assert not valued.equal and valued.steps is not None
    more = compare_golden(one, _gives(tmp_path, 2, 4, "more.jsonl"), "call")
    assert not more.equal and more.steps is not None and "_give" in more.text
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(Path(one).read_bytes().replace(b'"value":1', b'"value":7', 1))
    with pytest.raises(GoldenCorrupt):
        compare_golden(str(damaged), two, "call")


def test_a_calls_golden_without_values_leaves_return_values_out(tmp_path: Path) -> None:
    """Return values are not compared at calls level without values, so they are not
    recorded: the same calls returning other values give the same bytes.  A golden
    stored with them (before) compares equal to one without, on the bytes, and the
    plugin's update rewrites it (``_older_form``); with values they are kept."""
    from blocktrace.golden.compare import compare_golden
    from blocktrace.golden.plugin import _older_form

    one = _gives(tmp_path, 1, 3, "one.jsonl", valued=False)
    two = _gives(tmp_path, 2, 3, "two.jsonl", valued=False)
    data = Path(one).read_bytes()
    assert data == Path(two).read_bytes()
    assert data.count(b'"event":"return"') >= 3 and b'"value"' not in data
    assert verify_file(one).status == "sealed"
    old = _gives(tmp_path, 5, 3, "old.jsonl")
    assert b'"value":5' in Path(old).read_bytes()
    same = compare_golden(old, one, "call")
    assert same.equal and same.steps is None
    assert _older_form(old, one) and not _older_form(one, two) and not _older_form(old, old)
    assert not compare_golden(old, _gives(tmp_path, 5, 4, "more.jsonl", valued=False),
                              "call").equal
    rec = Recording(level="call", values=True, include=[__file__], exclude=None,
                    rules=Normaliser(ROOT, ["the-test"]), workdir=str(tmp_path))
    assert rec.return_values and not Recording(
        level="call", values=False, include=None, exclude=None,
        rules=Normaliser(ROOT, ["the-test"])).return_values
    _VALUE[0] = 6
    rec.start(fresh=str(tmp_path / "valued.jsonl"))
    _give()
    rec.finish(None)
    assert b'"value":6' in Path(rec.path).read_bytes()


def test_older_form_reads_return_lines_by_their_kind(tmp_path: Path) -> None:
    """``_older_form`` asks the format's reader: a ``null`` return value is a value
    (``ReturnLine`` alone reads an absent one as None too); a golden cut short is
    read up to its last whole line; a file that is no trace is no older form."""
    from blocktrace.format.lines import carries_value
    from blocktrace.golden.plugin import _older_form

    one = _gives(tmp_path, 1, 2, "one.jsonl", valued=False)
    nulls = _gives(tmp_path, None, 2, "nulls.jsonl")  # type: ignore[arg-type]
    assert b'"value":null' in Path(nulls).read_bytes()
    assert _older_form(nulls, one) and not _older_form(one, nulls)
    assert carries_value(b'{"event":"return","value":null}')
    assert not carries_value(b'{"event":"return","kind":"return"}')
    cut = tmp_path / "cut.jsonl"
    data = Path(nulls).read_bytes()
    cut.write_bytes(data[: data.rindex(b"\n", 0, -1) - 5])  # the summary gone, a torn line
    assert _older_form(str(cut), one)
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b"not a trace\n")
    assert not _older_form(str(junk), one) and not _older_form(one, str(junk))


_UNVALUED = """
import sys
sys.path.insert(0, sys.argv[1])
from blocktrace.golden.record import Recording
from blocktrace.golden.stabilise import Normaliser

rec = Recording(level="call", values=False, include=[sys.argv[1]], exclude=None,
                rules=Normaliser(sys.argv[1], ["t"]), workdir=sys.argv[1])
rec.start(fresh=sys.argv[2])
import prog
rec.finish(None)
"""


@pytest.mark.parametrize("program", ["calls", "generators"])
def test_a_calls_golden_without_values_is_the_same_in_c_and_pure(tmp_path: Path,
                                                                 program: str) -> None:
    """The stepper's C call hooks write return and yield lines without a value as the
    Python path does (``BLOCKTRACE_PURE=1``), on programs with recursion, generators,
    coroutines, exceptions and odd return values."""
    from tests.vm.processes import run_in_mode
    from tests.vm.test_ccalls import GENERATORS, PROGRAM

    (tmp_path / "prog.py").write_text(PROGRAM if program == "calls" else GENERATORS)
    (tmp_path / "record.py").write_text(_UNVALUED)
    made = []
    for pure in (False, True):
        out = tmp_path / f"golden-{pure}.jsonl"
        printed = run_in_mode([sys.executable, str(tmp_path / "record.py"), str(tmp_path),
                               str(out)], tmp_path, pure)
        assert "done" in printed
        made.append(out.read_bytes())
    assert made[0] == made[1]
    assert made[0].count(b'"event":"return"') > 20 and b'"value"' not in made[0]


def test_golden_bodies_made_once_serve_later_tests_with_the_same_rules(tmp_path: Path) -> None:
    """Golden bodies and call pieces are kept per process for the same root and
    temporary directory (a suite's tests write the same source lines and call the
    same functions): a later recording uses them and makes the same bytes as the
    two passes, which make every body again."""
    from blocktrace.golden.record import _made_before

    elsewhere = _elsewhere(tmp_path)

    def rules() -> Normaliser:
        return Normaliser(ROOT, ["the-test"], temp=str(tmp_path))

    assert _made_before(rules()) is _made_before(rules())
    assert _made_before(rules()) is not _made_before(Normaliser(ROOT, ["the-test"]))
    made = []
    for one_pass in (True, True, False):
        rec = Recording(level="call", values=False, include=[__file__, str(tmp_path)],
                        exclude=None, rules=rules(), workdir=str(tmp_path), one_pass=one_pass)
        _run(rec, False, elsewhere)
        made.append(Path(rec.path).read_bytes())
        rec.cleanup()
    seen, pieces = _made_before(rules())
    assert any(b'"event":"source"' in body for body in seen)
    from blocktrace._native import extension

    assert bool(pieces) == (extension("blocktrace.vm._chook") is not None)  # (C call lines)
    assert made[0] == made[1] == made[2]
