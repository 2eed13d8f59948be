"""Compressed traces: ``.jsonl.zst`` and ``.jsonl.gz`` read as the ``.jsonl`` they hold.

A compressed trace is a run of independent frames (zstd frames, or gzip
members), each holding whole lines; the chain and the Merkle tree commit to
the *uncompressed* bytes, so decompressing the file (``zstd -d``, ``gzip -d``)
gives exactly the ``.jsonl`` that would have been written.  Readers sniff the
kind from the magic bytes, never from the name.

:class:`FrameStream` decompresses frame by frame from any frame start (the
index, :mod:`blocktrace.format.index`, keeps where frames start), in bounded
memory, and reports a truncated, corrupt or unreadable frame as one
:class:`CompressedDataError` -- never a decompressor's own exception -- so the
chain check can say what it says of a torn plain file.

zstd comes from the ``zstandard`` package (the ``zstd`` extra), or from the
standard library's ``compression.zstd`` where the Python has it; gzip from
``zlib``.
"""

from __future__ import annotations

import io
import os
import zlib
from collections import deque
from typing import IO, Any, Final, Literal

from blocktrace.format.errors import TraceError

__all__ = [
    "ZSTD_MISSING",
    "CompressedDataError",
    "CompressionUnavailableError",
    "FrameStream",
    "FrameWriter",
    "Kind",
    "Position",
    "kind_for_name",
    "kind_of",
    "open_at",
    "seek_table",
    "sniff",
    "zstd_available",
]

Kind = Literal["plain", "zstd", "gzip"]
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC: Final = b"\x1f\x8b"
_SKIPPABLE_MASK: Final = 0xFFFFFFF0
_SKIPPABLE: Final = 0x184D2A50
ZSTD_MISSING: Final = (
    "a zstd-compressed trace needs the zstandard package: pip install 'blocktrace[zstd]'"
)
_INPUT_CHUNK: Final = 1 << 13
"""Compressed bytes fed to a decompressor at a time: what one call may produce
stays bounded (zstd's worst case is ~32,000x, so ~256 MiB; real traces ~10x)."""
_HOLD: Final = 8 << 20
"""Output held back until the frame's end (and checksum) is reached; blocktrace's
frames are ~256 KiB, so each is checked whole before a line of it is read."""
_MAX_OUT: Final = 1 << 20
"""gzip: at most this much output per call (zlib takes a limit)."""

Position = tuple[int, int, int]
"""Where a line starts: (file offset of its frame, uncompressed offset of that
frame's start, uncompressed offset of the line).  A plain file's is (u, u, u)."""


class CompressionUnavailableError(OSError):
    """A compressed trace was asked for, and its library is not installed."""


class CompressedDataError(Exception):
    """The compressed data cannot be read on from here: ``truncated`` (the file
    ends inside a frame) or corrupt (a decompressor refused it).  ``offset`` is
    the file offset of the frame at fault."""

    def __init__(self, reason: str, offset: int, *, truncated: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
        self.truncated = truncated


def sniff(head: bytes) -> Kind:
    """The kind of a file from its first bytes."""
    if head[:4] == ZSTD_MAGIC or (
        len(head) >= 4 and int.from_bytes(head[:4], "little") & _SKIPPABLE_MASK == _SKIPPABLE
    ):
        return "zstd"
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    return "plain"


def kind_of(path: str) -> Kind:
    """The kind of the file at ``path`` (OSError when it cannot be read)."""
    with open(path, "rb") as f:
        return sniff(f.read(4))


def _zstd_module() -> Any:
    try:
        import zstandard

        return zstandard
    except ImportError:
        return None


def zstd_available() -> bool:
    return _zstd_module() is not None or _stdlib_zstd() is not None


def _stdlib_zstd() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]

        return zstd
    except ImportError:
        return None


class _Frame:
    """One frame's decompressor: ``feed(data) -> (output, done)``; ``rest`` is
    the input after the frame's end once ``done``."""

    def __init__(self, kind: Kind) -> None:
        self.rest = b""
        self.kind = kind
        if kind == "gzip":
            self._z: Any = zlib.decompressobj(31)
        else:
            zstandard = _zstd_module()
            if zstandard is not None:
                self._z = zstandard.ZstdDecompressor().decompressobj()
            else:
                self._z = _stdlib_zstd().ZstdDecompressor()

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        z = self._z
        if self.kind == "gzip":
            out = z.decompress(data, _MAX_OUT)
            tail = z.unconsumed_tail
            if z.eof:
                self.rest = z.unused_data
                return out, True
            self.rest = tail
            return out, False
        out = z.decompress(data)
        if z.eof:
            self.rest = z.unused_data
            return out, True
        self.rest = b""
        return out, False


