"""The ``ops``, ``calls`` and ``exceptions`` tables' columns, filled in bulk: the C
path and its Python reference.

:class:`PyColumns` is the reference: the caller decodes every line with the
format's Structs and hands its fields to ``op``, ``call``, ``ret`` or
``exception`` (``feed`` takes no line); it keeps the call stacks, pairs each
return with its call and makes the rows.  The C
``blocktrace.format._cscan.OpColumns`` (``format/csrc/columns.c``, wrapped by
:class:`NativeColumns`) has the same methods and, in ``feed``, reads the op,
exception, call and return lines in the forms the writer writes straight into
its buffers, leaving every other line to the caller; ``take_ops``,
``take_calls`` and ``take_exceptions`` give the same Arrow arrays either way.
:func:`table_columns` says which one to use (``blocktrace._native``).  The
lines come in large buffers of whole lines from the format's reader
(:func:`blocktrace.format.wholelines.complete_lines`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from blocktrace._native import extension
from blocktrace.format import TraceError, TraceReader
from blocktrace.format.lines import Line
from blocktrace.format.wholelines import Tick, complete_lines
from blocktrace.limits import LineTooLongError, size_text
from blocktrace.query.schema import TABLES, arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "END", "FULL", "MAX_CODE", "OTHER", "NativeColumns", "PyColumns", "Tick", "error_parts",
    "skim", "table_columns",
]

END, OTHER, FULL = 0, 1, 2
"""Why ``feed`` stopped: no complete line left, the line at ``pos`` is the
caller's, a table holds ``max_rows``."""
MAX_CODE = 1 << 24
"""Code numbers from here on are refused (the tables by code number stay small)."""


def error_parts(error: str | None) -> tuple[str | None, str | None]:
    """An error's text as (type, message): the text before ``": "`` and after."""
    if not error:
        return None, None
    kind, sep, message = error.partition(": ")
    return (kind, message) if sep else (error, None)


