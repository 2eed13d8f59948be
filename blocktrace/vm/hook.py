"""The per-instruction callback, and whether it runs in C.

``python_instruction_hook`` is the reference: the contract of
``_chook.InstructionHook`` (tests/vm/test_chook.py runs both against it) and
the stepper's callback where the extension is not built or
``BLOCKTRACE_PURE`` is set (``blocktrace._native`` decides which).
"""

from __future__ import annotations

from _thread import get_ident
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from blocktrace._native import extension
from blocktrace.events import OpStart
from blocktrace.tracers import Capabilities, direct_call, discard_trace

__all__ = [
    "C_HOOK",
    "Blocks",
    "CallHook",
    "InstructionHook",
    "Meter",
    "PyBlocks",
    "PyMeter",
    "ScopeFilter",
    "call_hooks",
    "direct_callable",
    "instruction_hook",
    "python_instruction_hook",
]

_chook = extension("blocktrace.vm._chook")  # None: not built, or BLOCKTRACE_PURE
InstructionHook: Any = None if _chook is None else _chook.InstructionHook
_c_discard: Any = None if _chook is None else _chook.discard
CallHook: Any = None if _chook is None else _chook.CallHook
"""The PY_START/PY_RETURN callbacks in C (the stepper's common case), or None."""
call_hooks: Any = None if _chook is None else _chook.call_hooks
"""A run's four ``CallHook`` (start, return, resume, yield) in one call, or None."""
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


class PyBlocks:
    """Gas by basic blocks: what ``call`` level charges instead of taking an
    ``INSTRUCTION`` event per instruction (the reference of ``_chook.Blocks``).

    A code object in ``tables`` (id(code) -> ``vm.sites.block_counts``) sends
    ``BRANCH``/``JUMP`` events, which this object is the callback of, and its
    returns; between two of them its frame runs straight on, so the instructions
    from where it last came to (``pos``) through the jump are charged to
    ``meter`` at once.  One entry per live frame of such code, innermost last;
    only the innermost can owe instructions (``enter`` settles it before another
    frame in scope starts), and it owes them until its next jump, return or
    exception -- or until ``flush`` reads where it stands (its frame's
    ``f_lasti``), before anyone reads the gas.  ``fallback(code, src, dest)``
    gets a jump this cannot follow (another thread, a frame it does not know):
    the stepper then counts by instructions again."""

    __slots__ = ("fallback", "meter", "stack", "tables", "thread")

    def __init__(self, meter: Any, tables: dict[int, bytes],
                 fallback: Callable[[CodeType, int, int], object], thread: int) -> None:
        self.meter = meter
        self.tables = tables
        self.fallback = fallback
        self.thread = thread
        self.stack: list[list[Any]] = []  # [code, counts, pos]

    def __call__(self, code: CodeType, src: int, dest: int) -> object:
        stack = self.stack
        if not stack or stack[-1][0] is not code or get_ident() != self.thread:
            return self.fallback(code, src, dest)
        top = stack[-1]
        self._charge(top, src)
        top[2] = dest
        return None

    def _charge(self, top: list[Any], upto: int) -> None:
        counts = top[1]
        last = len(counts) - 1
        owed = counts[min(upto // 2 + 1, last)] - counts[min(top[2] // 2, last)]
        if owed > 0:
            self.meter.used += owed
        if upto + 2 > top[2]:
            top[2] = upto + 2

    def push(self, code: CodeType, pos: int) -> None:
        """A frame of counted code that runs from ``pos`` on (the one that called
        ``start``: after its call)."""
        self.stack.append([code, memoryview(self.tables[id(code)]).cast("I"), pos])

    def enter(self, code: CodeType, caller: FrameType | None, pos: int) -> None:
        """A frame of in-scope ``code`` starts (or resumes) below ``caller``:
        the innermost counted frame is settled first (it is at its call), then
        the new frame is pushed, counted from ``pos`` on, when its code is
        counted (``pos``: 0, or where ``PY_START`` came when the code was not
        instrumented yet: what ran before was not charged)."""
        self.flush(caller)
        if id(code) in self.tables:
            self.push(code, pos)

    def flush(self, frame: FrameType | None) -> None:
        """Charge the innermost counted frame through where it stands: its frame
        found from ``frame`` outwards."""
        if not self.stack:
            return
        top = self.stack[-1]
        want = top[0]
        while frame is not None and frame.f_code is not want:
            frame = frame.f_back
        if frame is not None and frame.f_lasti >= 0:
            self._charge(top, frame.f_lasti)

    def charge(self, code: CodeType, offset: int) -> None:
        """An exception at ``offset`` of ``code``'s frame: it ran through there."""
        stack = self.stack
        if stack and stack[-1][0] is code:
            self._charge(stack[-1], offset)

    def leave(self, code: CodeType, offset: int) -> None:
        """A frame of ``code`` returns (``offset``: its return) or unwinds."""
        stack = self.stack
        if stack and stack[-1][0] is code:
            self._charge(stack.pop(), offset)

    def clear(self) -> None:
        self.stack.clear()

    @property
    def frames(self) -> list[tuple[CodeType, int]]:
        """[(code, pos)] of the frames counted, innermost last."""
        return [(code, pos) for code, _, pos in self.stack]


Blocks: Any = PyBlocks if _chook is None else getattr(_chook, "Blocks", PyBlocks)
"""Gas by basic blocks (C when the hook is)."""


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
        if gas <= 0 and out_of_gas(code, offset) is disable:
            return None  # halted at a POP_EXCEPT: raised at the next instruction
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
        if used >= meter.limit and out_of_gas(code, offset) is disable:
            return None  # halted at a POP_EXCEPT: raised at the next instruction
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
    may_disable: bool,
    op_line: Callable[[OpStart, int, int], bool] | None = None,
    meter: Any = None,
    skip: object = None,
) -> Callable[[CodeType, int], Any]:
    """The per-instruction callback: in C when built (and then passing on a
    tracer's ``DISABLE`` when ``may_disable``), else the Python reference (which
    the stepper uses only for tracers that never answer ``DISABLE``).  (Positional
    arguments, here and to the C type: keywords cost every start ~0.8 µs.)"""
    if InstructionHook is not None:
        return InstructionHook(  # type: ignore[no-any-return]
            sites, vm, tracer, missing, out_of_gas, failed, disable, may_disable, op_line,
            meter, skip,
        )
    return python_instruction_hook(
        sites, vm, tracer, missing, out_of_gas, failed, disable, op_line, meter, skip
    )
