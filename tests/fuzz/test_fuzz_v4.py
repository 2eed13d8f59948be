"""The readers against hostile and broken traces of format versions 4 and 3:
plain ``.jsonl`` and compact ``.jsonl.zst`` (markers ``blocktrace-compact/2``
and ``/1``), with and without their index beside them.

The inputs are real traces (``blocktrace run``, and ``ChainTracer(format_version=3)``
for version 3; the plain ones and the version 4 ``.zst`` are test_fuzz_one_answer.py's,
recorded once a session), and the same lines written again by blocktrace's frame writer
with frames ended mid-leaf (head frames carrying open leaves).  They are edited
at the byte level, the line level and the frame level (frames dropped, repeated,
swapped, a head frame's fields changed, a data frame's lines edited and
compressed again with a good checksum, a frame of the other version's trace put
in), cut at frame boundaries and inside frames, and given a stale or foreign
index.  What every reading command must do with each:

- one of its documented exit statuses, at most one line on stderr, never a
  traceback, never a hang (``harness.run_cli``);
- ``verify`` never answers valid (exit 0) for a file whose lines differ from
  what was sealed: when it does, ``blocktrace cat`` of the file gives the
  original ``.jsonl`` byte for byte;
- the pure-Python readers (``BLOCKTRACE_PURE=1``, a real process) give the same
  verdict as the C scanners: status, line, head;
- a compact file made from a re-chained (forged) ``.jsonl`` gets the verdict
  the ``.jsonl`` gets (status; a compact trace names its frame's first line, so
  at or before the ``.jsonl``'s line);
- ``show`` prints no line the trace did not seal without a note on stderr;
- ``cat`` of a compact file gives the same bytes and status in C and pure;
- ``check-proof`` of an edited bundle, against the trace's signed checkpoint,
  passes only with the line and leaf the trace holds.

The examples are the same on every run (``harness.FUZZ``); those that start
real processes are fewer (``SUBPROCESS_EXAMPLES``, 12).  For a long random
search: ``BLOCKTRACE_FUZZ=deep BLOCKTRACE_FUZZ_EXAMPLES=300 nice -n 19 pytest
tests/fuzz/test_fuzz_v4.py`` (about 12 minutes on a loaded 2-core machine).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from . import frames, harness
from .conftest import PROGRAM, run_at_once
from .harness import FUZZ, Answer, mutated, run_cli
from .worker import Done, Worker

SUBPROCESS_EXAMPLES = int(os.environ.get("BLOCKTRACE_FUZZ_EXAMPLES", "12"))
FUZZ_SUB = settings(FUZZ, max_examples=SUBPROCESS_EXAMPLES)
"""Examples that start real processes: fewer by default (the suite's time)."""

_V3_RUN = """
import runpy, sys
import blocktrace
tracer = blocktrace.ChainTracer(sys.argv[1], format_version=3, genesis="fuzz-v3",
                                checkpoint_every=int(sys.argv[3]))
with blocktrace.trace(tracer):
    runpy.run_path(sys.argv[2], run_name="__main__")
"""


@dataclass(frozen=True, repr=False)
class Seed:
    name: str
    path: Path
    """The pristine file (never edited)."""
    data: bytes
    """The file's bytes."""
    jsonl: bytes
    """The ``.jsonl`` it holds (what ``cat`` gives; what was sealed)."""
    version: int
    compact: bool
    idx: bytes
    """The index ``verify`` keeps beside it."""

    def __repr__(self) -> str:
        return f"<seed {self.name}>"


class Seeds(dict[str, Seed]):
    """The seeds by file name, shown short in hypothesis's reports."""

    def __repr__(self) -> str:
        return f"<seeds {sorted(self)}>"


@pytest.fixture(scope="module")
def seeds(damage_seeds: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    d = tmp_path_factory.mktemp("fuzz-v4-seeds")
    # test_fuzz_one_answer's version 4 (.jsonl and .zst) and 3 (.jsonl) traces,
    # recorded once a session (conftest), copied; the two others recorded here
    for name in ("v4.jsonl", "v4.jsonl.zst", "v3.jsonl"):
        (d / name).write_bytes(damage_seeds[name].data)
    bt: list[str | Path] = ["-m", "blocktrace", "run", "--locals", "on", "--genesis", "fuzz-v4"]
    (d / "v3.py").write_text(_V3_RUN)
    run_at_once([d / "v3.py", d / "v3.jsonl.zst", PROGRAM, "64"],
                [*bt, "-o", d / "v4.jsonl.gz", PROGRAM], cwd=d)
    out = Seeds()
    for version in (3, 4):
        jsonl = (d / f"v{version}.jsonl").read_bytes()
        # the same lines framed again, frames ended mid-leaf (carries, starts)
        (d / f"v{version}-cut.jsonl.zst").write_bytes(frames.reframe(jsonl, CUTS))
        # and in full-line zstd frames (no marker: the .zst of blocktrace before 0.2.0)
        (d / f"v{version}-full.jsonl.zst").write_bytes(frames.reframe(jsonl, CUTS, False))
        names = [(f"v{version}.jsonl", False), (f"v{version}.jsonl.zst", True),
                 (f"v{version}-cut.jsonl.zst", True), (f"v{version}-full.jsonl.zst", True)]
        if version == 4:
            names.append(("v4.jsonl.gz", False))
        for name, compact in names:
            path = d / name
            assert run_cli("verify", path).status == 0, name
            sealed = run_cli("cat", path).stdout
            assert sealed == jsonl or name in (f"v{version}.jsonl.zst", "v4.jsonl.gz"), name
            out[name] = Seed(name, path, path.read_bytes(), sealed, version, compact,
                             Path(f"{path}.idx").read_bytes())
    return out


CUTS = (1, 7, 37, 50, 130)
"""Where the re-framed seeds' frames end (after these lines): mid-leaf."""

_counter = itertools.count()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bt-fuzz-v4-") as d:
        yield Path(d)


def _suffix(seed: Seed) -> str:
    return "".join(Path(seed.name).suffixes[-2:])


def _write(scratch: Path, data: bytes, suffix: str) -> Path:
    path = scratch / f"input-{next(_counter)}{suffix}"
    path.write_bytes(data)
    return path


# -- mutations ----------------------------------------------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]


def _line_edit(draw: Draw, lines: bytes) -> bytes:
    op = draw(st.sampled_from(harness.BYTE_OPS + harness.LINE_OPS))
    return bytes(op(draw, lines))


@st.composite
def compact_mutation(draw: Draw, seed: Seed, other: Seed) -> bytes:
    """``seed``'s compact file with one to three edits (not re-chained: what a
    damaged file or a careless forger gives)."""
    data = seed.data
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["byte", "byte", "truncate", "shuffle", "head", "head",
                                    "lines", "lines", "foreign"]))
        if how == "byte":
            data = draw(st.sampled_from(harness.BYTE_OPS))(draw, data)
        elif how == "truncate":
            data = frames.truncate_at_boundary(draw, data)
        elif how == "shuffle":
            data = frames.shuffle_frames(draw, data)
        elif how == "head":
            data = frames.edit_head_frame(draw, data)
        elif how == "lines":
            data = frames.edit_data_frame(draw, data, _line_edit)
        else:
            data = frames.foreign_frame(draw, data, other.data)
    return bytes(data)


