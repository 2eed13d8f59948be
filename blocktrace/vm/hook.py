"""The per-instruction callback, and whether it runs in C.

``python_instruction_hook`` is the reference: the contract of
``_chook.InstructionHook`` (tests/vm/test_chook.py runs both against it) and
the stepper's callback where the extension is not built or
``BLOCKTRACE_PURE`` is set (``blocktrace._native`` decides which).
"""

from __future__ import annotations

from collections.abc import Callable
from types import CodeType
from typing import Any

from blocktrace._native import extension
from blocktrace.events import OpStart
from blocktrace.tracers import Capabilities, direct_call, discard_trace

__all__ = ["C_HOOK", "InstructionHook", "direct_callable", "instruction_hook",
           "python_instruction_hook"]

_chook = extension("blocktrace.vm._chook")  # None: not built, or BLOCKTRACE_PURE
InstructionHook: Any = None if _chook is None else _chook.InstructionHook
_c_discard: Any = None if _chook is None else _chook.discard
C_HOOK = InstructionHook is not None
"""The per-instruction callback runs in C (without a Python frame)."""


def python_instruction_hook(
    sites: dict[int, list[OpStart | None]],
    vm: Any,
    tracer: Callable[[Any, Any], object],
    missing: Callable[[CodeType, int], OpStart | None],
    out_of_gas: Callable[[CodeType, int], object],
    failed: Callable[[BaseException], object],
    disable: object,
    op_line: Callable[[OpStart, int, int], bool] | None = None,
) -> Callable[[CodeType, int], Any]:
    """The per-instruction callback in Python: what ``_chook.InstructionHook``
    does in C (its contract, and the stepper's callback where it is not built),
    as a closure over everything it touches.  With ``op_line`` (the tracer's,
    see ``Capabilities``) an ``OpStart`` goes to ``op_line(event, gas,
    vm.depth)`` first, and to the tracer only when that returns False."""

    def on_instruction(code: CodeType, offset: int) -> Any:
        event = sites[id(code)][offset]
        if event is None:
            event = missing(code, offset)
            if event is None:
                return disable
        gas = vm.gas
        if gas <= 0:
            out_of_gas(code, offset)
        vm.site = event
        try:
            if op_line is None or not op_line(event, gas, vm.depth):
                tracer(vm, event)
        except BaseException as exc:
            failed(exc)
        vm.gas = gas - 1
        return None

    return on_instruction


def direct_callable(tracer: object, caps: Capabilities) -> Any:
    """What the stepper calls for ``tracer`` (see ``direct_call``), with the C
    no-op for ``discard_trace`` when built."""
    if tracer is discard_trace and _c_discard is not None:
        return _c_discard
    return direct_call(tracer, caps)


def instruction_hook(
    sites: dict[int, list[OpStart | None]],
    vm: Any,
    tracer: Callable[[Any, Any], object],
    missing: Callable[[CodeType, int], OpStart | None],
    out_of_gas: Callable[[CodeType, int], object],
    failed: Callable[[BaseException], object],
    disable: object,
    *,
    may_disable: bool,
    op_line: Callable[[OpStart, int, int], bool] | None = None,
) -> Callable[[CodeType, int], Any]:
    """The per-instruction callback: in C when built (and then passing on a
    tracer's ``DISABLE`` when ``may_disable``), else the Python reference (which
    the stepper uses only for tracers that never answer ``DISABLE``)."""
    if InstructionHook is not None:
        return InstructionHook(  # type: ignore[no-any-return]
            sites, vm, tracer, missing, out_of_gas, failed, disable,
            may_disable=may_disable, op_line=op_line,
        )
    return python_instruction_hook(
        sites, vm, tracer, missing, out_of_gas, failed, disable, op_line
    )
