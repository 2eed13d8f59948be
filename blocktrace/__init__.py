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
from blocktrace.tracers.chain import ChainTracer
from blocktrace.tracers.recorder import Recorder
from blocktrace.tracers.render import Renderer
from blocktrace.tracers.tee import Tee
from blocktrace.views.tracefunc import TraceResults, tracefunc
from blocktrace.vm import HaltRun, OutOfGas, Scope, Stepper, start, stop, trace

__version__ = "0.2.0"

__all__ = [
    "CallStart",
    "ChainTracer",
    "HaltRun",
    "OpEnd",
    "OpException",
    "OpStart",
    "OutOfGas",
    "Recorder",
    "Renderer",
    "Return",
    "Scope",
    "Stepper",
    "Stop",
    "Tee",
    "TraceEvent",
    "TraceResults",
    "Tracer",
    "VMState",
    "__version__",
    "discard_trace",
    "emit",
    "get_tracer",
    "set_tracer",
    "start",
    "stop",
    "trace",
    "tracefunc",
]