def _mutate(draw: Draw, seeds: Seeds) -> tuple[Seed, bytes]:
    seed = draw(st.sampled_from(sorted(seeds.values(), key=lambda s: s.name)))
    if seed.compact:
        others = [s for s in seeds.values() if s.compact and s is not seed]
        other = draw(st.sampled_from(sorted(others, key=lambda s: s.name)))
        return seed, draw(compact_mutation(seed, other))
    if seed.name.endswith(".gz"):
        data = seed.data
        for _ in range(draw(st.integers(1, 3))):
            data = draw(st.sampled_from(harness.BYTE_OPS))(draw, data)
        return seed, bytes(data)
    return seed, draw(mutated(harness.Inputs([seed.data]), rechain_share=0))


# -- the contract --------------------------------------------------------------------

VERIFY = (0, 1, 2, 3)
READ = (0, 1, 2)


def _verify(path: Path) -> tuple[Answer, dict[str, Any] | None]:
    """``verify --json``: the answer, and its JSON (None when it wrote none)."""
    answer = run_cli("verify", "--json", "--no-index", path)
    answer.check(VERIFY, f"verify {path}")
    return answer, (msgspec.json.decode(answer.stdout) if answer.stdout.strip() else None)


_PURE: list[Worker] = []
"""The process with every C path off (``BLOCKTRACE_PURE=1``, read at import),
which runs the pure readers one after another (a process each cost ~0.3 s)."""


