"""Each line's code number, read by its bytes: the pass the code map
(:mod:`blocktrace.views.codemap`) makes over a trace's indexed lines.

Every line of a code (call, op, exception and return lines) carries its code
number as the member ``"code":N``, the first member of that name in the line
(docs/FORMAT.md): a string that held those bytes would hold an escaped quote
(``\\"code\\":``), never ``"code":``.  So the pass reads that member only, and
decodes whole (with the Structs) just the first call line of each code.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Final, NamedTuple

import msgspec

from blocktrace.format.lines import CALL_PREFIX, SOURCE_PREFIX, CallLine, decode_line

__all__ = ["CODE_MEMBER", "CodePostings", "code_postings"]

CODE_MEMBER: Final = b'"code":'
"""The bytes before a line's code number."""


class CodePostings(NamedTuple):
    """What :func:`code_postings` found."""

    calls: dict[int, CallLine]
    """code number -> its first call line."""
    chunks: dict[int, array[int]]
    """code number -> the chunks (of ``every`` lines) holding its lines, ascending."""
    sources: list[int]
    """The source lines' numbers."""


def code_postings(lines: Iterable[tuple[int, bytes]], every: int) -> CodePostings | None:
    """One pass over ``(number, line)`` pairs (numbered from 1, as
    :meth:`~blocktrace.format.TraceReader.raw_lines` gives them): which codes have
    lines in each chunk of ``every`` lines.  None when a line's code member or a
    code's first call line is not the format's (the caller reads the whole trace
    instead)."""
    calls: dict[int, CallLine] = {}
    chunks: dict[int, array[int]] = {}
    sources: list[int] = []
    chunk, limit = 0, every
    present: set[int] = set()
    last = -1

    def flush() -> None:
        for number in present:
            posting = chunks.get(number)
            if posting is None:
                posting = chunks[number] = array("I")
            posting.append(chunk)
        present.clear()

    find = bytes.find
    for number, raw in lines:
        if number > limit:
            flush()
            chunk, limit, last = (number - 1) // every, ((number - 1) // every + 1) * every, -1
        at = find(raw, CODE_MEMBER)
        if at < 0:
            if raw.startswith(SOURCE_PREFIX):
                sources.append(number)
            continue
        at += 7
        end = find(raw, b",", at)
        try:
            code = int(raw[at:end if end >= 0 else find(raw, b"}", at)])
        except ValueError:
            return None
        if code != last:
            present.add(code)
            last = code
        if code not in calls and raw.startswith(CALL_PREFIX):
            try:
                call = decode_line(raw)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                return None
            if not isinstance(call, CallLine):
                return None
            calls[code] = call
    flush()
    return CodePostings(calls, chunks, sources)
