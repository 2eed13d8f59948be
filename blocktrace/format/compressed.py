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
_QUEUE_FRAMES: Final = 4


def kind_for_name(path: str) -> Kind:
    """The compression a new trace file's name asks for (``.zst``, ``.gz``)."""
    if path.endswith((".zst", ".zstd")):
        return "zstd"
    if path.endswith(".gz"):
        return "gzip"
    return "plain"


def _compressor(kind: Kind, level: int | None) -> Any:
    """``compress(bytes) -> one independent frame``."""
    if kind == "gzip":
        import gzip

        gz_level = 6 if level is None else level
        return lambda data: gzip.compress(data, compresslevel=gz_level, mtime=0)
    zstandard = _zstd_module()
    zstd_level = 3 if level is None else level
    if zstandard is not None:
        return zstandard.ZstdCompressor(
            level=zstd_level, write_checksum=True, write_content_size=True
        ).compress
    stdlib = _stdlib_zstd()
    if stdlib is None:
        raise CompressionUnavailableError(ZSTD_MISSING)
    return lambda data: stdlib.compress(data, zstd_level)


class FrameWriter:
    """The ``write`` of a compressed trace: takes the line writer's flushed
    buffers and writes them to ``raw`` as independent frames, each ending at the
    end of a Merkle leaf (``lines_per_leaf`` lines) once it holds about
    ``frame_bytes``.  Compression runs on a worker thread (zstd and zlib let go
    of the GIL), behind a queue of a few frames: back-pressure, never unbounded
    memory.  :meth:`flush` writes everything handed over so far as a frame (a
    frame then ends where the flush came, mid-leaf perhaps: readers only need
    frames to hold whole lines) and waits until it is in the file;
    :meth:`close` adds the zstd seek table.  A crash loses what was not yet
    written, as the plain writer's buffer does; what was written decompresses to
    a prefix of the trace, its last frame perhaps cut (read as a torn line).
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
        import queue
        import threading

        if kind == "plain":
            raise ValueError("FrameWriter compresses: zstd or gzip")
        if kind == "zstd" and not zstd_available():
            raise CompressionUnavailableError(ZSTD_MISSING)
        self._raw = raw
        self.kind: Kind = kind
        self._compress = _compressor(kind, level)
        self._frame_bytes = frame_bytes
        self._per_leaf = lines_per_leaf
        self._pending = bytearray()
        self._lines = 0
        """Lines handed to frames so far."""
        self.frames: list[tuple[int, int]] = []
        """(compressed size, uncompressed size) of each frame written (the seek table)."""
        self._error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(_QUEUE_FRAMES)
        self._pid = os.getpid()
        self._worker = threading.Thread(
            target=self._work, name="blocktrace-compress", daemon=True
        )
        self._worker.start()
        self._closed = False

    def write(self, data: bytes) -> int:
        self._check()
        self._pending += data
        if len(self._pending) >= self._frame_bytes:
            self._cut()
        return len(data)

    def _cut(self) -> None:
        """Hand over the pending lines up to the last complete leaf."""
        pending = self._pending
        count = pending.count(b"\n")
        whole = count - (self._lines + count) % self._per_leaf if self._per_leaf else count
        if whole <= 0:
            return
        end = len(pending)
        for _ in range(count - whole + 1):
            end = pending.rfind(b"\n", 0, end)
        frame = bytes(pending[: end + 1])
        del pending[: end + 1]
        self._lines += whole
        self._submit(frame)

    def _submit(self, frame: bytes) -> None:
        if os.getpid() != self._pid:  # a forked child has no worker: write it here
            self._write_frame(frame)
            return
        self._queue.put(frame)

    def _work(self) -> None:
        while True:
            frame = self._queue.get()
            try:
                if frame is not None and self._error is None:
                    self._write_frame(frame)
            except BaseException as exc:
                self._error = exc
            finally:
                self._queue.task_done()
            if frame is None:
                return

    def _write_frame(self, frame: bytes) -> None:
        packed = self._compress(frame)
        view = memoryview(packed)
        while view:
            n = self._raw.write(view)
            if n is None or n <= 0:
                raise OSError("the trace file took no bytes")
            view = view[n:]
        self.frames.append((len(packed), len(frame)))

    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise OSError(f"writing the compressed trace failed: {error}") from error

    def flush(self) -> None:
        """Everything written so far, compressed and in the file."""
        if self._pending:
            self._lines += self._pending.count(b"\n")
            frame = bytes(self._pending)
            self._pending.clear()
            self._submit(frame)
        if os.getpid() == self._pid:
            self._queue.join()
        self._check()

    def close(self) -> None:
        """Flush, stop the worker and (zstd) write the seek table."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if os.getpid() == self._pid:
            self._queue.put(None)
            self._worker.join()
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
