"""A compact ``.jsonl.zst`` trace taken apart into its frames, and the edits a
hostile or broken file brings to them (docs/FORMAT.md, "Compressed traces").

The split is written here from the zstd frame format (RFC 8878: frame header,
blocks, checksum) and the skippable frames' layout, not from blocktrace's
reader, so the readers are tested against an independent account of the file.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import zstandard
from hypothesis import strategies as st

from blocktrace.format.compressed import FrameWriter

SKIPPABLE_LOW, SKIPPABLE_HIGH = 0x184D2A50, 0x184D2A5F
SEEK_TABLE = 0x184D2A5E
ZSTD_MAGIC = 0xFD2FB528


@dataclass(frozen=True)
class Frame:
    kind: str
    """``marker``, ``data``, ``head``, ``seek`` or ``junk`` (what no frame parses as)."""
    start: int
    end: int


def _zstd_frame_end(data: bytes, i: int) -> int:
    """The end of the zstd frame at ``i`` (RFC 8878 3.1.1), or len(data) when cut."""
    p = i + 4
    if p >= len(data):
        return len(data)
    fhd = data[p]
    p += 1
    fcs_flag, single, checksum, dict_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 2) & 1, fhd & 3
    p += 0 if single else 1
    p += (0, 1, 2, 4)[dict_flag]
    p += (1 if single else 0, 2, 4, 8)[fcs_flag]
    while p + 3 <= len(data):
        header = int.from_bytes(data[p : p + 3], "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        p += 3 + (1 if kind == 1 else size)
        if last:
            return min(p + (4 if checksum else 0), len(data))
    return len(data)


def split(data: bytes) -> list[Frame]:
    frames: list[Frame] = []
    i = 0
    while i < len(data):
        magic = int.from_bytes(data[i : i + 4], "little") if len(data) - i >= 4 else -1
        if SKIPPABLE_LOW <= magic <= SKIPPABLE_HIGH and len(data) - i >= 8:
            end = min(i + 8 + int.from_bytes(data[i + 4 : i + 8], "little"), len(data))
            content = data[i + 8 : end]
            kind = ("seek" if magic == SEEK_TABLE
                    else "marker" if content.startswith(b"blocktrace-compact/") else "head")
        elif magic == ZSTD_MAGIC:
            end, kind = _zstd_frame_end(data, i), "data"
        else:
            end, kind = len(data), "junk"
        frames.append(Frame(kind, i, end))
        i = end
    return frames


def splice(draw: Draw, data: bytes, other: bytes) -> bytes:
    """Frames of ``other`` (the same trace framed the same way, some of its lines
    forged and re-chained) in place of the same frames of ``data``."""
    mine, theirs = split(data), split(other)
    if [f.kind for f in mine] != [f.kind for f in theirs]:
        return data
    out = []
    for f, g in zip(mine, theirs, strict=True):
        take = f.kind in ("data", "head") and draw(st.booleans())
        out.append(other[g.start : g.end] if take else data[f.start : f.end])
    return b"".join(out)


def reframe(jsonl: bytes, cuts: Sequence[int], compact: bool = True) -> bytes:
    """``jsonl`` (whole lines) written compact by blocktrace's own frame writer, a
    frame ended (flushed) after each line number in ``cuts`` -- mid-leaf too,
    so head frames carry open leaves -- as a run flushed at checkpoints would."""
    out = io.BytesIO()
    writer = FrameWriter(out, "zstd", compact_frames=compact)
    lines = jsonl.splitlines(keepends=True)
    at = 0
    for cut in [*sorted(set(cuts)), len(lines)]:
        chunk = b"".join(lines[at:cut])
        if chunk:
            writer.write(chunk)
            writer.flush()
        at = max(at, cut)
    writer.close()
    return out.getvalue()


# -- edits of a compact file ---------------------------------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]


def _compress(draw: Draw, data: bytes) -> bytes:
    """``data`` as one zstd frame: as blocktrace writes it (content size and
    checksum) mostly, else without either, or as two frames."""
    how = draw(st.sampled_from(["ours", "ours", "ours", "no checksum", "no size", "two"]))
    if how == "two":
        cut = draw(st.integers(0, len(data)))
        return _compress(draw, data[:cut]) + _compress(draw, data[cut:])
    ctx = zstandard.ZstdCompressor(level=1, write_checksum=how != "no checksum",
                                   write_content_size=how != "no size")
    return ctx.compress(data)


def _pairs(frames: list[Frame]) -> list[tuple[int, int]]:
    """(start, end) of each data frame with the head frame after it."""
    out = []
    for k, f in enumerate(frames):
        if f.kind == "data":
            headed = k + 1 < len(frames) and frames[k + 1].kind == "head"
            end = frames[k + 1].end if headed else f.end
            out.append((f.start, end))
    return out


def truncate_at_boundary(draw: Draw, data: bytes) -> bytes:
    """Cut at a frame's start or end, or a few bytes either side of one."""
    frames = split(data)
    edges = sorted({f.start for f in frames} | {f.end for f in frames})
    if not edges:
        return data
    edge = draw(st.sampled_from(edges))
    cut = edge + draw(st.sampled_from([0, 0, -1, 1, -4, 4, -9, 9]))
    return data[: max(0, min(cut, len(data)))]


