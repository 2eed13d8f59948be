"""Compact zstd frames of format version 4 traces.

A version 4 leaf's stream starts with the hash before the leaf, so a version 4
head frame stores it (``start``) beside the open leaf's lines, and the marker
says the chain is version 4's.  The frames written expand to exactly the
``.jsonl`` (from the start, and from every head frame as a reader seeking by the
index does), C and Python expanders alike; every tamper of a frame or of its
head is found at the frame's first line; the chain check of the ``.zst`` (every
way it reads one: compact lines scanned as stored, full lines, full frames) is
the ``.jsonl``'s, and the index it builds seeks."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path

import pytest

from blocktrace._native import extension
from blocktrace.chain.merkle import MerkleAccumulator
from blocktrace.format import TraceReader, compact, reader
from blocktrace.format.compressed import CompressedDataError, FrameWriter, open_at
from blocktrace.format.rules import DOMAIN_V4, rechain, split_hash
from blocktrace.format.versions import LINES_PER_LEAF
from tests.format.test_compact import _frames, _join, _lines_of_frame, _segments
from tests.format.test_compressed import _PROGRAM, _run

zstandard = pytest.importorskip("zstandard", reason="the zstd extra is not installed")
NATIVE = extension("blocktrace.format._cscan")
H0 = hashlib.sha256(DOMAIN_V4).digest()


@pytest.fixture(scope="module")
def v4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real run's lines (a few thousand), chained by version 4's rules."""
    tmp = tmp_path_factory.mktemp("v4")
    program = tmp / "prog.py"
    program.write_text(_PROGRAM.replace("N", "300"))
    trace = tmp / "t.jsonl"
    proc = _run("run", "-o", trace, program)
    assert proc.returncode == 0, proc.stderr
    bodies = []
    for line in trace.read_bytes().splitlines():
        parts = split_hash(line)
        assert parts is not None
        bodies.append(parts[0])
    bodies[0] = bodies[0].replace(b'"blocktrace":3', b'"blocktrace":4', 1)
    assert b'"blocktrace":4' in bodies[0]
    return rechain(bodies, 4)


def _write(path: Path, data: bytes, frame_bytes: int, flushes: list[int] | None = None,
           compact_frames: bool = True) -> Path:
    """``data`` written through a FrameWriter in pieces, flushed after the given lines."""
    lines = data.splitlines(keepends=True)
    with open(path, "wb") as raw:
        frames = FrameWriter(raw, "zstd", frame_bytes=frame_bytes, compact_frames=compact_frames)
        for n, line in enumerate(lines):
            frames.write(line)
            if flushes and n in flushes:
                frames.flush()
        frames.close()
    return path


def _hash(line: bytes) -> bytes:
    return bytes.fromhex(line[-67:-3].decode())


@pytest.mark.parametrize("frame_bytes", [300, 4096, 1 << 18])
def test_head_frames_store_what_a_reader_needs_to_go_on(
    v4: bytes, tmp_path: Path, frame_bytes: int
) -> None:
    rng = random.Random(frame_bytes)
    lines = v4.splitlines(keepends=True)
    flushes = sorted(rng.sample(range(len(lines)), 12))
    path = _write(tmp_path / "t.jsonl.zst", v4, frame_bytes, flushes)
    parts = _segments(path.read_bytes())
    assert parts[0][0] == "marker" and compact.marker_version(parts[0][1][8:]) == 4
    number = 1
    mid_leaf = 0
    for data, head in _frames(path.read_bytes()):
        state = compact.parse(head[8:])
        assert state is not None and state.version == 4
        got = _lines_of_frame(data).splitlines(keepends=True)
        assert (state.first, state.last) == (number, number + len(got) - 1)
        assert got == [line[:-76] + b"}\n" for line in lines[number - 1 : state.last]]
        assert state.head == _hash(lines[state.last - 1])
        opened = state.last - state.last % LINES_PER_LEAF  # lines before the open leaf
        assert state.carry == b"".join(lines[opened : state.last])
        assert state.start == (_hash(lines[opened - 1]) if opened else H0)
        mid_leaf += bool(state.carry)
        number = state.last + 1
    assert number == len(lines) + 1
    assert mid_leaf >= 5  # the flushes end frames inside leaves


