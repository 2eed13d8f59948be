"""Reading a blocktrace trace's lines for the query tables and the timelines.

One decoder struct for every line kind, decoded once per line; the consumers
(``tables``, ``timeline``) branch on which members are present.  Header and
summary lines are rare and decoded as plain objects.
"""

# TODO(format): use blocktrace.format (its streaming reader and line Structs)
# once it lands; this module is the only place query/ decodes trace lines.

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from blocktrace.eip3155.reader import TraceError, open_trace

__all__ = [
    "ABSENT", "TraceLine", "bad_line", "decode_object", "first_object", "line_decoder",
    "trace_lines",
]

ABSENT = msgspec.Raw()
"""An absent raw member (``locals``, ``globals``, ``value``): falsy."""


class TraceLine(msgspec.Struct, gc=False):
    """Every member of a blocktrace line the query tables use (others are skipped)."""

    pc: int | None = None
    op: int | None = None
    gas: str | None = None
    depth: int | None = None
    opName: str | None = None
    error: str | None = None
    line: int | None = None
    code: int | None = None
    thread: int | None = None
    event: str | None = None
    kind: str | None = None
    name: str | None = None
    file: str | None = None
    firstLine: int | None = None
    value: msgspec.Raw = ABSENT
    locals: msgspec.Raw = ABSENT
    globals: msgspec.Raw = ABSENT
    clock: int | None = None
    sha256: str | None = None
    size: int | None = None
    text: str | None = None


_object = msgspec.json.Decoder(dict[str, Any]).decode


def decode_object(raw: bytes, path: str, line_no: int) -> dict[str, Any]:
    """A header or summary line as a plain object."""
    try:
        return _object(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TraceError(path, line_no, f"not a JSON object: {exc}") from None


def first_object(path: str) -> dict[str, Any] | None:
    """The first line of ``path`` as a JSON object, or None when it is not one
    (a client trace can start with noise; a blocktrace trace never does)."""
    with open_trace(path) as stream:
        first = stream.readline(1 << 20)
    try:
        value = msgspec.json.decode(first)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def line_decoder() -> msgspec.json.Decoder[TraceLine]:
    """One decoder per trace, reused for every line."""
    return msgspec.json.Decoder(TraceLine)


def bad_line(path: str, line_no: int, exc: Exception) -> TraceError:
    """The error for a line the decoder refused."""
    if isinstance(exc, msgspec.ValidationError):
        return TraceError(path, line_no, f"not a blocktrace line: {exc}")
    return TraceError(path, line_no, "not a JSON line")


def trace_lines(path: str) -> Iterator[tuple[int, bytes, TraceLine]]:
    """``(line number, raw bytes, decoded line)`` for every line, streaming.

    A line that is not a JSON object of the expected shape is a ``TraceError``
    naming it (a trace that verified never has one)."""
    decode = line_decoder().decode
    with open_trace(path) as stream:
        for line_no, raw in enumerate(stream, 1):
            try:
                line = decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise bad_line(path, line_no, exc) from None
            yield line_no, raw, line