class PyColumns:
    """The reference of ``_cscan.OpColumns`` (see the module's docstring): the rows
    of ``ops``, ``calls`` and ``exceptions`` from lines the caller decoded."""

    def __init__(self) -> None:
        self.steps = 0  # ops rows ever
        self.calls = 0  # calls entered
        self.max_depth = 0
        # code number -> (function, file, first line); index = code number
        self._functions: list[str | None] = []
        self._files: list[str | None] = []
        self._first_lines: list[int | None] = []
        self._stacks: dict[int, list[list[Any]]] = {}
        self._last_error: dict[tuple[int, int], str] = {}
        self._ops: dict[str, list[Any]] = {n: [] for n in _OPS}
        self._calls: dict[str, list[Any]] = {n: [] for n in _CALLS}
        self._exceptions: dict[str, list[Any]] = {n: [] for n in _EXCEPTIONS}

    @property
    def rows(self) -> int:
        return len(self._ops["line_no"])

    @property
    def call_rows(self) -> int:
        return len(self._calls["call_id"])

    @property
    def exception_rows(self) -> int:
        return len(self._exceptions["step"])

    def feed(self, buffer: bytes, pos: int, line_no: int, max_rows: int) -> tuple[int, int, int]:
        if pos >= len(buffer):
            return END, pos, line_no
        if max(self.rows, self.call_rows, self.exception_rows) >= max_rows:
            return FULL, pos, line_no
        return OTHER, pos, line_no

    def function(self, code: int) -> str | None:
        name: str | None = _at(self._functions, code)
        return name

    def op(self, line_no: int, thread: int, depth: int, pc: int, op: int, opName: str, gas: int,
           line: int, code: int) -> None:
        o = self._ops
        row = (self.steps, line_no, thread, depth, pc, op, opName, gas, line, code)
        for name, value in zip(_OPS, row, strict=True):
            o[name].append(value)
        self.steps += 1

    def call(self, line_no: int, thread: int, depth: int, code: int, kind: str, name: str,
             file: str, first_line: int, clock: int | None) -> None:
        if not 0 <= code < MAX_CODE:
            raise ValueError(f"code number {code} is beyond {MAX_CODE}")
        while len(self._functions) <= code:
            self._functions.append(None)
            self._files.append(None)
            self._first_lines.append(None)
        self._functions[code] = name
        self._files[code] = file
        self._first_lines[code] = first_line
        stack = self._stacks.setdefault(thread, [])
        self.max_depth = max(self.max_depth, depth)
        parent = stack[-1][0] if stack else None
        # call_id, parent, depth, code, kind, step_in, line_in, clock_in, child steps
        stack.append([self.calls, parent, depth, code, kind, self.steps, line_no, clock, 0])
        self.calls += 1

    def ret(self, line_no: int, thread: int, kind: str, value: str, clock: int | None) -> None:
        stack = self._stacks.get(thread)
        if not stack:
            return
        frame = stack.pop()
        steps = self.steps - frame[5]
        if stack:
            stack[-1][8] += steps
        error = self._last_error.pop((thread, frame[2]), None)
        self._call_row(thread, frame, self.steps, steps, kind, line_no, clock,
                       error_parts(error)[0] if kind == "unwind" else None, value)

    def exception(self, line_no: int, thread: int, depth: int, pc: int, op: int, opName: str,
                  line: int, code: int, event: str, error: str, clock: int | None) -> None:
        kind, message = error_parts(error)
        row = (self.steps, line_no, thread, depth, pc, op, opName, line, code,
               _at(self._functions, code), _at(self._files, code), event, kind, message, clock)
        e = self._exceptions
        for name, value in zip(_EXCEPTIONS, row, strict=True):
            e[name].append(value)
        if event != "handled":
            self._last_error[(thread, depth)] = error

    def finish(self) -> None:
        for thread, stack in self._stacks.items():  # frames that never returned
            while stack:
                self._call_row(thread, stack.pop(), None, None, None, None, None, None, None)

    def _call_row(self, thread: int, frame: list[Any], step_out: int | None, steps: int | None,
                  ended: str | None, line_out: int | None, clock_out: int | None,
                  exception: str | None, value: str | None) -> None:
        call_id, parent, depth, code, kind, step_in, line_in, clock_in, child = frame
        row = (
            call_id, parent, thread, depth, code, _at(self._functions, code),
            _at(self._files, code), _at(self._first_lines, code), kind, step_in, step_out,
            steps, None if steps is None else steps - child, ended, exception, value, line_in,
            line_out, clock_in, clock_out,
        )
        c = self._calls
        for name, v in zip(_CALLS, row, strict=True):
            c[name].append(v)

    def take_ops(self) -> dict[str, pa.Array]:
        """The ops rows held as columns (all but ``gasCost``)."""
        o = self._ops
        o["function"] = [_at(self._functions, c) for c in o["code"]]
        o["file"] = [_at(self._files, c) for c in o["code"]]
        return _arrays("ops", o)

    def take_calls(self) -> dict[str, pa.Array]:
        return _arrays("calls", self._calls)

    def take_exceptions(self) -> dict[str, pa.Array]:
        return _arrays("exceptions", self._exceptions)


_OPS = ("step", "line_no", "thread", "depth", "pc", "op", "opName", "gas", "line", "code")
_CALLS = tuple(name for name, _, _ in TABLES["calls"])
_EXCEPTIONS = tuple(name for name, _, _ in TABLES["exceptions"])


def _at(names: list[Any], code: int | None) -> Any:
    return names[code] if code is not None and 0 <= code < len(names) else None


def _arrays(table: str, columns: dict[str, list[Any]]) -> dict[str, pa.Array]:
    """The lists as Arrow arrays of the table's types; the lists empty."""
    import pyarrow as pa

    out = {}
    for f in arrow_schema(table):
        values = columns.get(f.name)
        if values is not None:
            out[f.name] = pa.array(values, type=f.type)
            values.clear()
    return out


