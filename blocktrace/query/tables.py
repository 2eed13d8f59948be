"""From one trace file to the rows of the query tables, streamed in Arrow batches.

``trace_batches`` reads a trace once, from the first line to the last, and yields
``(table, RecordBatch)`` pairs as its column buffers fill (``BATCH_ROWS`` rows),
so memory is bounded by a constant whatever the trace's length.  What is known
only at the end (the header, the summary, counts) is left in a ``RunFacts``
for the ``runs`` row, which ``runs_batch`` builds with the verify status.

blocktrace traces are read line by line (``lines.py``); EIP-3155 client traces
go through the differ's normaliser (``blocktrace.eip3155``), so a client's
quirks are handled in one place: ``ops`` holds the steps ``blocktrace diff``
compares (implicit STOP lines dropped, a faulting op's second line merged).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from blocktrace.eip3155.numbers import parse_int
from blocktrace.eip3155.reader import open_trace
from blocktrace.format import (
    CallLine,
    ExceptionLine,
    OpLine,
    ReturnLine,
    SourceLine,
    Summary,
    TraceError,
    TraceReader,
    decode_line,
)
from blocktrace.limits import LineTooLongError, size_text
from blocktrace.query.columns import END, FULL, complete_lines, op_columns
from blocktrace.query.lines import blocktrace_header, header_object, json_text, summary_object
from blocktrace.query.schema import TABLES, arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa

    from blocktrace.chain.verify import Verification

__all__ = ["BATCH_ROWS", "RunFacts", "runs_batch", "trace_batches"]

BATCH_ROWS = 1 << 17
"""Rows a table's buffer holds before it becomes an Arrow batch."""

_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
_INT64_MAX = (1 << 63) - 1


@dataclass
class RunFacts:
    """What a trace says about its run, filled in while its lines are read."""

    path: str
    format: str = "blocktrace"
    client: str = "blocktrace"
    header: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    gas_used_meaning: str = "instructions"
    lines: int = 0
    ops: int = 0
    calls: int = 0
    max_depth: int = 0


class _Buffer:
    """Column lists for one table, turned into an Arrow batch when full."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.names = [name for name, _, _ in TABLES[table]]
        self.columns: dict[str, list[Any]] = {name: [] for name in self.names}

    def __len__(self) -> int:
        return max(len(values) for values in self.columns.values())

    def take(self, overrides: dict[str, Any] | None = None) -> pa.RecordBatch:
        """The rows so far as a batch (columns not filled are NULL); the buffer empties."""
        import pyarrow as pa

        schema = arrow_schema(self.table)
        rows = max([len(self), *(len(a) for a in (overrides or {}).values() if a is not None)])
        arrays = []
        for f in schema:
            given = (overrides or {}).get(f.name)
            if given is not None:
                arrays.append(given)
                continue
            values = self.columns[f.name]
            if values:
                arrays.append(pa.array(values, type=f.type))
            else:
                arrays.append(pa.nulls(rows, type=f.type))
        for values in self.columns.values():
            values.clear()
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _error_parts(error: str | None) -> tuple[str | None, str | None]:
    if not error:
        return None, None
    kind, sep, message = error.partition(": ")
    return (kind, message) if sep else (error, None)


def trace_batches(path: str, facts: RunFacts) -> Iterator[tuple[str, pa.RecordBatch]]:
    """The query tables' rows of the trace at ``path`` (blocktrace or EIP-3155)."""
    if blocktrace_header(path) is not None:
        yield from _blocktrace_batches(path, facts)
    else:
        yield from _client_batches(path, facts)


