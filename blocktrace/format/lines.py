"""The line kinds of a trace as msgspec Structs, and :func:`decode_line`.

One Struct per kind of docs/FORMAT.md: :class:`Header`, :class:`OpLine`,
:class:`ExceptionLine`, :class:`CallLine`, :class:`ReturnLine`,
:class:`TracerErrorLine`, :class:`SourceLine`, :class:`Summary`, and
:class:`UnknownLine` for an ``event`` kind this version of blocktrace does not
know (consumers skip it; it is chained and verified like any line).  Members a
Struct does not name are ignored (``hash`` among them), so later minor
additions (a header member after ``pid``, a ``clock`` on call lines) read fine.

The kinds' first bytes, as every writer lays the lines out (docs/FORMAT.md, "Line
kinds by their first bytes"), are here too, for readers that pass over lines
without decoding them: :data:`HEADER_PREFIX`, :data:`OP_PREFIX` (an op line's and
an exception line's; :func:`is_plain_op` tells them apart), :data:`EVENT_PREFIX`
(every other event line's), :data:`CALL_PREFIX`, :data:`RETURN_PREFIX`,
:data:`SOURCE_PREFIX` and :data:`SUMMARY_PREFIX` (the same in every version).
Their C spelling is ``format/csrc/linekinds.h`` (tests/format/test_lines.py checks
the two agree).  A line written otherwise (by hand, by another tool) is still read
by :func:`line_type` from its members; a reader that goes by the prefixes alone
hands such a line to the decoding path.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import msgspec

from blocktrace.format.versions import SUMMARY_PREFIX

__all__ = [
    "CALL_PREFIX",
    "DECODE_ERRORS",
    "EVENT_MEMBER",
    "EVENT_PREFIX",
    "HEADER_PREFIX",
    "OP_PREFIX",
    "RETURN_PREFIX",
    "SOURCE_PREFIX",
    "SUMMARY_PREFIX",
    "CallLine",
    "ExceptionLine",
    "Header",
    "Line",
    "OpLine",
    "ReturnLine",
    "SourceLine",
    "Summary",
    "TracerErrorLine",
    "UnknownLine",
    "carries_value",
    "decode_line",
    "decode_members",
    "is_call",
    "is_header",
    "is_plain_op",
    "is_source",
    "is_summary",
    "line_type",
]

HEADER_PREFIX: Final = b'{"blocktrace":'
"""The header's first bytes (line 1)."""
OP_PREFIX: Final = b'{"pc":'
"""An op line's first bytes, and an exception line's (which has an ``event`` member
after its ``code``)."""
EVENT_PREFIX: Final = b'{"event":"'
"""The first bytes of every event line that is not an op or exception line; the
event's name follows, up to its closing quote."""
EVENT_MEMBER: Final = b'"event":'
"""The member an exception line has and a plain op line has not."""
CALL_PREFIX: Final = b'{"event":"call"'
"""A call line's first bytes."""
RETURN_PREFIX: Final = b'{"event":"return"'
"""A return line's first bytes."""
SOURCE_PREFIX: Final = b'{"event":"source"'
"""A source line's first bytes (version 3 on)."""


def is_header(raw: bytes) -> bool:
    """Whether the line ``raw`` starts as a header does."""
    return raw.startswith(HEADER_PREFIX)


def is_summary(raw: bytes) -> bool:
    """Whether the line (or body) ``raw`` is a summary (no other line starts so)."""
    return raw.startswith(SUMMARY_PREFIX)


def is_call(raw: bytes) -> bool:
    """Whether the line ``raw`` starts as a call line does."""
    return raw.startswith(CALL_PREFIX)


def is_source(raw: bytes) -> bool:
    """Whether the line ``raw`` starts as a source line does."""
    return raw.startswith(SOURCE_PREFIX)


def is_plain_op(raw: bytes) -> bool:
    """Whether the line ``raw`` is an op line without an ``event`` member (not an
    exception line).  False too for an op line whose values name ``event`` (a local
    of that name): a reader going by bytes then decodes it, as it would any line."""
    return raw.startswith(OP_PREFIX) and EVENT_MEMBER not in raw


class Header(msgspec.Struct, kw_only=True):
    """Line 1.  ``level`` is absent before version 3 (read as ``op``)."""

    KIND: ClassVar[str] = "header"
    blocktrace: int
    hashAlg: str
    genesis: str | None = None
    python: str | None = None
    implementation: str | None = None
    argv: list[str] | None = None
    start: str | None = None
    pid: int | None = None
    level: str = "op"
    gas: str | None = None
    """``"uncounted"``: instructions were not counted (a calls-level golden)."""
    hash: str = ""


class OpLine(msgspec.Struct, kw_only=True):
    """One executed instruction (``OpStart``)."""

    KIND: ClassVar[str] = "op"
    pc: int
    op: int
    gas: str
    gasCost: str = "0x1"
    depth: int
    opName: str = ""
    line: int = 0
    code: int = 0
    thread: int | None = None
    locals: dict[str, Any] | None = None
    globals: dict[str, Any] | None = None


class ExceptionLine(msgspec.Struct, kw_only=True):
    """An exception at an instruction (``OpException``): ``event`` is
    ``raise``, ``reraise`` or ``handled``."""

    KIND: ClassVar[str] = "exception"
    pc: int
    op: int
    gas: str
    gasCost: str = "0x0"
    depth: int
    opName: str = ""
    error: str = ""
    line: int = 0
    code: int = 0
    event: str
    thread: int | None = None
    clock: int | None = None
    """``run --clock``: ns since the run started."""