class NativeColumns:
    """``_cscan.OpColumns`` with its buffers taken as Arrow arrays: the C path."""

    def __init__(self, native: Any) -> None:
        self._c = c = native.OpColumns()
        self.feed = c.feed
        self.op = c.op
        self.call = c.call
        self.ret = c.ret
        self.exception = c.exception
        self.finish = c.finish
        self.function = c.function
        self.take_known = c.take_known  # which lines feed read whole (for the verifier)

    rows = property(lambda self: self._c.rows)
    steps = property(lambda self: self._c.steps)
    calls = property(lambda self: self._c.calls)
    max_depth = property(lambda self: self._c.max_depth)
    call_rows = property(lambda self: self._c.call_rows)
    exception_rows = property(lambda self: self._c.exception_rows)

    def _texts(self, rows: int, ids: bytes, how: int) -> pa.Array:
        """A string column gathered in C from int32 ``ids`` (``OpColumns.gather``:
        no pyarrow.compute, whose import alone is ~0.05 s of an export)."""
        import pyarrow as pa

        bits, offsets, data = self._c.gather(ids, how)
        return pa.Array.from_buffers(pa.string(), rows, [
            None if bits is None else pa.py_buffer(bits), pa.py_buffer(offsets),
            pa.py_buffer(data)])

    def take_ops(self) -> dict[str, pa.Array]:
        import pyarrow as pa

        (rows, step, line_no, thread, depth, pcs, op, offsets, names, gas, line,
         code) = self._c.take()

        def fixed(kind: pa.DataType, data: bytes) -> pa.Array:
            return pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(data)])

        return {
            "step": fixed(pa.int64(), step),
            "line_no": fixed(pa.int64(), line_no),
            "thread": fixed(pa.int32(), thread),
            "depth": fixed(pa.int32(), depth),
            "pc": fixed(pa.int64(), pcs),
            "op": fixed(pa.int32(), op),
            "opName": pa.Array.from_buffers(
                pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(names)]),
            "gas": fixed(pa.int64(), gas),
            "line": fixed(pa.int32(), line),
            "code": fixed(pa.int32(), code),
            # the function and file each code number has now (none: NULL)
            "function": self._texts(rows, code, _CODE_FUNCTION),
            "file": self._texts(rows, code, _CODE_FILE),
        }

    def take_calls(self) -> dict[str, pa.Array]:
        import pyarrow as pa

        (rows, call_id, thread, depth, code, entry, kind, step_in, line_in, *nullable,
         value) = self._c.take_calls()
        parent, step_out, steps, self_steps, ended, exception, line_out, clock_in, clock_out = (
            nullable)
        i32, i64 = pa.int32(), pa.int64()
        first_bits, first_lines = self._c.gather(entry, _FIRST_LINE)
        return {
            "call_id": _fixed(i64, rows, call_id),
            "parent_id": _nullable(i64, rows, parent),
            "thread": _fixed(i32, rows, thread),
            "depth": _fixed(i32, rows, depth),
            "code": _fixed(i32, rows, code),
            "function": self._texts(rows, entry, _FUNCTION),
            "file": self._texts(rows, entry, _FILE),
            "first_line": _nullable(i32, rows, (first_lines, first_bits)),
            "kind": self._texts(rows, kind, _STRING),
            "step_in": _fixed(i64, rows, step_in),
            "step_out": _nullable(i64, rows, step_out),
            "steps": _nullable(i64, rows, steps),
            "self_steps": _nullable(i64, rows, self_steps),
            "ended": self._texts(rows, ended[0], _STRING),  # NULL ids are -1
            "exception": self._texts(rows, exception[0], _STRING),
            "value": _text(rows, value),
            "line_in": _fixed(i64, rows, line_in),
            "line_out": _nullable(i64, rows, line_out),
            "clock_in": _nullable(i64, rows, clock_in),
            "clock_out": _nullable(i64, rows, clock_out),
        }

    def take_exceptions(self) -> dict[str, pa.Array]:
        import pyarrow as pa

        (rows, step, line_no, thread, depth, pc, op, op_name, line, code, entry, kind, type_,
         clock, message) = self._c.take_exceptions()
        i32, i64 = pa.int32(), pa.int64()
        return {
            "step": _fixed(i64, rows, step),
            "line_no": _fixed(i64, rows, line_no),
            "thread": _fixed(i32, rows, thread),
            "depth": _fixed(i32, rows, depth),
            "pc": _fixed(i64, rows, pc),
            "op": _fixed(i32, rows, op),
            "opName": self._texts(rows, op_name, _STRING),
            "line": _fixed(i32, rows, line),
            "code": _fixed(i32, rows, code),
            "function": self._texts(rows, entry, _FUNCTION),
            "file": self._texts(rows, entry, _FILE),
            "kind": self._texts(rows, kind, _STRING),
            "type": self._texts(rows, type_[0], _STRING),  # NULL ids are -1
            "message": _text(rows, message),
            "clock": _nullable(i64, rows, clock),
        }


