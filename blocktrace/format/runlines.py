"""Source, exception, tracer-error and summary lines' bytes from plain values: the
format's one Python spelling of their layouts (docs/FORMAT.md), as
:mod:`blocktrace.format.opline` and :mod:`blocktrace.format.callline` are the op,
call and return lines'.  Each function gives a line's body, up to its tail (an
exception line's) and its hash member; the writer (``tracers/chain.py``) adds
those.  Strings are written as msgspec writes them; a file name as
:func:`~blocktrace.format.callline.json_text` makes it JSON-safe.
"""

from __future__ import annotations

from typing import Final

import msgspec

from blocktrace.format.callline import json_text

__all__ = ["EXCEPTION_LINE", "exception_body", "source_body", "summary_body",
           "tracer_error_body"]

_encode = msgspec.json.Encoder().encode


def source_body(file: str, sha256: str, size: int, text: str | None = None) -> bytes:
    """A source line's body: the file's name, the SHA-256 (hex) and size of its
    bytes, and (``embed_source``) its text."""
    if text is None:
        return b'{"event":"source","file":%b,"sha256":"%b","size":%d' % (
            _encode(json_text(file)), sha256.encode(), size)
    return b'{"event":"source","file":%b,"sha256":"%b","size":%d,"text":%b' % (
        _encode(json_text(file)), sha256.encode(), size, _encode(text))


EXCEPTION_LINE: Final = (b'{"pc":%d,"op":%d,"gas":"0x%x","gasCost":"0x0","depth":%d,'
                         b'"opName":%b,"error":%b,"line":%d,"code":%d,"event":"%b"%b')
"""An exception line's body as a ``%`` template, for a writer that fills it in its own
loop (``tracers/chain.py``: no call more per line) -- :func:`exception_body` fills it
the same way: pc, op, gas, depth, the op name and the error as JSON, line, code, the
kind's bytes, the tail."""


def exception_body(pc: int, op: int, gas: int, depth: int, op_name: str, error: str,
                   line: int, code: int, kind: str, tail: bytes = b"") -> bytes:
    """An exception line's body (an op line's first members, the error, then ``event``:
    ``kind``, one of ``raise``, ``reraise``, ``unwind`` ...) with its ``tail``
    (``thread``, ``clock``)."""
    return EXCEPTION_LINE % (pc, op, gas, depth, _encode(op_name), _encode(error), line, code,
                             kind.encode(), tail)


def tracer_error_body(error: str) -> bytes:
    """A ``tracerError`` line's body: a tracer of the run failed, saying ``error``."""
    return b'{"event":"tracerError","error":%b' % _encode(error)


def summary_body(output: str, gas_used: int, error: str | None, time_ns: int, lines: int,
                 max_size: int | None = None, step: int | None = None) -> bytes:
    """The summary's body, its members in their order (as msgspec would write the
    dict of them): ``pass`` is whether there is no ``error``; ``max_size`` (and
    ``step``, when known) only for a run stopped at its size limit."""
    summary = b'{"output":%b,"gasUsed":"0x%x","pass":%b,"time":%d' % (
        _encode(output), gas_used, b"true" if error is None else b"false", time_ns)
    if error is not None:
        summary += b',"error":%b' % _encode(error)
    if max_size is not None:
        summary += b',"maxSize":%d' % max_size
        if step is not None:
            summary += b',"step":%d' % step
    return summary + b',"lines":%d' % lines