def _blocktrace_batches(path: str, facts: RunFacts) -> Iterator[tuple[str, pa.RecordBatch]]:
    import pyarrow as pa

    calls_buf = _Buffer("calls")
    exc_buf = _Buffer("exceptions")
    val_buf = _Buffer("values")
    src_buf = _Buffer("sources")
    # the ops: plain op lines straight into column buffers (C), the others decoded here
    columns = op_columns()
    append_op = columns.append
    # code number -> (function, file); index = code number
    functions: list[str | None] = [None]
    files: list[str | None] = [None]
    first_lines: list[int | None] = [None]
    stacks: dict[int, list[list[Any]]] = {}
    last_error: dict[tuple[int, int], str] = {}
    step_batch = 0  # the step of the first row in the columns
    calls = 0
    max_depth = 0
    reader = TraceReader(path)
    facts.header = header_object(reader.header)
    line_no = 0
    raw = b""

    def ops_batch() -> pa.RecordBatch:
        nonlocal step_batch
        rows, line_nos, thread, depth, pcs, op, offsets, names_, gas, line, code = columns.take()

        def fixed(kind: pa.DataType, data: bytes) -> pa.Array:
            return pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(data)])

        codes = fixed(pa.int32(), code)
        names = pa.array(functions, type=pa.string())
        where = pa.array(files, type=pa.string())
        batch = _Buffer("ops").take({
            "step": pa.array(range(step_batch, step_batch + rows), type=pa.int64()),
            "line_no": fixed(pa.int64(), line_nos),
            "thread": fixed(pa.int32(), thread),
            "depth": fixed(pa.int32(), depth),
            "pc": fixed(pa.int64(), pcs),
            "op": fixed(pa.int32(), op),
            "opName": pa.Array.from_buffers(
                pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(names_)]
            ),
            "gas": fixed(pa.int64(), gas),
            "gasCost": pa.repeat(pa.scalar(1, pa.int64()), rows),
            "line": fixed(pa.int32(), line),
            "code": codes,
            "function": names.take(codes),
            "file": where.take(codes),
        })
        step_batch += rows
        return batch

    try:
        for buf in complete_lines(reader):
            pos = 0
            while True:
                stop, pos, line_no = columns.feed(buf, pos, line_no + 1, BATCH_ROWS)
                line_no -= 1  # the last line read
                if stop == FULL:
                    yield "ops", ops_batch()
                    if len(val_buf) >= BATCH_ROWS:
                        yield "values", val_buf.take()
                    continue
                if stop == END:
                    break
                end = buf.index(b"\n", pos) + 1
                raw = buf[pos:end]
                pos = end
                line_no += 1
                step = step_batch + columns.rows
                d: Any = decode_line(raw)  # dispatched on its type below
                kind = type(d)
                if kind is OpLine:  # one the C path left (values, threads) or the reference
                    thread = 1 if d.thread is None else d.thread
                    append_op(line_no, thread, d.depth, d.pc, d.op, d.opName,
                              _gas(d.gas, path, line_no), d.line, d.code)
                    if d.locals is not None or d.globals is not None:
                        _values(val_buf, d, step, line_no, functions)
                    if columns.rows >= BATCH_ROWS:
                        yield "ops", ops_batch()
                        if len(val_buf) >= BATCH_ROWS:
                            yield "values", val_buf.take()
                elif kind is ExceptionLine:
                    _exception(exc_buf, d, step, line_no, functions, files)
                    if d.event != "handled":
                        last_error[(d.thread or 1, d.depth)] = d.error
                    if len(exc_buf.columns["step"]) >= BATCH_ROWS:
                        yield "exceptions", exc_buf.take()
                elif kind is CallLine:
                    code = d.code
                    while len(functions) <= code:
                        functions.append(None)
                        files.append(None)
                        first_lines.append(None)
                    functions[code] = d.name
                    files[code] = d.file
                    first_lines[code] = d.firstLine
                    stack = stacks.setdefault(d.thread or 1, [])
                    max_depth = max(max_depth, d.depth)
                    parent = stack[-1][0] if stack else None
                    # call_id, parent, depth, code, kind, step_in, line_in, clock_in, child steps
                    stack.append([calls, parent, d.depth, code, d.kind_, step, line_no, d.clock,
                                  0])
                    calls += 1
                elif kind is ReturnLine:
                    thread = d.thread or 1
                    stack = stacks.get(thread) or []
                    if stack:
                        frame = stack.pop()
                        steps = step - frame[5]
                        if stack:
                            stack[-1][8] += steps
                        _call_row(calls_buf, thread, frame, functions, files, first_lines,
                                  step, steps, d.kind_, line_no, d.clock,
                                  last_error.pop((thread, frame[2]), None), json_text(d.value))
                        if len(calls_buf.columns["call_id"]) >= BATCH_ROWS:
                            yield "calls", calls_buf.take()
                elif kind is SourceLine:
                    c = src_buf.columns
                    c["line_no"].append(line_no)
                    c["file"].append(d.file)
                    c["sha256"].append(d.sha256)
                    c["size"].append(d.size)
                    c["text"].append(d.text)
                elif kind is Summary:
                    facts.summary = summary_object(d)
                # the header, tracerError lines and kinds added later are skipped
    except _DECODE_ERRORS:
        reader.decode(line_no, raw)  # raises the format's TraceError naming the line
        raise
    except LineTooLongError as exc:
        number = line_no + exc.number
        too_long = f"line {number} is longer than {size_text(exc.limit)}"
        raise TraceError(path, number, too_long) from None
    step = step_batch + columns.rows
    for thread, stack in stacks.items():  # frames that never returned
        while stack:
            frame = stack.pop()
            _call_row(calls_buf, thread, frame, functions, files, first_lines, None, None,
                      None, None, None, None, None)
    facts.lines = line_no
    facts.ops = step
    facts.calls = calls
    facts.max_depth = max_depth
    yield "ops", ops_batch()
    yield "calls", calls_buf.take()
    yield "exceptions", exc_buf.take()
    yield "values", val_buf.take()
    yield "sources", src_buf.take()


