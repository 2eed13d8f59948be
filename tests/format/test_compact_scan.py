"""The chain check of compact ``.jsonl.zst`` traces scans the compact lines as
they are stored (``FrameStream.hand_out_compact``: no line expanded, no hash
member parsed), and gives exactly the answers of the reference: the pure walk
over the full lines the frames expand to, and the C scanner over those.

The tamper classes are the native check's (tests/format/test_native_check.py),
each written as a compact trace whose head frames are *forged to match* (what
someone rewriting the file would do), so every per-line answer -- a line that is
no JSON object, a summary that does not count, bytes after it, a line that is no
compact line -- is reached inside the frames, not at a head frame's check."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from blocktrace._native import extension
from blocktrace.chain.merkle import MerkleAccumulator
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.format import compact, reader
from blocktrace.format.compressed import open_at, seek_table
from blocktrace.format.reader import Verification, check_chain
from tests.format.test_native_check import _tampers, traces  # noqa: F401 (fixture)

NATIVE = extension("blocktrace.format._cscan")
zstandard = pytest.importorskip("zstandard", reason="the zstd extra is not installed")
pytestmark = pytest.mark.skipif(
    NATIVE is None, reason="the C scanner is not built, or BLOCKTRACE_PURE is set"
)


def _compact_line(line: bytes) -> bytes:
    """A line as a compact frame stores it (lines without a hash member as they are)."""
    try:
        return compact._strip_py(line)[0]
    except ValueError:
        return line


def forge(data: bytes, per_frame: int = 37) -> bytes:
    """``data``'s lines as a compact .zst whose head frames match whatever the
    frames hold (computed as a reader computes them)."""
    lines = [_compact_line(line) for line in data.splitlines(keepends=True)]
    expander = compact.PyExpander(b"", b"", 0, 16)
    out = [compact.marker()]
    frames = []
    carry = b""
    for at in range(0, len(lines), per_frame):
        body = b"".join(lines[at : at + per_frame])
        first = expander.lines + 1
        full = expander.expand(body)
        carry = compact.open_leaf(carry, full, expander.lines % 16)
        packed = zstandard.ZstdCompressor(write_checksum=True).compress(body)
        piece = packed + compact.head_frame(first, expander.lines, expander.head, carry)
        out.append(piece)
        frames.append((len(piece), len(body)))
    out.append(seek_table(frames))
    return b"".join(out)


def _answers(path: Path) -> list[tuple[Verification, bytes]]:
    """(verification, the tree's root and size) of the compact scan, the C
    scanner over the expanded lines, and the pure walk over them."""
    answers = []
    for how in ("compact", "expanded", "pure"):
        tree = MerkleAccumulator()
        if how == "pure":
            result = Verification(str(path), "unusable")
            try:
                with open_at(str(path), "zstd") as stream:
                    reader._walk(stream, result, tree)
            except reader.CompressedDataError as exc:
                reader._unreadable(result, exc)
        else:
            result = check_chain(path, tree=tree, _full=how == "expanded")
        answers.append((result, tree.root() + tree.size.to_bytes(8, "big")))
    return answers


def _same(path: Path) -> Verification:
    scanned, expanded, pure = _answers(path)
    assert scanned == expanded
    # the pure walk hashes the expanded lines itself: at a line that fails after its
    # hash, it has fed that line's leaf, which the frames' leaves are not taken for
    assert scanned[0] == pure[0]
    if scanned[0].status == "sealed":
        assert scanned[1] == pure[1]
    return scanned[0]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_every_tamper_class_gets_the_reference_answer(
    traces: dict[int, bytes], tmp_path: Path, version: int  # noqa: F811
) -> None:
    statuses = set()
    for name, data in _tampers(traces[version]):
        path = tmp_path / "t.jsonl.zst"
        path.write_bytes(forge(data))
        try:
            result = _same(path)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
        statuses.add(result.status)
    # compact frames carry version 3's chain: older versions' lines never check
    assert statuses >= ({"sealed", "tampered", "unsealed"} if version == 3 else {"tampered"})


def test_the_index_built_in_the_pass_is_the_reference_one(
    traces: dict[int, bytes], tmp_path: Path  # noqa: F811
) -> None:
    for name, data in _tampers(traces[3]):
        path = tmp_path / "t.jsonl.zst"
        path.write_bytes(forge(data, per_frame=53))
        answers = []
        for full in (False, True):
            result = check_chain(path, build_index=True, _full=full)
            answers.append(msgspec.msgpack.encode([result.index, result.lines, result.status]))
        assert answers[0] == answers[1], name


def test_random_edits_inside_frames_get_the_reference_answer(
    traces: dict[int, bytes], tmp_path: Path  # noqa: F811
) -> None:
    """Bytes of the stored compact lines changed (heads forged to match): lines
    that are no compact line, no JSON object, or are, with other values."""
    data = traces[3]
    body = b"".join(_compact_line(line) for line in data.splitlines(keepends=True))
    rng = random.Random(5)
    path = tmp_path / "t.jsonl.zst"
    for _ in range(60):
        edited = bytearray(body)
        for _ in range(rng.randrange(1, 4)):
            edited[rng.randrange(len(edited))] = rng.choice(b'}{"\n\r,:0x\\ \xff')
        expanded = compact.PyExpander(b"", b"", 0, 16).expand(bytes(edited))
        path.write_bytes(forge(expanded, per_frame=rng.choice([5, 16, 41, 300])))
        _same(path)


def test_compact_lines_of_a_summary_or_a_long_line(
    traces: dict[int, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The summary is read from its compact line (its hash from the frame's), and
    a line's length bound counts its hash member (the bound made small here, in
    both walks, so that the test holds no 64 MiB lines)."""
    from blocktrace.format import fastcheck

    data = traces[3]
    path = tmp_path / "t.jsonl.zst"
    path.write_bytes(forge(data))
    assert _same(path).status == "sealed"
    bound = 4096
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", bound)
    monkeypatch.setattr(fastcheck, "MAX_LINE_BYTES", bound)
    answers = []
    for size in (bound - 1, bound, bound + 1, bound + 74):  # line 6's, newline in
        padded = rechain_trace(
            data, lambda n, b, size=size: b + b',"p":"' + b"x" * (size - len(b) - 83) + b'"'
            if n == 5 else b,
        )
        assert len(padded.splitlines(keepends=True)[5]) == size
        path.write_bytes(forge(padded))
        result = _same(path)
        answers.append((result.status, result.line))
    assert answers == [("sealed", None), ("sealed", None), ("tampered", 6), ("tampered", 6)]