class FrameStream(io.RawIOBase):
    """The uncompressed bytes of a compressed trace, read from the frame that
    starts at file offset ``offset`` (uncompressed offset ``uoffset``).

    zstd skippable frames (the seek table at the end) are passed over.  Frame
    starts met on the way are kept (:meth:`frame_before`) for the index.
    A problem is one :class:`CompressedDataError`, raised after every byte
    decompressed before it was handed out.
    """

    def __init__(self, raw: IO[bytes], kind: Kind, offset: int = 0, uoffset: int = 0) -> None:
        super().__init__()
        self._raw = raw
        if kind == "zstd" and not zstd_available():
            raise CompressedDataError(ZSTD_MISSING, offset, truncated=False)
        self._kind = kind
        raw.seek(offset)
        self._coffset = offset
        """File offset of the first byte of ``_input``."""
        self._input = b""
        self._eof = False
        self._frame: _Frame | None = None
        self._frame_at = offset
        self._out = b""
        self._out_pos = 0
        self.uoffset = uoffset
        """Uncompressed bytes produced so far (from the start of the file)."""
        self.frames: deque[tuple[int, int]] = deque()
        """(file offset, uncompressed offset) of frame starts seen, oldest first."""
        self._error: CompressedDataError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._out_pos >= len(self._out):
            if self._error is not None:
                raise self._error
            if not self._fill():
                return 0
        n = min(len(buffer), len(self._out) - self._out_pos)
        buffer[:n] = self._out[self._out_pos : self._out_pos + n]
        self._out_pos += n
        return n

    @property
    def position(self) -> int:
        """File offset of the compressed bytes read so far."""
        return self._coffset

    def frame_before(self, uoffset: int) -> tuple[int, int]:
        """The start of the frame holding uncompressed offset ``uoffset`` (at or
        after every earlier question's); older starts are dropped."""
        frames = self.frames
        while len(frames) > 1 and frames[1][1] <= uoffset:
            frames.popleft()
        return frames[0]

    def _more(self) -> bool:
        """Read more compressed input; False at the end of the file."""
        if self._eof:
            return False
        data = self._raw.read(_INPUT_CHUNK)
        if not data:
            self._eof = True
            return False
        self._input += data
        return True

    def _fill(self) -> bool:
        """Decompress the next piece into ``_out``; False at a clean end."""
        try:
            return self._step()
        except CompressedDataError as exc:
            self._error = exc
            return True
        except Exception as exc:  # a decompressor's own error: corrupt data
            self._error = CompressedDataError(
                f"compressed data is corrupt ({type(exc).__name__}: {exc})",
                self._frame_at, truncated=False,
            )
            return True

    def _step(self) -> bool:
        if self._frame is None:
            while len(self._input) < 8 and self._more():
                pass
            if not self._input:
                return False
            if self._kind == "zstd" and len(self._input) >= 4 and (
                int.from_bytes(self._input[:4], "little") & _SKIPPABLE_MASK == _SKIPPABLE
            ):
                return self._skip_frame()
            if sniff(self._input[:4]) != self._kind:
                raise CompressedDataError(
                    f"bytes at offset {self._coffset} are not a {self._kind} frame",
                    self._coffset, truncated=False,
                )
            self._frame = _Frame(self._kind)
            self._frame_at = self._coffset
            self.frames.append((self._coffset, self.uoffset))
        frame = self._frame
        if not self._input and not self._more():
            raise CompressedDataError(
                f"the file ends inside the {self._kind} frame at offset {self._frame_at}",
                self._frame_at, truncated=True,
            )
        # A frame's output is held until its checksum has been checked at its end
        # (up to _HOLD bytes): a corrupt frame is an error, not lines of garbage.
        held: list[bytes] = []
        size = 0
        while True:
            data = self._input
            chunk = data[:_INPUT_CHUNK]
            out, done = frame.feed(chunk)
            consumed = len(chunk) - len(frame.rest)
            self._input = frame.rest + data[len(chunk) :]
            self._coffset += consumed
            held.append(out)
            size += len(out)
            if done:
                self._frame = None
                break
            if size >= _HOLD or (not self._input and not self._more()):
                break
        self._out = b"".join(held)
        self._out_pos = 0
        self.uoffset += len(self._out)
        return True

    def _skip_frame(self) -> bool:
        while len(self._input) < 8 and self._more():
            pass
        if len(self._input) < 8:
            raise CompressedDataError(
                f"the file ends inside a skippable frame at offset {self._coffset}",
                self._coffset, truncated=True,
            )
        size = int.from_bytes(self._input[4:8], "little")
        skip = 8 + size
        if len(self._input) >= skip:
            self._input = self._input[skip:]
        else:
            missing = skip - len(self._input)
            here = self._raw.tell()
            end = self._raw.seek(0, os.SEEK_END)
            if here + missing > end:
                raise CompressedDataError(
                    f"the file ends inside a skippable frame at offset {self._coffset}",
                    self._coffset, truncated=True,
                )
            self._raw.seek(here + missing)
            self._input = b""
        self._coffset += skip
        self._out = b""
        self._out_pos = 0
        return True

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def open_at(path: str, kind: Kind, at: Position | None = None) -> IO[bytes]:
    """The trace's uncompressed bytes as a buffered stream, from ``at`` (a line
    start the index recorded) or the beginning.  Raises :class:`TraceError`
    when the file cannot be opened."""
    if os.path.isdir(path):
        raise TraceError(path, None, "is a directory, not a trace file")
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115
    except OSError as exc:
        raise TraceError(path, None, f"cannot read: {exc.strerror or exc}") from None
    if kind == "plain":
        stream = io.BufferedReader(raw, 1 << 16)
        if at is not None:
            stream.seek(at[2])
        return stream
    try:
        frames = FrameStream(raw, kind, *(at[:2] if at is not None else (0, 0)))
    except CompressedDataError as exc:
        raw.close()
        raise TraceError(path, None, exc.reason) from None
    stream = io.BufferedReader(frames, 1 << 16)  # type: ignore[arg-type]
    if at is not None and at[2] > at[1]:
        _skip(stream, at[2] - at[1])
    return stream


