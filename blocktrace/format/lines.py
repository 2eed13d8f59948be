"""The line kinds of a trace as msgspec Structs, and :func:`decode_line`.

One Struct per kind of docs/FORMAT.md: :class:`Header`, :class:`OpLine`,
:class:`ExceptionLine`, :class:`CallLine`, :class:`ReturnLine`,
:class:`TracerErrorLine`, :class:`SourceLine`, :class:`Summary`, and
:class:`UnknownLine` for an ``event`` kind this version of blocktrace does not
know (consumers skip it; it is chained and verified like any line).  Members a
Struct does not name are ignored (``hash`` among them), so later minor
additions (a header member after ``pid``, a ``clock`` on call lines) read fine.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from blocktrace.format.versions import SUMMARY_PREFIX

__all__ = [
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
    "line_type",
]


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


_value_decoder = msgspec.json.Decoder(_Value)


def carries_value(raw: bytes) -> bool:
    """Whether the return line ``raw`` has a ``value`` member, ``null`` included
    (:class:`ReturnLine` reads an absent one as None too): a trace recorded
    without return values leaves it out."""
    return _value_decoder.decode(raw).value is not msgspec.UNSET


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
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t)
    for t in (Header, OpLine, ExceptionLine, CallLine, ReturnLine, TracerErrorLine, SourceLine,
              Summary, UnknownLine)
}


class _Kind(msgspec.Struct):
    event: str | None = None
    pc: Any = None
    blocktrace: Any = None


_kind_decoder = msgspec.json.Decoder(_Kind)


def line_type(raw: bytes) -> type[Any]:
    """The Struct a line decodes into, from its first bytes (the writer's member
    order) or, for a line written otherwise, its members."""
    if raw.startswith(b'{"pc":'):
        return ExceptionLine if b'"event":"' in raw else OpLine
    if raw.startswith(b'{"event":"'):
        end = raw.find(b'"', 10)
        return _EVENTS.get(raw[10:end].decode("utf-8", "replace"), UnknownLine)
    if raw.startswith(SUMMARY_PREFIX):
        return Summary
    if raw.startswith(b'{"blocktrace":'):
        return Header
    kind = _kind_decoder.decode(raw)
    if kind.blocktrace is not None:
        return Header
    if kind.event is not None:
        if kind.pc is not None:
            return ExceptionLine
        return _EVENTS.get(kind.event, UnknownLine)
    if kind.pc is not None:
        return OpLine
    return Summary


def decode_line(raw: bytes) -> Line:
    """The Struct of one line (its exact bytes, with or without the newline).

    Raises ``msgspec.DecodeError``/``msgspec.ValidationError`` (or
    ``RecursionError`` for absurdly nested JSON): the reader turns those into
    :class:`~blocktrace.format.TraceError`."""
    result: Line = _DECODERS[line_type(raw)].decode(raw)
    return result
