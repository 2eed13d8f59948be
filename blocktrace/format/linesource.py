"""A trace's lines as bytes, read in large pieces into one buffer.

Readers that pass over many lines without decoding each (the differ's walk over
the steps two traces share, ``blocktrace.eip3155.skip``; the golden rewrite,
``blocktrace.golden.stabilise``) want the lines where a C loop can take them: in
a buffer of megabytes, with the offset of the next line.  :class:`BufferedLines`
is that buffer over a binary stream (or a path, :meth:`BufferedLines.open`): it
gives complete lines one by one (:meth:`~BufferedLines.line`) or lets a caller
move ``pos`` over as many as it consumed itself, and reads the next piece when
asked (:meth:`~BufferedLines.more`), keeping only the bytes from ``start`` on.
It holds at most a piece and the unfinished lines before it (a caller bounds a
line's length with ``limit``).  A last line without a newline -- a torn trace,
or a file that does not end with one -- is never given as a line: it is what
:meth:`~BufferedLines.rest` returns at the end, for the caller to judge.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

__all__ = ["CHUNK", "BufferedLines", "LineTooLong"]

CHUNK = 1 << 22
"""Bytes read at a time (4 MiB)."""


class LineTooLong(ValueError):
    """A line (its newline not counted) reached the ``limit`` given to ``line``."""


class BufferedLines:
    """Lines of ``stream`` (a binary file; None: no lines), ``chunk`` bytes read at a time.

    ``buf`` holds the bytes read and not yet let go; ``pos`` is where the next
    line starts in it, ``start`` where the bytes kept at the next read start
    (the last line ``line`` gave: a caller may look back at it).  A caller that
    consumes lines itself moves ``pos`` (and ``start``) past them."""

    __slots__ = ("buf", "chunk", "pos", "start", "stream")

    def __init__(self, stream: IO[bytes] | None = None, chunk: int = CHUNK) -> None:
        if chunk < 1:
            raise ValueError("chunk must be a positive number of bytes")
        self.stream = stream
        self.chunk = chunk
        self.buf = b""
        self.pos = 0
        self.start = 0

    @classmethod
    @contextmanager
    def open(cls, path: str, chunk: int = CHUNK) -> Iterator[BufferedLines]:
        """The lines of the file at ``path``, open while the ``with`` block runs
        (``OSError`` as ``open`` raises it)."""
        with open(path, "rb") as stream:
            yield cls(stream, chunk)

    def more(self) -> bool:
        """Read the next piece onto the buffer, letting go of the bytes before
        ``start`` (``pos`` and ``start`` keep pointing at the same bytes); False
        at the end of the stream, the buffer unchanged."""
        stream = self.stream
        piece = stream.read(self.chunk) if stream is not None else b""
        if not piece:
            return False
        start = self.start
        self.buf = self.buf[start:] + piece if start < len(self.buf) else piece
        self.pos -= start
        self.start = 0
        return True

    def line(self, limit: int = 0) -> bytes | None:
        """The next complete line, its newline included (``start`` moves to it,
        ``pos`` past it), reading on as needed; None when no complete line is
        left (see :meth:`rest`).  ``limit`` > 0: a line of ``limit`` bytes or more
        without its newline raises :class:`LineTooLong`, an unfinished one once
        more than ``limit`` bytes of it are buffered (a line with no end is not
        read into memory)."""
        while True:
            buf = self.buf
            pos = self.pos
            end = buf.find(b"\n", pos)
            if limit > 0 and (end - pos >= limit if end >= 0 else len(buf) - pos > limit):
                raise LineTooLong(f"a line of {limit} bytes or more")
            if end >= 0:
                self.start = pos
                self.pos = end + 1
                return buf[pos:end + 1]
            if not self.more():
                return None

    def rest(self) -> bytes:
        """The bytes after the last complete line given (at the end of the
        stream: a last line without its newline, or b"")."""
        return self.buf[self.pos:]