def _skip(stream: IO[bytes], n: int) -> None:
    while n > 0:
        got = stream.read(min(n, 1 << 16))
        if not got:
            return
        n -= len(got)


# -- writing ---------------------------------------------------------------------------

SEEKABLE_MAGIC: Final = 0x8F92EAB1
"""The zstd seekable format's footer magic (its seek table is a skippable frame)."""
_SEEK_TABLE_FRAME: Final = 0x184D2A5E
FRAME_BYTES: Final = 1 << 18
"""Uncompressed bytes per frame, about (frames end at a Merkle leaf's end)."""


def kind_for_name(path: str) -> Kind:
    """The compression a new trace file's name asks for (``.zst``, ``.gz``)."""
    if path.endswith((".zst", ".zstd")):
        return "zstd"
    if path.endswith(".gz"):
        return "gzip"
    return "plain"


class _Stream:
    """One frame at a time: ``feed(data) -> compressed bytes ready``,
    ``end() -> the rest of the frame``; a new frame starts after ``end``."""

    def __init__(self, kind: Kind, level: int | None) -> None:
        self.kind = kind
        self._level = level
        self._zstd = _zstd_module() if kind == "zstd" else None
        if self._zstd is not None:
            # zstd's own worker thread compresses while the program runs on: no
            # Python thread, no GIL hand-over.
            self._cctx = self._zstd.ZstdCompressor(
                level=1 if level is None else level, threads=1, write_checksum=True
            )
        self._obj: Any = None
        self._held: list[bytes] = []

    def _new(self) -> Any:
        if self._zstd is not None:
            return self._cctx.compressobj()
        if self.kind == "gzip":
            return zlib.compressobj(1 if self._level is None else self._level, zlib.DEFLATED, 31)
        return None  # the standard library's zstd: the frame is compressed at its end

    def feed(self, data: bytes) -> bytes:
        if self._obj is None:
            self._obj = self._new()
            if self._obj is None:
                self._held = []
        if self._obj is None:
            self._held.append(data)
            return b""
        out: bytes = self._obj.compress(data)
        return out

    def end(self) -> bytes:
        obj, self._obj = self._obj, None
        if obj is None:
            stdlib = _stdlib_zstd()
            held, self._held = self._held, []
            return bytes(stdlib.compress(b"".join(held), 1 if self._level is None else self._level))
        if self._zstd is not None:
            return bytes(obj.flush(self._zstd.COMPRESSOBJ_FLUSH_FINISH))
        return bytes(obj.flush(zlib.Z_FINISH))


