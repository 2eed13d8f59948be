"""What the view reads from code objects: which instructions can start a
settrace-style "line", an instruction's name and line, the frame running a code."""

from __future__ import annotations

import dis
import sys
import weakref
from types import CodeType, FrameType
from typing import Any, cast

from blocktrace.tracers import VMState

_BACK = frozenset(dis.opmap[name] for name in ("JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
                  if name in dis.opmap)


_WATCHED: weakref.WeakKeyDictionary[CodeType, frozenset[int]] = weakref.WeakKeyDictionary()
"""``_watched`` per code object, across runs (a code object's bytecode never
changes; the cache keeps no code object alive)."""


def _watched_cached(code: CodeType | None) -> frozenset[int]:
    if code is None:
        return frozenset()
    watch = _WATCHED.get(code)
    if watch is None:
        watch = _WATCHED[code] = _watched(code)
    return watch


def _watched(code: CodeType | None) -> frozenset[int]:
    """The offsets of ``code`` at which a settrace-style "line" can start: the
    first instruction of each line range, jump targets and exception handlers
    (entered from another line or from further on), the first instruction and
    the one after each ``RESUME`` (a generator resuming), and the jumps back to
    a target on their own line (the target is a new "line" because it comes
    again).  Every other instruction is only reached by falling through from
    the one before it, on the same line and going forward, so it can never make
    a block; a jump back from another line makes the target's line differ."""
    if code is None:
        return frozenset()
    out = {0}
    line_of: dict[int, int | None] = {}
    for start, end, line in code.co_lines():
        out.add(start)
        for offset in range(start, end, 2):
            line_of[offset] = line
    bytecode = dis.Bytecode(code)
    out.update(entry.target for entry in cast(Any, bytecode).exception_entries)
    after_resume = False
    for ins in bytecode:
        if after_resume or ins.is_jump_target:
            out.add(ins.offset)
        elif ins.opcode in _BACK:
            here = line_of.get(ins.offset)
            there = line_of.get(cast(int, ins.argval))
            if here is None or there is None or here == there:
                out.add(ins.offset)
        after_resume = ins.opname == "RESUME"
    return frozenset(out)


def _frame_at(code: CodeType, vm: VMState, up: int) -> FrameType | None:
    """The live frame running ``code``: looked for from ``up`` frames above the
    caller (where the stepper's callback was called from), a few frames on,
    else found by ``vm.frame``."""
    try:
        f: FrameType | None = sys._getframe(up + 1)
    except ValueError:
        f = None
    for _ in range(4):
        if f is None:
            break
        if f.f_code is code:
            return f
        f = f.f_back
    return vm.frame


def _opname(code: CodeType | None, offset: int) -> str:
    if code is None:
        return ""
    raw = code.co_code
    if 0 <= offset < len(raw):
        return dis.opname[raw[offset]]
    return f"<{offset}>"


def _line_at(code: CodeType | None, offset: int) -> int:
    if code is None:
        return 0
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line or code.co_firstlineno
    return code.co_firstlineno