def _gas(text: str, path: str, line_no: int) -> int:
    """An op line's ``gas`` (0x-prefixed hex) as the int64 the column holds."""
    try:
        value = int(text, 16) if text[:2] in ("0x", "0X") else int(text)
    except ValueError:
        raise TraceError(path, line_no, f"gas {text!r} is not a number") from None
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise TraceError(path, line_no, f"gas {text!r} does not fit the column (int64)")
    return value


def _values(buf: _Buffer, d: Any, step: int, line_no: int, functions: list[str | None]) -> None:
    c = buf.columns
    for scope, values in (("local", d.locals), ("global", d.globals)):
        if not values:
            continue
        for name, value in values.items():
            c["step"].append(step)
            c["line_no"].append(line_no)
            c["thread"].append(d.thread or 1)
            c["depth"].append(d.depth)
            c["code"].append(d.code)
            c["function"].append(_at(functions, d.code))
            c["line"].append(d.line)
            c["scope"].append(scope)
            c["name"].append(name)
            c["value"].append(json_text(value))


def _at(names: list[Any], code: int | None) -> Any:
    return names[code] if code is not None and 0 <= code < len(names) else None


def _exception(buf: _Buffer, d: Any, step: int, line_no: int,
               functions: list[str | None], files: list[str | None]) -> None:
    c = buf.columns
    kind, message = _error_parts(d.error)
    c["step"].append(step)
    c["line_no"].append(line_no)
    c["thread"].append(d.thread or 1)
    c["depth"].append(d.depth)
    c["pc"].append(d.pc)
    c["op"].append(d.op)
    c["opName"].append(d.opName)
    c["line"].append(d.line)
    c["code"].append(d.code)
    c["function"].append(_at(functions, d.code))
    c["file"].append(_at(files, d.code))
    c["kind"].append(d.event)
    c["type"].append(kind)
    c["message"].append(message)
    c["clock"].append(d.clock)


def _call_row(buf: _Buffer, thread: int, frame: list[Any], functions: list[str | None],
              files: list[str | None], first_lines: list[int | None], step_out: int | None,
              steps: int | None, ended: str | None, line_out: int | None, clock_out: int | None,
              error: str | None, value: str | None) -> None:
    c = buf.columns
    call_id, parent, depth, code, kind, step_in, line_in, clock_in, child = frame
    c["call_id"].append(call_id)
    c["parent_id"].append(parent)
    c["thread"].append(thread)
    c["depth"].append(depth)
    c["code"].append(code)
    c["function"].append(_at(functions, code))
    c["file"].append(_at(files, code))
    c["first_line"].append(_at(first_lines, code))
    c["kind"].append(kind)
    c["step_in"].append(step_in)
    c["step_out"].append(step_out)
    c["steps"].append(steps)
    c["self_steps"].append(None if steps is None else steps - child)
    c["ended"].append(ended)
    c["exception"].append(_error_parts(error)[0] if ended == "unwind" else None)
    c["value"].append(value)
    c["line_in"].append(line_in)
    c["line_out"].append(line_out)
    c["clock_in"].append(clock_in)
    c["clock_out"].append(clock_out)


# -- EIP-3155 client traces ---------------------------------------------------------------


def _int64(value: Any, *, wrap: bool = False) -> int | None:
    """A numeric member in any EIP-7756 form; NULL when absent or beyond 64 bits
    (``wrap``: a value in [2^63, 2^64) read as the signed number it encodes)."""
    if value is None:
        return None
    try:
        number = value if type(value) is int else parse_int(value)
    except (ValueError, TypeError):
        return None
    if wrap and _INT64_MAX < number < (1 << 64):
        number -= 1 << 64
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None


