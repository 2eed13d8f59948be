"""A trace's lines as bytes, read in large pieces into one reusable buffer.

Readers that pass over many lines without decoding each (the differ's walk over
the steps two traces share, ``blocktrace.eip3155.skip``; the golden rewrite,
``blocktrace.golden.stabilise``; the golden's calls comparison) want the lines
where a C loop can take them: in a buffer of megabytes, with the offset of the
next line.  :class:`BufferedLines` is that buffer over a binary stream (or a
path, :meth:`BufferedLines.open`): it gives complete lines one by one
(:meth:`~BufferedLines.line`) or lets a caller move ``pos`` over as many as it
consumed itself, and reads the next piece when asked
(:meth:`~BufferedLines.more`), keeping only the bytes from ``start`` on.

The pieces are read with ``readinto`` into one ``bytearray`` that is reused (the
read lets go of the GIL; nothing is copied but the unfinished lines moved to its
front), never mapped: a file another process truncates while it is read gives a
torn or short trace here, not a SIGBUS.  It holds at most a piece and the
unfinished lines before it (a caller bounds a line's length with ``limit``).  A
last line without a newline -- a torn trace, or a file that does not end with
one -- is never given as a line: it is what :meth:`~BufferedLines.rest` returns
at the end, for the caller to judge.

:class:`NumberedLines` is the one line source of the differ's byte walks over
a file (``eip3155.skip`` for blocktrace traces, ``eip3155.clientpass`` for
clients'): its lines numbered from 1 as the readers number them, each bounded by
``MAX_LINE_BYTES`` (a longer one, or compressed data that cannot be read, is
the readers' :class:`~blocktrace.format.TraceError`), a torn last line given or
not as the file's kind of trace has it, and source lines kept aside.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from blocktrace.format.compressed import CompressedDataError
from blocktrace.format.errors import TraceError
from blocktrace.format.lines import SOURCE_PREFIX
from blocktrace.limits import MAX_LINE_BYTES, size_text

__all__ = ["CHUNK", "BufferedLines", "LineTooLong", "NumberedLines", "Readable"]

CHUNK = 1 << 22
"""Bytes read at a time (4 MiB)."""
_FIRST_PIECE = 1 << 16
"""The first read's size, at most (the next ones double up to the chunk)."""


