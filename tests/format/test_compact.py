"""Compact zstd frames: lines stored without their hashes, put back on reading.

Every tamper of a compact ``.jsonl.zst`` -- an edited, dropped, reordered or
appended frame, a forged stored head, a torn or killed file -- is reported as
verify reports it of the plain form; ``blocktrace cat`` gives exactly the
``.jsonl`` the same lines make; the C and Python transforms agree."""

from __future__ import annotations

import hashlib
import itertools
import random
import signal
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocktrace.chain.verify import verify_file
from blocktrace.format import TraceReader, compact
from blocktrace.format.compressed import FrameWriter, open_at
from blocktrace.format.rules import DOMAIN_V4
from blocktrace.format.versions import FORMAT_VERSION
from tests.format.test_compressed import _PROGRAM as _LOOP
from tests.format.test_compressed import _run

zstandard = pytest.importorskip("zstandard", reason="the zstd extra is not installed")

_PROGRAM = _LOOP.replace("N", "3000")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A compact .zst recorded by a real run, and its ``blocktrace cat``."""
    tmp = tmp_path_factory.mktemp("compact")
    program = tmp / "prog.py"
    program.write_text(_PROGRAM)
    trace = tmp / "t.jsonl.zst"
    proc = _run("run", "-o", trace, program)
    assert proc.returncode == 0, proc.stderr
    plain = tmp / "t.jsonl"
    proc = _run("cat", trace, "-o", plain)
    assert proc.returncode == 0, proc.stderr
    return trace, plain


def _segments(data: bytes) -> list[tuple[str, bytes]]:
    """The file as (what, bytes) pieces: marker, data, head, table."""
    out = []
    at = 0
    while at < len(data):
        magic = int.from_bytes(data[at : at + 4], "little")
        if magic & 0xFFFFFFF0 == 0x184D2A50:
            size = 8 + int.from_bytes(data[at + 4 : at + 8], "little")
            piece = data[at : at + size]
            if magic == compact.COMPACT_MAGIC:
                kind = "marker" if compact.parse(piece[8:]) is None else "head"
            else:
                kind = "table"
        else:
            obj = zstandard.ZstdDecompressor().decompressobj()
            obj.decompress(data[at:])
            size = len(data) - at - len(obj.unused_data)
            piece, kind = data[at : at + size], "data"
        out.append((kind, piece))
        at += size
    return out


def _frames(data: bytes) -> list[tuple[bytes, bytes]]:
    """(data frame, head frame) pairs."""
    parts = _segments(data)
    return [(parts[i][1], parts[i + 1][1]) for i, (k, _) in enumerate(parts) if k == "data"]


def _join(parts: list[tuple[str, bytes]]) -> bytes:
    return b"".join(p for _, p in parts)


def _lines_of_frame(frame: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(frame)


def _first_line(head: bytes) -> int:
    state = compact.parse(head[8:])
    assert state is not None
    return state.first


def _verify(tmp: Path, data: bytes) -> tuple[int, str, object]:
    path = tmp / "x.jsonl.zst"
    path.write_bytes(data)
    proc = _run("verify", path)
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout, verify_file(path)


def test_a_compact_trace_is_marker_data_and_head_frames(recorded: tuple[Path, Path]) -> None:
    trace, plain = recorded
    parts = _segments(trace.read_bytes())
    kinds = [k for k, _ in parts]
    assert kinds[0] == "marker" and kinds[-1] == "table"
    assert kinds[1:-1] == ["data", "head"] * ((len(kinds) - 2) // 2)
    full = plain.read_bytes().splitlines(keepends=True)
    number = 1
    for data, head in _frames(trace.read_bytes()):
        lines = _lines_of_frame(data).splitlines(keepends=True)
        state = compact.parse(head[8:])
        assert state is not None
        assert (state.first, state.last) == (number, number + len(lines) - 1)
        assert lines == [line[:-76] + b"}\n" for line in full[number - 1 : state.last]]
        assert state.head.hex().encode() in full[state.last - 1]
        assert state.carry == b"".join(full[state.last - state.last % 16 : state.last])
        number = state.last + 1
    assert number == len(full) + 1
    # 8x is the benchmarks' target; even this small trace is far past the full form's 5x
    assert trace.stat().st_size * 8 < plain.stat().st_size


def test_cat_gives_the_plain_trace_that_verifies_the_same(
    recorded: tuple[Path, Path],
) -> None:
    trace, plain = recorded
    a, b = verify_file(trace), verify_file(plain)
    assert a.status == b.status == "sealed"
    assert (a.lines, a.head, a.root, a.tree_size) == (b.lines, b.head, b.root, b.tree_size)
    assert _run("cat", plain).stdout.encode() == plain.read_bytes()
    reader = TraceReader(trace)
    assert b"".join(raw for _, raw in reader.raw_lines()) == plain.read_bytes()


def test_an_edited_line_is_tampering_at_its_frame(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    trace, _ = recorded
    parts = _segments(trace.read_bytes())
    i = 5  # a data frame in the middle
    assert parts[i][0] == "data"
    lines = _lines_of_frame(parts[i][1])
    edited = lines.replace(b'"depth":2', b'"depth":3', 1)
    assert edited != lines
    parts[i] = ("data", zstandard.ZstdCompressor(write_checksum=True).compress(edited))
    first = _first_line(parts[i + 1][1])
    code, out, result = _verify(tmp_path, _join(parts))
    assert code == 1 and "TAMPERED" in out
    assert (result.status, result.line, result.lines) == ("tampered", first, first - 1)
    assert "do not match the hash stored after them" in result.reason


@pytest.mark.parametrize("which", ["first", "second"])
def test_an_edited_early_frame_is_tampering_and_none_of_it_is_read(
    recorded: tuple[Path, Path], tmp_path: Path, which: str
) -> None:
    """The frame after the header's (whose lines the header's readline left the
    stream part-way into): a frame that fails its stored head never becomes
    readable, not even from where the frame before it left off (it did: the
    scanner was handed the edited frame from mid-line and failed with a traceback)."""
    trace, _ = recorded
    parts = _segments(trace.read_bytes())
    datas = [i for i, (k, _) in enumerate(parts) if k == "data"]
    i = datas[0] if which == "first" else datas[1]
    lines = _lines_of_frame(parts[i][1])
    edited = lines.replace(b'"depth":1', b'"depth":2', 1) if b'"depth":1' in lines else (
        lines.replace(b'"python":"', b'"python":"9', 1))
    assert edited != lines
    parts[i] = ("data", zstandard.ZstdCompressor(write_checksum=True).compress(edited))
    first = _first_line(parts[i + 1][1])
    code, out, result = _verify(tmp_path, _join(parts))
    assert code == 1 and "TAMPERED" in out and "Traceback" not in out
    assert (result.status, result.line, result.lines) == ("tampered", first, first - 1)
    assert "do not match the hash stored after them" in result.reason
    assert not result.reason.startswith("line ")  # the line is said once, by TAMPERED at


def test_a_forged_head_is_tampering(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    trace, _ = recorded
    parts = _segments(trace.read_bytes())
    i = 6
    assert parts[i][0] == "head"
    head = bytearray(parts[i][1])
    head[30] ^= 1  # in the stored hash
    parts[i] = ("head", bytes(head))
    first = _first_line(parts[i][1])
    code, _, result = _verify(tmp_path, _join(parts))
    assert code == 1
    assert (result.status, result.line, result.lines) == ("tampered", first, first - 1)


@pytest.mark.parametrize("how", ["drop", "swap", "drop-data", "duplicate"])
def test_dropped_reordered_or_repeated_frames_are_tampering(
    recorded: tuple[Path, Path], tmp_path: Path, how: str
) -> None:
    trace, _ = recorded
    parts = _segments(trace.read_bytes())
    i = 5  # data frame i, its head i + 1
    first = _first_line(parts[i + 1][1])
    if how == "drop":
        del parts[i : i + 2]
    elif how == "swap":
        parts[i : i + 4] = parts[i + 2 : i + 4] + parts[i : i + 2]
    elif how == "drop-data":  # its head left alone
        del parts[i]
    else:
        parts[i + 2 : i + 2] = parts[i : i + 2]
        state = compact.parse(parts[i + 1][1][8:])
        assert state is not None
        first = state.last + 1  # where the copy stands
    code, out, result = _verify(tmp_path, _join(parts))
    assert code == 1, out
    assert result.status == "tampered"
    assert result.line == first and result.lines == first - 1, result


def test_an_appended_frame_is_tampering_after_the_summary(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    trace, plain = recorded
    parts = _segments(trace.read_bytes())
    total = plain.read_bytes().count(b"\n")
    # the last frame (the summary's) once more, before the seek table
    parts[-1:-1] = parts[-3:-1]
    code, _, result = _verify(tmp_path, _join(parts))
    assert code == 1
    assert (result.status, result.line) == ("tampered", total + 1)


def test_torn_after_a_frame_is_unsealed_with_its_lines(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    """A file that ends after a data frame, before its head frame (a crash
    between the two writes), or inside the head frame."""
    trace, plain = recorded
    parts = _segments(trace.read_bytes())
    i = 7
    last = compact.parse(parts[i + 1][1][8:])
    assert last is not None
    full = plain.read_bytes().splitlines(keepends=True)
    for cut in (_join(parts[: i + 1]), _join(parts[: i + 1]) + parts[i + 1][1][:20]):
        code, out, result = _verify(tmp_path, cut)
        assert code == 3, out
        assert result.status == "unsealed" and result.lines == last.last
        assert result.head == full[last.last - 1][-67:-3].decode()


def test_killed_run_gives_an_unsealed_compact_trace_that_cat_keeps(tmp_path: Path) -> None:
    program = tmp_path / "killed.py"
    program.write_text(
        "import os, signal\nt = 0\nfor i in range(30000):\n    t += i\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    for writer_thread in ("0", "1"):
        trace = tmp_path / f"k{writer_thread}.jsonl.zst"
        proc = _run("run", "-o", trace, program, env={"BLOCKTRACE_WRITER_THREAD": writer_thread})
        assert proc.returncode == -signal.SIGKILL
        result = verify_file(trace)
        assert result.status == "unsealed" and result.lines > 1000
        plain = tmp_path / f"k{writer_thread}.jsonl"
        assert _run("cat", trace, "-o", plain).returncode == 0
        again = verify_file(plain)
        assert (again.status, again.lines, again.head) == ("unsealed", result.lines, result.head)


def test_random_access_starts_at_any_head_frame(recorded: tuple[Path, Path]) -> None:
    """A reader starting mid-file (the index's positions) takes the chain's
    state from the head frame before the data frame, mid-leaf ones too."""
    trace, plain = recorded
    full = plain.read_bytes()
    parts = _segments(trace.read_bytes())
    at = 0
    uoffset = 0
    starts = []
    for (kind, piece), (_, nxt) in itertools.pairwise(parts):
        if kind in ("marker", "head") and nxt[:4] == b"\x28\xb5\x2f\xfd":
            starts.append((at, uoffset))
        if kind == "data":
            lines = _lines_of_frame(piece).count(b"\n")
            uoffset += len(_lines_of_frame(piece)) + 74 * lines
        at += len(piece)
    assert len(starts) > 5
    for offset, u in starts:
        with open_at(str(trace), "zstd", (offset, u, u)) as stream:
            assert stream.read() == full[u:]


def test_the_c_and_python_transforms_agree(recorded: tuple[Path, Path]) -> None:
    from blocktrace._native import extension

    native = extension("blocktrace.format._cscan")
    if native is None:
        pytest.skip("the C extension is not built (or BLOCKTRACE_PURE is set)")
    _, plain = recorded
    full = plain.read_bytes()
    assert native.strip(full) == compact._strip_py(full)
    body = compact._strip_py(full)[0]
    lines = full.splitlines(keepends=True)
    version = msgspec.json.decode(lines[0])["blocktrace"]  # the version recorded
    for cut in (0, 1, 15, 16, 17, 40):
        opened = cut - cut % 16
        carry = b"".join(lines[opened:cut])
        prev = bytes.fromhex(lines[cut - 1][-67:-3].decode()) if cut else b""
        start = b""  # version 4: the hash before the carry
        if version == 4 and carry:
            start = (bytes.fromhex(lines[opened - 1][-67:-3].decode()) if opened
                     else hashlib.sha256(DOMAIN_V4).digest())
        rest = b"".join(body.splitlines(keepends=True)[cut:])
        a = native.Expander(prev, carry, cut, 16, True, version, start)
        b = compact.PyExpander(prev, carry, cut, 16, True, version, start)
        assert a.expand(rest) == b.expand(rest) == b"".join(lines[cut:])
        assert a.head == b.head and a.lines == b.lines == len(lines)
        assert a.take_leaves(-1) == b.take_leaves(-1)
    rng = random.Random(7)  # newline-dense bytes: the C output is sized by a newline count
    for _ in range(300):
        junk = bytes(rng.choice(b"}\n{a") for _ in range(rng.randrange(200)))
        assert native.Expander(b"", b"", 0, 16).expand(junk) == compact.PyExpander(
            b"", b"", 0, 16
        ).expand(junk)
    for bad in (b'{"a":1}\n{"b":2', b'{"a":1}\r\n', b"x\n"):
        assert native.Expander(b"", b"", 0, 16).expand(bad) == compact.PyExpander(
            b"", b"", 0, 16
        ).expand(bad)
    with pytest.raises(ValueError):
        native.strip(b'{"a":1}\n')
    with pytest.raises(ValueError):
        compact._strip_py(b'{"a":1}\n')


def test_frame_cuts_and_carries_agree_with_their_definitions() -> None:
    """The writer's thread cuts frames at leaf ends (``leaf_cut``, C and Python)
    and keeps the open leaf's lines (``open_leaf``) without counting all lines."""
    from blocktrace._native import extension

    native = extension("blocktrace.format._cscan")
    rng = random.Random(11)
    for _ in range(3000):
        lines = [b"x" * rng.randrange(40) + b"\n" for _ in range(rng.randrange(40))]
        data = b"".join(lines) + b"y" * rng.choice([0, 0, 3])
        before, per = rng.randrange(100), rng.choice([1, 4, 16])
        whole = max(0, len(lines) - (before + len(lines)) % per)
        want = (len(b"".join(lines[:whole])), whole) if whole else (0, 0)
        assert compact._leaf_cut_py(data, before, per) == want
        big = data * rng.randrange(1, 200)  # past the C count's 255-block runs
        if native is not None:
            assert native.leaf_cut(data, before, per) == want
            assert native.leaf_cut(big, before, per) == compact._leaf_cut_py(big, before, per)
        prior = [b"b%d\n" % i for i in range(rng.randrange(20))]
        count = rng.randrange(min(16, len(prior + lines) + 1))  # the leaf's lines are there
        want_carry = b"".join((prior + lines)[len(prior + lines) - count :]) if count else b""
        assert compact.open_leaf(b"".join(prior), b"".join(lines), count) == want_carry
        held = bytearray(b"".join(lines) + b"next frame's\nlines")
        assert compact.open_leaf(b"".join(prior), held, count, len(b"".join(lines))) == want_carry
    good = b'{"a":1,"hash":"' + b"0123456789abcdef" * 4 + b'"}\n'
    for at in range(64):  # a byte that is no lowercase hex digit, at each place
        for bad in (b"g", b"A", b"/", b":", b"`", b"\xff"):
            line = good[: 15 + at] + bad + good[16 + at :]
            for strip in (compact._strip_py, *([native.strip] if native else [])):
                with pytest.raises(ValueError):
                    strip(line)


def _writers() -> list[tuple[str, object]]:
    from blocktrace._native import extension
    from blocktrace.chain.writer import PyLineWriter

    out: list[tuple[str, object]] = [("pure", PyLineWriter)]
    native = extension("blocktrace.chain._cwriter")
    if native is not None:
        out.append(("inline", native.LineWriter))
        out.append(("threaded", lambda *a, **k: native.LineWriter(*a, threaded=True, **k)))
    return out


_BODY = st.builds(
    lambda key, text, n: b'{"%b":"%b","n":%d' % (key.encode(), text.encode(), n),
    st.sampled_from(["pc", "event", "x"]),
    st.text(alphabet="abc xyz{}:,", max_size=40),
    st.integers(0, 10**6),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bodies=st.lists(_BODY, min_size=1, max_size=300),
    flushes=st.sets(st.integers(0, 300), max_size=6),
    frame_bytes=st.sampled_from([256, 2048, 1 << 18]),
)
def test_compact_then_cat_is_the_plain_bytes_for_every_writer(
    tmp_path: Path, bodies: list[bytes], flushes: set[int], frame_bytes: int
) -> None:
    """The same lines through each line writer, once to a plain file and once
    to compact frames (flushed at random, frames of any size): reading the
    compact file gives the plain file's bytes, and both verify the same."""
    header = b'{"blocktrace":%d,"hashAlg":"sha256","genesis":"g","python":"3",' \
             b'"implementation":"cpython","argv":[],"start":"s","pid":1,"level":"op"' \
             % FORMAT_VERSION  # what the writers write by default
    for name, make in _writers():
        plain_path = tmp_path / f"{name}.jsonl"
        packed_path = tmp_path / f"{name}.jsonl.zst"
        with open(plain_path, "wb") as plain, open(packed_path, "wb") as raw:
            frames = FrameWriter(raw, "zstd", frame_bytes=frame_bytes)
            assert frames.compact
            for out in (plain.write, frames.write):
                writer = make(out, buffer_size=512, lines_per_leaf=16)  # type: ignore[operator]
                writer.line(header)
                for i, body in enumerate(bodies):
                    writer.line(body)
                    if i in flushes:
                        writer.flush()
                        if out == frames.write:
                            frames.flush()
                writer.flush()
                if hasattr(writer, "stop_thread"):
                    writer.stop_thread()
            frames.close()
        expected = plain_path.read_bytes()
        with open_at(str(packed_path), "zstd") as stream:
            assert stream.read() == expected, name
        a, b = verify_file(packed_path), verify_file(plain_path)
        assert (a.status, a.lines, a.head, a.root) == (b.status, b.lines, b.head, b.root)


def test_cat_of_a_damaged_trace_writes_what_reads_then_one_line(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    trace, plain = recorded
    parts = _segments(trace.read_bytes())
    head = bytearray(parts[6][1])
    head[30] ^= 1  # a forged head: the frame before it is not handed out
    parts[6] = ("head", bytes(head))
    bad = tmp_path / "bad.jsonl.zst"
    bad.write_bytes(_join(parts))
    out = tmp_path / "out.jsonl"
    proc = _run("cat", bad, "-o", out)
    first = _first_line(parts[6][1])
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1  # verify's TAMPERED
    assert "Traceback" not in proc.stderr and "do not match" in proc.stderr
    assert f"TAMPERED at line {first}" in proc.stderr
    assert out.read_bytes() == b"".join(plain.read_bytes().splitlines(keepends=True)[: first - 1])
    missing = _run("cat", tmp_path / "nothing.jsonl.zst")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
