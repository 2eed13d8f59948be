"""The ``ops`` table's columns, filled in bulk: the C path and its Python reference.

:class:`PyOpColumns` is the reference: rows added one at a time (``append``),
and ``feed`` takes none (every line goes to the caller's decoder).  The C
``blocktrace.format._cscan.OpColumns`` has the same interface and, in ``feed``,
reads the plain op lines the writer writes straight into its buffers, leaving
every other line to the caller; ``take`` gives the same Arrow buffers either
way.  :func:`op_columns` says which one to use (``blocktrace._native``).
:func:`complete_lines` reads a trace's uncompressed bytes in large buffers of
whole lines, as :meth:`blocktrace.format.TraceReader.raw_lines` reads lines
(the same bound, the same end at a torn line).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import IO, Any

from blocktrace._native import extension
from blocktrace.format import TraceReader
from blocktrace.format.compressed import CompressedDataError, open_at
from blocktrace.format.versions import MAX_LINE_BYTES
from blocktrace.limits import LineTooLongError

__all__ = ["CHUNK", "END", "FULL", "OTHER", "PyOpColumns", "complete_lines", "op_columns"]

CHUNK = 1 << 20
"""Bytes read at a time."""
END, OTHER, FULL = 0, 1, 2
"""Why ``feed`` stopped: no complete line left, the line at ``pos`` is the
caller's, ``max_rows`` reached."""


class PyOpColumns:
    """The reference of ``_cscan.OpColumns`` (see the module's docstring)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # line_no, pc, gas (int64); thread, depth, op, line, code (int32)
        self._int64 = [array("q") for _ in range(3)]
        self._int32 = [array("i") for _ in range(5)]
        self._names = bytearray()
        self._offsets = array("i", [0])
        (self._line_no, self._pc, self._gas) = (c.append for c in self._int64)
        (self._thread, self._depth, self._op, self._line, self._code) = (
            c.append for c in self._int32
        )

    @property
    def rows(self) -> int:
        return len(self._int64[0])

    def feed(self, buffer: bytes, pos: int, line_no: int, max_rows: int) -> tuple[int, int, int]:
        if self.rows >= max_rows and pos < len(buffer):
            return FULL, pos, line_no
        return (OTHER if pos < len(buffer) else END), pos, line_no

    def append(
        self, line_no: int, thread: int, depth: int, pc: int, op: int, opName: str, gas: int,
        line: int, code: int,
    ) -> None:
        self._line_no(line_no)
        self._pc(pc)
        self._gas(gas)
        self._thread(thread)
        self._depth(depth)
        self._op(op)
        self._line(line)
        self._code(code)
        self._names += opName.encode()
        self._offsets.append(len(self._names))

    def take(self) -> tuple[int, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes,
                            bytes]:
        rows = self.rows
        line_no, pc, gas = (c.tobytes() for c in self._int64)
        thread, depth, op, line, code = (c.tobytes() for c in self._int32)
        out = (rows, line_no, thread, depth, pc, op, self._offsets.tobytes(),
               bytes(self._names), gas, line, code)
        self._reset()
        return out


def op_columns() -> Any:
    """A fresh ``OpColumns``: the C one when the C paths are used, else the reference."""
    native = extension("blocktrace.format._cscan")
    return PyOpColumns() if native is None else native.OpColumns()


def complete_lines(reader: TraceReader) -> Iterator[bytes]:
    """The trace's lines in buffers of whole lines (each ending with a newline),
    from the header on; stops before a torn last line (or unreadable compressed
    data), as :meth:`~blocktrace.format.TraceReader.raw_lines` does.  A line
    longer than the bound raises :class:`~blocktrace.limits.LineTooLongError`
    after the lines before it were given (its ``number`` is the count of lines
    in that last buffer plus one: the caller, who counts lines, names it)."""
    with open_at(reader.path, reader.kind) as stream:
        yield from _buffers(stream)


def _buffers(stream: IO[bytes]) -> Iterator[bytes]:
    rest = b""
    while True:
        try:
            chunk = stream.read(max(CHUNK, len(rest)))
        except CompressedDataError:
            chunk = b""
        if not chunk:
            if len(rest) > MAX_LINE_BYTES:
                raise LineTooLongError(1, MAX_LINE_BYTES)
            return  # a torn line (or none) is not read, as raw_lines does
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n") + 1
        whole, rest = data[:cut], data[cut:]
        if len(whole) > MAX_LINE_BYTES:  # only then can a line in it be too long
            lines = whole.split(b"\n")
            for n, line in enumerate(lines[:-1]):
                if len(line) + 1 > MAX_LINE_BYTES:
                    before = b"".join(x + b"\n" for x in lines[:n])
                    if before:
                        yield before
                    raise LineTooLongError(1, MAX_LINE_BYTES)
        if whole:
            yield whole
        if len(rest) > MAX_LINE_BYTES:
            raise LineTooLongError(1, MAX_LINE_BYTES)