class CallLine(msgspec.Struct, kw_only=True):
    """A frame starts (``CallStart``); introduces code number ``code``."""

    KIND: ClassVar[str] = "call"
    event: str = "call"
    kind_: str = msgspec.field(name="kind")
    depth: int
    code: int
    name: str
    file: str
    firstLine: int
    thread: int | None = None
    clock: int | None = None


class ReturnLine(msgspec.Struct, kw_only=True):
    """A frame stops (``Return``): ``kind_`` is ``return``, ``yield`` or ``unwind``."""

    KIND: ClassVar[str] = "return"
    event: str = "return"
    kind_: str = msgspec.field(name="kind")
    depth: int
    code: int
    pc: int
    gas: str
    value: Any = None
    thread: int | None = None
    clock: int | None = None


class _Value(msgspec.Struct):
    value: Any = msgspec.UNSET


def carries_value(raw: bytes) -> bool:
    """Whether the return line ``raw`` has a ``value`` member, ``null`` included
    (:class:`ReturnLine` reads an absent one as None too): a trace recorded
    without return values leaves it out."""
    return _DECODERS[_Value].decode(raw).value is not msgspec.UNSET


class TracerErrorLine(msgspec.Struct, kw_only=True):
    """A tracer of the run failed and was detached; the run went on."""

    KIND: ClassVar[str] = "tracerError"
    event: str = "tracerError"
    error: str


class SourceLine(msgspec.Struct, kw_only=True):
    """A source file the trace names, with its content's SHA-256 and size
    (version 3; ``text`` when the source was embedded)."""

    KIND: ClassVar[str] = "source"
    event: str = "source"
    file: str
    sha256: str
    size: int
    text: str | None = None


class Summary(msgspec.Struct, kw_only=True):
    """The last line of a sealed trace (``Stop``).  ``head``, ``root`` and
    ``treeSize`` exist only in versions 1 and 2."""

    KIND: ClassVar[str] = "summary"
    output: str
    gasUsed: str
    passed: bool = msgspec.field(name="pass")
    time: int
    error: str | None = None
    lines: int
    head: str | None = None
    root: str | None = None
    treeSize: int | None = None

    @property
    def gas_used(self) -> int:
        """``gasUsed`` as a number (the verifier checked it is ``0x`` hex)."""
        return int(self.gasUsed, 16)


class UnknownLine(msgspec.Struct, kw_only=True):
    """An event line of a kind this blocktrace does not know."""

    KIND: ClassVar[str] = "unknown"
    event: str


Line = (
    Header | OpLine | ExceptionLine | CallLine | ReturnLine | TracerErrorLine | SourceLine
    | Summary | UnknownLine
)

_EVENTS: dict[str, type[Any]] = {
    "call": CallLine,
    "return": ReturnLine,
    "tracerError": TracerErrorLine,
    "source": SourceLine,
}


class _Decoders(dict[type[Any], msgspec.json.Decoder[Any]]):
    """One decoder per Struct, made when first asked for: a decoder reads its
    Struct's annotations when it is made (~0.1-0.2 ms each), and most commands
    that import this module decode a few kinds of line, or none (``diff`` reads
    the lines its own way)."""

    def __missing__(self, kind: type[Any]) -> msgspec.json.Decoder[Any]:
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(kind)
        self[kind] = decoder
        return decoder


_DECODERS: Final = _Decoders()


class _Kind(msgspec.Struct):
    event: str | None = None
    pc: Any = None
    blocktrace: Any = None

_EVENT_NAME = len(EVENT_PREFIX)


def line_type(raw: bytes) -> type[Any]:
    """The Struct a line decodes into, from its first bytes (the writer's member
    order) or, for a line written otherwise, its members."""
    if raw.startswith(OP_PREFIX):
        return ExceptionLine if b'"event":"' in raw else OpLine
    if raw.startswith(EVENT_PREFIX):
        end = raw.find(b'"', _EVENT_NAME)
        return _EVENTS.get(raw[_EVENT_NAME:end].decode("utf-8", "replace"), UnknownLine)
    if raw.startswith(SUMMARY_PREFIX):
        return Summary
    if raw.startswith(HEADER_PREFIX):
        return Header
    kind = _DECODERS[_Kind].decode(raw)
    if kind.blocktrace is not None:
        return Header
    if kind.event is not None:
        if kind.pc is not None:
            return ExceptionLine
        return _EVENTS.get(kind.event, UnknownLine)
    if kind.pc is not None:
        return OpLine
    return Summary


DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError,
                        UnicodeError)
"""What decoding a line that is not one of the format's can raise."""

decode_members: Final = msgspec.json.Decoder(dict[str, Any]).decode
"""A line's members as a dict, whatever its kind (raises :data:`DECODE_ERRORS` for a
line that is not a JSON object): for a consumer that reads a few members of every
line and judges them itself (the lines view), and calls it in its own loop;
:meth:`blocktrace.format.TraceReader.decode_object` says the error naming the line."""


def decode_line(raw: bytes) -> Line:
    """The Struct of one line (its exact bytes, with or without the newline).

    Raises ``msgspec.DecodeError``/``msgspec.ValidationError`` (or
    ``RecursionError`` for absurdly nested JSON): the reader turns those into
    :class:`~blocktrace.format.TraceError`."""
    result: Line = _DECODERS[line_type(raw)].decode(raw)
    return result
