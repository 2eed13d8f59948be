"""Opening trace files and turning decoder failures into one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import msgspec

from blocktrace.eip3155.records import RawLine
from blocktrace.format.compressed import CompressedDataError, kind_of, open_at
from blocktrace.format.errors import TraceError
from blocktrace.limits import LineTooLongError, bounded_lines

__all__ = ["TraceError", "open_trace", "raw_decoder", "trace_lines"]


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
