"""The dialect table: every way the real writers of EIP-3155 traces differ.

Two tables, kept here and nowhere else:

``LINE_RULES`` says what happens to each kind of line, in the order the
normaliser asks (the first rule that matches a line decides).  ``DIALECTS``
says what is known about each writer: whether its ``gasUsed`` is execution gas
or whole-transaction gas, which fields are compared by default, and how to
recognise it.  The normaliser (``normalise.py``) implements the actions; a new
client quirk is a new row, not a new ``if`` somewhere else.
"""

from __future__ import annotations

from enum import Enum

import msgspec

__all__ = [
    "DIALECTS",
    "EVM_DEFAULT_FIELDS",
    "FIELDS",
    "LINE_RULES",
    "PLACEHOLDERS",
    "PYTHON_DEFAULT_FIELDS",
    "Action",
    "Dialect",
    "Evidence",
    "LineRule",
    "Placeholder",
    "gas_used_meaning",
    "guess_client",
    "halt_not_error",
    "placeholder_root",
]


class Action(Enum):
    SKIP_NOISE = "skip and count"
    HEADER = "read the header"
    DROP = "drop"
    MERGE = "merge into the previous step"
    STEP = "new step"
    CONTEXT = "remember (names a code object)"
    SUMMARY = "merge into the summary"
    FRAME_EXIT = "count as a frame exit"
    IGNORE = "ignore and count"


class LineRule(msgspec.Struct, frozen=True):
    name: str
    writers: str
    when: str
    action: Action


LINE_RULES: tuple[LineRule, ...] = (
    LineRule("noise", "nethermind (coloured FAIL line), revm (Rust error dump)",
             "the line is not a JSON object", Action.SKIP_NOISE),
    LineRule("header", "blocktrace", "the object has `blocktrace` (format version)",
             Action.HEADER),
    LineRule("implicit-stop", "geth, eels, revm",
             "an op line with `op` 0 (STOP) in a client trace: some clients write the "
             "implicit STOP at the end of code, others do not", Action.DROP),
    LineRule("fault-duplicate", "geth, nimbus; blocktrace exception lines",
             "an op line with the same (pc, depth, gas, code, thread) as the step just "
             "before it (for a blocktrace exception line, any gas): the second line for a "
             "faulting op. The step keeps the first line's stack and takes the second "
             "line's error", Action.MERGE),
    LineRule("op", "all", "an object with both `pc` and `op`", Action.STEP),
    LineRule("call", "blocktrace", "`event` is `call`: names the function and file of a "
             "code number", Action.CONTEXT),
    LineRule("event", "blocktrace", "any other `event` line (return, tracerError)",
             Action.IGNORE),
    LineRule("frame-exit", "geth", "a summary-shaped `{output, gasUsed}` line followed by "
             "more op lines: the exit of a call frame, not the end of the run",
             Action.FRAME_EXIT),
    LineRule("state-root", "eels, erigon, geth, nethermind, nimbus",
             "an object with only `stateRoot`, written after the summary", Action.SUMMARY),
    LineRule("summary", "all (besu, evmone, revm: one line with `stateRoot`)",
             "an object with `output`, `gasUsed` or `pass` and no `pc`", Action.SUMMARY),
    LineRule("other", "any", "any other JSON value", Action.IGNORE),
)


class Placeholder(msgspec.Struct, frozen=True):
    """A value a writer puts in a field when it has nothing to say there: read
    as "not reported", and the report says so."""

    field: str
    writers: str
    value: str
    meaning: str


PLACEHOLDERS: tuple[Placeholder, ...] = (
    Placeholder("stateRoot", "revm (its EIP-3155 inspector, as pyrevm and foundry use it)",
                "32 zero bytes (any all-zero hex)",
                "the tracer does not compute the root; no real state root is zero (the empty "
                "trie's is 0x56e8...b421): not compared"),
    Placeholder("error", "revm", "`Stop`, `Return`, `SelfDestruct` on the op that ends a frame",
                "the frame's normal end (revm's halt reason), not a fault: read as no error"),
)

_NORMAL_HALTS = frozenset({"Stop", "Return", "SelfDestruct"})


def placeholder_root(value: str | None) -> bool:
    """Whether a ``stateRoot`` is the all-zero placeholder (see ``PLACEHOLDERS``)."""
    if value is None:
        return False
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    return not digits.strip("0")


