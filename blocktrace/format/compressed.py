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

import _thread
import hashlib
import io
import os
import threading
import time
import zlib
from collections import deque
from typing import IO, TYPE_CHECKING, Any, Final, Literal

import msgspec

from blocktrace import own_threads
from blocktrace.format import compact
from blocktrace.format.compact import Expander
from blocktrace.format.errors import TraceError
from blocktrace.format.rules import DOMAIN_V4
from blocktrace.format.versions import LINES_PER_LEAF

if TYPE_CHECKING:
    import queue  # imported where a thread is started: not on every reader's start

__all__ = [
    "ZSTD_MISSING",
    "CompressedDataError",
    "CompressionUnavailableError",
    "FrameStream",
    "FrameWriter",
    "Kind",
    "Position",
    "ReadAhead",
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
    "a zstd-compressed trace needs the zstandard package: pip install 'blocktrace[zstd]' "
    "(in a checkout: pip install -e '.[zstd]')"
)
_INPUT_CHUNK: Final = 1 << 13
"""Compressed bytes fed to a decompressor at a time: what one call may produce
stays bounded (zstd's worst case is ~32,000x, so ~256 MiB; real traces ~10x)."""
_HOLD: Final = 8 << 20
"""Output held back until the frame's end (and checksum) is reached; blocktrace's
frames are ~256 KiB, so each is checked whole before a line of it is read."""
_WRITE_SIZE: Final = 1 << 19
"""zstandard: the piece its decompressor writes at a time, more than a blocktrace
frame holds (with its default, 128 KiB, a frame's output is made of pieces joined
again); the output of one call stays bounded by ``_INPUT_CHUNK``'s."""
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

    def __init__(
        self, reason: str, offset: int, *, truncated: bool, line: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
        self.truncated = truncated
        self.line = line
        """Compact frames: the first line of a frame whose stored head or line
        numbers do not match its lines (tampering there, not a torn file)."""

    def trace_error(self, path: str, number: int | None) -> TraceError:
        """The one-line error of a reader that cannot go on at line ``number``
        (the first it could not read): ``TAMPERED at line N`` (status tampered)
        where verify says so -- a compact frame that does not match its stored
        head -- else the reason (unusable)."""
        if self.line is not None:
            reason = self.reason.removeprefix(f"line {self.line}: ")
            return TraceError(path, None, f"TAMPERED at line {self.line}: {reason}",
                              status="tampered")
        return TraceError(path, number, self.reason)


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

    def __init__(self, kind: Kind, dctx: Any = None) -> None:
        self.rest = b""
        self.kind = kind
        if kind == "gzip":
            self._z: Any = zlib.decompressobj(31)
        elif dctx is not None:  # zstandard's, reused frame after frame (reset by decompressobj)
            self._z = dctx.decompressobj(write_size=_WRITE_SIZE)
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
        zstandard = _zstd_module() if kind == "zstd" else None
        self._dctx = zstandard.ZstdDecompressor() if zstandard is not None else None
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
        """(file offset, uncompressed offset) of frame starts seen, oldest first
        (compact frames: the offset of the head frame before the data frame, or
        of the marker, where a reader starting there finds the chain's state)."""
        self._error: CompressedDataError | None = None
        self._expander: Expander | None = None
        """Compact frames: puts the hashes back (None: full lines)."""
        self._state_at = offset
        """Compact frames: where the state for the next data frame was read."""
        self._carry = b""
        """Compact frames: the full lines of the leaf open before the next frame."""
        self._headless = False
        """Compact frames: the last data frame had no head frame after it."""
        self._leaves = False
        self._compact_out = False
        self.pieces: deque[tuple[int, bytes | None]] = deque()
        """With :meth:`hand_out_compact`: for each data frame handed out, the number
        of its first line and its lines' hashes (32 bytes each), or None when its
        lines are handed out full (it holds a line that is no compact line: it and
        every frame after it are read as :meth:`expand` gives them)."""

    def hand_out_compact(self) -> None:
        """Compact frames: hand out the compact lines as they are stored, and each
        data frame's hashes in :attr:`pieces`, instead of the full lines (the
        chain check reads them so: :mod:`blocktrace.format.fastcheck`).  Every
        frame is checked as before (its stored head, line numbers, carry);
        :attr:`uoffset` still counts the full lines.  Call before the first read."""
        self._compact_out = True

    @property
    def compact_out(self) -> bool:
        """The lines handed out are compact ones (see :meth:`hand_out_compact`;
        known once the first frame was read)."""
        return self._compact_out and self._expander is not None

    def keep_leaves(self) -> None:
        """Keep the leaf hashes the expander computes (:meth:`take_leaves`); call
        before the first read."""
        self._leaves = True

    @property
    def compact(self) -> bool:
        """The frames hold compact lines (known once the first frame was read)."""
        return self._expander is not None

    @property
    def chain_version(self) -> int:
        """Compact frames: the version whose chain their expander computes the hashes
        by (3 or 4, as their marker or head frame says); 0 when not compact."""
        expander = self._expander
        return expander.version if expander is not None else 0

    def take_leaves(self, upto: int) -> bytes:
        """Compact frames, with :meth:`keep_leaves`: the leaf hashes of the lines
        handed out, not yet taken, up to leaf ``upto`` (-1: all)."""
        expander = self._expander
        return expander.take_leaves(upto) if expander is not None else b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._out_pos >= len(self._out):
            if self._error is not None:
                raise self._error
            if not self._fill():
                return 0
        n = min(len(buffer), len(self._out) - self._out_pos)
        buffer[:n] = memoryview(self._out)[self._out_pos : self._out_pos + n]  # one copy
        self._out_pos += n
        return n

    def fill(self, buffer: Any) -> int:
        """:meth:`readinto` frame after frame until ``buffer`` is full or the end:
        for a reader that asks for megabytes at a time (the differ's walk over
        the lines, ``format.linesource``), which would otherwise get a frame's
        worth per call and move the bytes it keeps once per frame.  A problem is
        raised by the call after the bytes before it were given (or by this one
        when there were none).  (A buffered reader over this stream, which reads
        a few lines from a position, keeps :meth:`readinto`: it would decompress
        and check a frame it does not need.)"""
        size = len(buffer)
        got = 0
        with memoryview(buffer) as view:
            while got < size:
                try:
                    n = self.readinto(view[got:])
                except CompressedDataError:
                    if got:
                        return got  # (raised again by the next call: ``_error`` stays)
                    raise
                if not n:
                    break
                got += n
        return got

    def read1(self, size: int = -1) -> bytes:
        """The next piece of output as it came (a frame's, most often), whatever
        ``size``: no copy when the piece is handed out whole."""
        while self._out_pos >= len(self._out):
            if self._error is not None:
                raise self._error
            if not self._fill():
                return b""
        out, pos = self._out, self._out_pos
        self._out_pos = len(out)
        return out if pos == 0 else out[pos:]

    def readline(self, size: int | None = -1) -> bytes:
        """One line (at most ``size`` bytes), without a buffer above this stream."""
        limit = -1 if size is None else size
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            while self._out_pos >= len(self._out):
                if self._error is not None:
                    raise self._error
                if not self._fill():
                    return b"".join(parts)
            out, pos = self._out, self._out_pos
            end = out.find(b"\n", pos) + 1 or len(out)
            if limit >= 0:
                end = min(end, pos + limit - got)
            parts.append(out[pos:end])
            got += end - pos
            self._out_pos = end
            if out[end - 1 : end] == b"\n":
                break
        return b"".join(parts)

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
            if len(self._input) < 4:  # (at the end of the file)
                raise CompressedDataError(
                    f"the file ends inside a frame's magic number at offset {self._coffset}",
                    self._coffset, truncated=True,
                )
            if self._kind == "zstd" and len(self._input) >= 4 and (
                int.from_bytes(self._input[:4], "little") & _SKIPPABLE_MASK == _SKIPPABLE
            ):
                if int.from_bytes(self._input[:4], "little") == compact.COMPACT_MAGIC:
                    return self._state_frame()
                return self._skip_frame()
            if sniff(self._input[:4]) != self._kind:
                raise CompressedDataError(
                    f"bytes at offset {self._coffset} are not a {self._kind} frame",
                    self._coffset, truncated=False,
                )
            if self._expander is not None and self._headless:
                raise self._tampered("no head frame after the frame before it")
            self._frame = _Frame(self._kind, self._dctx)
            self._frame_at = self._coffset
            at = self._state_at if self._expander is not None else self._coffset
            self.frames.append((at, self.uoffset))
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
            if size >= _HOLD and self._expander is not None:
                raise CompressedDataError(
                    f"the compact frame at offset {self._frame_at} holds more than "
                    f"{_HOLD} bytes: no blocktrace frame does", self._frame_at, truncated=False,
                )
            if not self._input and not self._more() and self._expander is not None:
                # compact lines are handed out only from a whole, checked frame
                raise CompressedDataError(
                    f"the file ends inside the {self._kind} frame at offset {self._frame_at}",
                    self._frame_at, truncated=True,
                )
            if size >= _HOLD or (not self._input and not self._more()):
                break
        out = held[0] if len(held) == 1 else b"".join(held)
        extra = 0
        if self._expander is not None and self._frame is None:
            # checked before it is handed out: a frame that does not match its
            # stored head raises here, and nothing of it may become readable
            out, extra = self._expand(out)
        self._out = out
        self._out_pos = 0
        self.uoffset += len(out) + extra
        return True

    def _tampered(self, why: str) -> CompressedDataError:
        assert self._expander is not None
        line = self._expander.lines + 1
        return CompressedDataError(
            f"line {line}: {why} (compressed frame at offset {self._frame_at})",
            self._frame_at, truncated=False, line=line,
        )

    def _read_skippable(self) -> tuple[int, bytes] | None:
        """(offset, payload) of the skippable frame at the input's start, read
        whole (bounded), or None when the file ends inside it."""
        while len(self._input) < 8 and self._more():
            pass
        if len(self._input) < 8:
            return None
        size = int.from_bytes(self._input[4:8], "little")
        if size > _HOLD:
            raise CompressedDataError(
                f"a blocktrace frame of {size} bytes at offset {self._coffset}: no blocktrace "
                "frame is that large", self._coffset, truncated=False,
            )
        while len(self._input) < 8 + size and self._more():
            pass
        if len(self._input) < 8 + size:
            return None
        at = self._coffset
        payload = self._input[8 : 8 + size]
        self._input = self._input[8 + size :]
        self._coffset += 8 + size
        return at, payload

    def _state_frame(self) -> bool:
        """A blocktrace skippable frame where a data frame could start: the
        marker, or the head frame a reader starting mid-file starts from."""
        at = self._coffset
        got = self._read_skippable()
        if got is None:
            raise CompressedDataError(
                f"the file ends inside a skippable frame at offset {at}", at, truncated=True
            )
        state = _parse(got)
        if self._expander is not None:  # mid-stream: the frame it closed is gone
            self._frame_at = at
            raise self._tampered("a head frame without its data frame")
        if state is None:
            self._expander = compact.make_expander(
                leaves=self._leaves, version=compact.marker_version(got[1]) or 3
            )
        else:
            self._expander = compact.make_expander(
                state.head, state.carry, state.last, LINES_PER_LEAF, self._leaves,
                state.version, state.start,
            )
            self._carry = state.carry
        self._state_at = at
        self._out = b""
        self._out_pos = 0
        return True

    def _expand(self, data: bytes) -> tuple[bytes, int]:
        """A whole compact data frame's full lines (or, handing out compact lines,
        the frame's own), checked against the head frame after it (read here)
        when there is one; and how many bytes the full lines have more than those
        handed out."""
        expander = self._expander
        assert expander is not None
        head: compact.HeadFrame | None = None
        at = self._coffset
        while len(self._input) < 4 and self._more():
            pass
        if self._input[:4] == compact.COMPACT_MAGIC.to_bytes(4, "little"):
            got = self._read_skippable()
            if got is not None:
                head = _parse(got)
                if head is None:
                    raise self._tampered("a second start marker after a frame")
        self._headless = head is None
        if head is not None and head.first != expander.lines + 1:
            raise self._tampered(
                f"the frame holds lines {head.first}-{head.last} by its stored head: lines "
                "were deleted, inserted or moved"
            )
        first = expander.lines + 1
        out, piece, extra = self._lines_of(expander, data)
        carry = compact.open_leaf(self._carry, piece[1] if piece is not None else out,
                                  expander.lines % LINES_PER_LEAF)
        self._carry = carry
        if head is not None:
            if (
                expander.lines != head.last or expander.head != head.head or carry != head.carry
                or head.version != expander.version or expander.start != head.start
            ):
                first = head.first
                raise CompressedDataError(
                    f"line {first}: lines {first}-{head.last} (the compressed frame at offset "
                    f"{self._frame_at}) do not match the hash stored after them: one of them "
                    "was edited, inserted, deleted or moved",
                    self._frame_at, truncated=False, line=first,
                )
            self._state_at = at
        if self._compact_out:
            self.pieces.append((first, piece[0] if piece is not None else None))
        return out, extra

    def _lines_of(
        self, expander: Expander, data: bytes
    ) -> tuple[bytes, tuple[bytes, bytes] | None, int]:
        """``(what to hand out, (hashes, the full lines of its last lines) or None
        when it is full lines, the bytes the full lines have more)``."""
        if not self._compact_out or expander.broken:
            return expander.expand(data), None, 0
        digests = expander.hash(data)
        n = len(digests) // 32
        if expander.broken:  # this frame as expand() gives it: full lines, then as stored
            cut = 0
            for _ in range(n):
                cut = data.index(b"\n", cut) + 1
            return compact.rebuild(data[:cut], digests) + data[cut:], None, 0
        k = min(n, expander.lines % LINES_PER_LEAF)  # the open leaf's lines here
        start = compact.start_of_last(data, k) if k else len(data)
        tail = compact.rebuild(data[start:], digests[32 * (n - k) :])
        return data, (digests, tail), compact.COMPACT_EXTRA * n

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


def _parse(frame: tuple[int, bytes]) -> compact.HeadFrame | None:
    """A blocktrace skippable frame (offset, payload): the marker (None) or a head frame."""
    try:
        return compact.parse(frame[1])
    except ValueError as exc:
        at = frame[0]
        raise CompressedDataError(f"{exc} at offset {at}", at, truncated=False) from None


class ReadAhead:
    """``read`` of a stream (a compressed trace's), done ahead by a thread, so that
    decompressing (zstd and zlib release the GIL) overlaps the caller's work on
    the blocks before (the chain check's scan releases it too).  At most
    ``depth`` blocks of ``block`` bytes wait; blocks come in order, then the
    stream's end (``b""``) or the exception its read raised.  ``readline``
    before the first ``read`` is the stream's own."""

    def __init__(
        self, stream: IO[bytes] | FrameStream, block: int = 1 << 20, depth: int = 4
    ) -> None:
        self._stream = stream
        import queue

        self._block = block
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._ended = False

    def readline(self, limit: int = -1) -> bytes:
        if self._thread is not None:
            raise ValueError("readline after read")
        return self._stream.readline(limit)

    def read(self, n: int = -1) -> bytes:
        """The next block (its size is the reader's, whatever ``n``)."""
        if self._ended:
            return b""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="blocktrace-read-ahead", daemon=True
            )
            self._thread.start()
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        if not item:
            self._ended = True
        return item

    def _run(self) -> None:
        # read1: one raw read at most, so the bytes before a problem are never
        # lost with it (BufferedReader.read drops what it gathered when a raw read raises)
        read = getattr(self._stream, "read1", self._stream.read)
        try:
            while not self._stop:
                data = read(self._block)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the reader, in order
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        import queue

        while not self._stop:
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Stop the thread (before the stream is closed)."""
        import queue

        self._stop = True
        thread = self._thread
        if thread is not None:
            while thread.is_alive():
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    thread.join(0.05)


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


def _one_shot(kind: Kind, level: int | None) -> Any:
    """``compress(data) -> one complete frame`` (a gzip member for gzip), level 1
    unless told; each frame carries its checksum."""
    lvl = 1 if level is None else level
    zstd = _zstd_module() if kind == "zstd" else None
    if zstd is not None:
        return zstd.ZstdCompressor(level=lvl, write_checksum=True).compress  # frees the GIL
    if kind == "zstd":
        stdlib = _stdlib_zstd()

        def compress(data: bytes) -> bytes:
            return bytes(stdlib.compress(data, lvl))

        return compress

    def gzip(data: bytes) -> bytes:
        obj = zlib.compressobj(lvl, zlib.DEFLATED, 31)
        return obj.compress(data) + obj.flush(zlib.Z_FINISH)

    return gzip


_FLUSH: Final = object()
"""In the writer's log: end the open frame here."""
_PENDING_FRAMES: Final = 8
"""Frames' worth of bytes handed over and not yet compressed before ``write``
waits for the worker (memory stays bounded whatever the program's pace)."""


