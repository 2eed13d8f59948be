"""The C readers of format/csrc/scan.c and columns.c and view/csrc/tables.c called
directly on damaged traces whose bytes are placed against a page nobody may read
(guarded.py), after them or before them: a read of one byte outside the buffer
they are given is a SIGSEGV, with or without a sanitizer.  (The diff's walks are
held so in test_fuzz_walks.py.)

Each reader is called as its Python caller calls it -- ``ChainScan.scan`` from the
header on, on buffers cut anywhere; ``OpColumns.feed`` and ``TablesPass.feed`` on
buffers of whole lines (``complete_lines``), the caller reading each line they stop
at; ``strip``, ``plain_json_object`` and ``leaf_cut`` on any bytes -- and whatever it
answers, the positions it gives back stay in the buffer.  The traces: a recording
with ``--locals on`` (calls, returns, exception lines, values) and one at the line
level, each damaged as test_fuzz_walks.py damages them, re-chained half the time so
the damage reaches the parsing behind the hash check.  CI: ``CALLS`` rounds from a
fixed seed; ``BLOCKTRACE_FUZZ=deep``: more, from a random one (printed).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import blocktrace
from blocktrace._native import extension

from . import guarded
from .test_fuzz_walks import DEEP, _damaged, _newlines

CALLS = int(os.environ.get("BLOCKTRACE_GUARDED_CALLS", "20000" if DEEP else "300"))
SEED = random.SystemRandom().randrange(1, 1 << 30) if DEEP else 23
_cscan = extension("blocktrace.format._cscan")
_ctables = extension("blocktrace.view._ctables")

pytestmark = pytest.mark.skipif(_cscan is None or _ctables is None,
                                reason="the C extensions are not built (or BLOCKTRACE_PURE)")


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        try:
            total += 10 // (i % 3)
        except ZeroDivisionError:
            total -= 1
    return total


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    d = tmp_path_factory.mktemp("guarded")
    made = []
    for name, options in (("locals", {"locals": "on"}), ("line", {"level": "line"}),
                          ("v3", {"format_version": 3})):
        path = d / f"{name}.jsonl"
        with blocktrace.trace(blocktrace.ChainTracer(path, **options)):
            _work(12)
        made.append(path.read_bytes())
    return made


def test_the_readers_read_only_their_buffers(traces: list[bytes]) -> None:
    assert _cscan is not None and _ctables is not None
    print(f"test_fuzz_guarded: seed {SEED}, {CALLS} rounds")
    rng = random.Random(SEED)
    side = guarded.Guarded(1 << 17)
    for _ in range(CALLS):
        what: list[str] = []
        data = _damaged(rng, rng.choice(traces), what, True)
        if len(data) > side.room:
            continue
        whole = data[:data.rfind(b"\n") + 1]
        torn = data[:rng.randrange(len(data) + 1)]
        place = side.at_end if rng.random() < 0.7 else side.at_start
        reader = rng.randrange(6)
        if reader == 0:  # verify's scan, from the header on
            view = place(torn)
            version = rng.choice([1, 2, 3, 4])
            scan = _cscan.ChainScan(version, 16, rng.choice([64, 4096, 1 << 26]),
                                    rng.random() < 0.5, rng.choice([0, 16]), False, False)
            pos, number = 0, 1
            for _ in range(10_000):
                code, at, number = scan.scan(view, pos, number, rng.randrange(2))
                assert pos <= at <= len(view), (what, code, pos, at)
                if at == pos:  # the caller reads the line it stopped at, then goes on
                    nl = torn.find(b"\n", at)
                    if nl < 0:
                        break
                    at, number = nl + 1, number + 1
                pos = at
        elif reader in (1, 2):  # query's columns, the viewer's tables: whole lines
            view = place(whole)
            feeder = (_cscan.OpColumns() if reader == 1
                      else _ctables.TablesPass(rng.choice([64, 1 << 26]), rng.random() < 0.5))
            pos, number = 0, 1
            for _ in range(10_000):
                if reader == 1:
                    stop, at, following = feeder.feed(view, pos, number, rng.choice([1, 7, 1000]))
                else:
                    stop, at, following = feeder.feed(view, pos, number)
                assert pos <= at <= len(view), (what, stop, pos, at)
                if not stop or at >= len(whole):
                    break
                nl = whole.find(b"\n", at)
                pos, number = nl + 1, following + 1  # the caller reads the line at ``at``
        elif reader == 3:
            try:
                _cscan.strip(place(rng.choice([whole, torn])))
            except ValueError:
                pass
        elif reader == 4:
            lines = _newlines(data)
            start = rng.choice([0, *(i + 1 for i in lines)]) if lines else 0
            end = data.find(b"\n", start)
            _cscan.plain_json_object(place(data[start:end if end >= 0 else len(data)]))
        else:
            cut, n = _cscan.leaf_cut(place(torn), rng.randrange(40), rng.choice([1, 16]))
            assert 0 <= cut <= len(torn) and n >= 0, (what, cut, n)


def test_a_read_past_the_buffer_is_caught() -> None:
    """The guard itself: a read of the byte after what ``at_end`` placed (as a reader
    that runs one byte too far would) kills a process."""
    import subprocess
    import sys

    tests = str(Path(__file__).parents[1])
    code = (f"import sys; sys.path.insert(0, {tests!r}); from fuzz.guarded import Guarded; "
            "g = Guarded(100); v = g.at_end(b'{}'); print(v[-1]); "
            "print(g.view[g.view.nbytes - 4096 - 1]); print(g.view[g.view.nbytes - 4096])")
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    # (SIGSEGV; under scripts/sanitize, AddressSanitizer's SEGV report and exit 1)
    assert said.returncode < 0 or said.returncode == 139 or (
        said.returncode != 0 and b"SEGV" in said.stderr), said.returncode
    assert said.stdout.split() == [b"125", b"125"], said.stdout


def test_no_rows_gather_to_empty_columns() -> None:
    """``OpColumns.gather`` of no rows (a table with no row of that kind: query of a trace
    with no call): an empty column, without handing memset a NULL pointer -- which
    scripts/sanitize's UBSan build reported (columns.c gather_rows) and stopped at."""
    assert _cscan is not None
    columns = _cscan.OpColumns()
    for how in range(6):
        valid, *rest = columns.gather(b"", how)
        assert valid is None and rest[-1] == b"", (how, valid, rest)