def _client_batches(path: str, facts: RunFacts) -> Iterator[tuple[str, pa.RecordBatch]]:
    from blocktrace.eip3155.normalise import TraceInfo, normalise

    facts.format = "eip3155"
    facts.gas_used_meaning = "unknown"
    info = TraceInfo(path)
    ops_buf = _Buffer("ops")
    exc_buf = _Buffer("exceptions")
    o = ops_buf.columns
    e = exc_buf.columns
    memory = _client_memory(path)
    count = 0
    max_depth = 0
    for s in normalise(path, info):
        raw = s.raw
        o["step"].append(s.index)
        o["line_no"].append(s.lineno)
        o["thread"].append(1)
        o["depth"].append(s.depth)
        o["pc"].append(s.pc)
        o["op"].append(s.op)
        o["opName"].append(raw.opName)
        o["gas"].append(_int64(s.gas))
        o["gasCost"].append(_int64(raw.gasCost))
        o["error"].append(s.error)
        stack = s.stack
        o["stack"].append([str(w) for w in stack] if isinstance(stack, list) else None)
        o["memory"].append(memory.get(s.lineno))
        o["memSize"].append(_int64(raw.memSize))
        o["refund"].append(_int64(raw.refund, wrap=True))
        o["returnData"].append(raw.returnData)
        max_depth = max(max_depth, s.depth)
        if s.error is not None:
            kind, message = _error_parts(s.error)
            e["step"].append(s.index)
            e["line_no"].append(s.lineno)
            e["thread"].append(1)
            e["depth"].append(s.depth)
            e["pc"].append(s.pc)
            e["op"].append(s.op)
            e["opName"].append(raw.opName)
            e["kind"].append("error")
            e["type"].append(kind)
            e["message"].append(message)
        count += 1
        if len(ops_buf) >= BATCH_ROWS:
            yield "ops", ops_buf.take()
    facts.client = info.dialect
    facts.gas_used_meaning = info.gas_used
    facts.lines = info.lines
    facts.ops = count
    facts.max_depth = max_depth
    summary = info.summary
    if summary is not None:
        facts.summary = {
            "output": summary.output, "gasUsed": summary.gasUsed, "pass": summary.passed,
            "error": summary.error, "stateRoot": summary.stateRoot,
        }
    yield "ops", ops_buf.take()
    yield "exceptions", exc_buf.take()
    for table in ("calls", "values", "sources"):
        yield table, _Buffer(table).take()


def _client_memory(path: str) -> dict[int, str]:
    """``memory`` as written by the clients that write it (erigon), by line number;
    the normaliser does not carry it, and only a cheap byte test finds the lines."""
    found: dict[int, str] = {}
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    with open_trace(path) as stream:
        for line_no, raw in enumerate(stream, 1):
            if b'"memory"' not in raw:
                continue
            try:
                value = decode(raw).get("memory")
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if value is not None:
                found[line_no] = value if isinstance(value, str) else msgspec.json.encode(
                    value).decode()
    return found


# -- the runs row -------------------------------------------------------------------------


def runs_batch(facts: RunFacts, verification: Verification | None) -> pa.RecordBatch:
    """The one ``runs`` row of a trace: its header, summary and verify status
    (``verification`` None: an EIP-3155 client trace, which has no chain)."""
    buf = _Buffer("runs")
    h, s = facts.header, facts.summary
    row: dict[str, Any] = {
        "path": facts.path,
        "name": os.path.basename(facts.path),
        "format": facts.format,
        "client": facts.client,
        "version": h.get("blocktrace"),
        "level": h.get("level", "op" if facts.format == "blocktrace" else None),
        "genesis": _text(h.get("genesis")),
        "python": _text(h.get("python")),
        "implementation": _text(h.get("implementation")),
        "argv": msgspec.json.encode(h["argv"]).decode() if "argv" in h else None,
        "start": _text(h.get("start")),
        "pid": _int64(h.get("pid")),
        "output": _text(s.get("output")),
        "gas_used": _int64(s.get("gasUsed")),
        "gas_used_meaning": facts.gas_used_meaning,
        "pass": s.get("pass") if isinstance(s.get("pass"), bool) else None,
        "error": _text(s.get("error")),
        "time_ns": _int64(s.get("time")),
        "state_root": _text(s.get("stateRoot")),
        "lines": facts.lines,
        "ops": facts.ops,
        "calls": facts.calls,
    }
    if verification is None:
        row.update(status="no chain", verified=False,
                   status_reason="an EIP-3155 client trace carries no hash chain")
    else:
        row.update(
            status=verification.status,
            verified=verification.status == "sealed",
            status_line=verification.line,
            status_reason=verification.reason or None,
            head=verification.head or None,
            root=verification.root or None,
        )
    for name in buf.names:
        buf.columns[name].append(row.get(name))
    return buf.take()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()
