"""Telling blocktrace traces from client traces, and their header and summary as
plain objects for the ``runs`` row.  Lines themselves are read and decoded by the
format's one reader (``blocktrace.format``); nothing here parses them."""

from __future__ import annotations

from typing import Any

import msgspec

from blocktrace.format import Header, Summary, TraceReader
from blocktrace.format.compressed import CompressedDataError, kind_of, open_at
from blocktrace.format.lines import line_type
from blocktrace.format.versions import MAX_LINE_BYTES

__all__ = ["blocktrace_header", "header_object", "json_text", "summary_object"]

_encode = msgspec.json.Encoder().encode


def blocktrace_header(path: str) -> dict[str, Any] | None:
    """The header of the blocktrace trace at ``path`` as an object, or None when
    the file does not start with a blocktrace header (an EIP-3155 client trace,
    or no trace: the client reader says which).  A blocktrace header the format
    refuses (an unknown version) is its ``TraceError``."""
    try:
        with open_at(path, kind_of(path)) as stream:
            first = stream.readline(MAX_LINE_BYTES + 1)
    except CompressedDataError:
        return None
    try:
        if line_type(first) is not Header:
            return None
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        return None
    return header_object(TraceReader(path).header)


def header_object(h: Header) -> dict[str, Any]:
    return {
        "blocktrace": h.blocktrace, "level": h.level, "genesis": h.genesis, "python": h.python,
        "implementation": h.implementation, "argv": h.argv, "start": h.start, "pid": h.pid,
        "hash": h.hash,
    }


def summary_object(s: Summary) -> dict[str, Any]:
    return {"output": s.output, "gasUsed": s.gasUsed, "pass": s.passed, "time": s.time,
            "error": s.error}


def json_text(value: Any) -> str:
    """A decoded value (a rendered local, a return value) as JSON text again."""
    return _encode(value).decode()
