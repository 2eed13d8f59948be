"""``SnapshotTracer``: the program's state at every step of the user's source.

A *step* is what Python Tutor and willow call one: before a new line of the
user's code runs (a backward jump to the same line counts, as in
``sys.settrace``), when a function of it is called, when one returns or yields,
and where an exception is raised.  Each step records the stack of the user's
frames with their variables, the heap objects those reach (see
:mod:`blocktrace.snapshot.heap`) and the cumulative output.

Only the user's code makes steps: the engine sends events for in-scope code
only, so library code neither shows up nor counts.  When ``max_steps`` steps
have been recorded, the next one becomes a final ``step_limit`` step and the
tracer raises :class:`blocktrace.HaltRun`, which the engine keeps raising at
every further instruction, so ``except BaseException`` cannot carry on.
"""

from __future__ import annotations

import dis
from collections.abc import Callable
from types import FrameType
from typing import Any

import msgspec

from blocktrace.events import CallStart, OpException, OpStart, Return, TraceEvent
from blocktrace.snapshot.heap import HeapEncoder, clean_text
from blocktrace.snapshot.model import ErrorInfo, Frame, HeapObject, LimitName, Step
from blocktrace.snapshot.streams import CappedOutput
from blocktrace.tracers import VMState
from blocktrace.vm import HaltRun

_RESUME = dis.opmap["RESUME"]

__all__ = ["SnapshotTracer"]

_NOTHING = object()


class _FrameState:
    """Per-frame bookkeeping for line steps, indexed by depth."""

    __slots__ = ("fid", "line", "name", "pc")

    def __init__(self, fid: int, name: str, line: int) -> None:
        self.fid = fid
        self.name = name
        self.line = line
        self.pc = -1


