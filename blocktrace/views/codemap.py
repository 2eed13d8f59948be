"""Where each code object's lines are in a trace: what ``lines --function``
reads through the index instead of the whole trace.

For every checkpoint chunk of the trace's index (``EVERY`` lines, docs/FORMAT.md
"The index") the code numbers whose lines (calls, ops, exceptions, returns) are
in it; the code table (number -> name, file, first line, from each code's first
call line); and the numbers of the source lines.  Built once in one pass that
reads only each line's ``"code"`` member, and kept as ``TRACE.idx.codes`` beside
the trace (or in the cache, as the index is: a place holding another version's
code map is passed over).  It commits to what the index committed to
(the trace's stamp, head and line count) and to its own bytes (a SHA-256 over
them): a stale or edited map is rebuilt, never trusted.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator

import msgspec

from blocktrace.format import TraceReader
from blocktrace.format.codes import code_postings
from blocktrace.format.index import (
    Stamp,
    TraceIndex,
    another_versions,
    index_paths,
    sealed,
    store_kept,
    unsealed,
)

__all__ = ["CODES_FORMAT", "CodeMap", "code_map", "ranges"]

CODES_FORMAT = b"blocktrace-codes/1\n"
_CODES_FAMILY = b"blocktrace-codes/"


class CodeMap(msgspec.Struct, array_like=True):
    """A trace's code postings (see the module docstring)."""

    stamp: Stamp
    head: str
    lines: int
    every: int
    codes: dict[int, tuple[str, str, int]]
    """code number -> (qualified name, file, first line)."""
    postings: dict[int, bytes]
    """code number -> the chunks holding its lines, ascending, little-endian uint32."""
    sources: list[int]
    """Line numbers of the source lines."""

    def chunks(self, numbers: Iterable[int]) -> list[int]:
        """The chunks holding a line of any of these codes, ascending."""
        found: set[int] = set()
        for number in numbers:
            found.update(_chunks(self.postings.get(number, b"")))
        return sorted(found)

    def commits_to(self, index: TraceIndex) -> bool:
        return (self.stamp == index.stamp and self.head == index.head
                and self.lines == index.lines and self.every == index.every)


def _chunks(data: bytes) -> array[int]:
    chunks = array("I", data[: len(data) // 4 * 4])
    if sys.byteorder == "big":
        chunks.byteswap()
    return chunks


def _little(chunks: array[int]) -> bytes:
    if sys.byteorder == "big":
        chunks.byteswap()
    return chunks.tobytes()


def ranges(chunks: list[int], every: int, lines: int) -> Iterator[tuple[int, int]]:
    """(first line, count) of the runs of consecutive chunks."""
    i = 0
    while i < len(chunks):
        j = i
        while j + 1 < len(chunks) and chunks[j + 1] == chunks[j] + 1:
            j += 1
        first = chunks[i] * every + 1
        yield first, min((chunks[j] + 1) * every, lines) - first + 1
        i = j + 1


def code_map(reader: TraceReader) -> CodeMap | None:
    """The trace's code map: the stored one when it commits to the trace's
    index as it is now, else built (one pass) and stored.  None when the trace
    has no usable index (then there is nothing to read through)."""
    index = reader.index(build=True)
    if index is None or index.lines == 0:
        return None
    for candidate in _paths(reader.path):
        found = _load(candidate)
        if found is not None and found.commits_to(index):
            return found
    built = _build(reader, index)
    if built is not None:
        _store(reader.path, _encode(built))
    return built


def _paths(path: str) -> list[str]:
    return [candidate + ".codes" for candidate in index_paths(path)]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CodeMap)


def _encode(cmap: CodeMap) -> bytes:
    return sealed(CODES_FORMAT, _encoder.encode(cmap))


def _load(candidate: str) -> CodeMap | None:
    try:
        with open(candidate, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return _decode(data)


def _decode(data: bytes) -> CodeMap | None:
    body = unsealed(CODES_FORMAT, data)
    if body is None:
        return None
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _another_versions(data: bytes) -> bool:
    """An intact code map this version cannot read: another blocktrace
    version's (blocktrace before 7915e52 wrote ``blocktrace-codes/1`` with the
    index's layout 1 stamp), left as it is."""
    return another_versions(data, _CODES_FAMILY, _decode)


def _store(path: str, data: bytes) -> None:
    store_kept(_paths(path), data, _another_versions)


def _build(reader: TraceReader, index: TraceIndex) -> CodeMap | None:
    """One pass over the indexed lines, reading each line's ``"code"`` member
    only (and the first call line of each code whole): the format's
    :func:`~blocktrace.format.codes.code_postings`."""
    found = code_postings(reader.raw_lines(1, index.lines), index.every)
    if found is None:
        return None  # not the format's: the whole trace is read instead
    return CodeMap(index.stamp, index.head, index.lines, index.every,
                   {code: (call.name, call.file, call.firstLine)
                    for code, call in found.calls.items()},
                   {number: _little(posting) for number, posting in found.chunks.items()},
                   found.sources)
