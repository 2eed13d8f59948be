"""The diff's C walks over trace bytes nobody vouches for, against their references
on the same damaged bytes: ``_cclients.walk`` (eip3155/csrc/clients.c, client
traces) and ``_cskip``'s ``skip``/``look``/``align``/``lines``/``project``/``calls``/
``steps_look``
(eip3155/csrc/skip.c, blocktrace traces) must give the answer the reference gives --
``blocktrace diff``'s exit status, stdout (text and ``--json``) and stderr, byte for
byte -- with the walks on (this process's extensions) and off (``clientpass._c`` and
``skip._c`` set to None: the module's own switch to its reference, as
``BLOCKTRACE_PURE`` sets it at import), and neither may hang (``harness.run_cli``'s
watchdog) or raise.

The inputs: the client traces of ../shared/refdata/eip3155 (the same test from two
clients, or one trace against itself) and two blocktrace recordings of a loop, one
with a statement added every few iterations (so the look-ahead and ``align`` run),
at the op level and at the line level (an op-level one against a line-level one)
and at the call level (against either),
each side damaged at the byte level or not: cut at a byte, a byte flipped or
replaced by NUL or a byte over 0x7f, a digit changed, a quote, a backslash or a
``\\u`` escape inserted, a number made huge (18, 19 and 30 digits, 16 and 17 hex
digits), a member written twice, two lines merged or one split, CRLF line ends, a
line dropped or repeated, spaces and tabs before a newline, a line padded past
``linesource.CHUNK`` (the walks' buffer).  A damaged blocktrace trace is re-chained
half the time (``harness.rechain``) so the damage reaches the walks behind the hash
check.  Each pair is diffed plain and, in a share of the cases, compressed (client
traces as one gzip or zstd file, blocktrace traces as blocktrace's own compact
frames), with one of the options each walk has a path for (``--json``,
``--fields``, ``--ignore``, ``--stack-top``, ``--max-hunks``, ``--window``,
``--by-line``).

CI runs ``CASES`` cases from a fixed seed, one short client trace against itself cut
at each line end, and ``DIRECT`` direct calls (below).  ``BLOCKTRACE_FUZZ=deep`` runs
``BLOCKTRACE_WALK_CASES`` cases (default 3000) from a random seed
(``BLOCKTRACE_WALK_SEED`` to repeat one; the seed is printed), every cut of every
short trace, and lines padded to ``MAX_LINE_BYTES``:
``BLOCKTRACE_FUZZ=deep pytest tests/fuzz/test_fuzz_walks.py -s``.  A case whose
answers differ fails with both answers and leaves its two inputs in a directory it
names; save them under tests/fuzz/corpus/walks/ with the expected answer
(test_corpus_walks below replays every one).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

import blocktrace
from blocktrace.eip3155 import clientpass, report, skip
from blocktrace.format.linesource import CHUNK
from blocktrace.limits import MAX_LINE_BYTES

from . import frames, guarded
from .conftest import REFDATA
from .harness import Answer, rechain, run_cli

DEEP = os.environ.get("BLOCKTRACE_FUZZ") == "deep"
CASES = int(os.environ.get("BLOCKTRACE_WALK_CASES", "3000" if DEEP else "30"))
SEED = int(os.environ.get("BLOCKTRACE_WALK_SEED", "0") or 0) or (
    random.SystemRandom().randrange(1, 1 << 30) if DEEP else 17)
SAME_CASES = CASES if DEEP else 100
"""The same-edit cases (below): CI runs more of those, short as they are (the first
that found the same-level walk's case in session 19 was the 41st)."""
HAS_ZSTD = importlib.util.find_spec("zstandard") is not None
CORPUS = Path(__file__).parent / "corpus" / "walks"

pytestmark = pytest.mark.skipif(
    clientpass._c is None or skip._c is None,
    reason="the C extensions are not built (or BLOCKTRACE_PURE is set): nothing to compare")

# -- the seeds ---------------------------------------------------------------------------


def _inner(i: int) -> int:
    if i % 7 == 3:
        try:
            raise ValueError(i)
        except ValueError:
            return -i
    return i * 2


def _program(n: int, every: int) -> int:
    total = 0
    for i in range(n):
        total += _inner(i)
        if every and i % every == 0:
            total -= 1  # (B's statement: steps inserted every ``every`` iterations)
    return total


@dataclass(frozen=True)
class Seeds:
    clients: dict[str, bytes]
    """Each refdata client trace, by ``client/test``."""
    ours: tuple[bytes, bytes]
    """Two blocktrace traces (op level) of ``_program``: B has steps inserted."""
    lines: tuple[bytes, bytes]
    """The same two recorded at the line level (diffed against the op-level ones too)."""
    calls: tuple[bytes, bytes]
    """The same two recorded at the call level (diffed against the others)."""
    values: tuple[bytes, bytes] = (b"", b"")
    """The same two at the op level with ``--locals on`` (the same-edit cases)."""


@pytest.fixture(scope="module")
def walk_seeds(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    if not REFDATA.is_dir():
        pytest.skip("reference client traces not available (../shared/refdata/eip3155)")
    clients = {f"{p.parent.name}/{p.stem}": p.read_bytes()
               for p in sorted(REFDATA.glob("*/*.jsonl"))}
    d = tmp_path_factory.mktemp("walk-seeds")
    ours = []
    for name, every, level in (("a", 0, "op"), ("b", 3, "op"), ("la", 0, "line"),
                               ("lb", 3, "line"), ("ca", 0, "call"), ("cb", 3, "call")):
        with blocktrace.trace(blocktrace.ChainTracer(d / f"{name}.jsonl", level=level)):
            _program(30, every)
        ours.append((d / f"{name}.jsonl").read_bytes())
    for name, every in (("va", 0), ("vb", 3)):
        with blocktrace.trace(blocktrace.ChainTracer(d / f"{name}.jsonl", locals="on")):
            _program(30, every)
        ours.append((d / f"{name}.jsonl").read_bytes())
    return Seeds(clients, (ours[0], ours[1]), (ours[2], ours[3]), (ours[4], ours[5]),
                 (ours[6], ours[7]))


# -- damage ------------------------------------------------------------------------------

Damage = Callable[[random.Random, bytes], bytes]


_DIGIT = re.compile(rb"[0-9]")
_KEY_END = re.compile(rb'":')
_NEWLINE = re.compile(rb"\n")


def _newlines(data: bytes) -> list[int]:
    return [m.start() for m in _NEWLINE.finditer(data)]


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _at(rng: random.Random, data: bytes) -> int:
    return rng.randrange(len(data) + 1)


def _cut(rng: random.Random, data: bytes) -> bytes:
    return data[:_at(rng, data)]


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    value = rng.choice([data[i] ^ (1 << rng.randrange(8)), 0, 0x80, 0xff, 0xc3, ord("\r")])
    return data[:i] + bytes([value]) + data[i + 1:]


def _digit(rng: random.Random, data: bytes) -> bytes:
    places = [m.start() for m in _DIGIT.finditer(data)]
    if not places:
        return data
    i = rng.choice(places)
    return data[:i] + rng.choice(b"0123456789abcdefABCDEF-x").to_bytes(1, "big") + data[i + 1:]


_INSERTS = (b'"', b"\\", b'\\"', b"\\u0041", b"\\u00e9", b"\\ud800", b"\\n", b"\x00", b",",
            b" ", b"\t", b"{", b"}", b"[", b"]", b":", b"\xe9", b"\xc3\xa9", b"\r", b"\n",
            b"null", b"-", b"0", b"1e3", b".5")


def _insert(rng: random.Random, data: bytes) -> bytes:
    i = _at(rng, data)
    return data[:i] + rng.choice(_INSERTS) + data[i:]


_HUGE = (b"9" * 18, b"1" + b"0" * 18, b"9" * 19, b"1" * 30, b"0" * 20 + b"1", b"-1", b"-0",
         b"1.0", b"1e2", b'"0x' + b"f" * 16 + b'"', b'"0x' + b"1" * 17 + b'"', b'"0x"',
         b'"0X1"', b'"0xg"', b'"0x' + b"0" * 40 + b'1"', b'"1"', b'""', b"null", b"true",
         b"[]", b"{}", b'"0x' + b"F" * 64 + b'"')


def _number(rng: random.Random, data: bytes) -> bytes:
    """A member's value (a number or a "0x" string) replaced by an odd or huge one."""
    keys = [m.start() for m in _KEY_END.finditer(data)]
    if not keys:
        return data
    start = rng.choice(keys) + 2
    end = start
    if data[start:start + 1] == b'"':
        close = data.find(b'"', start + 1)
        end = close + 1 if close >= 0 else start
    else:
        while end < len(data) and data[end] not in b",}]\n":
            end += 1
    return data[:start] + rng.choice(_HUGE) + data[end:]


def _twice(rng: random.Random, data: bytes) -> bytes:
    """A member of a line written again, at its line's start or end."""
    lines = _lines(data)
    if not lines:
        return data
    k = rng.randrange(len(lines))
    line = lines[k]
    members = [m for m in (b'"pc":', b'"op":', b'"gas":', b'"depth":', b'"stack":', b'"error":',
                           b'"output":', b'"gasUsed":', b'"code":', b'"hash":') if m in line]
    if not members or not line.startswith(b"{"):
        return data
    m = rng.choice(members)
    start = line.index(m)
    end = start + len(m)
    depth = 0
    while end < len(line):
        c = line[end]
        if c in b"[{":
            depth += 1
        elif c in b"]}":
            if depth == 0:
                break
            depth -= 1
        elif c == ord(",") and depth == 0:
            break
        elif c == ord('"'):
            close = line.find(b'"', end + 1)
            end = close if close >= 0 else len(line)
        end += 1
    member = line[start:end]
    if rng.random() < 0.5:
        line = b"{" + member + b"," + line[1:]
    else:
        body = line.rstrip(b"\r\n")
        line = body[:-1] + b"," + member + b"}" + line[len(body):]
    lines[k] = line
    return b"".join(lines)


def _merge(rng: random.Random, data: bytes) -> bytes:
    places = _newlines(data)
    if not places:
        return data
    i = rng.choice(places)
    return data[:i] + rng.choice([b"", b" ", b"\r"]) + data[i + 1:]


def _split(rng: random.Random, data: bytes) -> bytes:
    i = _at(rng, data)
    return data[:i] + rng.choice([b"\n", b"\r\n", b"\n\n"]) + data[i:]


def _crlf(rng: random.Random, data: bytes) -> bytes:
    if rng.random() < 0.5:
        return data.replace(b"\n", b"\r\n")
    lines = _lines(data)
    if lines:
        k = rng.randrange(len(lines))
        lines[k] = lines[k].replace(b"\n", b"\r\n")
    return b"".join(lines)


def _drop(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    if lines:
        del lines[rng.randrange(len(lines))]
    return b"".join(lines)


def _repeat(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    if lines:
        k = rng.randrange(len(lines))
        lines.insert(k, lines[k])
    return b"".join(lines)


def _trailing(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    if lines:
        k = rng.randrange(len(lines))
        body = lines[k].rstrip(b"\r\n")
        blank = rng.choice([b" ", b"\t", b"  \t\r", b"\x0b", b"\x0c"])
        lines[k] = body + blank + lines[k][len(body):]
    return b"".join(lines)


def _padded_to(rng: random.Random, data: bytes, size: int) -> bytes:
    """A line made ``size`` bytes long, give or take two (before its newline), by a long
    string member or by spaces before its newline."""
    lines = _lines(data)
    if not lines:
        return data
    k = rng.randrange(len(lines))
    body = lines[k].rstrip(b"\r\n")
    want = size + rng.randrange(-2, 3)
    if rng.random() < 0.5 and body.startswith(b"{") and body.endswith(b"}"):
        filler = b',"x":"' + b"a" * max(0, want - len(body) - 6) + b'"'
        body = body[:-1] + filler + b"}"
    else:
        body = body + b" " * max(0, want - len(body))
    lines[k] = body + lines[k][len(lines[k].rstrip(b"\r\n")):]
    return b"".join(lines)


def _long_line(rng: random.Random, data: bytes) -> bytes:
    return _padded_to(rng, data, rng.choice([CHUNK - 1, CHUNK, CHUNK + 1, CHUNK // 2]))


DAMAGES: tuple[Damage, ...] = (_cut, _flip, _flip, _digit, _digit, _insert, _insert, _number,
                               _number, _twice, _merge, _split, _crlf, _drop, _repeat,
                               _trailing)
RARE: tuple[Damage, ...] = (_long_line,)
"""Damages too costly for every case (a line of megabytes): 1 case in 40."""

# -- the options each walk has a path for --------------------------------------------------

CLIENT_OPTIONS: tuple[tuple[str, ...], ...] = (
    (), ("--json",), ("--fields", "pc,op,gas"), ("--fields", "pc,stack"), ("--fields", "gas"),
    ("--fields", "pc,op,gas,depth,stack,memSize"), ("--stack-top", "1"),
    ("--stack-top", "3", "--json"), ("--stack-top", "0"), ("--ignore", "gas"),
    ("--ignore", "stack,depth", "--json"), ("--max-hunks", "1", "--window", "4"),
    ("--dialect", "geth"), ("--max-hunks", "0", "--json"),
)
OUR_OPTIONS: tuple[tuple[str, ...], ...] = (
    (), ("--json",), ("--max-hunks", "0"), ("--max-hunks", "2", "--json"), ("--window", "64"),
    ("--window", "63"), ("--window", "100", "--max-hunks", "1"), ("--fields", "pc,op,line"),
    ("--ignore", "locals"), ("--by-line",), ("--by-line", "--json"), ("--fields", "pc,op,gas"),
    ("--by-line", "--max-hunks", "0"), ("--by-line", "--max-hunks", "1", "--json"),
)

# -- one case ----------------------------------------------------------------------------


@dataclass
class Case:
    number: int
    a: bytes
    b: bytes
    suffix: str  # ".jsonl", ".jsonl.gz", ".jsonl.zst"
    options: tuple[str, ...]
    what: str

    def __repr__(self) -> str:
        return (f"case {self.number} (seed {SEED}): {self.what}, {self.suffix}, "
                f"options {list(self.options)}, {len(self.a)} and {len(self.b)} bytes")


def _damaged(rng: random.Random, data: bytes, what: list[str], ours: bool) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        damage = rng.choice(RARE) if rng.random() < 1 / 40 else rng.choice(DAMAGES)
        data = damage(rng, data)
        what.append(damage.__name__.lstrip("_"))
    if ours and rng.random() < 0.5:
        data = rechain(data)
        what.append("rechained")
    return data


def _case(rng: random.Random, number: int, seeds: Seeds) -> Case:
    what: list[str] = []
    if rng.random() < 0.6:
        names = sorted(seeds.clients)
        first = rng.choice(names)
        test = first.split("/", 1)[1]
        if rng.random() < 0.5:
            second = first
        else:
            second = rng.choice([n for n in names if n.endswith("/" + test)])
        what.append(f"{first} against {second}")
        a, b = seeds.clients[first], seeds.clients[second]
        options = rng.choice(CLIENT_OPTIONS)
        suffix = rng.choice([".jsonl"] * 4 + [".jsonl.gz"] + ([".jsonl.zst"] if HAS_ZSTD else []))
        ours = False
    else:
        pick = rng.random()
        if pick < 0.4:
            a, b = seeds.ours
        elif pick < 0.55:
            a, b = seeds.ours[0], seeds.ours[0]
        elif pick < 0.75:  # an op-level trace against a line-level one (either way round)
            a, b = rng.choice(seeds.ours), rng.choice(seeds.lines)
            if rng.random() < 0.5:
                a, b = b, a
        else:  # a trace of any level against a call-level one (either way round)
            a = rng.choice([*seeds.ours, *seeds.lines, *seeds.calls])
            b = rng.choice(seeds.calls)
            if rng.random() < 0.5:
                a, b = b, a
        what.append("blocktrace traces" + (" (steps inserted)" if a != b else ""))
        options = rng.choice(OUR_OPTIONS)
        suffix = rng.choice([".jsonl"] * 5 + ([".jsonl.zst"] if HAS_ZSTD else []))
        ours = True
    side = rng.choice(["a", "b", "both", "both"])
    if side in ("a", "both"):
        what.append("A:")
        a = _damaged(rng, a, what, ours)
    if side in ("b", "both"):
        what.append("B:")
        b = _damaged(rng, b, what, ours)
    return Case(number, a, b, suffix, options, " ".join(what))


def _encoded(data: bytes, suffix: str, ours: bool) -> bytes:
    if suffix == ".jsonl.gz":
        return gzip.compress(data, mtime=0)
    if suffix == ".jsonl.zst":
        if ours:
            lines = data.count(b"\n")
            return frames.reframe(data, [n for n in (5, 17, 40) if n < lines])
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


@contextmanager
def _walks_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(clientpass, "_c", None)
        patch.setattr(skip, "_c", None)
        yield


def _answer(argv: list[str]) -> Answer:
    """``blocktrace ARGV`` with nothing kept from a run before: no cached source lines,
    no index beside the inputs or in the cache (``XDG_CACHE_HOME``, set by the tests)."""
    report._TRACE_SOURCES.clear()
    for arg in argv[-2:]:
        Path(arg + ".idx").unlink(missing_ok=True)
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache:
        shutil.rmtree(cache, ignore_errors=True)
    return run_cli(*argv, tolerate_known_bugs=False)


_INTS = ("pc", "op", "depth", "line", "code")
_HEX = re.compile(r"0x[0-9a-f]+")
_STRINGS = ("gas", "opName", "kind", "event", "name", "file", "error")


def _refused(line: bytes) -> bool:
    """A line of a blocktrace trace the reference does not read as a step or a call or
    return line: not a JSON object, a member of the wrong type, a gas that is not hex."""
    try:
        value = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return True
    if not isinstance(value, dict):
        return True
    gas = value.get("gas", "0x0")
    return (any(k in value and (type(value[k]) is not int) for k in _INTS)
            or any(k in value and not isinstance(value[k], (str, type(None))) for k in _STRINGS)
            or not isinstance(gas, str) or _HEX.fullmatch(gas) is None)


def _a_line_refused(case: Case) -> bool:
    return any(_refused(line) for data in (case.a, case.b) for line in data.splitlines()[1:-1])


KNOWN: dict[str, Callable[[Case], bool]] = {
    # A difference with a COORD.md note to the walk's owner and a strict-xfail case in
    # tests/fuzz/corpus/walks: counted, not failed, so the search goes on (the entry
    # goes when it is fixed).  Empty since skip.c's walks read only traces their chain
    # vouches for (a tampered one is read by the reference: eip3155.report._tampered),
    # which fixed corpus/walks/op-line-not-json, return-line-not-json,
    # return-kind-not-a-string, opname-a-number and gas-not-a-number.
}


def check(case: Case, where: Path, monkeypatch: pytest.MonkeyPatch,
          known: dict[str, int] | None = None) -> str | None:
    """``case`` diffed with the walks on and off: None when the answers are the same
    (or a known difference, counted in ``known``), else what differs (its inputs kept
    in a directory it names)."""
    ours = "blocktrace traces" in case.what
    pa, pb = where / f"a{case.number}{case.suffix}", where / f"b{case.number}{case.suffix}"
    try:
        pa.write_bytes(_encoded(case.a, case.suffix, ours))
        pb.write_bytes(_encoded(case.b, case.suffix, ours))
    except ValueError:  # (frames.reframe of lines it cannot frame: plain instead)
        case.suffix = ".jsonl"
        pa, pb = where / f"a{case.number}.jsonl", where / f"b{case.number}.jsonl"
        pa.write_bytes(case.a)
        pb.write_bytes(case.b)
    argv = ["diff", *case.options, str(pa), str(pb)]
    monkeypatch.setenv("XDG_CACHE_HOME", str(where / "cache"))
    try:
        fast = _answer(argv)
        with _walks_off(monkeypatch):
            reference = _answer(argv)
    except Exception as exc:  # (a traceback in a real process: kept, and the search goes on)
        kept = Path(tempfile.mkdtemp(prefix="walk-raises-"))
        shutil.copy(pa, kept / pa.name)
        shutil.copy(pb, kept / pb.name)
        return f"{case!r}: blocktrace {' '.join(argv)} raised {exc!r} (inputs in {kept})"
    said = None
    if (fast.status, fast.stdout, fast.stderr) != (reference.status, reference.stdout,
                                                  reference.stderr):
        for name, matches in KNOWN.items():
            if known is not None and matches(case):
                known[name] = known.get(name, 0) + 1
                break
        else:
            kept = Path(tempfile.mkdtemp(prefix="walk-differs-"))
            shutil.copy(pa, kept / pa.name)
            shutil.copy(pb, kept / pb.name)
            said = (f"{case!r}: the walks' answer is not the reference's (inputs in {kept}, "
                    f"blocktrace {' '.join(argv)}):\n"
                    f"walks: exit {fast.status}\n{fast.stdout[-3000:]!r}\n{fast.stderr!r}\n"
                    f"reference: exit {reference.status}\n{reference.stdout[-3000:]!r}\n"
                    f"{reference.stderr!r}")
    elif fast.status not in (0, 1, 2) or "Traceback" in fast.stderr:
        said = f"{case!r}: exit {fast.status}, {fast.stderr!r}"
    for path in (pa, pb):
        path.unlink()
        Path(f"{path}.idx").unlink(missing_ok=True)
    return said


def _run(cases: Iterator[Case], where: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    known: dict[str, int] = {}
    failed = []
    count = 0
    for case in cases:
        count += 1
        said = check(case, where, monkeypatch, known)
        if said is not None:
            failed.append(said)
            if len(failed) >= 20:
                break
    print(f"test_fuzz_walks: seed {SEED}, {count} cases, known differences: {known}, "
          f"{len(failed)} failed")
    assert not failed, f"{len(failed)} of {count} cases:\n" + "\n\n".join(failed[:3])


def test_damaged_traces_diff_as_the_reference_diffs(
    walk_seeds: Seeds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    _run((_case(rng, number, walk_seeds) for number in range(CASES)), tmp_path, monkeypatch)


def test_every_cut_of_a_client_trace_diffs_as_the_reference_diffs(
    walk_seeds: Seeds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trace against itself cut at every byte (CI: besu's 00000936-mixed-1 cut just
    before each newline and just after it, on one side or the other; deep: every byte of
    each client's 00000936-mixed-1, on each side)."""
    names = sorted(n for n in walk_seeds.clients if n.endswith("00000936-mixed-1"))
    if not DEEP:
        names = names[:1]

    def cases() -> Iterator[Case]:
        number = 0
        for name in names:
            data = walk_seeds.clients[name]
            newlines = _newlines(data)
            cuts = sorted(set(range(len(data) + 1)) if DEEP else
                          {i + d for i in newlines for d in (0, 1)})
            for at in cuts:
                pairs = ((data, data[:at]), (data[:at], data))
                for a, b in pairs if DEEP else pairs[at % 2:at % 2 + 1]:
                    yield Case(number, a, b, ".jsonl", ("--json",) if number % 2 else (),
                               f"{name} against itself cut at byte {at}")
                    number += 1

    _run(cases(), tmp_path, monkeypatch)


@pytest.mark.skipif(not DEEP, reason="lines of 64 MiB: the deep search only")
def test_lines_at_the_line_bound_diff_as_the_reference_diffs(
    walk_seeds: Seeds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    data = walk_seeds.clients["geth/statetest1"]
    _run((Case(number, data, _padded_to(rng, data, size), ".jsonl", (), f"a line of {size} bytes")
          for number, size in enumerate((MAX_LINE_BYTES - 1, MAX_LINE_BYTES, MAX_LINE_BYTES + 1))),
         tmp_path, monkeypatch)


# -- the same edit in both traces ----------------------------------------------------------
#
# A walk passes over what both traces hold alike as bytes; a line both hold alike but that
# the reference refuses (a member of a kind its decoder does not take) must still be
# refused.  Damage on one side makes the lines differ, so these cases make one edit and
# make it in both traces, at the lines that say the same step (the n-th line of A alike
# but for its hash and gas and the n-th such line of B), and re-chain both.

_ODD_VALUES = (*_HUGE, b'"x"', b"1.5", b"[1]", b'{"a":1}', b'"\\u0030x1"', b"false", b'"0x1"',
               b'"-1"', b"0", b'"0x_1"', b'" 1"', b'"0x1 "', b"-5", b'"\\u00e9"')
_ODD_MEMBERS = (b'"kind":5', b'"firstLine":"x"', b'"blocktrace":1', b'"event":"return"',
                b'"event":7', b'"error":"boom"', b'"error":null', b'"pass":1', b'"name":3',
                b'"file":[1]', b'"python":1', b'"line":"x"', b'"depth":"0x"', b'"opName":1e2',
                b'"code":1.0', b'"thread":true', b'"locals":{}', b'"stack":"x"', b'"gas":"0x"',
                b'"gasCost":true', b'"returnData":1', b'"refund":[]', b'"stateRoot":1',
                b'"test":2', b'"gasUsed":false', b'"output":1', b'"x":1')
_MEMBER = re.compile(rb'"([A-Za-z]+)":')
_HASH_AND_GAS = re.compile(rb'"(hash|gas)":"[0-9a-fx]*"')


def _edit(rng: random.Random) -> Callable[[bytes], bytes]:
    """One edit of a line's members, drawn once and made the same way on each line."""
    kind = rng.choice(["value", "value", "twice", "add", "drop"])
    key = rng.choice([b"pc", b"op", b"gas", b"gasCost", b"depth", b"opName", b"line", b"code",
                      b"stack", b"locals", b"kind", b"event", b"name", b"file", b"firstLine",
                      b"value", b"thread", b"hash"])
    value = rng.choice(_ODD_VALUES)
    member = rng.choice(_ODD_MEMBERS)
    front = rng.random() < 0.5
    odd_twice = rng.random() < 0.5

    def edit(line: bytes) -> bytes:
        body = line.rstrip(b"\r\n")
        end = line[len(body):]
        if not (body.startswith(b"{") and body.endswith(b"}")):
            return line
        if kind == "add":
            body = (b"{" + member + b"," + body[1:] if front or body == b"{}"
                    else body[:-1] + b"," + member + b"}")
            return body + end
        at = body.find(b'"' + key + b'":')
        if at < 0:
            return line
        start = at + len(key) + 3
        stop = _value_stop(body, start)
        if kind == "value":
            return body[:start] + value + body[stop:] + end
        if kind == "drop":
            cut_from, cut_to = (at - 1, stop) if body[at - 1:at] == b"," else (at, stop + 1)
            return body[:cut_from] + body[cut_to:] + end
        twice = body[at:start] + (value if odd_twice else body[start:stop])
        return (b"{" + twice + b"," + body[1:] if front else body[:-1] + b"," + twice + b"}") + end

    return edit


def _value_stop(body: bytes, start: int) -> int:
    """Where the JSON value starting at ``body[start]`` ends (a line the writer wrote)."""
    depth = 0
    i = start
    while i < len(body):
        c = body[i]
        if c == ord('"'):
            i += 1
            while i < len(body) and body[i] != ord('"'):
                i += 2 if body[i] == ord("\\") else 1
        elif c in b"[{":
            depth += 1
        elif c in b"]}":
            if depth == 0:
                return i
            depth -= 1
        elif c == ord(",") and depth == 0:
            return i
        i += 1
    return i


def _same_edit(rng: random.Random, a: bytes, b: bytes, what: list[str]) -> tuple[bytes, bytes]:
    """``a`` and ``b`` with one to three lines of ``a`` edited, each the same way in ``b``
    at the line that says the same step, both re-chained."""
    lines_a, lines_b = _lines(a), _lines(b)
    if len(lines_a) < 3:
        return a, b
    seen: dict[bytes, list[int]] = {}
    for k, line in enumerate(lines_b):
        seen.setdefault(_HASH_AND_GAS.sub(b"", line), []).append(k)
    for _ in range(rng.choice([1, 1, 2, 3])):
        k = rng.randrange(1, len(lines_a) - 1)
        shape = _HASH_AND_GAS.sub(b"", lines_a[k])
        nth = sum(1 for line in lines_a[:k] if _HASH_AND_GAS.sub(b"", line) == shape)
        at_b = seen.get(shape, [])
        edit = _edit(rng)
        lines_a[k] = edit(lines_a[k])
        what.append(f"A line {k + 1}")
        if nth < len(at_b):
            lines_b[at_b[nth]] = edit(lines_b[at_b[nth]])
            what.append(f"B line {at_b[nth] + 1}: {lines_a[k][:120]!r}")
    return rechain(b"".join(lines_a)), rechain(b"".join(lines_b))


def _same_edit_case(rng: random.Random, number: int, seeds: Seeds) -> Case:
    what = ["blocktrace traces, the same edit in both:"]
    pick = rng.random()
    if pick < 0.3:
        a, b = seeds.ours
    elif pick < 0.45:
        a, b = seeds.ours[0], seeds.ours[0]
    elif pick < 0.6:
        a, b = seeds.values
    elif pick < 0.7:
        a, b = seeds.values[0], seeds.values[0]
    elif pick < 0.8:
        a, b = seeds.lines
    elif pick < 0.9:
        a, b = rng.choice(seeds.ours), rng.choice(seeds.lines)
    else:
        a = rng.choice([*seeds.ours, *seeds.lines, *seeds.calls])
        b = rng.choice(seeds.calls)
    if rng.random() < 0.5:
        a, b = b, a
    a, b = _same_edit(rng, a, b, what)
    suffix = rng.choice([".jsonl"] * 5 + ([".jsonl.zst"] if HAS_ZSTD else []))
    options = rng.choice((*OUR_OPTIONS, ("--ignore", "gas"), ("--fields", "pc,op,gas,line"),
                          ("--max-hunks", "0", "--ignore", "locals")))
    return Case(number, a, b, suffix, options, " ".join(what))


def test_the_same_edit_in_both_traces_diffs_as_the_reference_diffs(
    walk_seeds: Seeds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED + 2)
    _run((_same_edit_case(rng, number, walk_seeds) for number in range(SAME_CASES)), tmp_path,
         monkeypatch)


# -- the corpus --------------------------------------------------------------------------


def _corpus() -> list[Path]:
    return sorted(CORPUS.glob("*/")) if CORPUS.is_dir() else []


KNOWN_CORPUS: set[str] = set()
"""Reproducers of differences not fixed yet (a COORD.md note to the owner): strict xfail."""


@pytest.mark.parametrize("case_dir", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="known: see KNOWN"))
    if p.name in KNOWN_CORPUS else p for p in _corpus()], ids=lambda p: p.name)
def test_corpus_walks(case_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every saved reproducer: its ``argv`` (one argument a line, ``A`` and ``B`` its two
    files) answers ``expected`` (exit status, then the last line of stdout) with the
    walks off, and the same, byte for byte, with them on."""
    args = (case_dir / "argv").read_text().splitlines()
    files = {}
    for p in case_dir.iterdir():  # (copied: the runs write no index into the checkout)
        if p.name[:2] in ("a.", "b.") and not p.name.endswith(".idx"):
            files[p.name[0]] = shutil.copy(p, tmp_path / p.name)
    argv = ["diff", *(str(files[x.lower()]) if x in ("A", "B") else x for x in args)]
    status, last = (case_dir / "expected").read_text().split("\n")[:2]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fast = _answer(argv)
    with _walks_off(monkeypatch):
        reference = _answer(argv)
    said = reference.stdout.decode().splitlines()
    assert (reference.status, said[-1] if said else "") == (int(status), last)
    assert (fast.status, fast.stdout, fast.stderr) == (reference.status, reference.stdout,
                                                      reference.stderr)


# -- the C functions called directly, between unreadable pages ---------------------------

DIRECT = int(os.environ.get("BLOCKTRACE_WALK_DIRECT", "30000" if DEEP else "500"))
"""Calls of each C walk on damaged bytes in ``test_the_walks_read_only_their_buffers``."""


def _walk_signature() -> str:
    """What ``_cclients.walk`` says of its arguments when given none (clients.c's walk
    took ``top``, the --stack-top words, from session 17 on)."""
    from blocktrace.eip3155 import _cclients

    try:
        _cclients.walk()
    except TypeError as exc:
        return str(exc)
    return ""


_WALK_SIGNATURE = _walk_signature() if clientpass._c is not None else ""


def _starts(data: bytes) -> list[int]:
    return [0, *(i + 1 for i in _newlines(data))]


def _calls(data: bytes, rng: random.Random) -> set[bytes]:
    """What ``skip._Source.called`` keeps of the call lines of ``data`` (most of them: a
    walk passes a call line only when its key is there)."""
    from blocktrace.eip3155 import _cskip

    keys = (_cskip.call_key(line) for line in data.splitlines(keepends=True)
            if line.startswith(b'{"event":"call"') and rng.random() < 0.9)
    return {key for key in keys if key is not None}


def test_the_walks_read_only_their_buffers(walk_seeds: Seeds) -> None:
    """``_cclients.walk`` and ``_cskip``'s ``skip``, ``look``, ``align``, ``lines``,
    ``project`` (counting hunks or not) and ``steps_look`` on damaged
    traces cut anywhere, each side's bytes placed against an unreadable page (after
    them, or before them): a read outside them kills the test process (SIGSEGV);
    whatever they answer, positions stay inside the buffers."""
    from blocktrace.eip3155 import _cclients, _cskip

    rng = random.Random(SEED + 1)
    sides = (guarded.Guarded(1 << 17), guarded.Guarded(1 << 17))
    clients = [d[:1 << 13] for d in walk_seeds.clients.values()]
    ours = [d[:1 << 14] for d in (*walk_seeds.ours, *walk_seeds.lines)]
    calls = 0

    def placed(data: bytes, side: int) -> tuple[memoryview, int]:
        if rng.random() < 0.5:  # torn anywhere: the end of the buffer mid-line
            data = data[:rng.randrange(len(data) + 1)]
        view = (sides[side].at_end if rng.random() < 0.7 else sides[side].at_start)(data)
        starts = [s for s in _starts(data) if s <= len(data)]
        return view, rng.choice(starts)

    while calls < DIRECT:
        client = rng.random() < 0.5
        pool = clients if client else ours
        a = pool[rng.randrange(len(pool))]
        b = a if rng.random() < 0.5 else pool[rng.randrange(len(pool))]
        what: list[str] = []
        a, b = _damaged(rng, a, what, False), _damaged(rng, b, what, False)
        if rng.random() < 0.3:
            a = _damaged(rng, a, what, False)
        if len(a) > sides[0].room or len(b) > sides[1].room:
            continue
        va, pa = placed(a, 0)
        vb, pb = placed(b, 1)
        max_line = rng.choice([1, 2, 40, 200, 4096, 1 << 26])
        calls += 1
        if client:
            walk_args: tuple[int, ...] = (rng.randrange(32), max_line)
            if "top" in _WALK_SIGNATURE:
                walk_args = (walk_args[0], rng.choice([-1, 0, 1, 2, 5, 2000]), max_line)
            got = _cclients.walk(va, pa, vb, pb, *walk_args)
            assert pa <= got[1] <= len(va) and pb <= got[2] <= len(vb), (what, got)
            continue
        calls_a, calls_b = _calls(a, rng), _calls(b, rng)
        which = rng.randrange(5 if hasattr(_cskip, "project") else 4)
        passed: tuple[int, ...]
        if which == 4:  # an op-level trace against a line-level one
            keep = {code << 32 | pc for code in range(1, 5) for pc in range(0, 120, 2)
                    if rng.random() < 0.5}
            keeps = (keep, None) if rng.random() < 0.5 else (None, keep)
            counting = (rng.randrange(1 << 10), rng.randrange(3)) if rng.random() < 0.5 else ()
            got = _cskip.project(va, pa, vb, pb, rng.random() < 0.5, calls_a, calls_b,
                                 max_line, *keeps, *counting)
            assert pa <= got[2] <= len(va) and pb <= got[6] <= len(vb), (what, got)
            if rng.random() < 0.5:  # (the look-ahead over those steps)
                _cskip.steps_look(va, pa, vb, pb, calls_a, calls_b, max_line,
                                  rng.randrange(1 << 10), rng.random() < 0.5, *keeps)
            continue
        if which == 3:  # --by-line's walk over groups of steps
            keyed = rng.random() < 0.5  # (both or neither)
            keys = [tuple(rng.choice([-1, 0, 1, 2, 3, 88]) for _ in range(4)) if keyed else None
                    for _ in "ab"]
            since = (rng.randrange(3),) if rng.random() < 0.5 else ()
            got = _cskip.lines(va, pa, vb, pb, calls_a, calls_b, max_line,
                               rng.randrange(1 << 10), *keys, *since)
            assert pa <= got[2] <= len(va) and pb <= got[6] <= len(vb), (what, got)
            continue
        if which == 0:
            passed = _cskip.skip(va, pa, vb, pb, rng.random() < 0.5, calls_a, calls_b, max_line)
        elif which == 1:
            _cskip.look(va, pa, vb, pb, calls_a, calls_b, max_line, rng.randrange(1 << 10))
            continue
        else:
            passed = _cskip.align(va, pa, vb, pb, rng.random() < 0.5, calls_a, calls_b, max_line,
                               lambda x, y: x == y, rng.randrange(3), rng.randrange(1 << 10))
        assert 0 <= passed[4] <= len(va) and 0 <= passed[5] <= len(vb), (what, passed)
    del va, vb
