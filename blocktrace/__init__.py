"""blocktrace: tamper-evident, instruction-level traces of Python programs.

Record what a program did as an EIP-3155-style JSON Lines trace whose every line
is hash-chained; verify it, prove a line is in it, diff it against another.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: ``import blocktrace`` loads nothing (PEP 562 below)
if TYPE_CHECKING:
    from typing import Any

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

# Each public name is imported from its module when first used (PEP 562):
# ``import blocktrace`` alone -- as every ``blocktrace`` command does -- costs
# nothing, and ``blocktrace run`` loads only what a run needs.
_HOMES = {
    "CallStart": "blocktrace.events", "OpEnd": "blocktrace.events",
    "OpException": "blocktrace.events", "OpStart": "blocktrace.events",
    "Return": "blocktrace.events", "Stop": "blocktrace.events",
    "TraceEvent": "blocktrace.events",
    "Tracer": "blocktrace.tracers", "VMState": "blocktrace.tracers",
    "discard_trace": "blocktrace.tracers", "emit": "blocktrace.tracers",
    "get_tracer": "blocktrace.tracers", "set_tracer": "blocktrace.tracers",
    "ChainTracer": "blocktrace.tracers.chain", "Recorder": "blocktrace.tracers.recorder",
    "Renderer": "blocktrace.tracers.render", "Tee": "blocktrace.tracers.tee",
    "TraceResults": "blocktrace.views.tracefunc", "tracefunc": "blocktrace.views.tracefunc",
    "HaltRun": "blocktrace.vm", "OutOfGas": "blocktrace.vm", "Scope": "blocktrace.vm",
    "Stepper": "blocktrace.vm", "start": "blocktrace.vm", "stop": "blocktrace.vm",
    "trace": "blocktrace.vm",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'blocktrace' has no attribute {name!r}")
    if name == "set_tracer":
        _import("blocktrace.vm")  # its starter: set_tracer starts tracing
    value = getattr(_import(home), name)
    globals()[name] = value
    return value


def _import(module: str) -> Any:
    """``importlib.import_module``, with room when the program is near its recursion
    limit: blocktrace's imports, made when a name is first used, must not cost it
    frames (they cost none when ``import blocktrace`` loaded everything)."""
    import importlib

    try:
        return importlib.import_module(module)
    except RecursionError:
        from blocktrace.tracers.depth import ROOM, shift

        if not shift(ROOM):
            raise
        try:
            return importlib.import_module(module)
        finally:
            shift(-ROOM)


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


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
