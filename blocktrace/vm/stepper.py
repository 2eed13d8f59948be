"""The stepper: sys.monitoring callbacks turned into trace events.

One ``Stepper`` owns a sys.monitoring tool id and every callback on it, and is
the ``vm`` object tracers read dynamic state from.  How it stays cheap:

- ``PY_START`` is the only event on globally (plus the exception events, which
  CPython cannot enable per code object); out-of-scope code answers ``DISABLE``
  at its first start and is never seen again.
- ``INSTRUCTION`` and return/yield/resume are enabled locally, only on in-scope
  code objects.
- Per code object, once: a table offset -> prebuilt ``OpStart``
  (:mod:`blocktrace.vm.sites`).  The
  per-instruction path is one dict lookup keyed by ``id(code)`` (code objects
  hash their contents: a dict keyed by the code object itself costs ten times
  more), one list index, a gas check and the tracer call.
- Gas lives in a ``Meter`` (C when the hook is), charged per instruction
  without an int object; ``vm.gas`` reads it.
- Levels: the active tracer's ``level`` picks the site tables (``CodeInfo.table``):
  at ``line`` and ``call`` an instruction the level does not report is ``SKIP``,
  which the hook only charges -- no event, no tracer call.
- The per-instruction callback is C when built, its Python reference otherwise
  (:mod:`blocktrace.vm.hook`).  Rare modes (several threads, ``target``,
  ``OpEnd``, tracers that may disable sites, a halted run) swap in a general
  callback instead of testing flags on the fast path.

Nothing from here reaches the traced program except :class:`HaltRun`.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
import threading
import time
import weakref
from _thread import get_ident
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import msgspec

from blocktrace import no_raise, own_threads
from blocktrace.events import (
    CallKind,
    ExceptionKind,
    OpEnd,
    OpException,
    OpStart,
    Return,
    ReturnKind,
    Stop,
)
from blocktrace.tracers import (
    Level,
    _active,
    _swap,
    at_recursion_limit,
    belongs_to_program,
    capabilities_of,
    discard_trace,
)
from blocktrace.tracers.depth import CALLBACK_ROOM, ROOM, counter
from blocktrace.tracers.render import Renderer
from blocktrace.vm import hook as hook_module
from blocktrace.vm.hook import (
    C_HOOK,
    Blocks,
    CallHook,
    Meter,
    ScopeFilter,
    call_hooks,
    direct_callable,
    instruction_hook,
)
from blocktrace.vm.scope import Scope
from blocktrace.vm.signals import BLOCKTRACE_DIR, SignalRelays
from blocktrace.vm.sites import RESUME, SKIP, CodeInfo, block_counts, code_info, site_from_bytes

__all__ = ["UNLIMITED_GAS", "HaltRun", "OutOfGas", "Stepper", "active_stepper"]

_encode = msgspec.json.Encoder().encode
_OWN_FILES = frozenset({__file__, hook_module.__file__})
"""The stepper's callbacks live here: a frame of these files on a thread's stack is
a callback in progress (the stepper never runs the program's code itself)."""
_PACKAGE_DIR = os.path.dirname(os.path.dirname(__file__)) + os.sep
_GO_MULTI_WAIT = 1.0
"""At most this long (seconds) a new thread waits for the first to leave a callback."""
_GO_MULTI_NAP = 0.0001


def _in_callback(ident: int) -> bool:
    """Whether thread ``ident`` is inside one of the stepper's callbacks: a frame of
    the stepper's own files anywhere on its stack, or blocktrace code on top (a
    tracer called by a C hook); a thread at its own code is between two events
    (a C hook, without a Python frame, cannot lose the GIL half-way)."""
    frame: FrameType | None = sys._current_frames().get(ident)
    if frame is not None and (frame.f_code.co_name, frame.f_code.co_filename) == (
        "serialised", __file__
    ):
        return False  # a serialised callback waiting for the lock: it has not begun
    top = True
    while frame is not None:
        path = frame.f_code.co_filename
        if path in _OWN_FILES or (top and path.startswith(_PACKAGE_DIR)):
            return True
        top = False
        frame = frame.f_back
    return False
_M = sys.monitoring
_E = _M.events
DISABLE = _M.DISABLE

UNLIMITED_GAS = 2**63 - 1

_LOCAL_EVENTS = _E.INSTRUCTION | _E.PY_RETURN | _E.PY_YIELD | _E.PY_RESUME
_UNCOUNTED_EVENTS = _LOCAL_EVENTS & ~_E.INSTRUCTION
"""A code object's local events when nobody asks for instructions: ``call`` level,
a tracer that does not count gas (``Capabilities.counts_gas``), no gas limit."""
_BLOCK_EVENTS = _E.PY_RETURN | _E.BRANCH | _E.JUMP
"""A code object's local events when its gas is counted by basic blocks (``call``
level, see ``vm.hook.PyBlocks``): its jumps and returns, not every instruction."""
_GLOBAL_EVENTS = (
    _E.PY_START | _E.PY_UNWIND | _E.PY_THROW | _E.RAISE | _E.RERAISE | _E.EXCEPTION_HANDLED
)
_SCOPED_EVENTS = frozenset((
    _E.PY_START, _E.PY_THROW, _E.PY_UNWIND, _E.RAISE, _E.RERAISE, _E.EXCEPTION_HANDLED,
))
"""Events sent for code out of scope too (global ones), the code object first."""
_CALLBACK_EVENTS = (
    _E.PY_START, _E.PY_RESUME, _E.PY_THROW, _E.PY_RETURN, _E.PY_YIELD, _E.PY_UNWIND,
    _E.RAISE, _E.RERAISE, _E.EXCEPTION_HANDLED, _E.INSTRUCTION, _E.BRANCH, _E.JUMP,
)
# Prefer the ids nobody standard claims; 0 (debugger) and 1 (coverage) last.
_TOOL_PREFERENCE = (3, 4, 2, 5, 1, 0)



_RAISE_OFFSET_OF_FRAME = sys.version_info >= (3, 13)
"""Whether a ``RAISE`` event's instruction is read from the raising frame.

On 3.13 the offset ``RAISE`` passes is the instruction's last code unit (its last
inline cache entry), except in a frame an exception passes through: there the
callee's frame has unwound into a ``CALL`` and the offset is one code unit before
the call, inside the instruction before it (``LOAD_CONST``, a load of the last
argument).  The frame's ``f_lasti`` names the ``CALL``.  3.12 passes the
instruction's own offset (its ``f_lasti``), so nothing is read there."""


def _raise_offset(code: CodeType, offset: int) -> int:
    """The offset of the instruction that raised in the nearest frame running ``code``
    (the callbacks' frames are above it); ``offset`` if there is none.  Once per
    ``RAISE`` event in scope, never per instruction."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    return offset if frame is None else frame.f_lasti

class _ThreadEnd:
    """Kept in ``_ends`` by a thread the stepper numbered: it dies as the thread
    ends (see ``_watch_end``)."""

    __slots__ = ("__weakref__",)


_ends = threading.local()
_end_refs: dict[int, weakref.ref[_ThreadEnd]] = {}


def _watch_end() -> None:
    """Tell the running stepper when the calling thread ends (once per thread and
    process).  CPython gives an ended thread's ident to a later thread; a
    ``threading.local``'s values of a thread go as the thread ends, before its
    ident can be given to another."""
    if getattr(_ends, "end", None) is None:
        ident = get_ident()
        _ends.end = end = _ThreadEnd()
        _end_refs[ident] = weakref.ref(end, functools.partial(_thread_ended, ident, _end_refs))


def _thread_ended(ident: int, refs: dict[int, Any], _ref: object) -> None:
    refs.pop(ident, None)
    stepper = _current  # (None at interpreter exit too)
    if stepper is not None:
        stepper._thread_ended(ident)


no_raise.CODE.add(_thread_ended.__code__)  # a weak reference's callback


class HaltRun(BaseException):
    """Raised into the traced program to end the run.

    A ``BaseException`` so that ``except Exception`` does not swallow it; once
    raised, every further in-scope instruction raises it again, so not even
    ``except BaseException`` lets the traced program carry on.  A tracer may
    raise it (a step limit of its own); the stepper raises :class:`OutOfGas`.
    """


class OutOfGas(HaltRun):
    """The step budget (``gas``) ran out."""


UNWINDING = frozenset({"PUSH_EXC_INFO", "POP_EXCEPT", "COPY", "RERAISE"})
"""The instructions a halted run lets run.  A halted run raises at every
instruction of the frames it unwinds (their ``except`` and ``finally`` bodies do
not run), but these are CPython's own bookkeeping of the exception being handled:
an ``except`` block's entry (``PUSH_EXC_INFO``) and its clean-up on the way out
(``COPY 3; POP_EXCEPT; RERAISE 1``).  No exception table entry covers
``POP_EXCEPT`` nor the clean-up (CPython's never raise), and the clean-up restores
what ``PUSH_EXC_INFO`` saved: an exception raised in between would leave an
``except`` block's exception as the handled one for good (``sys.exception()`` and
the next exception's ``__context__``, in the frames it unwinds to).  None of them
runs any of the program's code (``COPY`` elsewhere only copies a stack entry)."""


def exception_text(exc: BaseException, renderer: Renderer) -> tuple[str, str]:
    """(type name, message) without running the program's ``__str__``."""
    t = type(exc)
    name = t.__qualname__ if type(t.__qualname__) is str else "BaseException"
    try:
        args = BaseException.__getattribute__(exc, "args")
        if t.__module__ == "builtins" and all(
            type(a) in (str, int, float, bool, type(None)) for a in args
        ):
            msg = BaseException.__str__(exc) if not isinstance(exc, OSError) else str(exc)
        elif len(args) == 1 and type(args[0]) is str:
            msg = args[0]
        elif not args:
            msg = ""
        else:
            msg = renderer.text(args)
    except BaseException as error:
        if not isinstance(error, RecursionError) and belongs_to_program(error):
            raise
        msg = "<unrenderable>"
    if len(msg) > 500:
        msg = msg[:500] + "…"
    return name, msg


_lock = threading.Lock()
_current: Stepper | None = None

HOLD_EVENTS = 32
"""How many events the stepper ``set_tracer`` starts holds back at most (see
``Stepper.start``)."""


def _room_address(room: Any) -> tuple[int, int]:
    """(this thread's ident, the address of its count of frames left -- ``room``,
    this thread's ``counter()`` -- or 0 where it cannot be found): what the C call
    hooks read to refuse a frame at the recursion limit as ``Stepper._on_start``
    does (see ``Stepper._refuse``)."""
    if room is None:
        return get_ident(), 0
    import ctypes  # loaded already: counter() uses it

    return get_ident(), ctypes.addressof(room)


class _StopAtExit:
    """Stops the running stepper at interpreter exit, with the program's outcome,
    so that the tracer seals its record (as coverage.py saves its data at exit).
    Registered with ``atexit`` at the first start: handlers the program registers
    later run before it, traced."""

    def __init__(self) -> None:
        self.armed = False

    def arm(self) -> None:
        if not self.armed:
            self.armed = True
            atexit.register(self)

    def __call__(self) -> None:
        stepper = _current
        if stepper is not None:
            stepper.stop(*stepper.exit_outcome())


_stop_at_exit = _StopAtExit()


class _TurnedOff:
    """What this process's steppers turned off with ``DISABLE`` since the last
    ``sys.monitoring.restart_events()``.  A run turns back on (``back_on``) only
    what the next one might report: code out of another scope, sites a tracer
    turned off, code whose scope was its caller's.  Code out of every scope
    (blocktrace's own) and code out of the same scope stay off: a run does not
    pay a callback for each again (restarting also makes every code object
    re-instrument itself in full)."""

    def __init__(self) -> None:
        self.scope: Scope | None = None
        """Code outside blocktrace was found out of this scope."""
        self.other = False
        """A ``DISABLE`` the next run might not give (a tracer's, a decision by caller)."""

    def note(self, scope: Scope, by_caller: bool) -> None:
        """Code outside blocktrace turned off under ``scope``."""
        if by_caller:
            self.other = True
        elif self.scope is None:
            self.scope = scope
        elif self.scope is not scope:
            if _same_scope(self.scope, scope):
                self.scope = scope  # the same decisions: the next note is an identity test
            else:
                self.other = True

    def back_on(self, scope: Scope) -> None:
        """Before a run (or a change of scope) under ``scope``."""
        if self.other or (
            self.scope is not None and self.scope is not scope
            and not _same_scope(self.scope, scope)
        ):
            _M.restart_events()
            self.scope = None
            self.other = False


def _same_scope(a: Scope, b: Scope) -> bool:
    """Whether two scopes decide alike (the same resolved paths and target)."""
    return (
        a.include == b.include and a.exclude == b.exclude and a.target_name == b.target_name
        and a.target_file == b.target_file and a.target_module == b.target_module
    )


_turned_off = _TurnedOff()


def _runs_elsewhere(code: CodeType, own: FrameType | None) -> bool:
    """Whether a frame of ``code`` other than ``own`` runs on any thread."""
    for frame in sys._current_frames().values():
        f: FrameType | None = frame
        while f is not None:
            if f.f_code is code and f is not own:
                return True
            f = f.f_back
    return False


def gas_limit(gas: int | None) -> int:
    """The step budget ``gas`` asks for (``None``: unlimited), checked."""
    limit = UNLIMITED_GAS if gas is None else gas
    if not 0 <= limit < 2**64:
        raise ValueError(f"gas must be 0 to 2**64-1 steps, not {gas}")
    return limit


def active_stepper() -> Stepper | None:
    """The running stepper, if any (one per process at a time)."""
    return _current


class Stepper:
    """Runs the traced scope under sys.monitoring and is the ``vm`` of every event.

    ``gas``: the step budget (``None`` for unlimited).  Attributes read by
    tracers are documented on :class:`blocktrace.VMState`.
    """

    def __init__(
        self,
        scope: Scope | None = None,
        gas: int | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self.scope = scope if scope is not None else Scope()
        self.gas_limit = UNLIMITED_GAS if gas is None else gas_limit(gas)
        self._meter = Meter(self.gas_limit)
        """The budget and the instructions charged (C when the hook is: no int
        object per instruction); ``gas`` reads it."""
        self.depth = 0
        self.thread = 1
        self.threads_seen = 1
        self.thread_ident = get_ident()
        self.site: Any = None
        """The event being handled (``code`` and ``offset`` are derived from it)."""
        self._offset = 0
        self._by_index: dict[int, CodeType] = {}
        self.renderer = renderer if renderer is not None else Renderer()
        self.failures: list[str] = []
        self.halted: HaltRun | None = None
        self._pending: HaltRun | None = None
        """An ``OutOfGas`` recorded at an ``UNWINDING`` instruction, raised at the next
        instruction that is not one."""
        self.started_ns = 0
        self.elapsed_ns = 0
        self._tool: int | None = None
        self._infos: dict[int, CodeInfo] = {}
        self._sites: dict[int, list[Any]] = {}
        """id(code) -> the site table of ``_level`` (see ``CodeInfo.table``)."""
        self._level: Level = "op"
        """The active tracer's level: which events the hook produces."""
        self._local_events = _LOCAL_EVENTS
        """What each code object in scope sends: without ``INSTRUCTION`` when no
        instruction is reported or counted (see ``_UNCOUNTED_EVENTS``); those in
        ``_block_tables`` send ``_BLOCK_EVENTS`` while ``_blocks`` counts."""
        self._blocks: Any = None
        """The run's ``Blocks`` while gas is counted by basic blocks (``call`` level,
        no gas limit, one thread, no rare mode: see ``_callbacks``), else None."""
        self._block_tables: dict[int, bytes] = {}
        """id(code) -> ``block_counts`` of the code objects ``_blocks`` counts."""
        self._blocks_off = False
        """Counting by blocks stopped in this run (it is not taken up again)."""
        self._thread_state: dict[int, tuple[int, int]] = {}  # ident -> (number, depth)
        self._mt_lock = threading.RLock()
        self._go_lock = threading.Lock()
        """Held while the callbacks go from single-thread to serialised (``_go_multi``)."""
        self._direct: Any = discard_trace
        """The active tracer as the stepper calls it (see ``_direct_callable``)."""
        self._op_line: Callable[[OpStart, int, int], bool] | None = None
        """The active tracer's ``op_line`` (see ``Capabilities``), passed to the hook."""
        self._multi = False
        self._quiet = False
        self._call_entries: dict[int, tuple[Any, Any, Any, int]] | None = None
        """With the C call hooks (``_c_call_hooks``): id(code) -> (call event, call line
        prefix, suffix, code index) of the code objects whose calls and returns they
        handle; filled at each code object's first call (see ``_note_call``)."""
        self._resume_entries: dict[int, tuple[Any, Any, Any, int]] | None = None
        """The same for resumes of generators and coroutines (their "resume" call
        event and pieces), filled at each code object's first resume."""
        self._call_pieces: Callable[[Any], tuple[bytes, bytes] | None] | None = None
        self._room_address = (0, 0)
        """(thread ident, address of its frames-left count or 0), for the C call hooks:
        where they find the room ``_room`` lends (``blocktrace.tracers.depth``)."""
        self._target = self.scope.target_name is not None
        self._op_end = False
        self._may_disable = False
        self._enter_live = False
        """The frame that called ``start`` (depth 1 on the first thread) still runs."""
        self._open_ops: dict[tuple[int, int], OpStart] = {}
        self._op_ends: dict[int, OpEnd] = {}
        self._held: list[tuple[Any, int, int, int, int, int]] | None = None
        """Events kept back while ``start()`` may still take over (see ``start``)."""
        self._held_for: object = discard_trace
        self._held_caps: Any = None
        """The capabilities of ``_held_for`` the start that holds read (``take_over``'s)."""
        self._room: Any = None
        """The starting thread's frames-left counter, while it is lent room."""
        self._room_thread = 0
        self._refused: CodeType | None = None
        self._relays = SignalRelays()
        self._filters: dict[str, Callable[..., Any]] = {}
        """The exception events' ``ScopeFilter`` callbacks, by method (see ``_in_scope``)."""
        self.exit_exception: BaseException | None = None
        """A ``SystemExit`` raised and not (yet) handled: how the program is ending."""

    def exit_outcome(self) -> tuple[str, str | None]:
        """(output, error) of ``Stop`` for a program that is ending now: the exit
        status as text and the uncaught exception or ``SystemExit``, if any."""
        uncaught = getattr(sys, "last_exc", None)  # set by the interpreter's report
        if uncaught is not None and not isinstance(uncaught, SystemExit):
            name, message = exception_text(uncaught, self.renderer)
            status = 130 if isinstance(uncaught, KeyboardInterrupt) else 1
            return str(status), f"{name}: {message}" if message else name
        leaving = self.exit_exception
        if isinstance(leaving, SystemExit):
            code = leaving.code
            if code is None:
                return "0", None
            status = code & 0xFF if isinstance(code, int) else 1
            return str(status), None if status == 0 else f"SystemExit: {code}"
        return "0", None

    # -- what tracers read ------------------------------------------------

    @property
    def gas(self) -> int:
        """Steps left in the budget (``gas_limit`` minus instructions executed)."""
        return self._meter.gas  # type: ignore[no-any-return]

    @gas.setter
    def gas(self, value: int) -> None:
        self._meter.gas = value

    @property
    def gas_used(self) -> int:
        return self._meter.used  # type: ignore[no-any-return]

    @property
    def level(self) -> Level:
        """The level of the events produced now (the active tracer's)."""
        return self._level

    @property
    def code(self) -> CodeType | None:
        """The code object of the current event (``None`` for ``Stop``)."""
        return self._by_index.get(getattr(self.site, "code", 0))

    @property
    def offset(self) -> int:
        """Bytecode offset of the current event."""
        site = self.site
        return site.pc if type(site) is OpStart else self._offset

    @property
    def frame(self) -> FrameType | None:
        """The live frame running ``self.code`` (walks the stack: slow)."""
        f: FrameType | None = sys._getframe(1)
        code = self.code
        while f is not None and f.f_code is not code:
            f = f.f_back
        return f

    def restart_events(self) -> None:
        """Re-enable every site a tracer turned off with ``DISABLE``."""
        _M.restart_events()

    # -- lifecycle ----------------------------------------------------------

    def start(self, stacklevel: int = 1, *, hold: bool = False) -> None:
        """Begin tracing; the frame ``stacklevel`` levels up is traced from here on
        if it is in scope (as depth 1).

        ``hold``: the stepper ``set_tracer`` starts when none runs.  It keeps its
        first events (at most ``HOLD_EVENTS`` instructions of the calling frame)
        before handing them to the tracer, so that a ``start()`` right after
        ``set_tracer`` takes over from it as if it had never run."""
        global _current
        with _lock:
            running = _current
        if running is not None and running._held is not None:
            running._abandon()  # started by set_tracer, nothing handed over yet
        with _lock:
            if _current is not None:
                raise RuntimeError("blocktrace is already tracing in this process")
            tool = self._claim_tool()
            _current = self
        _stop_at_exit.arm()
        self._held = [] if hold else None
        if hold:
            _active.started = self.stop
        self._held_for = _active.tracer
        self._tool = tool
        self.thread_ident = get_ident()
        self._thread_state = {self.thread_ident: (1, 0)}
        _watch_end()  # (a getattr, but at a thread's first start)
        # The program keeps its own depth (see blocktrace.tracers.depth); asked once
        # (a ctypes object over this thread's state; used again below).
        room = counter()
        self._room_address = _room_address(room)  # for the C call hooks, before they are made
        self._blocks, self._blocks_off = None, False
        self._block_tables.clear()
        _turned_off.back_on(self.scope)  # a DISABLE of an earlier run must not linger
        # The events go on first and PY_START's callback last (as in take_over): the
        # helpers below then run with the events on, as take_over and the learning
        # of the program's first calls run them, never seen (no PY_START callback)
        # -- CPython instruments a code object afresh each time it runs with the
        # events on after running with them off, or the other way round (~4 ns a
        # byte of bytecode on 3.12), and these were run both ways in every run.
        _M.set_events(tool, _GLOBAL_EVENTS)
        cbs = self._callbacks()
        first = cbs.pop(_E.PY_START)
        self._register(cbs)
        _active.watcher = self._tracer_swapped
        self.started_ns = time.perf_counter_ns()
        try:
            caller: FrameType | None = sys._getframe(stacklevel)
        except ValueError:
            caller = None
        self._enter_caller(caller)
        self._relays.install()  # a signal handler gets the program's frame (vm/signals.py)
        if room is not None:
            room.value += CALLBACK_ROOM
            self._room, self._room_thread = room, get_ident()
        # Only now: the "enter" event is emitted outside any monitoring callback,
        # so with PY_START seen, a tracer written in the user's own code would
        # have traced itself.  And last: a function called with PY_START seen is
        # seen once more per run (code run while the events are off, as these
        # helpers are between runs, is instrumented afresh and forgets its DISABLE).
        _M.register_callback(tool, _E.PY_START, first)

    def take_over(
        self, scope: Scope, gas: int | None, renderer: Renderer, stacklevel: int = 1
    ) -> bool:
        """``start()`` right after ``set_tracer``, done by the stepper ``set_tracer``
        started while it holds its first events: what ``start`` on a new stepper
        would do, without a second start and stop (the tool id, the callbacks'
        registration, the signal relays, what it learned of the caller's code
        when the scope is the same).  The held events are dropped, as if this
        stepper had started here with ``scope``, ``gas`` and ``renderer``.
        False (nothing done) when it cannot: not holding, another thread, several
        threads seen, halted."""
        tool = self._tool
        if (
            tool is None or self._held is None or self._multi or self.halted is not None
            or get_ident() != self.thread_ident or self._open_ops
        ):
            return False
        limit = UNLIMITED_GAS if gas is None else gas_limit(gas)  # (no call: see start)
        try:
            caller: FrameType | None = sys._getframe(stacklevel)
        except ValueError:
            caller = None
        self._held = None
        _active.started = None  # a stepper start() started runs until stop()
        # No start is seen until the caller's "enter" is emitted (as in ``start``: a
        # tracer written in the user's own code must not trace itself).
        _M.register_callback(tool, _E.PY_START, None)
        same = scope is self.scope or _same_scope(scope, self.scope)
        # What was learned stays only when start() would learn the same: its
        # caller's code alone (index 1), under the same scope.  (A loop, not
        # any() over a generator: this runs in every start.)
        forget = not same
        if not forget and self._infos:
            code = None if caller is None else caller.f_code
            for info in self._infos.values():
                if info.code is not code:
                    forget = True
                    break
        if forget:
            for info in list(self._infos.values()):
                try:
                    _M.set_local_events(tool, info.code, 0)
                except ValueError:
                    pass
            self._infos.clear()
            self._sites.clear()
            self._by_index.clear()
        self._blocks, self._blocks_off = None, False  # (the caller kept: learned held, uncounted)
        self._block_tables.clear()
        _turned_off.back_on(scope)
        if not same:
            self.scope = scope
        self._target = scope.target_name is not None
        self.gas_limit = limit
        self._meter = Meter(limit)
        self.renderer = renderer
        self.depth = 0
        self._offset = 0
        self.site = None
        self._enter_live = False
        self.exit_exception = None
        self.started_ns = time.perf_counter_ns()
        # Only the callbacks holding changes: the exception events' filters stay.
        cbs = self._callbacks(self._held_caps, held_over=True)
        self._held_caps = None
        first = cbs.pop(_E.PY_START)
        self._register(cbs)
        self._enter_caller(caller)
        _M.register_callback(tool, _E.PY_START, first)
        return True

    def stop(self, output: str = "", error: str | None = None) -> None:
        """Stop tracing, turn off everything that was turned on, emit ``Stop``."""
        tool = self._tool
        if tool is None:
            return
        if self._held is not None:
            self._release()
        _M.set_events(tool, 0)  # first: nothing called from here on is seen (see start)
        blocks = self._blocks
        if blocks is not None:  # what the innermost counted frame ran until here
            blocks.flush(sys._getframe() if get_ident() == blocks.thread
                         else sys._current_frames().get(blocks.thread))
        self._shut_down()
        if self.halted is not None:
            # The halt's, whatever ended the run after it: a halt at the first
            # instruction of the ``with trace()`` exit itself skips that exit, and the
            # run is stopped when the generator is closed (``GeneratorExit``).
            error = type(self.halted).__name__ if isinstance(self.halted, OutOfGas) else (
                f"{type(self.halted).__name__}: {self.halted}"
            )
        self._emit(Stop(output, error, self.gas_used))
        self._infos.clear()
        self._sites.clear()

    def _enter_caller(self, caller: FrameType | None) -> None:
        """The frame that starts tracing is traced from its next instruction on
        (depth 1), when in scope: learned, and its "enter" emitted."""
        if not self._target and caller is not None:
            info = self._learn(caller.f_code, own=caller)
            if info is not None:
                if self._blocks is not None and id(caller.f_code) in self._block_tables:
                    self._blocks.push(caller.f_code, caller.f_lasti + 2)  # after the call
                self.depth = 1
                self._enter_live = True
                self._offset = caller.f_lasti
                self._emit(info.call("enter"))

    def _abandon(self) -> None:
        """Stop without a word to the tracer: a ``start()`` takes over from the
        stepper ``set_tracer`` started, before it handed anything over."""
        self._held = None
        assert self._tool is not None
        _M.set_events(self._tool, 0)
        self._shut_down()
        self._infos.clear()
        self._sites.clear()

    def _shut_down(self) -> None:
        global _current
        tool = self._tool
        assert tool is not None
        self.elapsed_ns = time.perf_counter_ns() - self.started_ns
        _active.watcher = None
        _active.started = None
        for info in self._infos.values():
            try:
                _M.set_local_events(tool, info.code, 0)
            except ValueError:
                pass
        for event in _CALLBACK_EVENTS:
            _M.register_callback(tool, event, None)
        _M.free_tool_id(tool)
        self._tool = None
        if self._blocks is not None:
            self._blocks.clear()
            self._blocks = None
        self._block_tables.clear()
        self._relays.remove()
        room = self._room
        if room is not None and get_ident() == self._room_thread:
            room.value -= CALLBACK_ROOM
            self._room = None
        with _lock:
            _current = None

    @staticmethod
    def _claim_tool() -> int:
        for tool in _TOOL_PREFERENCE:
            if _M.get_tool(tool) is None:
                _M.use_tool_id(tool, "blocktrace")
                return tool
        raise RuntimeError("no free sys.monitoring tool id (all six are in use)")

    def _callbacks(
        self, caps: Any = None, held_over: bool = False
    ) -> dict[int, Callable[..., Any] | None]:
        """The callbacks for the current tracer and mode; the tracer's
        capabilities are read here, so on every start and every swap.
        ``take_over`` passes those its holding start read (set_tracer and start
        in a row: a change between them releases the held events, and then no
        take-over happens) and ``held_over``: only the callbacks that differ
        once nothing is held (calls, returns, instructions)."""
        tracer = _active.tracer
        if caps is None:
            caps = capabilities_of(tracer)
        if self._held is not None:
            self._held_caps = caps
        self._direct = self._hold if self._held is not None else direct_callable(tracer, caps)
        self._quiet = self._held is None and tracer is discard_trace
        """Nobody listens (the discard tracer): calls and returns only keep the depth."""
        self._op_line = caps.op_line if self._held is None else None
        if self._op_end and not caps.wants_op_end:
            self._open_ops.clear()  # ops opened for the tracer before: nobody closes them now
        self._op_end = caps.wants_op_end
        self._may_disable = caps.may_disable
        if caps.may_disable:
            _turned_off.other = True  # it may turn sites off that the next run reports
        if caps.level != self._level:
            self._level = caps.level
            self._sites = {key: info.table(caps.level) for key, info in self._infos.items()}
        counting = caps.counts_gas or caps.level != "call" or self.gas_limit != UNLIMITED_GAS
        general = self._multi or self._target or self._op_end
        general = general or self.halted is not None
        # A tracer that may answer DISABLE gets the general path only without the C hook.
        general = general or (self._may_disable and not C_HOOK)
        self._count_blocks(
            caps.level == "call" and caps.counts_gas and self.gas_limit == UNLIMITED_GAS
            and not general and not self._may_disable and self._held is None
        )
        self._set_local_events(_LOCAL_EVENTS if counting else _UNCOUNTED_EVENTS)
        jump = self._blocks
        start, leave, resume, suspend = self._c_call_hooks(general, caps)
        instruction = self._on_instruction_general if general else self._fast_instruction()
        if held_over:
            return {_E.PY_START: start, _E.PY_RESUME: resume, _E.PY_RETURN: leave,
                    _E.PY_YIELD: suspend, _E.INSTRUCTION: instruction, _E.BRANCH: jump,
                    _E.JUMP: jump}
        cbs: dict[int, Callable[..., Any] | None] = {
            _E.PY_START: start,
            _E.PY_RESUME: resume,
            _E.PY_THROW: self._in_scope(self._on_throw),
            _E.PY_RETURN: leave,
            _E.PY_YIELD: suspend,
            _E.PY_UNWIND: self._in_scope(self._on_unwind),
            _E.RAISE: self._in_scope(self._on_raise, 1),
            _E.RERAISE: self._in_scope(self._on_reraise),
            _E.EXCEPTION_HANDLED: self._in_scope(self._on_handled, 2),
            _E.INSTRUCTION: instruction,
            _E.BRANCH: jump,
            _E.JUMP: jump,
        }
        if self._multi:
            cbs = {
                event: self._serialised(cb, event in _SCOPED_EVENTS)
                for event, cb in cbs.items() if cb is not None
            }
        return cbs

    def _set_local_events(self, events: int) -> None:
        """Code objects send ``events`` from now on, those learned already too
        (but those counted by blocks)."""
        if events == self._local_events:
            return
        self._local_events = events
        if self._tool is None:
            return
        counted = self._block_tables if self._blocks is not None else {}
        for key, info in self._infos.items():
            if key not in counted:
                try:
                    _M.set_local_events(self._tool, info.code, events)
                except ValueError:
                    pass

    def _count_blocks(self, wanted: bool) -> None:
        """Count gas by basic blocks from now on (``wanted``) or not.  Only code
        learned while it counts is counted so; once it stops in a run (another
        thread, a halt, a tracer that needs every instruction), the code it
        counted sends ``INSTRUCTION`` again -- the frame that owes instructions
        settled first -- and it is not taken up again until the next run."""
        blocks = self._blocks
        if wanted and not self._blocks_off:
            if blocks is None or blocks.meter is not self._meter:
                self._blocks = Blocks(self._meter, self._block_tables, self._blocks_lost,
                                      self.thread_ident)
            return
        if blocks is None:
            return
        self._blocks = None
        self._blocks_off = True
        blocks.flush(sys._current_frames().get(blocks.thread))
        blocks.clear()
        counted = [self._infos[key].code for key in self._block_tables if key in self._infos]
        self._block_tables.clear()
        if self._tool is not None:
            for code in counted:
                try:
                    _M.set_local_events(self._tool, code, self._local_events)
                except ValueError:
                    pass

    def _blocks_lost(self, code: CodeType, src: int, dest: int) -> None:
        """A jump ``Blocks`` cannot follow (another thread's, a frame it does not
        know): count by instructions from here on."""
        self._blocks_off = True
        if self._tool is not None:
            self._register(self._callbacks())

    def _c_call_hooks(self, general: bool, caps: Any) -> tuple[Callable[..., Any], ...]:
        """The PY_START, PY_RETURN, PY_RESUME and PY_YIELD callbacks: C ones
        (``_chook.CallHook``) in the common case -- one thread, nothing held, no
        ``OpEnd``, not halted, and either nobody listening or a tracer that lets
        them write its call and return lines (``Capabilities.call_lines``) with
        the stock renderer -- else the Python ones, which the C ones also fall
        back on."""
        self._call_entries = self._resume_entries = None
        self._call_pieces = None
        python = self._on_start, self._on_return, self._on_resume, self._on_yield
        lines = caps.call_lines
        usable = CallHook is not None and not general and self._held is None and (
            self._quiet or (lines is not None and type(self.renderer) is Renderer))
        if not usable:
            return python
        ident, address = self._room_address
        if ident != self.thread_ident:
            return python  # where the room is, is not known
        entries: dict[int, tuple[Any, Any, Any, int]] = {}
        resumes: dict[int, tuple[Any, Any, Any, int]] = {}
        self._call_entries, self._resume_entries = entries, resumes
        line = None
        if not self._quiet:
            line, self._call_pieces = lines
        values = caps.return_values  # False: return lines without a value, none rendered
        # A code object out of scope by its file is answered in C (DISABLE, as
        # _learn would): library code run while the events were off, seen again
        # at each run, costs no Python call.  Noted as _learn notes it.
        outside = getattr(self.scope, "_by_file", None)
        if type(outside) is not dict:
            outside = None
        else:
            _turned_off.note(self.scope, False)
        # The four at once, from positional arguments (CallHook(kind, ...) each with
        # keywords cost a start ~5 us more): kinds 0-3 with these fallbacks; outside
        # and disable for the start only, blocks for all but the yield.
        return call_hooks(  # type: ignore[no-any-return]
            self, self._meter, entries, resumes, self._on_start, self._on_return,
            self._on_resume, self._on_yield, self._call_failed, line,
            self._value_json if values else None, address, ident, self.renderer.max_str,
            values, outside, DISABLE, self._blocks)

    def _in_scope(self, callback: Callable[..., Any], exit: int = 0) -> Callable[..., Any]:
        """An exception-event callback (those events cannot be turned off per code
        object: library code sends one per exception it raises or handles) behind
        a C filter that calls it only for code in scope, and for a ``SystemExit``
        (``exit`` 1: RAISE, 2: EXCEPTION_HANDLED) -- when built and one thread runs."""
        if ScopeFilter is None or self._multi:
            return callback
        name = callback.__name__
        made = self._filters.get(name)
        if made is None:  # made once per stepper (they keep no state of their own)
            made = self._filters[name] = ScopeFilter(self._infos, callback, self, exit)
        return made

    def _note_call(
        self, code: CodeType, info: CodeInfo, event: Any, resume: bool = False
    ) -> None:
        """After a code object's first call (or resume) through Python: its entry
        for the C call hooks, when they may write its lines (the tracer gives the
        pieces)."""
        entries = self._resume_entries if resume else self._call_entries
        if entries is None:
            return
        if self._call_pieces is None:
            entries[id(code)] = (event, None, None, info.index)
            return
        pieces = self._call_pieces(event)
        if pieces is not None:
            entries[id(code)] = (event, pieces[0], pieces[1], info.index)

    def _value_json(self, value: object) -> bytes:
        """A return value as the C return hook writes it when it cannot render it itself."""
        return _encode(self.renderer.render(value))

    def _call_failed(
        self, event: Any, code: CodeType, offset: int, value: object, exc: BaseException
    ) -> None:
        """The C call hooks' except block: the tracer's line failed (``event`` None
        or "yield": a return's or yield's, whose ``Return`` is made only now)."""
        self._offset = offset
        if event is None or type(event) is str:
            kind: ReturnKind = "return" if event is None else "yield"
            event = Return(kind, self._infos[id(code)].index, offset, value)
        self.site = event
        try:
            self._tracer_failed(exc)
        finally:
            if self.site is event and type(event) is Return:
                self.site = None  # the value is the program's (see _leave)

    def _tracer_swapped(self, tracer: object) -> None:
        if self._held is not None:
            self._release()  # what the tracer set before saw goes to it, not to this one
        if self._tool is not None:
            if self._may_disable:  # sites the tracer before turned off: the new one sees them
                _M.restart_events()
            self._register(self._callbacks())

    def _hold(self, vm: Any, event: Any) -> None:
        """The tracer while events are held (see ``start``): keeps each event with
        the state a tracer reads, until the calling frame does more than run its
        own next few instructions."""
        held = self._held
        assert held is not None
        held.append((event, self.gas, self.depth, self.thread, self.threads_seen, self._offset))
        if len(held) >= HOLD_EVENTS or (len(held) > 1 and type(event) is not OpStart):
            self._release()

    def _release(self) -> None:
        """Hand the held events to the tracer they were held for, as they were."""
        held, self._held = self._held, None
        assert held is not None
        if self._tool is not None and _active.tracer is self._held_for:
            self._register(self._callbacks())
        saved = (self.gas, self.depth, self.thread, self.threads_seen, self._offset, self.site)
        caps = capabilities_of(self._held_for)
        direct = direct_callable(self._held_for, caps)
        try:
            for event, self.gas, self.depth, self.thread, self.threads_seen, self._offset in held:
                if type(event) is OpEnd and not caps.wants_op_end:
                    continue
                self.site = event
                try:
                    direct(self, event)
                except BaseException as exc:
                    self._tracer_failed(exc)
                    if _active.tracer is not self._held_for:
                        break  # detached
        finally:
            self.gas, self.depth, self.thread, self.threads_seen, self._offset, self.site = saved

    def _register(self, cbs: dict[int, Callable[..., Any] | None]) -> None:
        assert self._tool is not None
        # sys.monitoring does not hold a callback while it calls it, and this runs from
        # inside one (a tracer detached mid-call): Python callbacks are held by their
        # frames, the C hook holds itself for the call.
        for event, cb in cbs.items():
            _M.register_callback(self._tool, event, cb)

    def _serialised(self, cb: Callable[..., Any], scoped: bool = False) -> Callable[..., Any]:
        """With several threads: one event at a time, and per-thread depth.

        ``scoped``: an event sent for code out of scope too, its code object
        first.  A thread takes its number when it first runs code in scope, so for
        code not known to be in scope the callback runs without switching to the
        thread first: PY_START learns the code (in scope, ``_enter`` switches;
        out of scope, ``DISABLE``), an exception event only notes a ``SystemExit``."""
        lock = self._mt_lock
        infos = self._infos
        own = own_threads.IDS

        def serialised(*args: Any) -> Any:
            ident = get_ident()
            if own and ident in own:
                return None  # a writer's thread of blocktrace's: never the program's code
            if scoped and id(args[0]) not in infos:
                with lock:
                    return cb(*args)
            with lock:
                if ident != self.thread_ident:
                    self._switch_thread(ident)
                return cb(*args)

        return serialised

    def _switch_thread(self, ident: int) -> None:
        """Make thread ``ident`` (the calling thread) the current one, numbered
        when it first comes.  CPython gives an ended thread's ident to a later
        thread, so a number is given to a thread, not to an ident: a thread's
        state is dropped as it ends (``_thread_ended``)."""
        states = self._thread_state
        if self.thread_ident:  # 0: the thread that ran last has ended
            states[self.thread_ident] = (self.thread, self.depth)
        state = states.get(ident)
        if state is None:
            self.threads_seen += 1
            state = states[ident] = (self.threads_seen, 0)
            _watch_end()
        self.thread_ident = ident
        self.thread, self.depth = state

    def _thread_ended(self, ident: int) -> None:
        """Thread ``ident`` has ended (run on it as it ends, see ``_watch_end``): a
        thread that gets its ident later is another thread, numbered afresh.  The
        starting thread's end (a run started on a thread that ends before it is
        stopped) also takes its frames-left counter and the C call hooks, which
        know the thread by its ident, with it."""
        if ident == self._room_thread:
            self._room, self._room_thread = None, 0
        if not self._multi and ident == self.thread_ident:
            self.thread_ident = 0  # (first: _go_multi waits for it to leave its callback)
            self._go_multi()
        with self._mt_lock:
            self._thread_state.pop(ident, None)
            if self.thread_ident == ident:
                self.thread_ident = 0  # whichever thread comes next switches

    def _as_thread(self, ident: int, callback: Callable[..., Any], *args: Any) -> Any:
        """A callback of the single-thread mode running on another thread than the
        one it was made for: serialise the callbacks, then run it as that thread's."""
        self._go_multi()
        with self._mt_lock:
            if ident != self.thread_ident:
                self._switch_thread(ident)
            return callback(*args)

    def _go_multi(self) -> None:
        """A second thread runs traced code: switch to serialised callbacks.

        Until now the first thread's callbacks ran without the lock, and one of
        them may be part-way through (Python callbacks can lose the GIL anywhere)
        with the shared ``depth``/``thread`` it reads and writes.  So: every new
        event of every thread takes the lock from here on, then this waits until
        the first thread is out of the callback it was in; only then may the
        caller switch the shared state, under the lock."""
        with self._go_lock:
            if self._multi:
                return
            self._multi = True
            self._register(self._callbacks())
            first = self.thread_ident
            deadline = time.monotonic() + _GO_MULTI_WAIT
            with self._mt_lock:  # the first thread's next callback waits for it
                while _in_callback(first) and time.monotonic() < deadline:
                    time.sleep(_GO_MULTI_NAP)  # lets it finish the one it is in

    # -- learning code objects ------------------------------------------------

    def _learn(
        self, code: CodeType, caller: FrameType | None = None, own: FrameType | None = None
    ) -> CodeInfo | None:
        """Decide scope for ``code`` and, if in scope, build its tables (once).

        Exec'd code under a pseudo file name takes the scope of its first caller:
        the user's ``exec`` is traced, the lambdas ``namedtuple`` and
        ``dataclasses`` generate are not.  While gas is counted by blocks, code
        that can be is counted so when ``own`` (its frame starting, or the one
        that called ``start``) is its only frame running: another one, on any
        thread, would jump without ever having started under the count."""
        key = id(code)
        info = self._infos.get(key)
        if info is not None:
            return info
        try:
            try:
                info = self._new_info(code, caller)
            except RecursionError:
                room = self._room if get_ident() == self._room_thread else None
                if room is None:
                    raise
                room.value += ROOM  # the program is at its limit: learning must not cost it
                try:
                    info = self._new_info(code, caller)
                finally:
                    room.value -= ROOM
        except Exception as exc:
            if belongs_to_program(exc):
                raise  # the program's signal handler ran while we were learning
            self._report(f"cannot trace {code.co_qualname}: {type(exc).__name__}: {exc}")
            _turned_off.other = True  # turned off here, perhaps traceable next time
            return None
        if info is None:
            if not code.co_filename.startswith(BLOCKTRACE_DIR):
                _turned_off.note(self.scope, self.scope.contains(code) is None)
            return None
        index = info.index
        # Stores only (no call, so no signal handler runs between them); the
        # events come last, so an instruction event never finds a code unknown.
        self._infos[key] = info
        self._sites[key] = info.table(self._level)
        self._by_index[index] = code
        assert self._tool is not None
        events = self._local_events
        if self._blocks is not None and events == _LOCAL_EVENTS:
            counts = block_counts(code)
            if counts is not None and not _runs_elsewhere(code, own):
                self._block_tables[key] = counts
                events = _BLOCK_EVENTS
        try:
            _M.set_local_events(self._tool, code, events)
        except Exception as exc:
            if belongs_to_program(exc):
                raise
            self._report(f"cannot trace {code.co_qualname}: {type(exc).__name__}: {exc}")
        return info

    def _new_info(self, code: CodeType, caller: FrameType | None) -> CodeInfo | None:
        in_scope = self.scope.contains(code)
        if in_scope is None:
            in_scope = caller is not None and id(caller.f_code) in self._infos
        if not in_scope:
            return None
        index = len(self._infos) + 1
        return code_info(code, index)

    # -- emitting ---------------------------------------------------------------

    def _emit(self, event: Any) -> Any:
        self.site = event
        try:
            return self._direct(self, event)
        except BaseException as exc:
            self._tracer_failed(exc)
            return None

    def _tracer_failed(self, exc: BaseException) -> None:
        if isinstance(exc, HaltRun):
            self._halt(exc)
            raise exc
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit from signal handlers
            raise exc
        if isinstance(exc, RecursionError):
            # The program may be near its limit: the tracer is called again with
            # room, so that the program meets the limit where it would untraced.
            room = self._room if get_ident() == self._room_thread else None
            if room is not None:
                room.value += ROOM  # first: this pushes no frame
                try:
                    failure = self._again_with_room(exc)
                finally:
                    room.value -= ROOM
                if failure is None:
                    return
                exc = failure
            if isinstance(exc, HaltRun) or not isinstance(exc, Exception):
                raise exc from None
            if isinstance(exc, RecursionError) and at_recursion_limit():
                raise exc  # the program is at the recursion limit: its error
        if belongs_to_program(exc):
            raise exc  # raised by the program's signal handler while the tracer ran
        tracer = _swap(discard_trace)
        where = ""
        code = self.code
        if code is not None:
            where = f" at {code.co_filename}:{code.co_qualname}"
        message = f"tracer {type(tracer).__name__} failed{where}: {type(exc).__name__}: {exc}"
        self._report(message + "; detached, the program goes on")
        record = capabilities_of(tracer).record_failure
        if record is not None:
            try:
                record(message)
            except Exception:
                pass

    def _again_with_room(self, exc: RecursionError) -> BaseException | None:
        """With room lent: if the program is near its recursion limit (its own
        depth, not the tracer's fault), call the tracer again.  What the second
        call raised (or ``exc`` when the tracer recursed on its own), or None."""
        try:
            if not at_recursion_limit(ROOM + 50):
                return exc  # the tracer's own recursion
            self._direct(self, self.site)
            return None
        except BaseException as again:
            return again

    def _report(self, message: str) -> None:
        self.failures.append(message)
        try:
            if sys.__stderr__ is not None:
                sys.__stderr__.write(f"blocktrace: {message}\n")
        except Exception:
            pass

    def _halt(self, exc: HaltRun) -> None:
        if self.halted is None:
            self.halted = exc
            if self._tool is not None:
                self._register(self._callbacks())

    def _rehalt(self) -> HaltRun:
        halted = self.halted
        assert halted is not None
        return type(halted)(*halted.args)

    def _lets_run(self, code: CodeType, offset: int) -> bool:
        """Whether the instruction at ``offset`` is one a halted run lets run
        (``UNWINDING``)."""
        info = self._infos.get(id(code))
        if info is None:
            return False
        site = info.sites[offset] or site_from_bytes(code, offset, info.index)
        return site.op_name in UNWINDING

    def _out_of_gas(self, code: CodeType, offset: int) -> object:
        """Record that the instruction at ``offset`` could not be paid for, halt, and
        raise ``OutOfGas`` -- or, at an ``UNWINDING`` instruction, return ``DISABLE``
        (the hooks then neither record nor charge it, and return ``None``): it runs,
        and the same ``OutOfGas`` is raised at the next instruction that is not one
        (``_pending``)."""
        pending = self._pending
        if pending is not None:
            if self._lets_run(code, offset):
                return DISABLE
            self._pending = None
            raise pending
        info = self._infos[id(code)]
        site = info.sites[offset] or site_from_bytes(code, offset, info.index)
        self._emit(
            OpException(
                "raise", offset, site.op, site.op_name, site.line, info.index,
                "OutOfGas", f"gas exhausted after {self.gas_limit} steps",
            )
        )
        exc = OutOfGas(f"blocktrace: out of gas after {self.gas_limit} steps")
        self._halt(exc)
        if site.op_name in UNWINDING:
            self._pending = exc
            return DISABLE
        raise exc

    # -- the per-instruction path -------------------------------------------

    def _fast_instruction(self) -> Callable[[CodeType, int], Any]:
        """The per-instruction callback, as a closure over everything it touches
        (a bound method and ``self.`` lookups cost more on every instruction).
        It captures the active tracer: ``set_tracer`` tells the stepper, which
        then registers a fresh closure."""
        sites = self._sites
        tracer = self._direct
        vm = self
        missing = self._missing_site
        out_of_gas = self._out_of_gas
        failed = self._tracer_failed
        op_line = self._op_line
        return instruction_hook(
            sites, vm, tracer, missing, out_of_gas, failed, DISABLE, self._may_disable, op_line,
            self._meter, SKIP,
        )

    def _on_instruction_general(self, code: CodeType, offset: int) -> Any:
        """The same, for the rare modes: halted, target, OpEnd, DISABLE-capable."""
        if self.halted is not None:
            if self._lets_run(code, offset):
                return None
            pending = self._pending
            if pending is not None:  # halted at an UNWINDING instruction: raised here
                self._pending = None
                raise pending
            if self._enter_live and self.depth == 1 and self.thread == 1:
                # The frame that started tracing owns the halt: its ``with trace()``
                # exit or ``except OutOfGas`` must run to stop the stepper.
                return None
            raise self._rehalt()
        if self.depth <= 0 and self._target:
            return None
        event = self._sites[id(code)][offset]
        if event is None:
            event = self._missing_site(code, offset)
            if event is None:
                return DISABLE
        meter = self._meter
        used = meter.used
        if used >= meter.limit and self._out_of_gas(code, offset) is DISABLE:
            return None
        if event is SKIP:
            meter.used = used + 1
            return None
        self._offset = offset
        if self._op_end:
            self._close_op((self.thread, self.depth))
            self._open_ops[(self.thread, self.depth)] = event
        result = self._emit(event)
        meter.used = used + 1
        if result is DISABLE and self._may_disable:
            return DISABLE
        return None

    def _missing_site(self, code: CodeType, offset: int) -> Any:
        """``RESUME`` (CPython's entry and resume bookkeeping, which fires before
        ``PY_START`` and would carry the caller's depth) is not reported: ``None``
        and the site is disabled; ``CallStart`` stands for it.  Any other
        instruction ``dis`` did not list is built from ``co_code`` (the level's
        table entry for it is returned: the site or ``SKIP``)."""
        raw = code.co_code
        if 0 <= offset < len(raw) and raw[offset] == RESUME:
            return None
        info = self._infos[id(code)]
        info.set_site(offset, site_from_bytes(code, offset, info.index))
        return info.table(self._level)[offset]

    def _close_op(self, key: tuple[int, int]) -> None:
        op = self._open_ops.pop(key, None)
        if op is not None:
            end = self._op_ends.get(id(op))
            if end is None:
                end = self._op_ends[id(op)] = OpEnd(op.pc, op.code)
            self._emit(end)

    # -- frames starting and stopping -----------------------------------------

    def _on_start(self, code: CodeType, offset: int) -> Any:
        room = self._room
        if room is not None and room.value < CALLBACK_ROOM - 1:
            self._refuse(code)  # the program is past its recursion limit
        info = self._infos.get(id(code))
        pos = 0
        if info is None:
            frame = sys._getframe(1)
            mine = frame.f_code is code
            info = self._learn(code, frame.f_back if mine else None, frame if mine else None)
            if info is None:
                return DISABLE
            pos = offset  # what ran before PY_START was not instrumented: not charged
        blocks = self._blocks
        if blocks is not None and get_ident() == self.thread_ident:
            frame = sys._getframe(1)
            blocks.enter(code, frame.f_back if frame.f_code is code else frame, pos)
        if self.halted is not None or self._target or get_ident() != self.thread_ident:
            self._enter(info, code, offset, "call")
            return None
        # ``_enter`` and ``_emit`` inlined for the common case.  (At the recursion
        # limit, entering and leaving must need the same stack: see ``_on_unwind``.)
        self.depth += 1
        if self._quiet:
            if self._call_entries is not None:
                self._note_call(code, info, None)
            return None
        self._offset = offset
        event = info.calls.get("call") or info.call("call")
        self.site = event
        try:
            self._direct(self, event)
        except BaseException as exc:
            self._tracer_failed(exc)
        else:
            if self._call_entries is not None:
                self._note_call(code, info, event)
        return None

    def _refuse(self, code: CodeType) -> None:
        """A frame the program pushed into the room lent to the callbacks (see
        ``blocktrace.tracers.depth``): python would not have pushed it, so it
        fails at its start, unrecorded, as the call would have failed."""
        if get_ident() != self._room_thread:
            return
        self._refused = code
        raise RecursionError("maximum recursion depth exceeded")

    def _on_resume(self, code: CodeType, offset: int) -> None:
        info = self._infos.get(id(code))
        if info is not None:
            self._settle_blocks(code)
            self._enter(info, code, offset, "resume")
            if self._resume_entries is not None and get_ident() == self.thread_ident:
                self._note_call(code, info, None if self._quiet else info.calls["resume"], True)

    def _on_throw(self, code: CodeType, offset: int, exc: BaseException) -> None:
        info = self._infos.get(id(code))
        if info is not None:
            self._settle_blocks(code)
            self._enter(info, code, offset, "throw")

    def _settle_blocks(self, code: CodeType) -> None:
        """A generator or coroutine (never counted by blocks) resumes: the
        innermost counted frame (its caller, or further out) owes what it ran."""
        blocks = self._blocks
        if blocks is not None and get_ident() == self.thread_ident:
            frame = sys._getframe(2)
            blocks.enter(code, frame.f_back if frame.f_code is code else frame, 0)

    def _enter(self, info: CodeInfo, code: CodeType, offset: int, kind: CallKind) -> None:
        if self.halted is not None:
            raise self._rehalt()
        ident = get_ident()
        if ident != self.thread_ident:  # a callback of the single-thread mode, on a new thread
            self._as_thread(ident, self._enter, info, code, offset, kind)
            return
        if self._target and self.depth <= 0:
            if kind != "call" or not self.scope.is_target(code):
                return
            self.depth = 0
        self.depth += 1
        self._offset = offset
        self._emit(info.call(kind))

    def _on_return(self, code: CodeType, offset: int, value: object) -> None:
        ident = get_ident()
        if ident != self.thread_ident:
            self._as_thread(ident, self._on_return, code, offset, value)
            return
        if self._blocks is not None:
            self._blocks.leave(code, offset)
        if self.depth <= 0 or self._op_end:
            self._leave(code, offset, "return", value)
            return
        # ``_leave`` and ``_emit`` inlined for the common case.  (Leaving needs no
        # more stack than entering: at the recursion limit a frame whose call was
        # recorded must have room for its return too.)
        if self._quiet:  # no ``Return`` object when nobody would read it
            self.depth -= 1
            if self.depth <= 0 and self.thread == 1:
                self._enter_live = False
            return
        self._offset = offset
        event = Return("return", self._infos[id(code)].index, offset, value)
        self.site = event
        try:
            self._direct(self, event)
        except BaseException as exc:
            self._tracer_failed(exc)
        finally:  # the frame leaves even if the program's exception interrupts the tracer
            if self.site is event:
                self.site = None  # the value is the program's (see _leave)
            self.depth -= 1
            if self.depth <= 0 and self.thread == 1:
                self._enter_live = False

    def _on_yield(self, code: CodeType, offset: int, value: object) -> None:
        ident = get_ident()
        if ident != self.thread_ident:
            self._as_thread(ident, self._on_yield, code, offset, value)
            return
        self._leave(code, offset, "yield", value)

    def _on_unwind(self, code: CodeType, offset: int, exc: BaseException) -> None:
        info = self._infos.get(id(code))
        if info is None:
            return
        if self._refused is code:
            self._refused = None  # a frame refused at its start (see _refuse)
            return
        ident = get_ident()
        if ident != self.thread_ident:
            self._as_thread(ident, self._on_unwind, code, offset, exc)
            return
        if self._blocks is not None:
            self._blocks.leave(code, offset)
        if self.depth <= 0 or self._op_end:
            self._leave(code, offset, "unwind", exc)
            return
        # Inlined like ``_on_start``, so that a frame whose call was recorded at the
        # recursion limit has the same stack to record its unwind with.
        self._offset = offset
        event = Return("unwind", info.index, offset, exc)
        self.site = event
        try:
            self._direct(self, event)
        except BaseException as failure:
            self._tracer_failed(failure)
        finally:
            if self.site is event:
                self.site = None  # the exception is the program's (see _leave)
            self.depth -= 1
            if self.depth <= 0 and self.thread == 1:
                self._enter_live = False

    def _leave(self, code: CodeType, offset: int, kind: ReturnKind, value: object) -> None:
        if self.depth <= 0:
            return  # a frame that started before tracing, or outside the target
        info = self._infos[id(code)]
        self._offset = offset
        if self._op_end:
            self._close_op((self.thread, self.depth))
        event = Return(kind, info.index, offset, value)
        try:
            self._emit(event)
        finally:  # the frame leaves even if the program's exception interrupts the tracer
            if self.site is event:
                # The value is the program's: held as the site it would live on until
                # the next event -- at levels without op events, the next call or
                # return -- after the program let go of it (a weakref's referent,
                # a ``__del__`` that runs late).
                self.site = None
            self.depth -= 1
            if self.depth <= 0 and self.thread == 1:
                self._enter_live = False

    # -- exceptions -------------------------------------------------------------

    def _on_raise(self, code: CodeType, offset: int, exc: BaseException) -> None:
        if type(exc) is SystemExit:
            self.exit_exception = exc
        if _RAISE_OFFSET_OF_FRAME:
            offset = _raise_offset(code, offset)
        self._exception(code, offset, exc, "raise")

    def _on_reraise(self, code: CodeType, offset: int, exc: BaseException) -> None:
        self._exception(code, offset, exc, "reraise")

    def _on_handled(self, code: CodeType, offset: int, exc: BaseException) -> None:
        if exc is self.exit_exception:
            self.exit_exception = None
        self._exception(code, offset, exc, "handled")

    def _exception(
        self, code: CodeType, offset: int, exc: BaseException, kind: ExceptionKind
    ) -> None:
        if id(code) not in self._infos:
            return  # out of scope (what the C ScopeFilter answers): on whichever thread
        ident = get_ident()
        if ident != self.thread_ident:
            self._as_thread(ident, self._exception, code, offset, exc, kind)
            return
        if self._blocks is not None:
            self._blocks.charge(code, offset)  # it ran through there
        try:
            self._exception_event(code, offset, exc, kind)
        except RecursionError:
            # The program is at its recursion limit (this is how it finds out):
            # recording the exception must not cost it frames.
            room = self._room if get_ident() == self._room_thread else None
            if room is None:
                raise
            room.value += ROOM
            try:
                self._exception_event(code, offset, exc, kind)
            finally:
                room.value -= ROOM

    def _exception_event(
        self, code: CodeType, offset: int, exc: BaseException, kind: ExceptionKind
    ) -> None:
        info = self._infos.get(id(code))
        if info is None or self.depth <= 0 or isinstance(exc, HaltRun) or self._refused is code:
            return
        site = info.site_at(offset)
        name, message = exception_text(exc, self.renderer)
        self._offset = offset
        if self._op_end and kind != "handled":
            self._open_ops.pop((self.thread, self.depth), None)
        self._emit(
            OpException(kind, site.pc, site.op, site.op_name, site.line, info.index, name, message)
        )
