"""Opening trace files and turning decoder failures into one-line errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

import msgspec

from blocktrace.eip3155.records import RawLine
from blocktrace.format.compressed import CompressedDataError, kind_of, open_at
from blocktrace.format.errors import TraceError
from blocktrace.format.identity import FileIdentity, identity_or_none
from blocktrace.format.lines import SourceLine
from blocktrace.format.reader import TraceReader
from blocktrace.limits import LineTooLongError, bounded_lines

__all__ = [
    "TraceError", "open_trace", "raw_decoder", "read_sources", "trace_lines", "trace_sources",
]


def open_trace(path: str) -> BinaryIO:
    """The file opened for reading as bytes (a ``.zst``/``.gz`` trace
    decompressed: ``blocktrace.format.compressed``), or a ``TraceError`` naming it
    (a directory in the words every reader uses)."""
    if os.path.isdir(path):
        raise TraceError(path, None, "is a directory, not a trace file")
    try:
        return open_at(path, kind_of(path))  # type: ignore[return-value]
    except OSError as exc:
        raise TraceError(path, None, f"cannot read: {exc.strerror or exc}") from None


def trace_lines(stream: BinaryIO, path: str) -> Iterator[bytes]:
    """The lines of an open trace, each at most ``MAX_LINE_BYTES``
    (``blocktrace.limits``); a longer one, or compressed data that cannot be
    read on, is a ``TraceError`` (its ``status`` what verify says)."""
    number = 0
    try:
        for number, line in enumerate(bounded_lines(stream), 1):  # noqa: B007
            yield line
    except LineTooLongError as exc:
        raise TraceError(path, exc.number, f"{exc}: not a trace line") from None
    except CompressedDataError as exc:  # tampered where verify says so (the format's rule)
        raise exc.trace_error(path, number + 1) from None


def raw_decoder() -> msgspec.json.Decoder[RawLine]:
    """One decoder, built once per trace and reused for every line."""
    return msgspec.json.Decoder(RawLine)


_READ: dict[str, tuple[FileIdentity, list[tuple[int, bytes]]]] = {}
"""Source lines of traces read to the end by another pass (``read_sources``), with
the file's identity then (``blocktrace.format.identity``: an edit in place that
keeps the size and puts the modification time back is still another file)."""


def read_sources(path: str, lines: list[tuple[int, bytes]]) -> None:
    """Say that a pass that read the trace at ``path`` to its end found these
    ``(number, line)`` lines starting ``{"event":"source"``: :func:`trace_sources` of
    the file, unchanged, then decodes them instead of searching the file again."""
    stamp = identity_or_none(path)
    if stamp is not None:
        if len(_READ) > 16:
            _READ.clear()
        _READ[path] = stamp, lines


def trace_sources(reader: TraceReader) -> dict[str, SourceLine]:
    """``reader.sources()`` (the format's byte search over whole-line buffers),
    or taken from a pass that just read the file (``read_sources``)."""
    read = _READ.pop(reader.path, None)
    if read is not None and read[0] == identity_or_none(reader.path):
        out: dict[str, SourceLine] = {}
        for number, raw in read[1]:
            line = reader.decode(number, raw)
            if isinstance(line, SourceLine):
                out.setdefault(line.file, line)
        return out
    return reader.sources()
