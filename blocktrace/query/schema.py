"""The query tables: their columns, types and meanings (docs/QUERY.md lists them).

One schema per table for every kind of trace: blocktrace's own traces and EIP-3155
client traces share ``ops`` (a column a kind of trace has no value for is NULL),
so one query can hold both.  Every table also has ``run`` (the trace's id, the
Parquet dataset's partition key, never stored inside the files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SCHEMA_VERSION", "TABLES", "arrow_schema"]

SCHEMA_VERSION = 1
"""Written in every dataset's ``dataset.json``; a dataset of another version is refused."""

# (column, arrow type name, meaning)
Column = tuple[str, str, str]

TABLES: dict[str, tuple[Column, ...]] = {
    "ops": (
        ("step", "int64", "0-based index of the op in its run (its instruction clock)"),
        ("line_no", "int64", "1-based line of the trace file"),
        ("thread", "int32", "blocktrace's thread number (1 for the first thread)"),
        ("depth", "int32", "call depth, from 1"),
        ("pc", "int64", "bytecode offset (EVM: program counter)"),
        ("op", "int32", "opcode number"),
        ("opName", "string", "opcode name (dis name; EVM mnemonic)"),
        ("gas", "int64", "steps (EVM: gas) left before the op"),
        ("gasCost", "int64", "EVM: the op's gas cost (NULL beyond 2^63); blocktrace: 1"),
        ("line", "int32", "Python source line (0: none)"),
        ("code", "int32", "the trace's number of the code object"),
        ("function", "string", "qualified name of the code object's function"),
        ("file", "string", "source file of the code object"),
        ("error", "string", "EVM: the op's error, if it faulted"),
        ("stack", "list<string>", "EVM: the stack before the op, bottom first, as written"),
        ("memory", "string", "EVM: memory as written (erigon), else NULL"),
        ("memSize", "int64", "EVM: memory size"),
        ("refund", "int64", "EVM: refund counter (revm's wrapped 64-bit value read as signed)"),
        ("returnData", "string", "EVM: return data"),
    ),
    "calls": (
        ("call_id", "int64", "0-based number of the call in its run, in order of entry"),
        ("parent_id", "int64", "call_id of the caller's frame (NULL at the top)"),
        ("thread", "int32", "thread number"),
        ("depth", "int32", "depth of the frame"),
        ("code", "int32", "code object number"),
        ("function", "string", "qualified function name"),
        ("file", "string", "source file"),
        ("first_line", "int32", "first line of the function"),
        ("kind", "string", "how the frame started: call, resume, throw, enter"),
        ("step_in", "int64", "ops before the frame started (the step of its first op)"),
        ("step_out", "int64", "ops before it stopped (NULL when it never stopped)"),
        ("steps", "int64", "ops inside, nested calls included (step_out - step_in)"),
        ("self_steps", "int64", "ops inside, nested calls excluded"),
        ("ended", "string", "how it stopped: return, yield, unwind (NULL: still running)"),
        ("exception", "string", "for unwind: the exception type that left it"),
        ("value", "string", "the returned or yielded value, rendered, as JSON text"),
        ("line_in", "int64", "line of the trace with the call"),
        ("line_out", "int64", "line of the trace with the return"),
        ("clock_in", "int64", "--clock: ns since the run started, at the call"),
        ("clock_out", "int64", "--clock: ns since the run started, at the return"),
    ),
    "exceptions": (
        ("step", "int64", "ops before the exception line"),
        ("line_no", "int64", "line of the trace"),
        ("thread", "int32", "thread number"),
        ("depth", "int32", "depth of the frame"),
        ("pc", "int64", "the instruction it happened at"),
        ("op", "int32", "opcode number"),
        ("opName", "string", "opcode name"),
        ("line", "int32", "source line"),
        ("code", "int32", "code object number"),
        ("function", "string", "function"),
        ("file", "string", "source file"),
        ("kind", "string", "raise, reraise, handled (EVM: error)"),
        ("type", "string", "exception type (the error's text before ':')"),
        ("message", "string", "the rest of the error text"),
        ("clock", "int64", "--clock: ns since the run started"),
    ),
    "values": (
        ("step", "int64", "ops before the line that recorded the value"),
        ("line_no", "int64", "line of the trace"),
        ("thread", "int32", "thread number"),
        ("depth", "int32", "depth of the frame"),
        ("code", "int32", "code object number"),
        ("function", "string", "function"),
        ("line", "int32", "source line about to run"),
        ("scope", "string", "local or global"),
        ("name", "string", "variable name"),
        ("value", "string", "its rendered value, as JSON text"),
    ),
    "sources": (
        ("line_no", "int64", "line of the trace"),
        ("file", "string", "the source file the trace commits to"),
        ("sha256", "string", "SHA-256 of its content (hex)"),
        ("size", "int64", "its size in bytes"),
        ("text", "string", "its text when embedded (--embed-source), else NULL"),
    ),
    "runs": (
        ("path", "string", "the trace file as given"),
        ("name", "string", "its file name"),
        ("format", "string", "blocktrace or eip3155"),
        ("client", "string", "blocktrace, or the EIP-3155 writer (geth, revm, ...)"),
        ("version", "int32", "blocktrace format version"),
        ("level", "string", "op, line or call (format 3)"),
        ("genesis", "string", "the genesis token"),
        ("python", "string", "Python version of the run"),
        ("implementation", "string", "Python implementation"),
        ("argv", "string", "the program's argv, as JSON text"),
        ("start", "string", "UTC start time (RFC 3339)"),
        ("pid", "int64", "process id"),
        ("output", "string", "the run's output (blocktrace: exit status)"),
        ("gas_used", "int64", "summary gasUsed (blocktrace: instructions traced)"),
        ("gas_used_meaning", "string", "instructions, execution, transaction or unknown"),
        ("pass", "bool", "the run passed"),
        ("error", "string", "the run's error"),
        ("time_ns", "int64", "run time in ns"),
        ("state_root", "string", "EVM: the state root"),
        ("lines", "int64", "lines in the file"),
        ("ops", "int64", "rows in ops"),
        ("calls", "int64", "rows in calls"),
        ("status", "string", "what verify says: sealed, unsealed, tampered (no chain: EVM)"),
        ("verified", "bool", "status is sealed: every line checks and the run's end is there"),
        ("status_line", "int64", "the line the status is about (tampered: the first bad one)"),
        ("status_reason", "string", "why, in verify's words"),
        ("head", "string", "the hash of the last line that checked"),
        ("root", "string", "the Merkle root verify computed"),
    ),
}


def _arrow_type(name: str) -> pa.DataType:
    import pyarrow as pa

    if name == "list<string>":
        return pa.list_(pa.string())
    return {
        "int64": pa.int64(), "int32": pa.int32(), "string": pa.string(), "bool": pa.bool_(),
    }[name]


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a table's Parquet files (``run`` is the partition)."""
    import pyarrow as pa

    return pa.schema([pa.field(name, _arrow_type(kind)) for name, kind, _ in TABLES[table]])
