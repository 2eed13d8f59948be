"""How the runner trims the traceback of an uncaught exception (blocktrace.vm.runner)."""

from __future__ import annotations

import os
import sys
from types import FrameType, TracebackType

from blocktrace.vm import runner

_OURS = os.path.join(os.path.dirname(os.path.abspath(runner.__file__)), "stepper.py")


def _frame_in(filename: str, name: str) -> FrameType:
    """A live frame whose code claims to come from ``filename``."""
    namespace: dict[str, object] = {"sys": sys}
    exec(compile(f"def {name}():\n    return sys._getframe()\n", filename, "exec"), namespace)
    frame = namespace[name]()  # type: ignore[operator]
    assert isinstance(frame, FrameType)
    return frame


def _chain(*frames: FrameType) -> TracebackType:
    tb = None
    for frame in reversed(frames):
        tb = TracebackType(tb, frame, 0, frame.f_lineno)
    assert tb is not None
    return tb


def _names(tb: TracebackType | None) -> list[str]:
    out = []
    while tb is not None:
        out.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return out


def test_leading_frames_of_blocktrace_go_and_a_ctrl_c_ends_in_the_program() -> None:
    ours_run = _frame_in(_OURS, "run_program")
    program_main = _frame_in("/somewhere/prog.py", "main")
    program_work = _frame_in("/somewhere/prog.py", "work")
    callback = _frame_in(_OURS, "_on_return")
    generated = _frame_in("<string>", "__init__")  # a dataclass's __init__, called by us
    tb = _chain(ours_run, program_main, program_work, callback, generated)
    assert _names(runner._trim(tb)) == ["main", "work", "_on_return", "__init__"]
    tb = _chain(ours_run, program_main, program_work, callback, generated)
    assert _names(runner._trim(tb, trailing=True)) == ["main", "work"]


def test_python_dash_m_frames_of_runpy_stay() -> None:
    ours_run = _frame_in(_OURS, "run_program")
    runpy_main = _frame_in("<frozen runpy>", "_run_module_as_main")
    runpy_code = _frame_in("<frozen runpy>", "_run_code")
    program = _frame_in("/somewhere/prog.py", "module_code")
    tb = _chain(ours_run, runpy_main, runpy_code, program)
    assert _names(runner._trim(tb)) == ["_run_module_as_main", "_run_code", "module_code"]
    other_runpy = _frame_in("<frozen runpy>", "run_path")
    tb = _chain(ours_run, other_runpy, runpy_code, program)
    assert _names(runner._trim(tb)) == ["module_code"]
