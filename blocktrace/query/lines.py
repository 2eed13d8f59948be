"""Telling blocktrace traces from client traces, and their header and summary as
plain objects for the ``runs`` row.  Lines themselves are read and decoded by the
format's one reader (``blocktrace.format``); nothing here parses them."""

from __future__ import annotations

from typing import Any

import msgspec

from blocktrace.format import Header, Summary
from blocktrace.format import blocktrace_header as format_header

__all__ = ["blocktrace_header", "header_object", "json_text", "summary_object"]

_encode = msgspec.json.Encoder().encode


def blocktrace_header(path: str) -> dict[str, Any] | None:
    """The header of the blocktrace trace at ``path`` as an object, or None when
    the file is no blocktrace trace (an EIP-3155 client trace, or no trace: the
    client reader says which).  A blocktrace trace that cannot be used is the
    format's ``TraceError``, with what ``verify`` says of it
    (:func:`blocktrace.format.blocktrace_header`)."""
    header = format_header(path)
    return None if header is None else header_object(header)


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
