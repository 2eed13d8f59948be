"""Running a program the way ``python script.py`` / ``python -m module`` would,
with the stepper on, as ``coverage run`` does.

Same ``sys.argv``, ``sys.path[0]``, ``__name__ == "__main__"``, stdin, stdout,
stderr and exit status; an uncaught exception prints its usual traceback (our
own frames removed, and runpy's where python shows none) through
``sys.excepthook``.  atexit handlers run
at interpreter exit as usual, after the trace is sealed.  The program's
``__main__`` module stays ``sys.modules["__main__"]`` after the run, as under
python: its exit handlers see it, and the interpreter tears it down as it tears
down ``__main__`` (its globals cleared one by one, so a file the program left
open is flushed before its buffer is closed; were it freed by the garbage
collector instead, a cycle through a function's ``__globals__`` would close the
buffer first and lose what was written).
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.machinery
import io
import os
import runpy
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from blocktrace.tracers import Tracer, set_tracer
from blocktrace.tracers.depth import as_program_bottom
from blocktrace.vm.signals import HeldHandlers, hold_handlers
from blocktrace.vm.stepper import HaltRun, OutOfGas, Stepper, exception_text

__all__ = [
    "OUT_OF_GAS_STATUS", "Launch", "Outcome", "Program", "launch", "run_program", "target_problem",
]

OUT_OF_GAS_STATUS = 124  # like timeout(1): the budget ran out
_RUNPY_DIR = os.path.dirname(runpy.__file__)
_MAIN_GLOBALS = {"__builtins__": builtins}  # in __main__ it is the module, not its dict
_RUNPY_FROZEN = "<frozen runpy>"  # how runpy's frames are named where it is frozen (3.13)
_BLOCKTRACE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Program:
    """What to run: a script path or a module name, and its arguments."""

    target: str
    args: list[str]
    is_module: bool = False

    def argv0(self) -> str:
        return self.target

    def path0(self) -> str:
        """What python makes ``sys.path[0]`` for this program: the current
        directory for ``-m``, the script's directory, or the directory or zip
        file itself."""
        if self.is_module:
            return os.getcwd()
        here = os.path.abspath(self.target)
        return here if _is_app(self.target) else os.path.dirname(here)

    @contextlib.contextmanager
    def on_path(self) -> Iterator[None]:
        """Look modules up as the program will (``sys.path[0]`` its own) while
        blocktrace is still choosing what to run; restored afterwards, so that
        blocktrace's own imports are never shadowed by the program's files."""
        saved = list(sys.path)
        if sys.path:
            sys.path[0] = self.path0()
        else:
            sys.path.insert(0, self.path0())
        try:
            yield
        finally:
            sys.path[:] = saved

    def check(self) -> str | None:
        """A one-line problem with the target, or None if it looks runnable."""
        if self.is_module:
            with self.on_path():
                return _check_module(self.target)
        if not os.path.exists(self.target):
            return f"{self.target}: no such file"
        if os.path.isdir(self.target) and not os.path.exists(
            os.path.join(self.target, "__main__.py")
        ):
            return f"{self.target}: is a directory with no __main__.py"
        if not os.access(self.target, os.R_OK):
            return f"{self.target}: not readable"
        return None

    def source_files(self) -> list[str]:
        """The files python reads to start the program: the script, or the
        module's (or package's ``__main__``) file -- never to be overwritten by
        blocktrace's own output."""
        if not self.is_module:
            main = os.path.join(self.target, "__main__.py")
            return [self.target, main] if os.path.isdir(self.target) else [self.target]
        with self.on_path():
            spec = _find_spec_unimported(self.target)
            if spec is not None and spec.submodule_search_locations is not None:
                spec = _find_spec_unimported(f"{self.target}.__main__")
        origin = spec.origin if spec is not None else None
        return [origin] if origin and os.path.isfile(origin) else []