def test_the_frames_expand_to_the_plain_bytes_from_any_head_frame(
    v4: bytes, tmp_path: Path
) -> None:
    lines = v4.splitlines(keepends=True)
    path = _write(tmp_path / "t.jsonl.zst", v4, 2048, list(range(5, len(lines), 37)))
    with open_at(str(path), "zstd") as stream:
        assert stream.read() == v4
    full = _write(tmp_path / "full.jsonl.zst", v4, 2048, compact_frames=False)
    with open_at(str(full), "zstd") as stream:
        assert stream.read() == v4
    parts = _segments(path.read_bytes())
    at = uoffset = 0
    starts = []
    for (kind, piece), (_, nxt) in itertools.pairwise(parts):
        if kind in ("marker", "head") and nxt[:4] == b"\x28\xb5\x2f\xfd":
            starts.append((at, uoffset))
        if kind == "data":
            plain = _lines_of_frame(piece)
            uoffset += len(plain) + 74 * plain.count(b"\n")
        at += len(piece)
    assert len(starts) > 20
    for offset, u in [*starts[:3], *random.Random(5).sample(starts, 12), starts[-1]]:
        with open_at(str(path), "zstd", (offset, u, u)) as stream:
            assert stream.read() == v4[u:]


def test_the_c_and_python_expanders_agree(v4: bytes) -> None:
    if NATIVE is None:
        pytest.skip("the C extension is not built (or BLOCKTRACE_PURE is set)")
    lines = v4.splitlines(keepends=True)
    body = compact._strip_py(v4)[0]
    compact_lines = body.splitlines(keepends=True)
    leaves: list[bytes] = []
    rechain([split_hash(line[:-1])[0] for line in lines], 4, leaves.append)  # type: ignore[index]
    for cut in (0, 1, 15, 16, 17, 40, 41, len(lines) - 1):
        opened = cut - cut % LINES_PER_LEAF
        carry = b"".join(lines[opened:cut])
        prev = _hash(lines[cut - 1]) if cut else b""
        start = (_hash(lines[opened - 1]) if opened else H0) if carry else b""
        rest = b"".join(compact_lines[cut:])
        a = NATIVE.Expander(prev, carry, cut, 16, True, 4, start)
        b = compact.PyExpander(prev, carry, cut, 16, True, 4, start)
        assert a.start == b.start == (start or prev or H0)  # (cut: a leaf end, or carry)
        assert a.expand(rest) == b.expand(rest) == b"".join(lines[cut:])
        assert a.head == b.head and a.lines == b.lines == len(lines)
        assert a.start == b.start
        taken = a.take_leaves(-1)
        assert taken == b.take_leaves(-1) == b"".join(leaves[cut // 16 :])
        c = NATIVE.Expander(prev, carry, cut, 16, False, 4, start)
        d = compact.PyExpander(prev, carry, cut, 16, False, 4, start)
        assert c.hash(rest) == d.hash(rest) == b"".join(_hash(line) for line in lines[cut:])
    rng = random.Random(4)
    for _ in range(300):
        junk = bytes(rng.choice(b"}\n{a") for _ in range(rng.randrange(200)))
        assert NATIVE.Expander(b"", b"", 0, 16, False, 4).expand(junk) == compact.PyExpander(
            b"", b"", 0, 16, False, 4
        ).expand(junk)
    for make in (NATIVE.Expander, compact.PyExpander):
        for args in [(b"", lines[0], 1, 16, False, 4),  # a carry without its start
                     (b"", b"", 0, 16, False, 3, H0),  # a start in version 3
                     (b"", lines[0], 1, 16, False, 4, H0[:31]),  # a start cut short
                     (b"", b'{"a":1}\n', 1, 16, False, 4, H0),  # a carry of compact lines
                     (b"", b"", 0, 16, False, 5)]:
            with pytest.raises(ValueError):
                make(*args)


def test_version_3_frames_are_as_before(v4: bytes, tmp_path: Path) -> None:
    """A version 3 trace's frames keep version 3's layout (readers of it unchanged)."""
    bodies = [split_hash(line)[0] for line in v4.splitlines()]  # type: ignore[index]
    bodies[0] = bodies[0].replace(b'"blocktrace":4', b'"blocktrace":3')
    v3 = rechain(bodies, 3)
    path = _write(tmp_path / "t.jsonl.zst", v3, 2048, [100, 201])
    parts = _segments(path.read_bytes())
    assert parts[0][1][8:] == b"blocktrace-compact/1"
    for _, head in _frames(path.read_bytes()):
        assert head[8:9] == b"H"
        state = compact.parse(head[8:])
        assert state is not None and (state.version, state.start) == (3, b"")
    with open_at(str(path), "zstd") as stream:
        assert stream.read() == v3


def _read_all(path: Path) -> tuple[bytes, CompressedDataError | None]:
    got = b""
    try:
        with open_at(str(path), "zstd") as stream:
            while piece := stream.read(1 << 16):
                got += piece
    except CompressedDataError as exc:
        return got, exc
    return got, None


@pytest.mark.parametrize("how", ["edit", "forged head", "forged start", "v3 head", "drop",
                                 "swap", "duplicate", "v3 marker"])
def test_a_tampered_frame_is_found_at_its_first_line(
    v4: bytes, tmp_path: Path, how: str
) -> None:
    lines = v4.splitlines(keepends=True)
    path = _write(tmp_path / "t.jsonl.zst", v4, 2048, list(range(7, len(lines), 53)))
    parts = _segments(path.read_bytes())
    i = next(k for k in range(5, len(parts))
             if parts[k][0] == "data" and compact.parse(parts[k - 1][1][8:]).carry)  # type: ignore[union-attr]
    state = compact.parse(parts[i + 1][1][8:])
    assert state is not None
    first = state.first
    if how == "edit":
        edited = _lines_of_frame(parts[i][1]).replace(b'{"', b'{"x":1,"', 1)
        parts[i] = ("data", zstandard.ZstdCompressor(write_checksum=True).compress(edited))
    elif how in ("forged head", "forged start"):
        payload = bytearray(parts[i + 1][1])
        payload[8 + (30 if how == "forged head" else 60)] ^= 1
        parts[i + 1] = ("head", bytes(payload))
    elif how == "v3 head":  # the same numbers, head and carry, in version 3's layout
        parts[i + 1] = ("head", compact.head_frame(state.first, state.last, state.head,
                                                   state.carry))
    elif how == "drop":
        del parts[i : i + 2]
    elif how == "swap":
        parts[i : i + 4] = parts[i + 2 : i + 4] + parts[i : i + 2]
    elif how == "duplicate":
        parts[i + 2 : i + 2] = parts[i : i + 2]
        first = state.last + 1
    else:  # the whole file read by version 3's chain
        parts[0] = ("marker", compact.marker(3))
        first = 1
    bad = tmp_path / "bad.jsonl.zst"
    bad.write_bytes(_join(parts))
    got, exc = _read_all(bad)
    assert exc is not None and exc.line == first, (how, exc)
    assert v4.startswith(got)


def test_the_zst_verifies_as_the_jsonl_and_its_index_seeks(v4: bytes, tmp_path: Path) -> None:
    lines = v4.splitlines(keepends=True)
    tree = MerkleAccumulator()
    rechain([split_hash(line[:-1])[0] for line in lines], 4,  # type: ignore[index]
            tree.append_leaf_hash)
    plain = tmp_path / "t.jsonl"
    plain.write_bytes(v4)
    paths = [plain, _write(tmp_path / "c.jsonl.zst", v4, 2048, list(range(3, len(lines), 41))),
             _write(tmp_path / "f.jsonl.zst", v4, 2048, compact_frames=False)]
    answers = []
    for path in paths:
        for full in (False, True):
            result = reader.check_chain(path, tree=MerkleAccumulator(), _full=full)
            answers.append((result.status, result.lines, result.head, result.root, result.reason))
            indexed = reader.check_chain(path, build_index=True, _full=full)
            assert indexed.index is not None
            answers.append((indexed.status, indexed.lines, indexed.head, indexed.root,
                            indexed.reason))
    assert answers[0][:4] == ("sealed", len(lines), _hash(lines[-1]).hex(), tree.root().hex())
    assert set(answers) == {answers[0]}
    for path in paths[1:]:
        trace = TraceReader(path)
        assert trace.index() is not None
        for start in (1, 17, 500, len(lines) - 3):
            got = [raw for _, raw in trace.raw_lines(start=start, count=5)]
            assert got == lines[start - 1 : start + 4], (path, start)


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i if i % 3 else -i
    return total


def test_a_traced_run_in_version_4_writes_compact_frames_that_read_and_verify(
    tmp_path: Path,
) -> None:
    """``ChainTracer(format_version=4)`` to a ``.jsonl.zst``: the writer takes the
    chain from the header it is handed (no argument of its own)."""
    import blocktrace

    paths = [tmp_path / "t.jsonl", tmp_path / "t.jsonl.zst"]
    for path in paths:
        tracer = blocktrace.ChainTracer(path, genesis="g", argv=["x"], format_version=4)
        with blocktrace.trace(tracer):
            _work(2000)
    plain = paths[0].read_bytes()
    assert b'"blocktrace":4' in plain.split(b"\n", 1)[0]
    parts = _segments(paths[1].read_bytes())
    assert compact.marker_version(parts[0][1][8:]) == 4
    with open_at(str(paths[1]), "zstd") as stream:
        packed = stream.read()
    # the same run twice: the same lines but for the clock's members and the hashes
    assert packed.count(b"\n") == plain.count(b"\n") > 10_000
    for path in paths:
        result = reader.check_chain(path, tree=MerkleAccumulator())
        assert result.status == "sealed", result.reason
        assert result.version == 4