@pytest.fixture(scope="module", autouse=True)
def pure_worker() -> Iterator[Worker]:
    worker = Worker({**os.environ, "BLOCKTRACE_PURE": "1"})
    _PURE.append(worker)
    try:
        yield worker
    finally:
        _PURE.remove(worker)
        worker.close()


def _pure(*argv: str | Path) -> Done:
    return _PURE[0].run(argv)


def _pure_verify(path: Path) -> tuple[int, dict[str, Any] | None, str]:
    """The same, in another process with every C path off."""
    done = _pure("verify", "--json", "--no-index", path)
    stderr = done.stderr.decode("utf-8", "backslashreplace")
    assert "Traceback" not in stderr, stderr
    assert stderr.count("\n") <= 1, stderr
    report = msgspec.json.decode(done.stdout) if done.stdout.strip() else None
    return done.returncode, report, stderr


def _verdict(status: int, report: dict[str, Any] | None) -> tuple[Any, ...]:
    if report is None:
        return (status,)
    return (status, *(report.get(k) for k in ("status", "line", "head", "reason")))


def _no_wrong_ok(seed: Seed, path: Path, answer: Answer) -> None:
    """A file verify passes holds exactly the lines that were sealed."""
    if answer.status != 0:
        return
    copy = run_cli("cat", path)
    assert copy.stdout == seed.jsonl, f"verify passed {path}, whose lines are not {seed.name}'s"


def _same_as_pure(path: Path, answer: Answer, report: dict[str, Any] | None) -> None:
    status, pure, stderr = _pure_verify(path)
    assert _verdict(status, pure) == _verdict(answer.status, report), (
        f"{path}: C {answer.status} {report} {answer.stderr!r}\npure {status} {pure} {stderr!r}"
    )


def _show_prints_only_sealed_lines(sealed: bytes, path: Path, argv: list[str | Path]) -> None:
    answer = run_cli("show", *argv)
    answer.check(READ, f"show {argv}")
    if answer.status == 0 and not answer.stderr:
        good = set(sealed.splitlines(keepends=True))
        for line in answer.stdout.splitlines(keepends=True):
            assert line in good, f"show {argv} printed a line never sealed, no note: {line!r}"


def _readers(seed: Seed, path: Path, draw: Draw, sealed: bytes | None = None) -> None:
    """Every other reading command on the file (``sealed``: the lines show may
    print without a note; the seed's by default)."""
    sealed = seed.jsonl if sealed is None else sealed
    n = draw(st.integers(0, 300))
    _show_prints_only_sealed_lines(sealed, path, [path, f"{n}:{draw(st.integers(1, 40))}"])
    _show_prints_only_sealed_lines(sealed, path, ["--line", path, str(n + 1)])
    run_cli("cat", path).check(READ, f"cat {path}")
    run_cli("prove", path, str(n + 1)).check(READ, f"prove {path} {n + 1}")
    run_cli("lines", path).check(READ, f"lines {path}")
    run_cli("lines", "--function", "risky", path).check(READ, f"lines --function {path}")
    run_cli("diff", seed.path, path).check(READ, f"diff {seed.path} {path}")
    unverified = ["--allow-unverified"] if draw(st.booleans()) else []
    out = f"{path}.{draw(st.sampled_from(['perfetto', 'speedscope']))}"
    run_cli("export", "--to", out.rsplit(".", 1)[1], out, *unverified, path).check(
        READ, f"export {out} {path}")
    if draw(st.integers(0, 3)) == 0:  # DuckDB: the slowest reader
        sql = "select count(*), max(line), sum(depth) from ops"
        run_cli("query", "--json", *unverified, path, sql).check(READ, f"query {path}")


# -- the tests -------------------------------------------------------------------------