def target_problem(program: Program, target: str) -> str | None:
    """What is wrong with ``--target MODULE:FUNCTION`` for this program, found
    without running anything: a module that cannot be found where the program
    starts, or a source file that defines no function of that qualified name.
    ``__main__`` is the program itself; MODULE may also be a file path."""
    module, _, function = target.partition(":")
    if not module or not function:
        return None  # the scope says what form it takes
    if module == "__main__":
        sources = program.source_files()
        source = sources[-1] if sources else None
    elif os.path.exists(module):
        source = module if os.path.isfile(module) else None
    else:
        with program.on_path():
            try:
                spec = _find_spec_unimported(module)
            except (ImportError, ValueError):
                spec = None
        if spec is None:
            return (f"--target {target}: no module named {module!r} where the program starts "
                    "(a file path works too: --target path/to/module.py:FUNCTION)")
        source = spec.origin if spec.origin and spec.origin.endswith(".py") else None
    if source is None or not os.path.isfile(source):
        return None  # a built-in or extension module: its functions cannot be listed
    try:
        with io.open_code(source) as f:
            code = compile(f.read(), source, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return None  # python will say what is wrong with it when it runs
    if function in _qualified_names(code):
        return None
    return f"--target {target}: {source} defines no function {function!r}"


def _qualified_names(code: types.CodeType) -> set[str]:
    names: set[str] = set()
    stack = [code]
    while stack:
        code = stack.pop()
        names.add(code.co_qualname)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def _check_module(name: str) -> str | None:
    """Whether ``python -m name`` would find something to run -- found without
    importing anything (a package imported here would run its ``__init__``
    before the stepper starts, untraced)."""
    try:
        spec = _find_spec_unimported(name)
    except (ImportError, ValueError) as exc:
        return f"no module named {name!r} ({exc})"
    if spec is None:
        return f"no module named {name!r}"
    if spec.submodule_search_locations is not None:
        try:
            main = _find_spec_unimported(f"{name}.__main__")
        except (ImportError, ValueError):
            main = None
        if main is None:
            return (
                f"no module named {name}.__main__; {name!r} is a "
                "package and cannot be directly executed"
            )
    return None


def _find_spec_unimported(name: str) -> importlib.machinery.ModuleSpec | None:
    """``importlib.util.find_spec(name)``, but a dotted name's parent packages
    are looked up, not imported: each level is searched in the previous one's
    ``submodule_search_locations`` by the import system's finders."""
    import importlib.util

    parent, _, _ = name.rpartition(".")
    if not parent or name in sys.modules or parent in sys.modules:
        return importlib.util.find_spec(name)
    outer = _find_spec_unimported(parent)
    if outer is None:
        return None
    if outer.submodule_search_locations is None:
        raise ImportError(f"{parent!r} is not a package")
    where = list(outer.submodule_search_locations)
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        found: importlib.machinery.ModuleSpec | None = find(name, where)
        if found is not None:
            return found
    return None


@dataclass
class Outcome:
    """How the program ended."""

    status: int
    """The exit status ``python`` would have given."""
    error: str | None
    """``None``, ``"OutOfGas"``, or the uncaught exception as ``Type: message``."""

    @property
    def interrupted(self) -> bool:
        """Ended by an uncaught ``KeyboardInterrupt`` (Ctrl-C): ``python`` prints
        the traceback, finishes, and then dies of ``SIGINT``; ``status`` is what a
        shell shows for that (130)."""
        return self.error == "KeyboardInterrupt"


def _trim(tb: TracebackType | None, trailing: bool = False) -> TracebackType | None:
    """Drop the leading frames of blocktrace from a traceback, and runpy's but
    those python shows too (``python -m`` runs the module through
    ``runpy._run_module_as_main``, and its tracebacks start there); with
    ``trailing``, also every frame from the first of blocktrace's on (where a
    Ctrl-C landed in the stepper's callback: python would show the program's
    frame last)."""
    while tb is not None:
        code = tb.tb_frame.f_code
        filename = code.co_filename
        runpy_frame = filename.startswith(_RUNPY_DIR) or filename == _RUNPY_FROZEN
        if not (filename.startswith(_BLOCKTRACE_DIR) or runpy_frame) or (
            runpy_frame and code.co_name == "_run_module_as_main"
        ):
            break
        tb = tb.tb_next
    if not trailing or tb is None:
        return tb
    # the program never runs inside our frames: from the first of them on, the
    # frames are ours (and what they called, such as a dataclass's __init__)
    entry = tb
    while entry.tb_next is not None:
        if entry.tb_next.tb_frame.f_code.co_filename.startswith(_BLOCKTRACE_DIR):
            entry.tb_next = None
            break
        entry = entry.tb_next
    return tb


def _trimmed(exc: BaseException, trailing: bool = False) -> TracebackType | None:
    """Trim ``exc``'s own traceback: the default ``sys.excepthook`` prints
    ``exc.__traceback__``, whatever traceback it is passed."""
    tb = _trim(exc.__traceback__, trailing)
    exc.__traceback__ = tb
    return tb


def _script_call(path: str) -> tuple[Callable[..., object], tuple[object, ...]]:
    """How to run a script as ``python path`` does, where ``runpy.run_path``
    would not: ``__file__`` absolute while ``sys.argv[0]`` stays as given, a
    source loader, ``__package__`` None.  A directory or zip file
    (``sys.path[0]``) runs its ``__main__`` module as python runs it.  A script
    that cannot be read or compiled is a call that raises what python would
    have said."""
    if _is_app(path):
        return _module_call("__main__", alter_argv=False)
    full = os.path.abspath(path)
    main = _new_main()
    main.__dict__.update(
        __file__=full, __cached__=None, __package__=None, __spec__=None,
        __loader__=importlib.machinery.SourceFileLoader("__main__", full),
    )
    try:
        with io.open_code(full) as source:
            code = compile(source.read(), full, "exec", dont_inherit=True)
    except Exception as exc:  # OSError, SyntaxError, ValueError (a null byte)
        return _raise, (exc,)
    return exec, (code, main.__dict__)  # running the user's program is the point


def _raise(exc: BaseException) -> None:
    raise exc


def _module_call(name: str, alter_argv: bool = True) -> tuple[Callable[..., object],
                                                           tuple[object, ...]]:
    """How to run a module as ``python -m name`` (or python with a directory or
    zip file) does: with what it calls, ``runpy._run_module_as_main``, in a
    fresh ``__main__`` (``runpy.run_module`` and ``run_path`` would run it in a
    temporary module, dropped afterwards)."""
    _new_main()
    run_as_main = getattr(runpy, "_run_module_as_main")  # noqa: B009 - private, stable since 2.x
    return run_as_main, (name, alter_argv)


def _new_main() -> types.ModuleType:
    """A fresh ``__main__`` module, made ``sys.modules["__main__"]`` for good."""
    main = types.ModuleType("__main__")
    main.__dict__.update(_MAIN_GLOBALS)
    sys.modules["__main__"] = main
    return main


def _is_app(path: str) -> bool:
    """A directory or a zip file: python runs the ``__main__`` module in it."""
    if os.path.isdir(path):
        return True
    if path.endswith((".py", ".pyw")):
        return False
    import zipfile

    return zipfile.is_zipfile(path)


def _exit_status(code: object) -> tuple[int, str | None]:
    """What the interpreter does with ``SystemExit(code)``."""
    if code is None:
        return 0, None
    if isinstance(code, int):
        return code & 0xFF, None
    try:
        sys.stderr.write(f"{code}\n")
    except Exception:
        pass
    return 1, None


@dataclass
class Launch:
    """A program made ready to run by :func:`launch`, the stepper on.

    Whoever runs it calls ``call(*args)`` from its own frame -- that frame is
    then the only one of blocktrace's right under the program's -- inside
    ``with bottom():`` (the program's recursion depth stays python's), and
    passes :meth:`finish` what the call raised, or None::

        with ready.bottom():
            try:
                ready.call(*ready.args)
            except BaseException as exc:
                return ready.finish(exc)
        return ready.finish(None)

    (:func:`run_program` does exactly that; ``blocktrace run`` does it in
    ``blocktrace.cli.main`` and ``python -m blocktrace``'s module.)"""

    call: Callable[..., object]
    """``exec``, or ``runpy``'s ``_run_module_as_main`` for ``-m``: no frame of ours."""
    args: tuple[object, ...]
    stepper: Stepper
    previous: Tracer
    before_stop: Callable[[], object] | None = None

    @staticmethod
    def bottom() -> contextlib.AbstractContextManager[None]:
        """The ``with`` around the call: the frame that writes it counts as
        depth 0, as the C code under a program run by python does."""
        return as_program_bottom()

    def finish(self, exc: BaseException | None) -> Outcome:
        """How the program ended, from what its call raised: waits for its
        threads, flushes stdout, prints an uncaught exception's traceback as
        python would, then stops the stepper (after ``before_stop()``, which
        may add a last line to the trace: ``--record-inputs``).

        The program's signal handlers wait meanwhile (``HeldHandlers``), except
        while its own code runs (its threads, its stdout's flush): one that
        raises -- a timeout the program set -- never raises inside blocktrace,
        never leaves the trace unsealed; it runs once the trace is sealed."""
        held = hold_handlers()
        try:
            outcome = Outcome(0, None)
            try:
                if exc is None:
                    try:
                        with held.opened():
                            _join_threads()
                    except BaseException as late:  # Ctrl-C while waiting for them
                        exc = late
                try:
                    # As the interpreter does at exit: a closed stdout is not an error.
                    with held.opened():
                        if sys.stdout is not None and not getattr(sys.stdout, "closed", False):
                            sys.stdout.flush()
                except BaseException as late:
                    exc = late
                outcome = _outcome(exc, self.stepper, held)
            finally:
                if self.before_stop is not None:
                    self.before_stop()
                self.stepper.stop(str(outcome.status), outcome.error)
                set_tracer(self.previous)
        finally:
            held.release()
        return outcome


def launch(
    program: Program, tracer: Tracer, stepper: Stepper,
    before_stop: Callable[[], object] | None = None,
) -> Launch:
    """Make ``program`` ready to run under ``stepper`` into ``tracer`` (see
    :class:`Launch`).  ``sys.argv``, ``sys.path[0]`` and ``__main__`` become the
    program's, and stay so, as under python, for its exit handlers: running it
    is the last thing a process does."""
    previous = set_tracer(tracer)
    sys.argv = [program.target, *program.args]  # runpy replaces argv[0] with the file
    if sys.path:
        sys.path[0] = program.path0()
    else:
        sys.path.insert(0, program.path0())
    if program.is_module:
        call, args = _module_call(program.target)
    else:
        call, args = _script_call(program.target)
    stepper.start(stacklevel=1)
    return Launch(call, args, stepper, previous, before_stop)


def run_program(
    program: Program, tracer: Tracer, stepper: Stepper,
    before_stop: Callable[[], object] | None = None,
) -> Outcome:
    """Run ``program`` under ``stepper`` into ``tracer``; the stepper is stopped
    (and ``Stop`` emitted) before this returns (see :class:`Launch`)."""
    ready = launch(program, tracer, stepper, before_stop)
    with ready.bottom():
        try:
            ready.call(*ready.args)
        except BaseException as exc:
            return ready.finish(exc)
    return ready.finish(None)


def _outcome(exc: BaseException | None, stepper: Stepper, held: HeldHandlers) -> Outcome:
    """What python's exit status and error would be, the traceback printed."""
    if exc is None:
        return Outcome(0, None)
    if isinstance(exc, SystemExit):
        status, _ = _exit_status(exc.code)
        return Outcome(status, None if status == 0 else f"SystemExit: {exc.code}")
    if isinstance(exc, OutOfGas):
        _say(str(exc).removeprefix("blocktrace: "))
        return Outcome(OUT_OF_GAS_STATUS, "OutOfGas")
    if isinstance(exc, HaltRun):
        _say(f"run halted: {exc}")
        return Outcome(OUT_OF_GAS_STATUS, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, KeyboardInterrupt):
        _excepthook(exc, _trimmed(exc, trailing=True), held)
        return Outcome(130, "KeyboardInterrupt")
    name, message = exception_text(exc, stepper.renderer)
    _excepthook(exc, _trimmed(exc), held)
    return Outcome(1, f"{name}: {message}" if message else name)


def _excepthook(exc: BaseException, tb: TracebackType | None, held: HeldHandlers) -> None:
    """``sys.excepthook`` (the program's code, its signal handlers free to run)
    on an uncaught exception; a hook that raises is reported as python reports
    it, never raised out of blocktrace."""
    try:
        with held.opened():
            sys.excepthook(type(exc), exc, tb)
    except BaseException as error:
        if error.__context__ is exc:  # python calls the hook outside any ``except``
            error.__context__ = None
        try:
            sys.stderr.write("Error in sys.excepthook:\n")
            traceback.print_exception(error.with_traceback(_below(error.__traceback__)))
            sys.stderr.write("\nOriginal exception was:\n")
            traceback.print_exception(type(exc), exc, tb)
        except Exception:
            pass


def _below(tb: TracebackType | None) -> TracebackType | None:
    """A traceback without the frames of this module (and contextlib's) on top."""
    while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, contextlib.__file__):
        tb = tb.tb_next
    return tb


def _join_threads() -> None:
    """Wait for non-daemon threads, as the interpreter does before it exits, so
    that what they do is traced too."""
    import threading

    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon:
            thread.join()


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"blocktrace: {message}\n")
    except Exception:
        pass
