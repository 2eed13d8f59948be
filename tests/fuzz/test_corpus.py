"""The inputs that found reader bugs, kept as regression tests (tests/fuzz/corpus/).

Every file of the corpus goes through every trace reader -- ``verify`` (and
``verify --json``, which must give the same answer), ``prove``, ``lines``
(text and JSON) and ``diff`` against ``reference.jsonl`` -- in-process, with no
known bug tolerated; a handful also run as real processes, with their address
space capped.  The corpus (see corpus/README.md for how each file was made):

- ``reference.jsonl``: a real trace of ``fuzzcorpus.py`` (the others are edits of it);
- ``summary-gasused-not-hex.jsonl``: re-chained, the summary's ``gasUsed`` is ``"zz"``
  (``verify`` raised ValueError and exited 1 while ``verify --json`` said valid);
- ``deep-header.jsonl``: a 20 KB header nested 10,000 levels deep, and
  ``deep-summary.jsonl``/``deep-event.jsonl``: re-chained traces with such a value in the
  summary / an op line (RecursionError tracebacks in verify, prove, lines and diff);
- ``source-dev-zero.jsonl``: re-chained, it names ``/dev/zero`` as its source file and
  differs from the reference at its first op, so ``diff`` quotes that source (and read
  ``/dev/zero`` until memory ran out);
- ``tables/deep-type-*.jsonl``: type tables (``types --from``) with a type nested 1,000 and
  900 levels deep (RecursionError tracebacks decoding and formatting it);
- ``requests/newline-in-unknown-field.json``: a snapshot request whose unknown member's name
  holds a line break (the error about it took two lines on stderr).
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from .harness import run_cli

CORPUS = Path(__file__).parent / "corpus"
REFERENCE = CORPUS / "reference.jsonl"
TRACES = sorted(p.name for p in CORPUS.glob("*.jsonl"))

Argv = Callable[[Path], list[str | Path]]
READERS: dict[str, tuple[Argv, tuple[int, ...]]] = {
    "verify": (lambda f: ["verify", f], (0, 1, 2, 3)),
    "prove": (lambda f: ["prove", f, "3"], (0, 1, 2)),
    "lines": (lambda f: ["lines", f], (0, 1, 2)),
    "lines --json": (lambda f: ["lines", "--json", f], (0, 1, 2)),
    "diff": (lambda f: ["diff", REFERENCE, f], (0, 1, 2)),
}

# Not fixed yet: xfail(strict) until they are.
KNOWN: dict[tuple[str, str], str] = {}


def _cases() -> list[object]:
    cases = []
    for name in TRACES:
        for reader in READERS:
            reason = KNOWN.get((name, reader))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(name, reader, marks=marks, id=f"{name}-{reader}"))
    return cases


@pytest.mark.parametrize(("name", "reader"), _cases())
def test_every_reader_on_the_corpus(name: str, reader: str) -> None:
    argv, allowed = READERS[reader]
    path = CORPUS / name
    answer = run_cli(*argv(path), tolerate_known_bugs=False)
    answer.check(allowed, f"{reader} {name}")
    if reader == "verify":  # one answer, from one code path
        machine = run_cli("verify", "--json", path, tolerate_known_bugs=False)
        machine.check(allowed, f"verify --json {name}")
        assert machine.status == answer.status, (answer, machine)
        assert msgspec.json.decode(machine.stdout)["valid"] is (machine.status == 0)


def test_the_reference_is_a_good_trace() -> None:
    """The corpus's base is what it claims: sealed, provable, viewable, equal to itself."""
    assert run_cli("verify", REFERENCE).status == 0
    assert run_cli("prove", REFERENCE, "3").status == 0
    assert run_cli("lines", REFERENCE).status == 0
    assert run_cli("diff", REFERENCE, REFERENCE).status == 0


TABLES = sorted(p.name for p in (CORPUS / "tables").glob("*.jsonl"))


@pytest.mark.parametrize("name", TABLES)
def test_types_from_the_corpus_tables(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["types", "--from", CORPUS / "tables" / name, "-o", f"{out}.jsonl",
            "--stubs", out, "--patch", f"{out}.diff"]
    run_cli(*argv, tolerate_known_bugs=False).check((0, 2), f"types --from {name}")


REQUESTS = sorted(p.name for p in (CORPUS / "requests").glob("*.json"))


@pytest.mark.parametrize("name", REQUESTS)
def test_snapshot_of_the_corpus_requests(name: str) -> None:
    request = (CORPUS / "requests" / name).read_bytes()
    run_cli("snapshot", stdin=request, tolerate_known_bugs=False).check((0, 1, 2), name)


def test_a_line_break_in_a_file_name_stays_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "two\nlines.jsonl"
    for argv in (["verify", missing], ["lines", missing], ["check-proof", missing],
                 ["diff", missing, missing]):
        answer = run_cli(*argv, tolerate_known_bugs=False)
        answer.check((2,), " ".join(map(str, argv)))
        assert "two\\nlines" in answer.stderr


MEMORY_CAP = 768 << 20


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


REAL_PROCESSES = [
    ("summary-gasused-not-hex.jsonl", "verify"),
    ("deep-header.jsonl", "verify"),
    ("deep-header.jsonl", "prove"),
    ("deep-summary.jsonl", "lines"),
    ("deep-event.jsonl", "diff"),
    ("source-dev-zero.jsonl", "diff"),
]


@pytest.mark.parametrize(
    ("name", "reader"),
    [pytest.param(n, r, id=f"{n}-{r}", marks=[pytest.mark.xfail(strict=True, reason=KNOWN[n, r])]
                  if (n, r) in KNOWN else []) for n, r in REAL_PROCESSES],
)
def test_as_a_real_process(name: str, reader: str, tmp_path: Path) -> None:
    """The same, as the command really runs: no traceback, one line at most on
    stderr, in bounded memory and time."""
    argv, allowed = READERS[reader]
    done = subprocess.run(
        [sys.executable, "-m", "blocktrace", *map(str, argv(CORPUS / name))],
        capture_output=True, text=True, timeout=120, preexec_fn=_cap, cwd=tmp_path, check=False,
    )
    assert done.returncode in allowed, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.count("\n") <= 1, done.stderr
