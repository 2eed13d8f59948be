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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

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
from blocktrace.format.callline import json_safe
from blocktrace.format.wholelines import Tick, complete_lines
from blocktrace.limits import LineTooLongError, size_text
from blocktrace.query.columns import (
    END,
    FULL,
    MAX_CODE,
    error_parts,
    table_columns,
)
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


Feed = Callable[[bytes, int, bytes], object]
"""Where the conversion hands the file's bytes: ``(chunk, first, bits)``, bit
``k`` of ``bits`` set when the conversion read line ``first + k`` whole in C
(a JSON object, so the verifier need not test it; see ``query.verifying``)."""


def trace_batches(
    path: str, facts: RunFacts, feed: Feed | None = None, tick: Tick | None = None
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """The query tables' rows of the trace at ``path`` (blocktrace or EIP-3155);
    ``feed`` (a blocktrace trace) is given the file's bytes in order, each buffer
    once its lines are read (:func:`~blocktrace.format.wholelines.complete_lines`);
    ``tick`` is called from the reading loop now and then (once per buffer, or
    per 4,096 steps of a client trace)."""
    if blocktrace_header(path) is not None:
        yield from _blocktrace_batches(path, facts, feed, tick)
    else:
        yield from _client_batches(path, facts, tick)


def _blocktrace_batches(
    path: str, facts: RunFacts, feed: Feed | None, tick: Tick | None
) -> Iterator[tuple[str, pa.RecordBatch]]:
    import pyarrow as pa

    val_buf = _Buffer("values")
    src_buf = _Buffer("sources")
    # ops, calls, exceptions: the lines in the writer's forms straight into column
    # buffers (C), the others decoded here and handed over
    columns = table_columns()
    reader = TraceReader(path)
    facts.header = header_object(reader.header)
    line_no = 0
    raw = b""
    tell: Callable[[bytes], object] | None = None
    if feed is not None:
        take_known = getattr(columns, "take_known", None)  # the C columns' (PyColumns: none)
        if take_known is not None:
            take_known(1)

        def tell(chunk: bytes) -> None:
            # called when the conversion is done with chunk: line_no is its last line
            first, bits = take_known(line_no + 1) if take_known is not None else (0, b"")
            feed(chunk, first, bits)

    def ops_batch() -> pa.RecordBatch:
        rows = columns.rows
        arrays = columns.take_ops()
        arrays["gasCost"] = pa.repeat(pa.scalar(1, pa.int64()), rows)
        return _Buffer("ops").take(arrays)

    def full() -> Iterator[tuple[str, pa.RecordBatch]]:
        if columns.rows >= BATCH_ROWS:
            yield "ops", ops_batch()
        if columns.call_rows >= BATCH_ROWS:
            yield "calls", _Buffer("calls").take(columns.take_calls())
        if columns.exception_rows >= BATCH_ROWS:
            yield "exceptions", _Buffer("exceptions").take(columns.take_exceptions())
        if len(val_buf) >= BATCH_ROWS:
            yield "values", val_buf.take()

    try:
        for buf in complete_lines(reader, tell, tick):
            pos = 0
            while True:
                stop, pos, line_no = columns.feed(buf, pos, line_no + 1, BATCH_ROWS)
                line_no -= 1  # the last line read
                if stop == END:
                    break
                if stop == FULL:
                    yield from full()
                    continue
                end = buf.index(b"\n", pos) + 1
                raw = buf[pos:end]
                pos = end
                line_no += 1
                _line(columns, decode_line(raw), line_no, path, val_buf, src_buf, facts)
                yield from full()
    except _DECODE_ERRORS:
        reader.decode(line_no, raw)  # raises the format's TraceError naming the line
        raise
    except LineTooLongError as exc:
        number = line_no + exc.number
        too_long = f"line {number} is longer than {size_text(exc.limit)}"
        raise TraceError(path, number, too_long) from None
    columns.finish()
    facts.lines = line_no
    facts.ops = columns.steps
    facts.calls = columns.calls
    facts.max_depth = columns.max_depth
    yield "ops", ops_batch()
    yield "calls", _Buffer("calls").take(columns.take_calls())
    yield "exceptions", _Buffer("exceptions").take(columns.take_exceptions())
    yield "values", val_buf.take()
    yield "sources", src_buf.take()


def _line(columns: Any, d: Any, line_no: int, path: str, val_buf: _Buffer, src_buf: _Buffer,
          facts: RunFacts) -> None:
    """One line ``columns.feed`` left (or every line, for the reference), decoded."""
    kind = type(d)
    if kind is OpLine:  # with values or in another form
        step = columns.steps
        columns.op(line_no, 1 if d.thread is None else d.thread, d.depth, d.pc, d.op,
                   d.opName, _gas(d.gas, path, line_no), d.line, d.code)
        if d.locals is not None or d.globals is not None:
            _values(val_buf, d, step, line_no, columns.function(d.code))
    elif kind is ExceptionLine:
        columns.exception(line_no, d.thread or 1, d.depth, d.pc, d.op, d.opName, d.line,
                          d.code, d.event, d.error, d.clock)
    elif kind is CallLine:
        if not 0 <= d.code < MAX_CODE:
            raise TraceError(path, line_no, f"code {d.code} is not a code number this reader "
                             f"takes (0 to {MAX_CODE - 1})")
        columns.call(line_no, d.thread or 1, d.depth, d.code, d.kind_, d.name, d.file,
                     d.firstLine, d.clock)
    elif kind is ReturnLine:
        columns.ret(line_no, d.thread or 1, d.kind_, json_text(d.value), d.clock)
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


def _gas(text: str, path: str, line_no: int) -> int:
    """An op line's ``gas`` (0x-prefixed hex) as the int64 the column holds."""
    try:
        value = int(text, 16) if text[:2] in ("0x", "0X") else int(text)
    except ValueError:
        raise TraceError(path, line_no, f"gas {text!r} is not a number") from None
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise TraceError(path, line_no, f"gas {text!r} does not fit the column (int64)")
    return value


def _values(buf: _Buffer, d: Any, step: int, line_no: int, function: str | None) -> None:
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
            c["function"].append(function)
            c["line"].append(d.line)
            c["scope"].append(scope)
            c["name"].append(name)
            c["value"].append(json_text(value))


# -- EIP-3155 client traces ---------------------------------------------------------------


def _int64(value: Any, *, wrap: bool = False) -> int | None:
    """A numeric member in any EIP-7756 form; NULL when absent or beyond 64 bits
    (``wrap``: a value in [2^63, 2^64) read as the signed number it encodes)."""
    if value is None:
        return None
    try:
        if type(value) is int:
            number = value
        elif type(value) is str and value[:2] == "0x" and value[2:].isalnum():
            number = int(value[2:], 16)  # parse_int's answer, without the client reader
        else:
            from blocktrace.eip3155.numbers import parse_int  # not at import: client traces'

            number = parse_int(value)
    except (ValueError, TypeError):
        return None
    if wrap and _INT64_MAX < number < (1 << 64):
        number -= 1 << 64
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None


def _client_batches(
    path: str, facts: RunFacts, tick: Tick | None
) -> Iterator[tuple[str, pa.RecordBatch]]:
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
            kind, message = error_parts(s.error)
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
        if tick is not None and not count & 4095:
            tick()
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
    from blocktrace.eip3155.reader import open_trace, trace_lines

    found: dict[int, str] = {}
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    with open_trace(path) as stream:
        for line_no, raw in enumerate(trace_lines(stream, path), 1):
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
        "path": json_safe(facts.path),
        "name": json_safe(os.path.basename(facts.path)),
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
