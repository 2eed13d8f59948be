"""blocktrace: tamper-evident, instruction-level traces of Python programs.

Record what a program did as an EIP-3155-style JSON Lines trace whose every line
is hash-chained; verify it, prove a line is in it, diff it against another.
"""

from __future__ import annotations

from blocktrace.events import (
    CallStart,
    OpEnd,
    OpException,
    OpStart,
    Return,
    Stop,
    TraceEvent,
)
from blocktrace.tracers import Tracer, VMState, discard_trace, emit, get_tracer, set_tracer

__version__ = "0.1.0"

__all__ = [
    "CallStart",
    "OpEnd",
    "OpException",
    "OpStart",
    "Return",
    "Stop",
    "TraceEvent",
    "Tracer",
    "VMState",
    "__version__",
    "discard_trace",
    "emit",
    "get_tracer",
    "set_tracer",
]