@FUZZ_SUB
@given(data=st.data())
def test_edited_traces_never_verify_and_c_and_pure_agree(
    data: st.DataObject, seeds: Seeds, scratch: Path
) -> None:
    seed, edited = _mutate(data.draw, seeds)
    path = _write(scratch, edited, _suffix(seed))
    answer, report = _verify(path)
    _no_wrong_ok(seed, path, answer)
    _same_as_pure(path, answer, report)
    if seed.compact:  # the Expander: C and pure put back the same hashes
        copy = run_cli("cat", path)
        copy.check(READ, f"cat {path}")
        pure = _pure("cat", path)
        assert (pure.returncode, pure.stdout) == (copy.status, copy.stdout), (
            f"cat {path}: C {copy.status} {copy.stderr!r}, pure {pure.returncode} "
            f"{pure.stderr!r}, outputs {'equal' if pure.stdout == copy.stdout else 'differ'}")


@FUZZ
@given(data=st.data())
def test_every_reader_on_edited_traces(
    data: st.DataObject, seeds: Seeds, scratch: Path
) -> None:
    seed, edited = _mutate(data.draw, seeds)
    path = _write(scratch, edited, _suffix(seed))
    answer, _ = _verify(path)
    _no_wrong_ok(seed, path, answer)
    _readers(seed, path, data.draw)


@FUZZ_SUB
@given(data=st.data(), cuts=st.lists(st.integers(1, 300), max_size=6))
def test_a_forged_compact_trace_gets_the_plain_traces_verdict(
    data: st.DataObject, cuts: list[int], seeds: Seeds, scratch: Path
) -> None:
    """A forger edits the ``.jsonl``, recomputes every hash, and writes it compact
    with blocktrace's own frame writer: the compact readers meet what the plain
    ones do (past every hash check), and must say the same."""
    version = data.draw(st.sampled_from([3, 4]))
    seed = seeds[f"v{version}.jsonl"]
    forged = data.draw(mutated(harness.Inputs([seed.data]), rechain_share=1))
    lines = forged.splitlines(keepends=True)
    if not lines or not lines[-1].endswith(b"\n"):
        forged = b"".join(lines[:-1])  # the frame writer takes whole lines
    plain = _write(scratch, forged, ".jsonl")
    try:
        compact = _write(scratch, frames.reframe(forged, cuts), ".jsonl.zst")
    except Exception:  # not lines the writer takes (no hash member, not JSON)
        return
    p_answer, p_report = _verify(plain)
    c_answer, c_report = _verify(compact)
    # valid, unsealed: the same; otherwise both refuse it (a line 1 that is no
    # header is unusable as a .jsonl, but fails its frame's head check first)
    if {p_answer.status, c_answer.status} & {0, 3}:
        assert c_answer.status == p_answer.status, (plain, p_report, compact, c_report)
    if p_report and c_report and p_answer.status == c_answer.status == 1:
        assert c_report["line"] <= p_report["line"], (p_report, c_report)
    if p_answer.status in (0, 3):
        assert c_report and p_report and c_report["head"] == p_report["head"]
        assert run_cli("cat", compact).stdout == forged
    _same_as_pure(compact, c_answer, c_report)
    _same_as_pure(plain, p_answer, p_report)
    _readers(seed, data.draw(st.sampled_from([plain, compact])), data.draw, forged)


@FUZZ_SUB
@given(data=st.data(), keep_mtime=st.booleans(), foreign=st.booleans())
def test_a_stale_or_foreign_index_is_never_trusted(
    data: st.DataObject, keep_mtime: bool, foreign: bool, seeds: Seeds, scratch: Path
) -> None:
    """The index of the trace before it was edited (its size and modification
    time kept, when the edit keeps the size), or another trace's, beside it."""
    seed, edited = _mutate(data.draw, seeds)
    path = _write(scratch, seed.data, _suffix(seed))
    stamp = path.stat()
    path.write_bytes(edited)
    if keep_mtime:
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    idx = seed.idx
    if foreign:
        idx = data.draw(st.sampled_from([s.idx for s in seeds.values() if s is not seed]))
    Path(f"{path}.idx").write_bytes(idx)
    n = data.draw(st.integers(0, 300))
    sealed = seed.jsonl
    _show_prints_only_sealed_lines(sealed, path, [path, f"{n}:{data.draw(st.integers(1, 40))}"])
    _show_prints_only_sealed_lines(sealed, path, ["--line", path, str(n + 1)])
    _show_prints_only_sealed_lines(sealed, path, ["--line", path, "1:100000"])
    run_cli("prove", path, str(n + 1)).check(READ, f"prove {path} {n + 1}")
    answer = run_cli("verify", path)  # with the index beside it (verify may refresh it)
    answer.check(VERIFY, f"verify {path}")
    _no_wrong_ok(seed, path, answer)
    shutil.copy(path, f"{path}.again")
    status, _, _ = _pure_verify(Path(f"{path}.again"))
    assert status == answer.status, (path, answer, status)