def test_numbers_of_19_digits_go_to_the_reference(traces: list[bytes]) -> None:
    """An op line the C readers read as it is, with its pc, depth or line made 19 digits
    or more (past int64), is handed to the Python reference: they stop at it.
    (jsonint.h read a 19th digit into an int64 before refusing it: an overflow,
    undefined in C, that scripts/sanitize's UBSan build reported; a plain build
    answered the same.)"""
    assert _cscan is not None and _ctables is not None
    lines = traces[0].splitlines(keepends=True)

    def passes(data: bytes, start: int, number: int) -> tuple[bool, bool]:
        _, pos, _ = _cscan.OpColumns().feed(data, start, number, 1000)
        _, pos2, _ = _ctables.TablesPass(1 << 26, True).feed(data, start, number)
        return pos > start, pos2 > start

    checked = 0
    for op, line in enumerate(lines[:-1]):
        if not line.startswith(b'{"pc":'):
            continue
        start = sum(map(len, lines[:op]))
        whole = b"".join(lines[:op + 2])
        read = passes(whole, start, op + 1)
        if not any(read):
            continue
        for member in (b'"depth":', b'"line":', b'{"pc":'):
            at = line.index(member) + len(member)
            end = at
            while line[end:end + 1].isdigit():
                end += 1
            for digits in (19, 25):
                edited = b"".join([*lines[:op], line[:at] + b"9" * digits + line[end:],
                                   lines[op + 1]])
                assert passes(edited, start, op + 1) == (False, False), (member, digits, read)
                checked += 1
    assert checked >= 6
