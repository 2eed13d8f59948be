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

__all__ = [
    "C_HOOK",
    "CallHook",
    "InstructionHook",
    "Meter",
    "PyMeter",
    "ScopeFilter",
    "direct_callable",
    "instruction_hook",
    "python_instruction_hook",
]

_chook = extension("blocktrace.vm._chook")  # None: not built, or BLOCKTRACE_PURE
InstructionHook: Any = None if _chook is None else _chook.InstructionHook
_c_discard: Any = None if _chook is None else _chook.discard
CallHook: Any = None if _chook is None else _chook.CallHook
"""The PY_START/PY_RETURN callbacks in C (the stepper's common case), or None."""
ScopeFilter: Any = None if _chook is None else _chook.ScopeFilter
"""The exception events' callbacks behind a C filter of code out of scope, or None."""
C_HOOK = InstructionHook is not None
"""The per-instruction callback runs in C (without a Python frame)."""


class PyMeter:
    """The step budget: ``used`` instructions of ``limit``; ``gas`` is limit -
    used.  ``_chook.Meter`` is the same in C (which the C hook charges without
    making an int object per instruction)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        if not 0 <= limit < 2**64:
            raise ValueError("Meter.limit must be 0 to 2**64-1")
        self.limit = limit
        self.used = 0

    @property
    def gas(self) -> int:
        return self.limit - self.used

    @gas.setter
    def gas(self, value: int) -> None:
        used = self.limit - value
        if not 0 <= used < 2**64:
            raise ValueError("Meter.used (limit - gas) must be 0 to 2**64-1")
        self.used = used


Meter: Any = PyMeter if _chook is None else _chook.Meter
"""The meter the stepper keeps its gas in (C when the hook is)."""


def python_instruction_hook(
    sites: dict[int, list[OpStart | None]],
    vm: Any,
    tracer: Callable[[Any, Any], object],
    missing: Callable[[CodeType, int], OpStart | None],
    out_of_gas: Callable[[CodeType, int], object],
    failed: Callable[[BaseException], object],
    disable: object,
    op_line: Callable[[OpStart, int, int], bool] | None = None,
    meter: Any = None,
    skip: object = None,
) -> Callable[[CodeType, int], Any]:
    """The per-instruction callback in Python: what ``_chook.InstructionHook``
    does in C (its contract, and the stepper's callback where it is not built),
    as a closure over everything it touches.  With ``op_line`` (the tracer's,
    see ``Capabilities``) an ``OpStart`` goes to ``op_line(event, gas,
    vm.depth)`` first, and to the tracer only when that returns False.

    With ``meter`` (a ``Meter``) gas is charged there and ``vm.gas`` is not
    touched; a site whose value is ``skip`` (a trace level's table: see
    ``CodeInfo.table``) is charged and nothing else happens."""
    if meter is not None:
        return _metered_hook(sites, vm, tracer, missing, out_of_gas, failed, disable, op_line,
                             meter, skip)

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


def _metered_hook(
    sites: dict[int, list[Any]],
    vm: Any,
    tracer: Callable[[Any, Any], object],
    missing: Callable[[CodeType, int], Any],
    out_of_gas: Callable[[CodeType, int], object],
    failed: Callable[[BaseException], object],
    disable: object,
    op_line: Callable[[OpStart, int, int], bool] | None,
    meter: Any,
    skip: object,
) -> Callable[[CodeType, int], Any]:
    if skip is None:
        skip = _NEVER

    def on_instruction(code: CodeType, offset: int) -> Any:
        event = sites[id(code)][offset]
        if event is None:
            event = missing(code, offset)
            if event is None:
                return disable
        used = meter.used
        if used >= meter.limit:
            out_of_gas(code, offset)
        if event is skip:
            meter.used = used + 1
            return None
        vm.site = event
        try:
            if op_line is None or not op_line(event, meter.gas, vm.depth):
                tracer(vm, event)
        except BaseException as exc:
            failed(exc)
        meter.used = used + 1
        return None

    return on_instruction


_NEVER = object()


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
    meter: Any = None,
    skip: object = None,
) -> Callable[[CodeType, int], Any]:
    """The per-instruction callback: in C when built (and then passing on a
    tracer's ``DISABLE`` when ``may_disable``), else the Python reference (which
    the stepper uses only for tracers that never answer ``DISABLE``)."""
    if InstructionHook is not None:
        return InstructionHook(  # type: ignore[no-any-return]
            sites, vm, tracer, missing, out_of_gas, failed, disable,
            may_disable=may_disable, op_line=op_line, meter=meter, skip=skip,
        )
    return python_instruction_hook(
        sites, vm, tracer, missing, out_of_gas, failed, disable, op_line, meter, skip
    )