class FrameWriter:
    """The ``write`` of a compressed trace: takes the line writer's flushed
    buffers and writes them to ``raw`` as independent frames, each ending at the
    end of a Merkle leaf (``lines_per_leaf`` lines) once it holds about
    ``frame_bytes``.  :meth:`flush` ends the current frame wherever the flush
    came (mid-leaf perhaps: readers only need frames to hold whole lines) and
    waits until it is in the file; :meth:`close` adds the zstd seek table.

    ``write`` only appends the buffer to a log (one step a signal handler cannot
    split: a handler that raises in ``write`` finds the buffer either taken
    whole -- the exception says so in ``characters_written``, as
    ``BlockingIOError`` does -- or not at all; :meth:`position` says how many
    bytes were taken in all).  A worker thread of this writer (started on the
    first write with ``_thread``, so the program's ``threading`` does not list
    it; Python runs signal handlers only in the main thread, so none runs there)
    cuts the frames, compresses each (zstd and zlib release the GIL while they
    do) and writes it.  A crash loses what was not yet written, as the plain
    writer's buffer does; what was written decompresses to a prefix of the
    trace, its last frame perhaps cut (read as a torn line).
    """

    def __init__(
        self,
        raw: IO[bytes],
        kind: Kind,
        *,
        level: int | None = None,
        frame_bytes: int = FRAME_BYTES,
        lines_per_leaf: int = 16,
        compact_frames: bool | None = None,
    ) -> None:
        if kind == "plain":
            raise ValueError("FrameWriter compresses: zstd or gzip")
        if kind == "zstd" and not zstd_available():
            raise CompressionUnavailableError(ZSTD_MISSING)
        self._raw = raw
        self.kind: Kind = kind
        self._compress = _one_shot(kind, level)
        self._frame_bytes = frame_bytes
        self._per_leaf = lines_per_leaf
        self.compact = (kind == "zstd") if compact_frames is None else compact_frames
        """Frames hold compact lines (:mod:`blocktrace.format.compact`): zstd's default."""
        if self.compact and (kind != "zstd" or lines_per_leaf < 1):
            raise ValueError("compact frames are zstd frames of whole leaves")
        self._carry = b""
        """Compact: the full lines of the leaf open after the last frame."""
        self._version = 3
        """Compact: the chain the lines were hashed by (the header's ``blocktrace``,
        read from the first frame: 3, or 4)."""
        self._start = b""
        """Compact, version 4: the hash before the open leaf (H_{f-1}; none before
        the first frame: the genesis state)."""
        self.frames: list[tuple[int, int]] = []
        """(compressed size, uncompressed size) of each frame written (the seek table)."""
        self._log: list[tuple[int, Any]] = []
        """(bytes taken up to the end of this entry, the buffer; None once the
        worker has it, ``_FLUSH`` for a frame's end asked for)."""
        self._done = 0
        """Log entries the worker has dealt with (its frames written)."""
        import queue

        self._wake: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._woken = 0
        """Bytes taken when the worker was last woken: it is woken once per frame's
        worth of buffers (and at each flush), not per buffer (each wake-up takes the
        GIL from the program's thread)."""
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._pid = 0
        self._running = False
        """A worker thread is on (from the first write to ``close`` or ``pause``)."""
        self._exited = _thread.allocate_lock()
        """Held while a worker runs; it releases it as it ends."""
        self._worker_id = 0
        self._closed = False
        # the worker's own
        self._open = bytearray()
        self._lines = 0

    # -- the caller's side (the interpreter's thread) ----------------------------------

    def position(self) -> int:
        """Uncompressed bytes taken so far."""
        log = self._log
        return log[-1][0] if log else 0

    def write(self, data: bytes) -> int:
        if not data:
            return 0
        self._check()
        taken = self.position() + len(data)
        log = self._log
        n = len(log)
        try:
            log.append((taken, bytes(data)))  # the one step that takes it
            if taken - self._woken >= self._frame_bytes:  # a frame's worth: the worker's turn
                self._woken = taken
                self._wake.put(n)
            while taken - self._done_bytes() > _PENDING_FRAMES * self._frame_bytes:
                self._wait()
        except BaseException as exc:
            if len(log) > n and not hasattr(exc, "characters_written"):
                exc.characters_written = len(data)  # type: ignore[attr-defined]
            raise
        return len(data)

    def flush(self) -> None:
        """Everything written so far, compressed and in the file."""
        self._check()
        log = self._log
        n = len(log)
        if n and log[-1][1] is _FLUSH:
            n -= 1  # asked already (a flush a handler interrupted): wait for that one
        else:
            log.append((self.position(), _FLUSH))
            self._wake.put(n)
        while self._done <= n:
            self._wait()
        self._check()

    def close(self) -> None:
        """End the last frame, (zstd) write the seek table, end the worker."""
        if self._closed:
            return
        if self._running:
            self.flush()
            self._wake.put(-1)
            self._running = False
        self._closed = True
        if self.kind == "zstd":
            _write_all(self._raw, seek_table(self.frames))

    def pause(self) -> None:
        """Everything written so far compressed and in the file, and the worker
        thread ended (gone from the process: a fork is coming, and Python warns
        a program that forks with threads); the next write starts a new one."""
        if not self._running or self._closed:
            return
        self.flush()
        self._wake.put(-1)
        self._exited.acquire()  # released by the worker as it ends
        self._exited.release()
        self._running = False
        _until_gone(self._worker_id)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError("write to a closed compressed trace")
        pid = os.getpid()
        if self._pid and self._pid != pid:
            raise OSError("a compressed trace is written only by the process that opened it")
        if not self._running:
            self._pid = pid
            self._running = True
            self._exited.acquire()
            _thread.start_new_thread(self._work, ())

    def _done_bytes(self) -> int:
        done = self._done
        return self._log[done - 1][0] if done else 0

    def _wait(self) -> None:
        """Until the worker has dealt with more of the log (or failed)."""
        import queue

        try:
            self._acks.get(timeout=1.0)
        except queue.Empty:
            pass
        if self._error is not None:
            raise self._error

    # -- the worker's side -------------------------------------------------------------

    def _work(self) -> None:
        log, wake, acks = self._log, self._wake, self._acks
        me = _thread.get_ident()
        self._worker_id = _thread.get_native_id()
        own_threads.IDS.add(me)  # the stepper does not wait for its lock here
        try:
            while wake.get() >= 0:
                while self._done < len(log):
                    i = self._done
                    data: Any = log[i][1]
                    if data is _FLUSH:
                        self._end(len(self._open))
                    elif data is not None:
                        log[i] = (log[i][0], None)
                        self._take(data)
                    self._done = i + 1
                    acks.put(i)
        except BaseException as exc:  # the disk is full, the file was closed...
            self._error = exc
            acks.put(-1)
        finally:
            own_threads.IDS.discard(me)
            self._exited.release()

    def _take(self, data: bytes) -> None:
        """Add a buffer to the open frame; write the frame when it holds enough
        and ends a leaf."""
        buf = self._open
        buf += data
        if len(buf) < self._frame_bytes or not self._per_leaf:
            return
        cut, whole = compact.leaf_cut(buf, self._lines, self._per_leaf)
        if whole > 0:
            self._end(cut, whole)

    def _end(self, cut: int, lines: int | None = None) -> None:
        """Write ``_open[:cut]`` as one frame."""
        if not cut:
            return
        buf = self._open
        if self.compact:
            self._end_compact(buf, cut)
        else:
            data = bytes(buf[:cut])
            packed = self._compress(data)
            _write_all(self._raw, packed)
            self.frames.append((len(packed), cut))
            self._lines += data.count(b"\n") if lines is None else lines
        del buf[:cut]

    def _end_compact(self, buf: bytearray, cut: int) -> None:
        """Write ``buf[:cut]`` (whole lines) as a compact frame and its head frame,
        in one write (a crash leaves the frame with its head, or neither whole)."""
        with memoryview(buf) as view, view[:cut] as data:  # no copy of the frame's lines
            body, last_hex, count = compact.strip(data)
        starts = not (self._lines or self.frames)
        if starts:
            self._version = _chain_version(buf)
            self._start = hashlib.sha256(DOMAIN_V4).digest()
        first = self._lines + 1
        last = self._lines + count
        head = bytes.fromhex(last_hex.decode())
        open_lines = last % self._per_leaf
        self._carry = compact.open_leaf(self._carry, buf, open_lines, cut)
        if not open_lines:
            self._start = head
        elif open_lines < count:  # the line before the open leaf is in this frame
            end = cut - len(self._carry)  # its end; its hash: ...,"hash":"<64 hex>"}\n
            self._start = bytes.fromhex(buf[end - 67 : end - 3].decode())
        packed = self._compress(body)
        out = b"".join((
            compact.marker(self._version) if starts else b"",
            packed,
            compact.head_frame(first, last, head, self._carry, self._version, self._start),
        ))
        _write_all(self._raw, out)
        self.frames.append((len(out), len(body)))
        self._lines = last


def _chain_version(lines: bytes | bytearray) -> int:
    """The chain version of a trace whose first line starts ``lines`` (its header's
    ``blocktrace``): 4, or 3 for anything else (the frames' layout of version 3)."""
    end = lines.find(b"\n")
    try:
        header = msgspec.json.decode(bytes(lines[: end if end >= 0 else len(lines)]))
    except msgspec.DecodeError:
        return 3
    return 4 if isinstance(header, dict) and header.get("blocktrace") == 4 else 3


def _until_gone(native_id: int) -> None:
    """Wait (at most ~0.1 s) until the thread ``native_id``, which has returned,
    is gone from the process (Linux: ``/proc/self/task``; elsewhere at once)."""
    task = f"/proc/self/task/{native_id}"
    for _ in range(1000):
        if not native_id or not os.path.exists(task):
            return
        time.sleep(0.0001)


def _write_all(raw: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = raw.write(view)
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