_STRING, _FUNCTION, _FILE, _FIRST_LINE, _CODE_FUNCTION, _CODE_FILE = range(6)
"""What ``OpColumns.gather`` reads its ids as."""


def _fixed(kind: Any, rows: int, data: bytes) -> pa.Array:
    import pyarrow as pa

    return pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(data)])


def _nullable(kind: Any, rows: int, column: tuple[bytes, bytes | None]) -> pa.Array:
    import pyarrow as pa

    data, bits = column
    return pa.Array.from_buffers(
        kind, rows, [None if bits is None else pa.py_buffer(bits), pa.py_buffer(data)])


def _text(rows: int, column: tuple[tuple[bytes, bytes | None], bytes]) -> pa.Array:
    import pyarrow as pa

    (offsets, bits), data = column
    return pa.Array.from_buffers(pa.string(), rows, [
        None if bits is None else pa.py_buffer(bits), pa.py_buffer(offsets), pa.py_buffer(data)])


def table_columns() -> Any:
    """Fresh columns: the C ones when the C paths are used, else the reference."""
    native = extension("blocktrace.format._cscan")
    return PyColumns() if native is None else NativeColumns(native)


SKIM_ROWS = 1 << 16
"""Op lines a skim holds before it drops them."""


def skim(path: str, tick: Tick | None = None) -> Iterator[tuple[int, int, Line | None]]:
    """The lines of the trace at ``path`` that are not plain op lines, decoded:
    ``(line_no, ops, Struct)``, ``ops`` the op lines passed over since the
    previous one (read, not decoded, by ``_cscan.OpColumns(ops_only=True)``;
    an op line in another form comes decoded).  Last ``(line_no, ops, None)``
    for the op lines after the last line given.  Errors as
    :meth:`~blocktrace.format.TraceReader.lines` raises them.  ``tick``: as
    :func:`complete_lines` calls it."""
    reader = TraceReader(path)
    native = extension("blocktrace.format._cscan")
    if native is None:
        line_no = 0
        for line_no, line in reader.lines():
            if tick is not None and not line_no & 4095:
                tick()
            yield line_no, 0, line
        yield line_no, 0, None
        return
    columns = native.OpColumns(True)
    line_no = taken = 0
    try:
        for buf in complete_lines(reader, tick=tick):
            pos = 0
            while True:
                stop, pos, line_no = columns.feed(buf, pos, line_no + 1, SKIM_ROWS)
                line_no -= 1  # the last line read
                if stop == FULL:
                    columns.take()
                    continue
                if stop == END:
                    break
                end = buf.index(b"\n", pos) + 1
                raw = buf[pos:end]
                pos = end
                line_no += 1
                ops, taken = columns.steps - taken, columns.steps
                yield line_no, ops, reader.decode(line_no, raw)
    except LineTooLongError as exc:
        number = line_no + exc.number
        raise TraceError(path, number,
                         f"line {number} is longer than {size_text(exc.limit)}") from None
    yield line_no, columns.steps - taken, None