class FrameWriter:
    """The ``write`` of a compressed trace: takes the line writer's flushed
    buffers and writes them to ``raw`` as independent frames, each ending at the
    end of a Merkle leaf (``lines_per_leaf`` lines) once it holds about
    ``frame_bytes``.  zstd compresses on its own native worker thread while the
    program runs on (the ``zstandard`` package; the standard library's zstd and
    gzip compress here, at level 1).  :meth:`flush` ends the current frame
    wherever the flush came (mid-leaf perhaps: readers only need frames to hold
    whole lines) and writes it; :meth:`close` adds the zstd seek table.  A crash
    loses what was not yet written, as the plain writer's buffer does; what was
    written decompresses to a prefix of the trace, its last frame perhaps cut
    (read as a torn line).
    """

    def __init__(
        self,
        raw: IO[bytes],
        kind: Kind,
        *,
        level: int | None = None,
        frame_bytes: int = FRAME_BYTES,
        lines_per_leaf: int = 16,
    ) -> None:
        if kind == "plain":
            raise ValueError("FrameWriter compresses: zstd or gzip")
        if kind == "zstd" and not zstd_available():
            raise CompressionUnavailableError(ZSTD_MISSING)
        self._raw = raw
        self.kind: Kind = kind
        self._stream = _Stream(kind, level)
        self._frame_bytes = frame_bytes
        self._per_leaf = lines_per_leaf
        self._lines = 0
        """Lines handed over so far."""
        self._in_frame = 0
        """Uncompressed bytes in the open frame."""
        self._packed = 0
        """Compressed bytes of the open frame written so far."""
        self.frames: list[tuple[int, int]] = []
        """(compressed size, uncompressed size) of each frame written (the seek table)."""
        self._closed = False

    def write(self, data: bytes) -> int:
        count = data.count(b"\n")
        cut = -1
        if self._in_frame + len(data) >= self._frame_bytes and self._per_leaf:
            whole = count - (self._lines + count) % self._per_leaf
            if whole > 0:
                cut = len(data)
                for _ in range(count - whole + 1):
                    cut = data.rfind(b"\n", 0, cut)
                cut += 1
        if cut < 0:
            self._feed(data)
        else:
            self._feed(data[:cut])
            self._end()
            if cut < len(data):
                self._feed(data[cut:])
        self._lines += count
        return len(data)

    def _feed(self, data: bytes) -> None:
        self._in_frame += len(data)
        self._put(self._stream.feed(data))

    def _end(self) -> None:
        if not self._in_frame:
            return
        self._put(self._stream.end())
        self.frames.append((self._packed, self._in_frame))
        self._packed = 0
        self._in_frame = 0

    def _put(self, packed: bytes) -> None:
        if packed:
            self._write_all(packed)
            self._packed += len(packed)

    def flush(self) -> None:
        """Everything written so far, compressed and in the file."""
        self._end()

    def close(self) -> None:
        """End the last frame and (zstd) write the seek table."""
        if self._closed:
            return
        self._end()
        self._closed = True
        if self.kind == "zstd":
            self._write_all(seek_table(self.frames))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._raw.write(view)
            if n is None or n <= 0:
                raise OSError("the trace file took no bytes")
            view = view[n:]


def seek_table(frames: list[tuple[int, int]]) -> bytes:
    """The zstd seekable format's seek table (a skippable frame): one entry
    (compressed size, uncompressed size) per frame, no checksums."""
    entries = b"".join(
        c.to_bytes(4, "little") + u.to_bytes(4, "little") for c, u in frames
    )
    footer = len(frames).to_bytes(4, "little") + b"\x00" + SEEKABLE_MAGIC.to_bytes(4, "little")
    body = entries + footer
    return _SEEK_TABLE_FRAME.to_bytes(4, "little") + len(body).to_bytes(4, "little") + body
