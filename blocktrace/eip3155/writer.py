"""Writing normalised steps back out as EIP-3155 lines.

The output is itself a trace every reader here accepts (and any EIP-3155
tool): canonical numbers (hex ``gas``/``gasCost``, minimal hex stack words,
signed ``refund``), one line per step, no STOP lines, no duplicate fault
lines.  Reading it back gives the same steps: normalisation is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import msgspec

from blocktrace.eip3155.compare import canonical_stack, canonical_value
from blocktrace.eip3155.records import Step

__all__ = ["canonical_step", "write_steps"]

_ENCODER = msgspec.json.Encoder()


# the optional fields after ``refund``, each written when the step has it
_OPTIONAL = ("opName", "error", "returnData", "line", "code", "thread", "locals", "globals",
             "event")


def canonical_step(step: Step, optional: tuple[str, ...] = _OPTIONAL) -> dict[str, Any]:
    """The step's fields in canonical form, in EIP-3155 order (no position fields);
    ``optional``: the fields after ``refund`` (the diff report's step view adds two)."""
    line: dict[str, Any] = {"pc": step.pc, "op": step.op, "gas": hex(step.gas)}
    gas_cost = canonical_value("gasCost", step.gasCost)
    if isinstance(gas_cost, int):
        line["gasCost"] = hex(gas_cost)
    mem_size = canonical_value("memSize", step.memSize)
    if mem_size is not None:
        line["memSize"] = mem_size
    if step.stack is not None:
        line["stack"] = list(canonical_stack(step.stack))
    line["depth"] = step.depth
    refund = canonical_value("refund", step.refund)
    if refund is not None:
        line["refund"] = refund
    for name in optional:
        value = getattr(step, name)
        if value is not None:
            line[name] = value
    return line


def write_steps(steps: Iterable[Step], stream: IO[bytes]) -> int:
    """Write each step as one canonical JSON line; returns the number written."""
    count = 0
    buffer = bytearray()
    for step in steps:
        _ENCODER.encode_into(canonical_step(step), buffer)
        buffer.extend(b"\n")
        stream.write(buffer)
        buffer.clear()
        count += 1
    return count