def shuffle_frames(draw: Draw, data: bytes) -> bytes:
    """Drop, repeat or swap a data frame with its head frame, or either alone."""
    frames = split(data)
    pairs = _pairs(frames)
    if not pairs:
        return data
    singles = [(f.start, f.end) for f in frames if f.kind in ("data", "head")]
    units = pairs if draw(st.booleans()) else singles
    i = draw(st.integers(0, len(units) - 1))
    a, b = units[i]
    how = draw(st.sampled_from(["drop", "repeat", "swap", "move-to-end"]))
    if how == "drop":
        return data[:a] + data[b:]
    if how == "repeat":
        return data[:b] + data[a:b] + data[b:]
    if how == "move-to-end":
        rest = data[:a] + data[b:]
        seek = [f for f in split(rest) if f.kind == "seek"]
        at = seek[0].start if seek else len(rest)
        return rest[:at] + data[a:b] + rest[at:]
    j = draw(st.integers(0, len(units) - 1))
    (a, b), (c, d) = sorted([units[i], units[j]])
    if b > c:
        return data
    return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]


def edit_head_frame(draw: Draw, data: bytes) -> bytes:
    """Change one field of a head frame (or the marker): its tag, first or last
    line number, hash, start, or a byte of its carry; or cut or grow it (its
    size field following)."""
    frames = [f for f in split(data) if f.kind in ("head", "marker")]
    if not frames:
        return data
    f = draw(st.sampled_from(frames))
    content = bytearray(data[f.start + 8 : f.end])
    if not content:
        return data
    field = draw(st.sampled_from(["tag", "first", "last", "hash", "start", "carry", "any",
                                  "cut", "grow", "number"]))
    # content: tag (1), first (8), last (8), hash (32), [start (32)], carry
    spans = {"tag": (0, 1), "first": (1, 9), "last": (9, 17), "hash": (17, 49),
             "start": (49, 81), "carry": (81, len(content)), "any": (0, len(content))}
    if field == "cut":
        content = content[: draw(st.integers(0, len(content) - 1))]
    elif field == "grow":
        content += draw(st.binary(min_size=1, max_size=40))
    elif field == "number":  # a plausible but wrong line number
        lo, hi = spans[draw(st.sampled_from(["first", "last"]))]
        if hi <= len(content):
            n = int.from_bytes(content[lo:hi], "little")
            n = draw(st.sampled_from([0, 1, n - 1, n + 1, n + 16, 2**63, 2**64 - 1]))
            content[lo:hi] = (n % 2**64).to_bytes(8, "little")
    else:
        lo, hi = spans[field]
        hi = min(hi, len(content))
        if lo < hi:
            k = draw(st.integers(lo, hi - 1))
            content[k] ^= draw(st.integers(1, 255))
    frame = data[f.start : f.start + 4] + len(content).to_bytes(4, "little") + bytes(content)
    return data[: f.start] + frame + data[f.end :]


def edit_data_frame(draw: Draw, data: bytes, edit: Callable[[Draw, bytes], bytes]) -> bytes:
    """Decompress one data frame, ``edit`` its (compact) lines, compress it again
    with a good checksum: only the head check can tell."""
    frames = [f for f in split(data) if f.kind == "data"]
    if not frames:
        return data
    f = draw(st.sampled_from(frames))
    try:
        lines = zstandard.ZstdDecompressor().decompress(data[f.start : f.end])
    except zstandard.ZstdError:
        return data
    return data[: f.start] + _compress(draw, edit(draw, lines)) + data[f.end :]


def foreign_frame(draw: Draw, data: bytes, other: bytes) -> bytes:
    """Put a frame (marker, data or head) of ``other`` (another trace, perhaps of
    the other version) in place of one of ``data``'s of the same kind."""
    mine = [f for f in split(data) if f.kind in ("marker", "data", "head")]
    if not mine:
        return data
    f = draw(st.sampled_from(mine))
    theirs = [g for g in split(other) if g.kind == f.kind]
    if not theirs:
        return data
    g = draw(st.sampled_from(theirs))
    return data[: f.start] + other[g.start : g.end] + data[f.end :]
