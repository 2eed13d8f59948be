"""Call and return lines' bytes from plain values: the format's one Python spelling of their layout.

A call line is ``{"event":"call","kind":"call","depth":N,"code":N,"name":"...",
"file":"...","firstLine":N`` and a return line ``{"event":"return","kind":"return",
"depth":N,"code":N,"pc":N,"gas":"0x<gas hex>","value":<JSON>`` (no ``value`` member
when the tracer records no return values); either ends with
its tail (``"thread"``, ``"clock"`` when written) and then its hash member.  A code
object fixes everything of its call line but the depth, so a writer keeps two
pieces per code object (:func:`call_pieces`) and makes each line with
:func:`call_body`.  The C spelling is ``format/csrc/callline.h`` (used by the
stepper's C call and return callbacks, ``vm/_chook.c``), checked byte for byte
against this one by tests/vm/test_ccalls.py.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from blocktrace.format.compact import strip

__all__ = ["call_body", "call_pieces", "json_safe", "json_text", "return_body", "without_values"]

_encode = msgspec.json.encode


def json_text(text: str) -> str:
    """``text`` as JSON can hold it: a file name or an argument whose bytes are
    not UTF-8 (Python holds them as lone surrogates, which no encoder takes)
    with those bytes written ``\\xNN``, as ``ascii()`` would; any other text
    as it is."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")


def json_safe(value: Any) -> Any:
    """``value`` (plain data: dicts, lists, tuples, strings, numbers) with every
    string, key or item, through :func:`json_text`: what a command's JSON answer
    or a written file goes through when it holds a file name or an argument from
    argv.  For answers of a few fields (it walks the whole value): where a large
    output names files, the names go through :func:`json_text` where they are
    taken in."""
    if isinstance(value, str):
        return json_text(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def call_pieces(kind: str, code: int, name: str, file: str, first_line: int) -> tuple[bytes, bytes]:
    """The two pieces of a code object's call lines: before the depth digits, after them
    (the file's name as :func:`json_text` writes it)."""
    return (
        b'{"event":"call","kind":%b,"depth":' % _encode(kind),
        b',"code":%d,"name":%b,"file":%b,"firstLine":%d'
        % (code, _encode(json_text(name)), _encode(json_text(file)), first_line),
    )


def call_body(prefix: bytes, depth: int, suffix: bytes, tail: bytes = b"") -> bytes:
    """A call line's body (up to its hash member)."""
    return b"%b%d%b%b" % (prefix, depth, suffix, tail)


def return_body(
    kind: str, depth: int, code: int, pc: int, gas: int, value: bytes | None, tail: bytes = b""
) -> bytes:
    """A return line's body (up to its hash member); ``value`` is the rendered
    value as JSON (None: no ``value`` member, for a tracer that records no return
    values), ``kind`` one of ``return``, ``yield``, ``unwind``."""
    if value is None:
        return (
            b'{"event":"return","kind":"%b","depth":%d,"code":%d,"pc":%d,"gas":"0x%x"%b'
            % (kind.encode(), depth, code, pc, gas, tail)
        )
    return (
        b'{"event":"return","kind":"%b","depth":%d,"code":%d,"pc":%d,"gas":"0x%x","value":%b%b'
        % (kind.encode(), depth, code, pc, gas, value, tail)
    )


_RETURN_VALUE = re.compile(rb'^(\{"event":"return",[^\n]*?),"value":[^\n]*$', re.MULTILINE)
"""A compact return line's ``value`` member and what follows it (the members before
it -- event, kind, depth, code, pc, gas -- hold no string that could contain it)."""


def without_values(lines: bytes | memoryview) -> bytes | None:
    """Whole trace lines ``lines`` as they are but for their hash members (taken out:
    :func:`~blocktrace.format.compact.strip`) and their return lines' ``value``
    members (cut with what follows them on the line): the same bytes for two traces
    whose lines differ only there.  None where that is not so: a line without a hash
    member (a torn or damaged trace), or lines naming threads (the ``thread`` member
    follows the value)."""
    try:
        compact = strip(lines)[0]
    except ValueError:
        return None
    if b'"thread":' in compact:  # (a hash member is hex: taking it out changes no name)
        return None
    return _RETURN_VALUE.sub(rb"\1}", compact)  # (a compact line keeps its closing brace)