class SnapshotTracer:
    """Records snapshot steps of one run and hands each to ``emit`` as JSON bytes.

    ``emit=None`` keeps counting and limiting steps without recording them (the
    ``format: trace`` mode, where the trace itself is the record).  Steps are
    encoded as soon as they are taken, so later changes of the program's
    objects cannot alter them, and their total size is bounded by
    ``max_bytes``.
    """

    wants_op_end = False
    may_disable = False

    def __init__(
        self,
        *,
        max_steps: int,
        output: CappedOutput,
        emit: Callable[[bytes], None] | None = None,
        max_bytes: int = 16 * 1024 * 1024,
        encoder: HeapEncoder | None = None,
    ) -> None:
        self.max_steps = max_steps
        self.output = output
        self.emit = emit
        self.max_bytes = max_bytes
        self.heap = encoder or HeapEncoder()
        self.steps = 0
        """Steps taken so far (recorded or not)."""
        self.halted: LimitName | None = None
        """The limit that stopped the run, once one has."""
        self.cpu_exceeded = False
        """Set from the ``SIGXCPU`` handler; the run stops at the next step."""
        self.bytes = 0
        self.last_line = 0
        self._frames: list[_FrameState] = []
        self._codes: dict[int, object] = {}
        self._next_fid = 0
        self._last_stack: list[Frame] = []
        self._last_heap: dict[str, HeapObject] = {}
        self._json = msgspec.json.Encoder()

    def __call__(self, vm: VMState, event: TraceEvent, /) -> None:
        if self.halted is not None:
            return
        if vm.thread != 1:  # steps are recorded for the thread that started tracing
            if type(event) is OpStart and event.line_start:
                self._count_only(event.line)
            return
        t = type(event)
        if t is OpStart:
            self._on_op(vm, event)  # type: ignore[arg-type]
        elif t is CallStart:
            self._on_call(vm, event)  # type: ignore[arg-type]
        elif t is Return:
            self._on_return(vm, event)  # type: ignore[arg-type]
        elif t is OpException:
            ex: OpException = event  # type: ignore[assignment]
            if ex.kind == "raise":
                error = ErrorInfo(type=clean_text(ex.error_type), message=clean_text(ex.message),
                                  line=ex.line or None)
                self._step(vm, "exception", ex.line, error=error)

    # -- events -------------------------------------------------------------

    def _frame_state(self, vm: VMState) -> _FrameState:
        depth = vm.depth
        frames = self._frames
        if len(frames) > depth:
            del frames[depth:]
        while len(frames) < depth:
            self._next_fid += 1
            frames.append(_FrameState(self._next_fid, "?", 0))
        return frames[depth - 1]

    def _on_call(self, vm: VMState, ev: CallStart) -> None:
        code = vm.code
        if code is not None:
            self._codes[id(code)] = code
        depth = vm.depth
        del self._frames[max(0, depth - 1) :]
        self._next_fid += 1
        # A function's def line is its "call" step, and the first instruction after
        # its RESUME makes a line step, as sys.settrace's first "line" event (and so
        # Python Tutor's and willow's): the next line for a function, its own line
        # for a lambda, a class body or a generator expression.  A generator resumed
        # (or thrown into) makes a "call" step at the line it goes on from, as
        # sys.settrace's "call" does.  A module's first line is a line step.
        kind = ev.kind
        if kind == "resume" or kind == "throw":
            frame = vm.frame
            first = (frame.f_lineno if frame is not None else None) or ev.first_line
        else:
            first = 0
        self._frames.append(_FrameState(self._next_fid, ev.name, first))
        if ev.name != "<module>" and kind != "enter":
            self._step(vm, "call", first or ev.first_line)

    def _on_op(self, vm: VMState, ev: OpStart) -> None:
        fs = self._frame_state(vm)
        line = ev.line
        if ev.op == _RESUME and fs.line == 0:  # a call's start: its step is the call step
            return
        if line and (line != fs.line or ev.pc <= fs.pc):  # a new line, or a jump back
            fs.line = line
            fs.pc = ev.pc
            self._step(vm, "line", line)
        else:
            fs.pc = ev.pc

    def _on_return(self, vm: VMState, ev: Return) -> None:
        fs = self._frame_state(vm)
        if ev.kind != "unwind":
            self._step(vm, "return", fs.line, returned=ev.value)
        del self._frames[max(0, vm.depth - 1) :]

    def _count_only(self, line: int) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            self._halt("steps", line, None)

    # -- steps --------------------------------------------------------------

    def _step(
        self, vm: VMState, event: Any, line: int, *, error: ErrorInfo | None = None,
        returned: object = _NOTHING,
    ) -> None:
        if self.steps >= self.max_steps:
            self._halt("steps", line, vm.frame)
        if self.output.exceeded:
            self._halt("output", line, vm.frame)
        if self.cpu_exceeded:
            self._halt("cpu_time", line, vm.frame)
        self.steps += 1
        self.last_line = line
        if self.emit is None:
            return
        try:
            data = self._encode(vm.frame, event, line, error, returned)
        except Exception:  # an unencodable step is left out; the run goes on
            return
        self.bytes += len(data)
        if self.bytes > self.max_bytes:
            self._halt("output", line, None)
        self.emit(data)

    def _encode(
        self, frame: FrameType | None, event: Any, line: int, error: ErrorInfo | None,
        returned: object,
    ) -> bytes:
        stack = self._stack(frame, line, returned)
        heap = self.heap.heap()
        self._last_stack, self._last_heap = stack, heap
        name = stack[-1].name if stack else "<module>"
        step = Step(
            event=event, line=line, function=name, stack=stack, heap=heap,
            stdout=self.output.getvalue(), error=error,
        )
        return self._json.encode(step)

    def _stack(self, frame: FrameType | None, line: int, returned: object) -> list[Frame]:
        user: list[FrameType] = []
        f = frame
        while f is not None:
            if id(f.f_code) in self._codes:
                user.append(f)
            f = f.f_back
        user.reverse()
        states = self._frames
        out: list[Frame] = []
        for i, fr in enumerate(user):
            top = i == len(user) - 1
            fid = states[i].fid if len(states) == len(user) else i + 1
            module = fr.f_code.co_name == "<module>"
            variables = self._variables(fr, module)
            if top and returned is not _NOTHING and not module:
                variables["__return__"] = self.heap.value(returned)
            at = line if top else fr.f_lineno or 0
            name = clean_text(fr.f_code.co_qualname)
            out.append(Frame(id=fid, name=name, line=at, variables=variables))
        return out

    def _variables(self, frame: FrameType, module: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        names = frame.f_globals if module else frame.f_locals
        for name, value in dict.items(names) if type(names) is dict else names.items():
            if type(name) is not str:
                continue
            if name.startswith("__") and name.endswith("__"):
                continue  # __name__, __builtins__, a class body's __qualname__ ...
            if name.startswith("."):
                continue
            out[clean_text(name)] = self.heap.value(value)
        return out

    def _halt(self, limit: LimitName, line: int, frame: FrameType | None) -> None:
        """Record the final step saying why, then stop the program."""
        self.halted = limit
        if limit == "steps":
            message = f"stopped after {self.max_steps} steps (the step limit)"
        elif limit == "cpu_time":
            message = "stopped: CPU time limit reached"
        elif self.output.exceeded:
            message = f"stopped: output over {self.output.limit} characters"
        else:
            message = f"stopped: response over {self.max_bytes} bytes"
        error = ErrorInfo(type="LimitExceeded", message=message, line=line or None)
        self.halt_error = error
        if self.emit is not None and self.bytes <= self.max_bytes:
            try:
                stack, heap = self._last_stack, self._last_heap
                if frame is not None:
                    stack = self._stack(frame, line, _NOTHING)
                    heap = self.heap.heap()
                step = Step(
                    event="step_limit" if limit == "steps" else "uncaught_exception", line=line,
                    function=stack[-1].name if stack else "<module>", stack=stack, heap=heap,
                    stdout=self.output.getvalue(), error=error,
                )
                self.emit(self._json.encode(step))
            except Exception:
                pass
        raise HaltRun(f"snapshot {limit} limit")

    def final_step(self, error: ErrorInfo) -> None:
        """Record the ``uncaught_exception`` step after the program has ended
        (the stack and heap are those of the last step)."""
        if self.emit is None:
            return
        stack, heap = self._last_stack, self._last_heap
        step = Step(
            event="uncaught_exception", line=error.line or self.last_line,
            function=stack[-1].name if stack else "<module>", stack=stack, heap=heap,
            stdout=self.output.getvalue(), error=error,
        )
        self.emit(self._json.encode(step))