class Readable(Protocol):
    """A binary stream :class:`BufferedLines` reads (a file opened ``rb``, ``io.BytesIO``)."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class LineTooLong(ValueError):
    """A line (its newline not counted) reached the ``limit`` given to ``line``."""


class BufferedLines:
    """Lines of ``stream`` (a binary file; None: no lines), ``chunk`` bytes read at a time
    (the first reads fewer: 64 KiB, doubling).

    ``buf[:n]`` holds the bytes read and not yet let go (``buf`` is reused: what
    lies past ``n`` is stale; :meth:`view` is the bytes read), from the stream's
    offset ``base``; ``pos`` is where the next line starts in it, ``start`` where
    the bytes kept at the next read start (the last line ``line`` gave: a caller
    may look back at it).  A caller that consumes lines itself moves ``pos`` (and
    ``start``) past them; a subclass that must keep more (lines another reader
    has still to see) says from where in :meth:`kept`."""

    __slots__ = ("base", "buf", "chunk", "n", "pos", "start", "stream")

    def __init__(self, stream: Readable | None = None, chunk: int = CHUNK) -> None:
        if chunk < 1:
            raise ValueError("chunk must be a positive number of bytes")
        self.stream = stream
        self.chunk = chunk
        self.buf = bytearray()
        self.n = 0
        self.base = 0
        self.pos = 0
        self.start = 0

    @classmethod
    @contextmanager
    def open(cls, path: str, chunk: int = CHUNK) -> Iterator[BufferedLines]:
        """The lines of the file at ``path``, open while the ``with`` block runs
        (``OSError`` as ``open`` raises it); a small file is read in smaller pieces
        (its size, at least 64 KiB: no buffer of ``chunk`` bytes for it)."""
        with open(path, "rb", buffering=0) as stream:
            size = os.fstat(stream.fileno()).st_size
            yield cls(stream, min(chunk, max(size + 1, 1 << 16)))

    def view(self) -> memoryview:
        """The bytes read and kept (for a C loop over them)."""
        return memoryview(self.buf)[: self.n]

    def kept(self) -> int:
        """Where in ``buf`` the bytes ``more`` keeps start (``start``)."""
        return self.start

    def more(self) -> bool:
        """Read the next piece onto the bytes kept (from :meth:`kept` on: the bytes
        before it are let go, ``pos`` and ``start`` keep pointing at the same
        bytes); False at the end of the stream, nothing more read."""
        stream = self.stream
        if stream is None:
            return False
        drop = self.kept()
        buf, n, chunk = self.buf, self.n, self.chunk
        if drop:
            with memoryview(buf) as view:  # one move (a bytearray slice would copy twice)
                view[: n - drop] = view[drop:n]
            n -= drop
            self.base += drop
            self.pos -= drop
            self.start -= drop
            self.n = n
        # The first pieces grow to ``chunk`` (doubling from 64 KiB): a short trace gets
        # no buffer of megabytes, which costs its zeroing and page faults (~1 ms) unread.
        step = min(chunk, max(_FIRST_PIECE, 2 * len(buf)))
        if n + step > len(buf):  # a first read, a long line, or lines kept for a subclass
            grown = bytearray(n + step + (step >> 4))  # (room for the unfinished lines)
            grown[:n] = memoryview(buf)[:n]
            self.buf = buf = grown
        got = stream.readinto(memoryview(buf)[n : n + step])
        if not got:
            return False
        self.n = n + got
        return True

    def line(self, limit: int = 0) -> bytes | None:
        """The next complete line, its newline included (``start`` moves to it,
        ``pos`` past it), reading on as needed; None when no complete line is
        left (see :meth:`rest`).  ``limit`` > 0: a line of ``limit`` bytes or more
        without its newline raises :class:`LineTooLong`, an unfinished one once
        more than ``limit`` bytes of it are buffered (a line with no end is not
        read into memory)."""
        while True:
            pos, n = self.pos, self.n
            end = self.buf.find(b"\n", pos, n)
            if limit > 0 and (end - pos >= limit if end >= 0 else n - pos > limit):
                raise LineTooLong(f"a line of {limit} bytes or more")
            if end >= 0:
                self.start = pos
                self.pos = end + 1
                return bytes(memoryview(self.buf)[pos : end + 1])
            if not self.more():
                return None

    def rest(self) -> bytes:
        """The bytes after the last complete line given (at the end of the
        stream: a last line without its newline, or b"")."""
        return bytes(memoryview(self.buf)[self.pos : self.n])


class NumberedLines(BufferedLines):
    """The lines of the trace file ``path`` (``stream``: opened by the caller, who
    sets it before :meth:`numbered_lines` and clears it after), numbered from 1:
    ``lineno`` is the number of the last line given (a caller that moves ``pos``
    over lines itself adds them), ``done`` whether the end was reached, ``fresh``
    whether a line was given since the caller last cleared it.

    ``torn_last``: a last line without its newline is given too (an EVM client's
    trace, as ``eip3155.reader.trace_lines`` gives it), else not (a blocktrace
    trace's torn line, as ``TraceReader.raw_lines`` leaves it).  ``sources``:
    keep ``(number, line)`` of each source line given (a blocktrace trace's)."""

    __slots__ = ("done", "fresh", "lineno", "path", "sources", "torn_last")

    def __init__(self, path: str, *, torn_last: bool = False, sources: bool = False,
                 chunk: int = CHUNK) -> None:
        super().__init__(None, chunk)
        self.path = path
        self.torn_last = torn_last
        self.lineno = 0
        self.done = False
        self.fresh = False
        self.sources: list[tuple[int, bytes]] | None = [] if sources else None
        """The source lines given, when kept."""

    def too_long(self, number: int) -> TraceError:
        """The error for line ``number``, longer than ``MAX_LINE_BYTES``."""
        return TraceError(self.path, number,
                          f"line {number} is longer than {size_text(MAX_LINE_BYTES)}")

    def ended(self) -> None:
        """Called once, at the end of the lines (a subclass reads what it kept)."""

    def numbered_lines(self) -> Iterator[tuple[int, bytes]]:
        """``(number, line)`` for each line from ``lineno + 1`` on, each with its
        newline (a torn last one, given with ``torn_last``, without)."""
        sources = self.sources
        while True:
            try:
                line = self.line(MAX_LINE_BYTES)
            except LineTooLong:
                raise self.too_long(self.lineno + 1) from None
            except CompressedDataError as exc:  # (as the readers say it)
                raise exc.trace_error(self.path, self.lineno + 1) from None
            if line is None:
                self.done = True  # the end, or a torn last line
                if self.torn_last:
                    rest = self.rest()
                    if rest:
                        self.pos = self.n
                        self.lineno += 1
                        yield self.lineno, rest
                self.ended()
                return
            self.lineno += 1
            self.fresh = True
            if sources is not None and line.startswith(SOURCE_PREFIX):
                sources.append((self.lineno, line))
            yield self.lineno, line