@FUZZ_SUB
@given(data=st.data(), cuts=st.lists(st.integers(1, 300), max_size=6))
def test_frames_of_a_forged_copy_spliced_in(
    data: st.DataObject, cuts: list[int], seeds: Seeds, scratch: Path
) -> None:
    """Frames of a forged copy (lines edited, every hash recomputed, framed the
    same way: each frame consistent with its own head) put among the original's:
    valid only when the result is the original or the forgery whole."""
    version = data.draw(st.sampled_from([3, 4]))
    seed = seeds[f"v{version}.jsonl"]
    forged = data.draw(mutated(harness.Inputs([seed.data]), rechain_share=1))
    lines = forged.splitlines(keepends=True)
    if not lines or not lines[-1].endswith(b"\n"):
        forged = b"".join(lines[:-1])
    try:
        original, copy = frames.reframe(seed.data, cuts), frames.reframe(forged, cuts)
    except Exception:  # not lines the writer takes
        return
    path = _write(scratch, frames.splice(data.draw, original, copy), ".jsonl.zst")
    answer, report = _verify(path)
    if answer.status == 0:
        assert run_cli("cat", path).stdout in (seed.data, forged), f"verify passed {path}"
    _same_as_pure(path, answer, report)
    _readers(seed, path, data.draw, seed.data + forged)


@dataclass(frozen=True, repr=False)
class Bundle:
    seed: Seed
    line: int
    data: bytes
    checkpoint: Path
    pub: Path

    def __repr__(self) -> str:
        return f"<bundle of line {self.line} of {self.seed.name}>"


@pytest.fixture(scope="module")
def bundles(seeds: Seeds, tmp_path_factory: pytest.TempPathFactory) -> list[Bundle]:
    pytest.importorskip("cryptography")
    d = tmp_path_factory.mktemp("fuzz-v4-bundles")
    assert run_cli("keygen", "fuzz.example/v4", "--out", d / "k").status == 0
    out = []
    for name in ("v3.jsonl", "v4.jsonl", "v4.jsonl.zst"):
        seed = seeds[name]
        cp = d / f"{name}.cp"
        assert run_cli("sign", seed.path, "--key", d / "k.key", "-o", cp).status == 0
        count = seed.jsonl.count(b"\n")
        for line in (1, 16, 17, 20, count):
            answer = run_cli("prove", seed.path, str(line))
            assert answer.status == 0, answer
            out.append(Bundle(seed, line, answer.stdout, cp, d / "k.pub"))
    return out


@FUZZ
@given(data=st.data(), anchored=st.booleans())
def test_an_edited_bundle_never_proves_another_line(
    data: st.DataObject, anchored: bool, bundles: list[Bundle], scratch: Path
) -> None:
    """check-proof of a bundle of a version 3 or 4 trace, edited (bytes, or one
    member: its text, prevHash, version, leafLines, line, indexInLeaf, auditPath):
    against the signed checkpoint of the trace, it passes only with the line and
    leaf the trace holds."""
    bundle = data.draw(st.sampled_from(bundles))
    edited = data.draw(mutated(harness.Inputs([bundle.data]), rechain_share=0))
    path = _write(scratch, edited, ".json")
    argv: list[str | Path] = ["check-proof", "--json", path]
    if anchored:
        argv += ["--checkpoint", bundle.checkpoint, "--pubkey", bundle.pub]
    answer = run_cli(*argv)
    answer.check((0, 1, 2), " ".join(map(str, argv)))
    if answer.status == 0 and anchored:
        claim = msgspec.json.decode(edited)
        lines = bundle.seed.jsonl.splitlines()
        line, leaf = claim["line"], claim["leafIndex"]
        assert claim["text"].encode() == lines[line - 1], f"{path} proved another text"
        assert [t.encode() for t in claim["leafLines"]] == lines[16 * leaf : 16 * leaf + 16]
