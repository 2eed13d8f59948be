"""Stubs of ``blocktrace.view._ctables`` (csrc/tables.c): the viewer's table pass in C."""

from collections.abc import Buffer
from typing import final

@final
class TablesPass:
    """The viewer's table pass over one trace (see :mod:`blocktrace.view.tables`)."""

    def __init__(self, max_line: int, events: bool = False) -> None: ...
    def feed(self, buffer: Buffer, pos: int, number: int, /) -> tuple[int, int, int]:
        """Take the lines of ``buffer`` from byte ``pos`` (line ``number``) that
        are read here; (stop, pos, number): stop 0 at the end of the buffer, 1
        before a line for Python."""
    def op(
        self, number: int, pc: int, depth: int, code: int, line: int, thread: int, gas: bytes,
        exception: bool, locals: list[tuple[bytes, bytes]] | None,
        globals: list[tuple[bytes, bytes]] | None, module: int, /,
    ) -> int:
        """An op or exception line read by Python; the step it is on."""
    def code(self, code: int, file: int, /) -> None:
        """A code number first named by a call line, and its file's number."""
    def call(self, number: int, thread: int, depth: int, code: int, first_line: int, /) -> None:
        """A call line read by Python."""
    def ret(self, number: int, thread: int, depth: int, code: int, /) -> None:
        """A return line read by Python."""
    def other(self) -> None:
        """Any other line read by Python (source, summary, ...)."""
    def take(self) -> tuple[bytes, bytes]:
        """(step records, values.bin bytes) made since the last call."""
    def finish(self) -> list[tuple[int, int, int]]:
        """Close the open frames and module scopes: (file, offset, count) of the
        module scopes' blocks."""
    def result(
        self,
    ) -> tuple[int, dict[str, bytes], list[tuple[int, int, int]], list[bytes], list[bytes],
               list[tuple[int, bytes]], bytes, list[int], int]:
        """(steps, call table columns as int64 bytes, hits (code, line, count), names,
        postings, code_calls (code, starts), exceptions, thread numbers, has_values)."""
