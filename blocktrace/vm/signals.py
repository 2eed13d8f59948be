"""A signal handler gets the program's frame, not blocktrace's.

Python runs a signal handler in whatever frame the main thread is in, and passes
that frame to it: under tracing, often one of the stepper's callbacks or a
tracer (``frame.f_code`` named ``_on_start``, ``traceback.print_stack(frame)``
showing blocktrace).  While a stepper runs, the program's Python-level handlers
are installed behind a small relay that hands them the frame the callback was
called for -- the program's -- instead.  ``signal.signal`` and
``signal.getsignal`` are replaced for as long, so that the program installs and
reads its own handlers as it would untraced.  Nothing of this runs per event.

What remains visible (docs/ARCHITECTURE.md): ``signal.signal`` is not the
built-in while tracing; a handler that raises has the relay's frame in its
traceback; a module that bound ``signal.signal`` before tracing started
installs its handler without the relay.
"""

from __future__ import annotations

import _signal as _csignal  # type: ignore[import-not-found]  # (no stubs)
import _thread
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from types import BuiltinFunctionType, FrameType, TracebackType
from typing import Any

from blocktrace import no_raise

__all__ = ["HeldHandlers", "SignalRelays", "hold_handlers", "programs_frame"]

_signal = signal.signal
_getsignal = signal.getsignal
# The C module's: plain ints, no enum made per signal (install and remove run per start).
_raw_getsignal = _csignal.getsignal
_raw_signal = _csignal.signal
_SIGNALS = tuple(sorted(_csignal.valid_signals()))
"""The valid signals (the same for the whole process), asked once."""


class _Relay:
    """Installed in place of a program's handler: calls it with the program's frame."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[int, FrameType | None], Any]) -> None:
        self.handler = handler

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        held = _held
        if held is not None and not held.open:
            if signum not in held.signals:  # pending twice runs once, as in python
                held.signals.append(signum)
            return None  # the run is being sealed: the handler runs after (HeldHandlers)
        program = programs_frame(frame)
        if (
            program is not frame
            and _DEFERRED.get(signum, 0) < _MAX_DEFERRALS
            and _writing(frame, program)
            and _defer(signum)
        ):
            _DEFERRED[signum] = _DEFERRED.get(signum, 0) + 1
            return None  # arrived while the trace's bytes were handed on: run it after
        _DEFERRED.pop(signum, None)
        return self.handler(signum, program)


_MAX_DEFERRALS = 8
"""A signal put off this many times in a row runs where it lands: a program is
never kept from its handler (the write path also says how much it wrote when
interrupted, for a plain file)."""
_DEFERRED: dict[int, int] = {}


def _writing(frame: FrameType | None, program: FrameType | None) -> bool:
    """Whether a frame between ``frame`` and the program's is on the trace's
    write path (``blocktrace.tracers.chain.WRITE_PATH``) or one of blocktrace's
    weak reference callbacks (``blocktrace.no_raise.CODE``), where what a handler
    raises would be printed as ignored and lost."""
    chain = sys.modules.get("blocktrace.tracers.chain")
    path = getattr(chain, "WRITE_PATH", ())
    swallowed = no_raise.CODE
    f = frame
    while f is not None and f is not program:
        if f.f_code in path or f.f_code in swallowed:
            return True
        f = f.f_back
    return False


def _defer(signum: int) -> bool:
    """Send ``signum`` to this thread again from a short-lived thread of no
    Python code, so that its handler runs once the trace's write path on top
    has returned (to the program, or to a tracer that copes with it).

    A handler that raises (a timeout, Ctrl-C) must not raise on the write path:
    an exception between a buffer handed to the file and the writer's note of it
    would write that buffer twice, and the trace would no longer verify.  The
    signal is not sent from here: sending it to oneself (``pthread_kill``,
    ``interrupt_main``) runs the handler at once, inside this relay, which would
    defer again without end.  Nothing of this runs per event."""
    try:
        _thread.start_new_thread(signal.pthread_kill, (threading.get_ident(), signum))
    except (OSError, ValueError, RuntimeError):
        return False  # e.g. at interpreter shutdown: run it now
    return True


BLOCKTRACE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
"""blocktrace's own directory (with the separator): its code is never the program's."""
_UNDER_THE_PROGRAM = tuple(
    BLOCKTRACE_DIR + name for name in ("__main__.py", "cli" + os.sep, "vm" + os.sep + "runner.py")
)


def programs_frame(frame: FrameType | None) -> FrameType | None:
    """The program's frame for a signal that arrived in ``frame``: when that is
    blocktrace's callback side (the stepper, a tracer, or what they called), the
    frame whose event they were handling; else ``frame`` itself."""
    f = frame
    while f is not None and not f.f_code.co_filename.startswith(BLOCKTRACE_DIR):
        f = f.f_back
    if f is None or f.f_code.co_filename.startswith(_UNDER_THE_PROGRAM):
        return frame  # the program's own code (above the frames that run it)
    while f is not None and f.f_code.co_filename.startswith(BLOCKTRACE_DIR):
        f = f.f_back
    return f if f is not None else frame


def _wrappable(handler: object) -> bool:
    return callable(handler) and not isinstance(handler, BuiltinFunctionType | _Relay)


def _unwrapped(handler: Any) -> Any:
    return handler.handler if isinstance(handler, _Relay) else handler


_RELAYED: set[int] = set()
"""The signals a relay was installed for while a stepper ran (those ``remove`` looks at)."""


def _set_handler(signalnum: int, handler: Any, /) -> Any:
    wrapped = _Relay(handler) if _wrappable(handler) else handler
    old = _unwrapped(_signal(signalnum, wrapped))
    if wrapped is not handler:
        _RELAYED.add(int(signalnum))
    return old


def _get_handler(signalnum: int, /) -> Any:
    return _unwrapped(_getsignal(signalnum))


for _name, _fn in (("signal", _set_handler), ("getsignal", _get_handler)):
    _fn.__name__ = _fn.__qualname__ = _name
    _fn.__doc__ = getattr(signal, _name).__doc__
    _fn.__module__ = "signal"
del _name, _fn


class SignalRelays:
    """Relays for the program's handlers while a stepper runs (main thread only:
    signal handlers can be set only there)."""

    def __init__(self) -> None:
        self.active = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in _SIGNALS:
            try:
                handler = _raw_getsignal(signum)
                if handler is None or handler.__class__ is int:
                    continue  # SIG_DFL, SIG_IGN, or not set from Python
                if _wrappable(handler):
                    _raw_signal(signum, _Relay(handler))
                    _RELAYED.add(signum)
            except (OSError, ValueError, TypeError):
                continue
        signal.signal = _set_handler  # type: ignore[assignment]
        signal.getsignal = _get_handler  # type: ignore[assignment]
        self.active = True

    def remove(self) -> None:
        """Put the program's own handlers back (those it set while traced too);
        while the run's end holds them (:func:`hold_handlers`), when it lets go."""
        if not self.active or threading.current_thread() is not threading.main_thread():
            return
        self.active = False
        signal.signal = _signal
        signal.getsignal = _getsignal
        if _held is not None:
            _held.unrelay = True
            return
        _unrelay()


