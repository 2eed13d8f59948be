"""The random-access index: built once, kept beside the trace, never trusted when stale."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from blocktrace.eip3155.normalise import normalise
from blocktrace.format import TraceReader
from blocktrace.format.index import (
    EVERY,
    cache_path,
    decode_index,
    encode_index,
    index_paths,
    stamp_of,
)
from tests.format.recording import record_exceptions


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace of ~9,600 lines full of exception lines (which diff merges into steps)."""
    return record_exceptions(tmp_path_factory.mktemp("index"), 300)


@pytest.fixture
def copy(trace: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.jsonl"
    shutil.copyfile(trace, target)
    return target


def test_steps_are_diffs_steps(copy: Path) -> None:
    """line_of_step / step_of_line number steps exactly as ``blocktrace diff`` does,
    across many index checkpoints."""
    reader = TraceReader(copy)
    index = reader.index()
    assert index is not None and index.status == "sealed"
    steps = [step.lineno for step in normalise(str(copy))]
    assert index.steps == len(steps)
    assert index.lines == len(copy.read_bytes().splitlines())
    assert index.checkpoints == -(-index.lines // EVERY) > 5
    for step in [*range(0, len(steps), 37), len(steps) - 1]:
        assert reader.line_of_step(step) == steps[step]
        assert reader.step_of_line(steps[step]) == step
    # a merged exception line belongs to the step before it
    lines = copy.read_bytes().splitlines()
    merged = next(
        i for i, raw in enumerate(lines, 1) if b'"event":"raise"' in raw and i not in set(steps)
    )
    assert reader.step_of_line(merged) == reader.step_of_line(merged - 1)
    assert reader.step_of_line(1) is None
    with pytest.raises(IndexError):
        reader.line_of_step(len(steps))


def test_ranges_read_through_the_index_are_the_files_lines(copy: Path) -> None:
    reader = TraceReader(copy)
    assert reader.index() is not None
    lines = copy.read_bytes().splitlines(keepends=True)
    for start in (1, EVERY, EVERY + 1, 3 * EVERY + 17, len(lines) - 2):
        got = list(reader.raw_lines(start, 5))
        assert got == [(n, lines[n - 1]) for n in range(start, min(start + 5, len(lines) + 1))]
    batches = list(reader.batches(3, 2 * EVERY + 5, 7))
    assert [n for batch in batches for n, _ in batch] == list(range(2 * EVERY + 5, 2 * EVERY + 12))


def test_the_index_is_kept_and_reused(copy: Path) -> None:
    beside, *_ = index_paths(str(copy))
    assert not os.path.exists(beside)
    TraceReader(copy).index()
    assert os.path.exists(beside)
    before = os.stat(beside).st_mtime_ns
    again = TraceReader(copy).index(build=False)
    assert again is not None and os.stat(beside).st_mtime_ns == before


def test_a_hand_edited_index_is_rebuilt(copy: Path) -> None:
    beside, *_ = index_paths(str(copy))
    good = TraceReader(copy).index()
    assert good is not None
    data = bytearray(Path(beside).read_bytes())
    data[-40] ^= 1  # a checkpoint offset or a chunk hash
    Path(beside).write_bytes(bytes(data))
    assert TraceReader(copy).index(build=False) is None
    rebuilt = TraceReader(copy).index()
    assert rebuilt is not None and rebuilt.chunks == good.chunks


def test_a_changed_trace_is_indexed_again(copy: Path) -> None:
    """Same size, same modification time, another last line: the head check
    refuses the old index; the new one says the trace is tampered."""
    reader = TraceReader(copy)
    assert reader.index() is not None
    st = os.stat(copy)
    data = bytearray(copy.read_bytes())
    at = data.rindex(b'"hash":"') + 8
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert TraceReader(copy).index(build=False) is None
    fresh = TraceReader(copy).index()
    assert fresh is not None and fresh.status == "tampered"
    assert fresh.line == len(data.splitlines())


def test_a_grown_trace_is_indexed_again(copy: Path) -> None:
    assert TraceReader(copy).index() is not None
    with open(copy, "ab") as f:
        f.write(b'{"torn": ')
    index = TraceReader(copy).index()
    assert index is not None and index.status == "tampered"  # bytes after the summary


def test_unwritable_place_falls_back_to_the_cache(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    beside, cached, _ = index_paths(str(copy))
    os.mkdir(beside)  # something that is not an index is in the way
    assert cached == cache_path(str(copy)) and cached.startswith(str(tmp_path / "cache"))
    assert TraceReader(copy).index() is not None
    assert os.path.isfile(cached)
    assert TraceReader(copy).index(build=False) is not None


@contextmanager
def _unwritable(directory: Path) -> Iterator[None]:
    """``directory`` made one this process cannot create files in: mode 555, or,
    for root (whom modes do not stop), the immutable attribute (``chattr +i``);
    skipped where neither stops a write."""
    if os.geteuid() != 0:
        directory.chmod(0o555)

        def undo() -> None:
            directory.chmod(0o755)
    else:
        made = shutil.which("chattr") is not None and subprocess.run(
            ["chattr", "+i", str(directory)], capture_output=True, check=False
        ).returncode == 0
        if not made:
            pytest.skip("no way to make a directory unwritable for root here (chattr +i)")

        def undo() -> None:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    try:
        try:
            (directory / ".probe").write_bytes(b"")
        except OSError:
            pass
        else:
            (directory / ".probe").unlink()
            pytest.skip(f"{directory} still takes files")
        yield
    finally:
        undo()


@pytest.mark.parametrize("command", ["show", "prove"])
def test_a_stale_index_beside_a_trace_in_an_unwritable_directory_is_used_once(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """``show`` (``prove``) finds the index beside the trace stale by its lines
    (its stamp could not tell: :func:`_restamp`) and builds it again; the trace's
    directory does not take the new one, so it goes to the cache.  The next
    command reads that one, not the stale copy beside the trace (which it did:
    ``show`` built the index again every time, and ``prove``, which deleted the
    index files itself and could not delete that one, said exit 2 "not the lines
    its index was built from" instead of TAMPERED)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    directory = tmp_path / "kept"
    directory.mkdir()
    trace = directory / "t.jsonl"
    shutil.copyfile(copy, trace)
    assert TraceReader(trace).index() is not None
    beside, cached, _ = index_paths(str(trace))
    assert os.path.isfile(beside) and not os.path.exists(cached)
    target = 2 * EVERY + 100
    _edit_keeping_size(trace, target)
    _restamp(trace)
    stale = Path(beside).read_bytes()
    argv = ["show", "--line", str(trace)] if command == "show" else ["prove", str(trace)]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "blocktrace", *argv, str(target - 40)],
            capture_output=True, text=True, timeout=120, check=False,
        )

    with _unwritable(directory):
        first = run()
        assert first.returncode == (0 if command == "show" else 1), first.stderr
        assert f"TAMPERED at line {target}" in first.stderr  # the index built again says so
        assert Path(beside).read_bytes() == stale and os.path.isfile(cached)
        built = os.stat(cached)
        second = run()
        assert (second.returncode, second.stdout, second.stderr) == (
            first.returncode, first.stdout, first.stderr)
        again = os.stat(cached)
        assert (again.st_ino, again.st_mtime_ns) == (built.st_ino, built.st_mtime_ns), (
            "the index was built again")
        index = TraceReader(trace).index(build=False)
        assert index is not None and (index.status, index.line) == ("tampered", target)


def test_show_prints_the_lines_of_steps(copy: Path, blocktrace_cli) -> None:  # type: ignore[no-untyped-def]
    steps = [step.lineno for step in normalise(str(copy))]
    lines = copy.read_text().splitlines(keepends=True)
    proc = blocktrace_cli("show", copy, f"{len(steps) // 2}:3")
    assert proc.returncode == 0, proc.stderr
    first, end = steps[len(steps) // 2], steps[len(steps) // 2 + 3]
    assert proc.stdout == "".join(lines[first - 1 : end - 1])
    assert proc.stderr == ""
    last = blocktrace_cli("show", copy, f"{len(steps) - 1}:5")
    assert last.stdout == "".join(lines[steps[-1] - 1 :])  # to the summary
    by_line = blocktrace_cli("show", "--line", copy, "1:2")
    assert by_line.stdout == "".join(lines[:2])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["{trace}", "999999"], "no step 999999"),
        (["{trace}", "x:1"], "not STEP or STEP:COUNT"),
        (["{trace}", "3:0"], "COUNT 1 or more"),
        (["{missing}", "0"], "cannot read"),
    ],
)
def test_show_bad_input_is_one_line(copy: Path, blocktrace_cli, args: list[str], says: str) -> None:  # type: ignore[no-untyped-def]
    argv = [a.format(trace=copy, missing=copy.with_name("none.jsonl")) for a in args]
    proc = blocktrace_cli("show", *argv)
    assert proc.returncode == 2
    assert says in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_show_of_a_tampered_trace_says_so(copy: Path, blocktrace_cli) -> None:  # type: ignore[no-untyped-def]
    lines = copy.read_bytes().splitlines(keepends=True)
    lines[20] = lines[20].replace(b'"depth":', b'"depth": ', 1)
    copy.write_bytes(b"".join(lines))
    proc = blocktrace_cli("show", copy, "0")
    assert proc.returncode == 0
    assert "TAMPERED at line 21" in proc.stderr


def test_show_past_a_tampered_line_does_not_call_it_the_trace_s_end(  # type: ignore[no-untyped-def]
    copy: Path, blocktrace_cli
) -> None:
    steps = [step.lineno for step in normalise(str(copy))]
    lines = copy.read_bytes().splitlines(keepends=True)
    at = steps[len(steps) // 2]  # the file line of the middle step
    lines[at - 1] = lines[at - 1].replace(b'"depth":', b'"depth": ', 1)
    copy.write_bytes(b"".join(lines))
    before = len(steps) // 2  # the steps before the edited line
    proc = blocktrace_cli("show", copy, str(len(steps) - 1))
    assert proc.returncode == 1  # as verify: the trace fails its check before that step
    assert proc.stderr == (f"blocktrace show: {copy}: no step {len(steps) - 1} ({before} steps "
                           f"before line {at}, where it is TAMPERED: blocktrace verify says "
                           "why)\n"), proc.stderr
    cut = copy.with_name("cut.jsonl")
    cut.write_bytes(b"".join(lines[: at - 1]))
    proc = blocktrace_cli("show", "--line", cut, str(at + 5))
    assert proc.returncode == 2
    assert proc.stderr == (f"blocktrace show: {cut}: no line {at + 5} (the trace has {at - 1} "
                           "lines; it is UNSEALED: cut short)\n"), proc.stderr


def test_prove_and_sign_come_from_the_index(copy: Path, blocktrace_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """prove builds the index once (its one chain check) and answers from it; a
    proof from the index is byte for byte the one a full pass gives."""
    from blocktrace.chain.proof import TraceFile, encode_bundle, make_bundle

    lines = len(copy.read_bytes().splitlines())
    first = blocktrace_cli("prove", copy, str(lines - 40))
    assert first.returncode == 0, first.stderr
    beside, *_ = index_paths(str(copy))
    assert os.path.exists(beside)
    again = blocktrace_cli("prove", copy, str(lines - 40))
    assert again.stdout == first.stdout
    for line in (1, 17, EVERY + 3, 5 * EVERY + 16, lines):
        index = TraceReader(copy).index()
        assert encode_bundle(make_bundle(TraceFile(copy, index=index), line)) == encode_bundle(
            make_bundle(TraceFile(copy), line)
        )
    assert TraceFile(copy, index=TraceReader(copy).index()).root(40) == TraceFile(copy).root(40)


def _restamp(trace: Path) -> None:
    """Stamp the index kept beside ``trace`` with the trace's present size and
    change time: what an edit in place leaves when it falls in the same tick of
    the file system's clock as the indexing (timestamps come from a coarse
    clock), so the stamp cannot tell."""
    beside, *_ = index_paths(str(trace))
    index = decode_index(Path(beside).read_bytes())
    assert index is not None
    index.stamp = stamp_of(str(trace), index.stamp.kind)
    Path(beside).write_bytes(encode_index(index))


def _edit_keeping_size(trace: Path, target: int) -> None:
    lines = trace.read_bytes().splitlines(keepends=True)
    lines[target - 1] = lines[target - 1].replace(b'"depth":1', b'"depth":7', 1).replace(
        b'"depth":2', b'"depth":8', 1
    )
    trace.write_bytes(b"".join(lines))


def test_prove_notices_a_trace_edited_behind_its_index(copy: Path, blocktrace_cli) -> None:  # type: ignore[no-untyped-def]
    """An edit in place that keeps the size, the modification time and the last
    line: its status change time (the index's stamp, which ``os.utime`` cannot
    put back) stales the index, so it is built again, which finds the
    tampering.  And where the stamp cannot tell (:func:`_restamp`), the chunk the
    proof reads no longer hashes to the subtree hash the index kept: built
    again too, the tampering found the same."""
    original = copy.read_bytes()
    target = 2 * EVERY + 100
    assert blocktrace_cli("prove", copy, "3").returncode == 0
    st = os.stat(copy)
    _edit_keeping_size(copy, target)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert TraceReader(copy).index(build=False) is None  # the stamp: st_ctime_ns moved
    proc = blocktrace_cli("prove", copy, str(target))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"TAMPERED at line {target}" in proc.stderr

    copy.write_bytes(original)
    assert blocktrace_cli("prove", copy, "3").returncode == 0
    _edit_keeping_size(copy, target)
    _restamp(copy)
    assert TraceReader(copy).index(build=False) is not None  # the stamp says nothing
    proc = blocktrace_cli("prove", copy, str(target))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"TAMPERED at line {target}" in proc.stderr


def test_the_native_check_builds_the_index_the_reference_walk_builds(copy: Path) -> None:
    """The chain check's C path feeds the index whole buffers (runs of op lines
    counted in bulk); the pure-Python walk feeds it line by line: same index."""
    script = (
        "import sys; from blocktrace.format.reader import check_chain; "
        "from blocktrace.format.index import encode_index; "
        "sys.stdout.buffer.write(encode_index(check_chain(sys.argv[1], build_index=True).index))"
    )
    out = {}
    for pure in ("0", "1"):
        env = {**os.environ, "BLOCKTRACE_PURE": pure}
        if pure == "0":
            env.pop("BLOCKTRACE_PURE")
        proc = subprocess.run(
            [sys.executable, "-c", script, str(copy)], capture_output=True, env=env,
            timeout=120, check=True,
        )
        out[pure] = proc.stdout
    assert out["0"] == out["1"] and len(out["0"]) > 100


def test_the_caches_live_under_xdg_cache_home_else_home_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's cache, ``query``'s datasets and the viewer's tables: each in
    ``blocktrace`` of the user's cache directory unless its own variable says where."""
    from blocktrace.query.dataset import cache_dir
    from blocktrace.view.tables import cache_root

    trace = str(tmp_path / "t.jsonl")
    for name in ("BLOCKTRACE_CACHE", "BLOCKTRACE_VIEW_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home" / ".cache" / "blocktrace"
    assert (cache_dir(), cache_root()) == (str(home / "query"), str(home / "view"))
    assert os.path.dirname(cache_path(trace)) == str(home)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    xdg = tmp_path / "xdg" / "blocktrace"
    assert (cache_dir(), cache_root()) == (str(xdg / "query"), str(xdg / "view"))
    assert os.path.dirname(cache_path(trace)) == str(xdg)
    assert cache_path(trace).endswith(".idx") and cache_path(trace) != cache_path(trace + "x")
    monkeypatch.setenv("BLOCKTRACE_CACHE", str(tmp_path / "q"))
    monkeypatch.setenv("BLOCKTRACE_VIEW_CACHE", str(tmp_path / "v"))
    assert (cache_dir(), cache_root()) == (str(tmp_path / "q"), str(tmp_path / "v"))


_LEVELS_SCRIPT = """
import hashlib, sys
from blocktrace.format.index import ChunkTree
for n in map(int, sys.argv[1:]):
    chunks = b"".join(hashlib.sha256(b"chunk %d" % i).digest() for i in range(n))
    print(n, hashlib.sha256(b"|".join(ChunkTree(chunks).levels)).hexdigest())
"""


def _reference_levels(chunks: list[bytes]) -> list[list[bytes]]:
    """The levels as RFC 9162 defines the nodes: one node hash per whole pair."""
    import hashlib

    levels = [chunks]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([hashlib.sha256(b"\x01" + below[i] + below[i + 1]).digest()
                       for i in range(0, len(below) - 1, 2)])
    return levels


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 64, 255, 1000])
def test_chunk_tree_levels_are_the_merkle_nodes_in_c_and_in_python(n: int) -> None:
    """ChunkTree's levels (hashed in C a level at a time, or in Python under
    BLOCKTRACE_PURE) are RFC 9162's node hashes over the chunks, and subtree()
    finds each one where a range hash asks for it."""
    import hashlib

    from blocktrace.format.index import LEAVES_PER_CHUNK, ChunkTree

    chunks = [hashlib.sha256(b"chunk %d" % i).digest() for i in range(n)]
    want = _reference_levels(chunks)
    tree = ChunkTree(b"".join(chunks) + b"\x07" * 5)  # a torn last hash is not a chunk
    assert [[lv[i : i + 32] for i in range(0, len(lv), 32)] for lv in tree.levels] == want
    for j, level in enumerate(want):
        size = LEAVES_PER_CHUNK << j
        for i, node in enumerate(level):
            assert tree.subtree(i * size, size) == node
        assert tree.subtree(len(level) * size, size) is None
    assert tree.subtree(0, LEAVES_PER_CHUNK << len(want)) is None

    env = {**os.environ, "BLOCKTRACE_PURE": "1"}
    for mode in ({**os.environ}, env):
        done = subprocess.run([sys.executable, "-c", _LEVELS_SCRIPT, str(n)], env=mode,
                              capture_output=True, text=True, check=True)
        digest = hashlib.sha256(b"|".join(b"".join(lv) for lv in want)).hexdigest()
        assert done.stdout == f"{n} {digest}\n", done.stderr
