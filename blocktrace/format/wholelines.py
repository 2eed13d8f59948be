"""A trace's lines in large buffers of whole lines: the reading that bulk
consumers (``query``'s tables and exports, the viewer's tables) parse in C.

:func:`complete_lines` reads a trace's uncompressed bytes (through
:func:`~blocktrace.format.compressed.open_at`, so ``.jsonl.zst`` and
``.jsonl.gz`` alike) as :meth:`blocktrace.format.TraceReader.raw_lines` reads
lines -- the same bound on a line, the same end before a torn last line or
compressed data that cannot be read -- but hands out buffers of about
:data:`CHUNK` bytes of whole lines rather than one line at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

from blocktrace.format.compressed import CompressedDataError, open_at
from blocktrace.format.versions import MAX_LINE_BYTES
from blocktrace.limits import LineTooLongError

if TYPE_CHECKING:
    from blocktrace.format.reader import TraceReader

__all__ = ["CHUNK", "Tick", "complete_lines", "line_lists"]

CHUNK = 1 << 20
"""Bytes read at a time."""

Tick = Callable[[], object]
"""What a reading loop calls once per piece it reads, from its own thread (a progress
line's :meth:`~blocktrace.progress.Progress.look`)."""


def complete_lines(
    reader: TraceReader, feed: Callable[[bytes], object] | None = None, tick: Tick | None = None
) -> Iterator[bytes]:
    """The trace's lines in buffers of whole lines (each ending with a newline),
    from the header on; stops before a torn last line (or unreadable compressed
    data), as :meth:`~blocktrace.format.TraceReader.raw_lines` does.  A line
    longer than the bound raises :class:`~blocktrace.limits.LineTooLongError`
    after the lines before it were given (its ``number`` is the count of lines
    in that last buffer plus one: the caller, who counts lines, names it).
    ``feed``: given each buffer again once the caller is done with it (asks for
    the next), then a torn last line's bytes, then ``b""`` at the end of the
    file: the file's bytes in order (the export's verifier reads the same bytes,
    knowing by then which lines the conversion read whole).  ``tick``: called
    each time the caller asks for the next buffer (a progress line's
    :meth:`~blocktrace.progress.Progress.look`, from the reading thread)."""
    with open_at(reader.path, reader.kind) as stream:
        yield from _buffers(stream, feed, tick)


def line_lists(reader: TraceReader) -> Iterator[list[bytes]]:
    """:func:`complete_lines`' buffers as lists of their lines (each without its
    newline), split in C: for a consumer that takes the lines in bulk by list
    slices, with no Python step per line (``chain.proof.TraceFile.leaves``)."""
    for buf in complete_lines(reader):
        lines = buf.split(b"\n")
        lines.pop()  # (what follows the last newline: nothing)
        yield lines


def _buffers(stream: IO[bytes], feed: Callable[[bytes], object] | None,
             tick: Tick | None = None) -> Iterator[bytes]:
    rest = b""
    # read1: one read of the file or one frame's output at a time, so that the
    # lines before compressed data that cannot be read are given (read() lost
    # the whole buffer it was filling: none of the lines before it were exported)
    read = getattr(stream, "read1", stream.read)
    while True:
        try:
            chunk = read(max(CHUNK, len(rest)))
        except CompressedDataError:
            chunk = b""
        if not chunk:
            if feed is not None:
                if rest:
                    feed(rest)  # a torn last line: the verifier names it
                feed(b"")
            if len(rest) > MAX_LINE_BYTES:
                raise LineTooLongError(1, MAX_LINE_BYTES)
            return  # a torn line (or none) is not read, as raw_lines does
        at = chunk.rfind(b"\n") + 1
        if not at:  # no line ends in it
            whole, rest = b"", rest + chunk
        elif rest or at < len(chunk):  # one copy: the bytes before, the whole lines
            whole, rest = b"".join((rest, memoryview(chunk)[:at])), chunk[at:]
        else:
            whole, rest = chunk, b""
        if len(whole) > MAX_LINE_BYTES:  # only then can a line in it be too long
            lines = whole.split(b"\n")
            for n, line in enumerate(lines[:-1]):
                if len(line) + 1 > MAX_LINE_BYTES:
                    before = b"".join(x + b"\n" for x in lines[:n])
                    if before:
                        yield before
                    raise LineTooLongError(1, MAX_LINE_BYTES)
        if whole:
            yield whole
            if feed is not None:
                feed(whole)
        if tick is not None:
            tick()
        if len(rest) > MAX_LINE_BYTES:
            raise LineTooLongError(1, MAX_LINE_BYTES)