def _unrelay() -> None:
    relayed = sorted(_RELAYED)
    _RELAYED.clear()
    for signum in relayed:
        try:
            handler = _raw_getsignal(signum)
            if handler.__class__ is _Relay:
                _raw_signal(signum, handler.handler)
        except (OSError, ValueError, TypeError):
            continue


class HeldHandlers:
    """The program's signal handlers, held while ``blocktrace run`` ends the run
    (``Launch.finish``): a handler that raises (a ``SIGALRM`` timeout the program
    set) must not raise inside blocktrace's own code as it prints the program's
    traceback and seals the trace -- the trace would be left unsealed and the
    traceback would be blocktrace's.  A signal that arrives meanwhile is noted
    and its handler runs once the trace is sealed, by :meth:`release`; what it
    raises is printed as python prints an exception a handler raises once the
    program has ended, and the exit status stays the run's.  Where the program's
    own code runs at its end (waiting for its threads, flushing its stdout),
    :meth:`opened` lets its handlers run where they land, as under python.

    Only handlers behind a relay (:class:`SignalRelays`) are held; the default
    ``SIGINT`` handler is not a relay (Ctrl-C is the writer's to cope with)."""

    __slots__ = ("open", "signals", "unrelay")

    def __init__(self) -> None:
        self.open = False
        self.signals: list[int] = []
        self.unrelay = False
        """The relays were to be removed while held: :meth:`release` does it."""

    @contextlib.contextmanager
    def opened(self) -> Iterator[None]:
        self.open = True
        try:
            yield
        finally:
            self.open = False

    def release(self) -> None:
        """Let go: the relays removed if the stepper stopped meanwhile, then the
        held handlers run, in the order their signals came."""
        global _held
        if _held is self:
            _held = None
        if self.unrelay:
            _unrelay()
        for signum in self.signals:
            handler = _unwrapped(_raw_getsignal(signum))
            if not callable(handler) or isinstance(handler, BuiltinFunctionType):
                continue  # reset meanwhile (or python's own: not the program's to run here)
            try:
                handler(signum, None)
            except BaseException as exc:  # the program's, with its run over: printed, not raised
                try:
                    traceback.print_exception(exc.with_traceback(_below_here(exc.__traceback__)))
                except Exception:
                    pass
        self.signals.clear()


_held: HeldHandlers | None = None


def _below_here(tb: TracebackType | None) -> TracebackType | None:
    """A handler's traceback from its own frame on (not :meth:`HeldHandlers.release`'s)."""
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def hold_handlers() -> HeldHandlers:
    """Hold the program's handlers until the returned hold's ``release()``."""
    global _held
    _held = HeldHandlers()
    return _held
