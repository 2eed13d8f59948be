"""Typed records: one decoded line, one normalised step, one summary.

``RawLine`` is what a JSON line decodes into (one reused ``msgspec`` decoder;
unknown fields such as ``reservoir``, ``stateGas``, ``section``, ``storage`` or
blocktrace's ``hash`` are skipped by the decoder, never materialised).  Numeric
fields accept ``int | str`` and are parsed afterwards (EIP-7756).  ``Step`` is
an op line after the dialect rules ran; ``Summary`` gathers the end-of-run
lines (summary, ``stateRoot``, blocktrace's own summary).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ABSENT", "Header", "MemberError", "RawLine", "Step", "Summary", "decode_member",
           "decode_raw"]

Num = int | str
ABSENT = msgspec.Raw()
"""An absent ``stack``/``locals``/``globals``: those stay raw JSON until a
comparison needs their values (decoding every stack word of every line is the
largest cost of reading a trace)."""


def decode_raw(raw: msgspec.Raw) -> Any:
    """The value of a raw JSON member (``None`` when absent)."""
    return msgspec.json.decode(raw) if raw else None


class MemberError(ValueError):
    """A member kept raw (``stack``, ``locals``, ``globals``) that is no JSON,
    found when it is first decoded (a byte that is not UTF-8: the line's decoder
    keeps the member unchecked until a comparison or the report needs it).  The
    step does not know its file: ``normalise.member_file`` finds which input holds
    the line, and the caller names it (``PATH:LINE: problem``, as ``verify``)."""

    def __init__(self, lineno: int, member: str, reason: str) -> None:
        self.lineno = lineno
        self.member = member
        self.problem = f"`{member}` is not JSON ({reason})"
        super().__init__(f"line {lineno}: {self.problem}")


def decode_member(raw: msgspec.Raw, lineno: int, member: str) -> Any:
    """The value of ``member`` (raw JSON, ``None`` when absent) of line ``lineno``;
    ``MemberError`` when it is no JSON."""
    try:
        return msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError as exc:
        raise MemberError(lineno, member, str(exc)) from None


class RawLine(msgspec.Struct):
    """Every field any dialect's line may carry that the differ uses."""

    pc: Num | None = None
    op: Num | None = None
    gas: Num | None = None
    gasCost: Num | None = None
    memSize: Num | None = None
    stack: msgspec.Raw = ABSENT
    depth: Num | None = None
    refund: Num | None = None
    opName: str | None = None
    error: Any = None
    returnData: str | None = None
    # blocktrace's Python fields
    line: int | None = None
    code: int | str | None = None
    thread: int | str | None = None
    locals: msgspec.Raw = ABSENT
    globals: msgspec.Raw = ABSENT
    event: str | None = None
    kind: str | None = None
    name: str | None = None
    file: str | None = None
    firstLine: int | None = None
    # header
    blocktrace: int | None = None
    python: str | None = None
    # summary lines
    output: Any = None
    gasUsed: Num | None = None
    passed: bool | None = msgspec.field(default=None, name="pass")
    stateRoot: str | None = None
    test: str | None = None
    fork: str | None = None
    logsRoot: str | None = None


class Step(msgspec.Struct, gc=False):
    """One normalised op step: what the differ aligns and compares.

    ``index`` is the 0-based position in the normalised stream, ``lineno`` the
    1-based line of the file it came from (for a merged fault pair, the first
    line).  The fields the normaliser parses or rewrites are its own; the rest
    are read through from the decoded line (``raw``), as written: ``stack``
    words and ``gasCost``/``memSize``/``refund`` are canonicalised only when a
    comparison needs it.
    """

    index: int
    lineno: int
    pc: int
    op: int
    gas: int
    depth: int
    stack_raw: msgspec.Raw
    raw: RawLine
    error: str | None = None
    event: str | None = None
    function: str | None = None
    file: str | None = None

    @property
    def stack(self) -> Any:
        """The stack as written (a list, bottom first), or None.  ``MemberError``
        naming the step's line when it is no JSON."""
        return decode_member(self.stack_raw, self.lineno, "stack")

    @property
    def gasCost(self) -> Num | None:
        return self.raw.gasCost

    @property
    def memSize(self) -> Num | None:
        return self.raw.memSize

    @property
    def refund(self) -> Num | None:
        return self.raw.refund

    @property
    def opName(self) -> str | None:
        return self.raw.opName

    @property
    def returnData(self) -> str | None:
        return self.raw.returnData

    @property
    def line(self) -> int | None:
        return self.raw.line

    @property
    def code(self) -> int | str | None:
        return self.raw.code

    @property
    def thread(self) -> int | str | None:
        return self.raw.thread

    @property
    def locals(self) -> Any:
        return decode_member(self.raw.locals, self.lineno, "locals")

    @property
    def globals(self) -> Any:
        return decode_member(self.raw.globals, self.lineno, "globals")

    @property
    def locals_raw(self) -> msgspec.Raw:
        return self.raw.locals

    @property
    def globals_raw(self) -> msgspec.Raw:
        return self.raw.globals


class Summary(msgspec.Struct):
    """The end of a run, merged from every summary-like line of a trace."""

    lineno: int | None = None
    output: str | None = None
    gasUsed: int | None = None
    passed: bool | None = None
    error: str | None = None
    stateRoot: str | None = None
    frame_exits: int = 0
    """Per-frame exit lines (geth's ``{"output","gasUsed"}`` before more ops)."""


class Header(msgspec.Struct):
    """blocktrace's header line (absent for client traces)."""

    version: int
    python: str | None = None
