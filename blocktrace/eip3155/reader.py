"""Opening trace files and turning decoder failures into one-line errors."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from typing import BinaryIO

import msgspec

from blocktrace.eip3155.records import RawLine
from blocktrace.format.compressed import CompressedDataError, kind_of, open_at
from blocktrace.format.errors import TraceError
from blocktrace.format.lines import SourceLine
from blocktrace.format.reader import TraceReader
from blocktrace.limits import LineTooLongError, bounded_lines

__all__ = ["TraceError", "open_trace", "raw_decoder", "trace_lines", "trace_sources"]


def open_trace(path: str) -> BinaryIO:
    """The file opened for reading as bytes (a ``.zst``/``.gz`` trace
    decompressed: ``blocktrace.format.compressed``), or a ``TraceError`` naming it."""
    try:
        return open_at(path, kind_of(path))  # type: ignore[return-value]
    except OSError as exc:
        raise TraceError(path, None, f"cannot read: {exc.strerror or exc}") from None


def trace_lines(stream: BinaryIO, path: str) -> Iterator[bytes]:
    """The lines of an open trace, each at most ``MAX_LINE_BYTES``
    (``blocktrace.limits``); a longer one, or compressed data that cannot be
    read on, is a ``TraceError``."""
    number = 0
    try:
        for number, line in enumerate(bounded_lines(stream), 1):  # noqa: B007
            yield line
    except LineTooLongError as exc:
        raise TraceError(path, exc.number, f"{exc}: not a trace line") from None
    except CompressedDataError as exc:
        raise TraceError(path, number + 1, exc.reason) from None


def raw_decoder() -> msgspec.json.Decoder[RawLine]:
    """One decoder, built once per trace and reused for every line."""
    return msgspec.json.Decoder(RawLine)


_SOURCE_START = b'\n{"event":"source"'
_CHUNK = 1 << 22


def trace_sources(reader: TraceReader) -> dict[str, SourceLine]:
    """``reader.sources()``, found in a plain file by a byte search over the file
    mapped into memory instead of a line-by-line walk (reports need them for traces
    of millions of lines)."""
    if reader.kind != "plain":
        return reader.sources()
    out: dict[str, SourceLine] = {}
    with open(reader.path, "rb") as stream:
        try:
            data = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # empty, or not a file that maps
            return reader.sources()
        with data:
            find = data.find(_SOURCE_START)
            while find >= 0:
                end = data.find(b"\n", find + 1)
                if end < 0:
                    break  # a torn last line, which the reader does not give
                raw = data[find + 1:end + 1]
                try:
                    line = reader.decode(0, raw)
                except TraceError:  # say which line: count the lines before it
                    reader.decode(_line_number(reader.path, find + 1), raw)
                    raise
                if isinstance(line, SourceLine):
                    out.setdefault(line.file, line)
                find = data.find(_SOURCE_START, end)
    return out


def _line_number(path: str, at: int) -> int:
    """The number of the line starting at byte ``at`` of the file."""
    newlines = 0
    with open(path, "rb") as stream:
        while at > 0:
            chunk = stream.read(min(_CHUNK, at))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            at -= len(chunk)
    return newlines + 1