def halt_not_error(error: str) -> bool:
    """Whether an op line's ``error`` is revm's name for a normal halt (see
    ``PLACEHOLDERS``): no other writer words an error this way."""
    return error in _NORMAL_HALTS


# User-facing field names, as they appear in the trace lines.  ``function`` and
# ``file`` are resolved from blocktrace's ``call`` lines.
FIELDS: tuple[str, ...] = (
    "pc", "op", "gas", "gasCost", "memSize", "stack", "depth", "refund", "opName",
    "error", "returnData", "line", "code", "function", "file", "thread", "locals",
    "globals", "event",
)
EVM_DEFAULT_FIELDS: tuple[str, ...] = ("pc", "op", "gas", "depth", "stack")
PYTHON_DEFAULT_FIELDS: tuple[str, ...] = (
    "pc", "op", "depth", "line", "function", "thread", "error", "locals", "globals",
)


class Dialect(msgspec.Struct, frozen=True):
    name: str
    python: bool
    """blocktrace's own traces: Python fields, no EVM rules."""
    gas_used: str
    """What the summary's ``gasUsed`` means: ``execution``, ``transaction``,
    ``instructions`` or ``unknown``."""
    default_fields: tuple[str, ...]
    recognised_by: str


def _evm(name: str, gas_used: str, recognised_by: str) -> Dialect:
    return Dialect(name, False, gas_used, EVM_DEFAULT_FIELDS, recognised_by)


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("blocktrace", True, "instructions", PYTHON_DEFAULT_FIELDS,
                "a header line with `blocktrace`"),
        _evm("besu", "transaction", "summary with `stateRoot`, `test` and `fork`, no `logsRoot`"),
        _evm("eels", "execution", "op line for a fault without `gasCost` "
             "(without one, eels and geth read as `evm`)"),
        _evm("erigon", "execution", "op lines with `memory`"),
        _evm("evmone", "transaction", "summary with `pass` and `stateRoot`, no `output`"),
        _evm("geth", "execution", "per-frame exit lines, or a duplicate line for a "
             "faulting op without nimbus's error text"),
        _evm("nethermind", "execution", "op lines without `opName`"),
        _evm("nimbus", "execution", "errors starting `Opcode Dispatch Error`"),
        _evm("revm", "transaction", "op lines with `reservoir`, or a summary with `logsRoot`"),
        _evm("evm", "unknown", "any other EIP-3155 trace"),
    )
}


class Evidence(msgspec.Struct):
    """What the reader saw that tells writers apart (filled while streaming)."""

    header: bool = False
    reservoir: bool = False
    memory_field: bool = False
    no_op_name: bool = False
    fault_without_cost: bool = False
    nimbus_error: bool = False
    summary_with_root: bool = False
    summary_has_output: bool = False
    summary_has_test: bool = False
    summary_has_logs_root: bool = False
    separate_state_root: bool = False
    frame_exit: bool = False
    fault_duplicate: bool = False
    gas_uncounted: bool = False
    """The header says ``"gas":"uncounted"`` (a calls-level golden): ``gasUsed`` is 0."""


def guess_client(ev: Evidence) -> str:
    """The dialect name the evidence points at (``evm`` when it is not clear)."""
    if ev.header:
        return "blocktrace"
    if ev.reservoir or ev.summary_has_logs_root:
        return "revm"
    if ev.memory_field:
        return "erigon"
    if ev.no_op_name:
        return "nethermind"
    if ev.summary_with_root:
        if ev.summary_has_test:
            return "besu"
        if not ev.summary_has_output:
            return "evmone"
        return "evm"
    if ev.nimbus_error:
        return "nimbus"
    if ev.fault_without_cost:
        return "eels"
    if ev.frame_exit or ev.fault_duplicate:
        return "geth"
    return "evm"


def gas_used_meaning(ev: Evidence, dialect: Dialect) -> str:
    """What ``gasUsed`` means in this trace, from the dialect or the summary's shape.

    Clients that put ``stateRoot`` in the summary line report whole-transaction
    gas; those that write it on a line of its own report execution gas.
    """
    if dialect.gas_used != "unknown":
        return dialect.gas_used
    if ev.summary_with_root:
        return "transaction"
    if ev.separate_state_root:
        return "execution"
    return "unknown"
