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
    "FrameStream",
    "Kind",
    "Position",
    "kind_of",
    "open_at",
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
_MAX_OUT: Final = 1 << 20
"""gzip: at most this much output per call (zlib takes a limit)."""

Position = tuple[int, int, int]
"""Where a line starts: (file offset of its frame, uncompressed offset of that
frame's start, uncompressed offset of the line).  A plain file's is (u, u, u)."""


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
        if kind == "zstd" and not zstd_available():
            raise CompressedDataError(ZSTD_MISSING, offset, truncated=False)
        self._raw = raw
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
        data = self._input
        chunk = data[:_INPUT_CHUNK]
        out, done = frame.feed(chunk)
        consumed = len(chunk) - len(frame.rest)
        self._input = frame.rest + data[len(chunk) :]
        self._coffset += consumed
        if done:
            self._frame = None
        self._out = out
        self._out_pos = 0
        self.uoffset += len(out)
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
