"""Stubs of ``blocktrace.vm._chook``: the stepper's per-instruction callback in C."""

from collections.abc import Callable
from types import CodeType
from typing import Any, Final, final

CACHE: Final[int]
"""1 when this interpreter's dict watcher was had: hooks keep a one-entry code cache."""
PLAIN_ATTRIBUTES: Final[int]
"""1 when this interpreter's type watcher was had: ``vm.gas`` and ``vm.site`` are read
and written in vm's instance dict when they are plain instance attributes."""

def discard(vm: object, event: object, /) -> None:
    """``blocktrace.discard_trace`` without a Python frame: does nothing."""

def call_hooks(
    vm: Any,
    meter: Meter,
    entries: dict[int, tuple[Any, Any, Any, int]],
    resumes: dict[int, tuple[Any, Any, Any, int]],
    on_start: Callable[..., Any],
    on_return: Callable[..., Any],
    on_resume: Callable[..., Any],
    on_yield: Callable[..., Any],
    failed: Callable[[Any, CodeType, int, object, BaseException], object],
    line: Callable[[bytes], object] | None,
    render: Callable[[object], bytes] | None,
    room: int,
    thread: int,
    max_str: int,
    values: bool,
    outside: dict[str, bool] | None,
    disable: object,
    blocks: Blocks | None,
    /,
) -> tuple[CallHook, CallHook, CallHook, CallHook]:
    """The stepper's four ``CallHook`` of a run, kinds 0-3 (start, return, resume,
    yield), as ``CallHook(kind, vm, meter, entries, fallback, failed, line=line,
    ...)`` would make them -- ``resumes`` the entries of kind 2, ``outside`` and
    ``disable`` for kind 0 only, ``blocks`` for kinds 0-2 -- in one call."""

@final
class Meter:
    """The stepper's step budget: ``used`` instructions of ``limit``; ``gas`` is
    limit - used (an InstructionHook given it charges it without an int object)."""

    used: int
    @property
    def limit(self) -> int: ...
    gas: int
    def __new__(cls, limit: int) -> Meter: ...


@final
class InstructionHook:
    """The per-instruction ``sys.monitoring`` callback: ``hook(code, offset)`` does
    what ``blocktrace.vm.stepper.python_instruction_hook``'s closure does."""

    sites: Final[dict[int, list[Any]]]
    vm: Final[Any]
    tracer: Final[Callable[[Any, Any], object]]
    missing: Final[Callable[[CodeType, int], Any]]
    out_of_gas: Final[Callable[[CodeType, int], object]]
    failed: Final[Callable[[BaseException], object]]
    disable: Final[object]

    def __new__(
        cls,
        sites: dict[int, list[Any]],
        vm: Any,
        tracer: Callable[[Any, Any], object],
        missing: Callable[[CodeType, int], Any],
        out_of_gas: Callable[[CodeType, int], object],
        failed: Callable[[BaseException], object],
        disable: object,
        *,
        may_disable: bool = False,
        op_line: Callable[[Any, int, int], bool] | None = None,
        meter: Meter | None = None,
        skip: object = None,
    ) -> InstructionHook: ...
    @property
    def op_line(self) -> Callable[[Any, int, int], bool] | None: ...
    @property
    def meter(self) -> Meter | None: ...
    @property
    def skip(self) -> object: ...
    @property
    def sink(self) -> object:
        """op_line's object when op_line is a sink's ``op`` whose C entry the hook
        calls in its place (blocktrace/events/csrc/sink.h), else None."""
    def __call__(self, code: CodeType, offset: int, /) -> Any: ...


@final
class CallHook:
    """The stepper's PY_START (``kind`` 0), PY_RETURN (1), PY_RESUME (2) or
    PY_YIELD (3) callback in C for the common case: keeps ``vm.depth`` and writes
    the call (resume) or return (yield) line through ``line`` from ``entries``
    (id(code) -> (call or resume event, its line's prefix, suffix, code index));
    ``fallback`` (the stepper's Python callback) gets every event it does not
    handle, ``failed(event, code, offset, value, exc)`` a failed line (``event``
    None or "yield" for a return or yield line; see blocktrace/vm/_chook.c).
    ``values`` False: return lines without their value member (nothing rendered).
    ``outside`` (kind 0, with ``disable``): the scope's decisions by file name; a
    code object not in ``entries`` whose file is decided out of scope gets
    ``disable`` without the fallback."""

    entries: Final[dict[int, tuple[Any, Any, Any, int]]]
    @property
    def sink(self) -> object:
        """line's object when line is a sink's whose C entry the hook calls in its
        place (blocktrace/events/csrc/sink.h), else None."""

    def __new__(
        cls,
        kind: int,
        vm: Any,
        meter: Meter,
        entries: dict[int, tuple[Any, Any, Any, int]],
        fallback: Callable[..., Any],
        failed: Callable[[Any, CodeType, int, object, BaseException], object],
        *,
        line: Callable[[bytes], object] | None = None,
        render: Callable[[object], bytes] | None = None,
        room: int = 0,
        thread: int = 0,
        max_str: int = 200,
        values: bool = True,
        outside: dict[str, bool] | None = None,
        disable: object = None,
        blocks: Blocks | None = None,
    ) -> CallHook: ...
    def __call__(self, code: CodeType, offset: int, value: object = ..., /) -> Any: ...


@final
class Blocks:
    """Gas by basic blocks at ``call`` level: ``blocktrace.vm.hook.PyBlocks`` in C
    (the BRANCH and JUMP callback; CallHook's ``blocks`` settles and pushes at a
    start, charges and pops at a return)."""

    meter: Final[Meter]
    tables: Final[dict[int, bytes]]
    thread: Final[int]
    @property
    def frames(self) -> list[tuple[CodeType, int]]: ...
    def __new__(
        cls,
        meter: Meter,
        tables: dict[int, bytes],
        fallback: Callable[[CodeType, int, int], object],
        thread: int,
    ) -> Blocks: ...
    def __call__(self, code: CodeType, src: int, dest: int, /) -> Any: ...
    def push(self, code: CodeType, pos: int, /) -> None: ...
    def enter(self, code: CodeType, caller: Any, pos: int, /) -> None: ...
    def flush(self, frame: Any, /) -> None: ...
    def charge(self, code: CodeType, offset: int, /) -> None: ...
    def leave(self, code: CodeType, offset: int, /) -> None: ...
    def clear(self) -> None: ...


@final
class ScopeFilter:
    """An exception event's callback (RAISE, RERAISE, EXCEPTION_HANDLED, PY_UNWIND,
    PY_THROW) that calls ``fallback(code, offset, exc)`` only for code in scope
    (id(code) in ``infos``) or, ``exit`` 1, a ``SystemExit``; ``exit`` 2, a
    ``SystemExit`` or ``vm.exit_exception``; None otherwise."""

    fallback: Final[Callable[[CodeType, int, BaseException], object]]

    def __new__(
        cls,
        infos: dict[int, Any],
        fallback: Callable[[CodeType, int, BaseException], object],
        vm: Any,
        exit: int = 0,
    ) -> ScopeFilter: ...
    def __call__(self, code: CodeType, offset: int, exc: BaseException, /) -> Any: ...
