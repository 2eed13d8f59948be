"""The ``blocktrace`` command: argument parsing and exit codes only.

Each sub-command lives in its own module here with ``register(subparsers)``,
which adds its parser and sets ``handler`` (``args -> exit code``).  The work is
done by the library layers; a handler only calls them and reports.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import stat
import sys
from collections.abc import Callable, Iterable, Sequence

TYPE_CHECKING = False  # typing is not imported: a usage error or --version needs nothing more
if TYPE_CHECKING:
    from typing import Any, BinaryIO, NoReturn

    from blocktrace.vm.runner import Launch, Outcome, Program

__all__ = [
    "PROGRAM_ARGS_HELP", "CliError", "Command", "ProgramInterrupted", "ProgramRun",
    "byte_size", "chosen_program", "comma_list",
    "gas_budget",
    "main", "one_line", "own_options_among", "positive_float", "positive_int", "refuse_overwriting",
    "say_if_nothing_traced", "split_program", "text_token",
]

# Sub-command modules, in the order ``blocktrace --help`` lists them, with the
# commands each registers: a command imports only its own module (``blocktrace
# run`` starts in a fraction of the time every module would cost).  A command
# missing here still works, at the cost of importing every module.
_COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "blocktrace.cli.run": ("run",),
    "blocktrace.cli.verify": ("verify",),
    "blocktrace.cli.show": ("show",),
    "blocktrace.cli.cat": ("cat",),
    "blocktrace.cli.diff": ("diff",),
    "blocktrace.cli.view": ("view",),
    "blocktrace.cli.replay": ("replay",),
    "blocktrace.cli.proofs": ("keygen", "sign", "prove", "check-proof"),
    "blocktrace.cli.snapshot": ("snapshot", "serve"),
    "blocktrace.cli.views": ("lines", "types"),
    "blocktrace.cli.query": ("query",),
    "blocktrace.cli.export": ("export",),
}


_COMMANDS: tuple[str, ...] = tuple(c for names in _COMMAND_MODULES.values() for c in names)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'run'?`` for a typo close to one of ``choices``, else ``""``."""
    import difflib  # (only on a usage mistake: not an import on every command's start)

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# Sub-commands that run a program: everything after their SCRIPT or ``-m MODULE``
# is the program's, as with ``python`` and ``coverage run``.
_RUNS_A_PROGRAM = ("run", "types")
_NAMES_AS_BYTES = ("verify", "show", "cat", "diff", "view", "keygen", "sign", "prove",
                   "check-proof", "lines", "query", "export")
"""The commands that run no program: their text on stdout writes a file name
whose bytes are not UTF-8 with those bytes, whatever the locale (a JSON answer
writes them ``\\xNN``: ``format.callline.json_text``)."""

PROGRAM_ARGS_HELP = ("blocktrace's options go before SCRIPT (or -m MODULE): everything after "
                     "it is the program's own arguments, as with python.")


class ProgramInterrupted(Exception):
    """The traced program ended by Ctrl-C (its traceback printed, its output
    written): the command ends as ``python`` would, by ``SIGINT``."""

    def __init__(self, status: int = 130) -> None:
        super().__init__(status)
        self.status = status


_ESCAPED = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
            if code != 0x09}
_ESCAPED.update({0x0A: "\\n", 0x0D: "\\r"})


def one_line(text: str) -> str:
    """``text`` made one line for stderr: line breaks and other control characters
    it carries from the input (a file name, a field name in a request, a mistyped
    argument) shown escaped, so that none moves the cursor or recolours the terminal."""
    return text.translate(_ESCAPED)


def note_unverified(command: str, path: str, status: str, line: int | None,
                    reason: str) -> None:
    """One line on stderr when the trace a command showed is tampered or unsealed
    (what its index's chain pass found): a reader never presents it as good."""
    if status not in ("tampered", "unsealed"):
        return
    where = f" at line {line}" if line is not None else ""
    sys.stderr.write(
        f"blocktrace {command}: note: {one_line(path)} is "
        f"{'TAMPERED' if status == 'tampered' else 'UNSEALED'}{where} "
        f"(blocktrace verify says why): {one_line(reason)}\n"
    )


def note_chain(command: str, path: str) -> None:
    """Say on stderr when a blocktrace trace just shown does not verify as sealed
    (its index's chain pass: built once, in one streaming pass, then kept)."""
    from blocktrace.format import TraceError, TraceReader
    from blocktrace.progress import Progress

    try:
        reader = TraceReader(path)
        with Progress(os.path.getsize(path), f"checking {path}") as progress:
            index = reader.index(progress=progress)
    except (TraceError, OSError):
        return  # what was shown came from it; the chain pass has nothing to add
    except Exception as exc:  # a reader's bug must not turn what was shown into a traceback
        sys.stderr.write(f"blocktrace {command}: note: {one_line(path)}: its chain could not "
                         f"be checked ({type(exc).__name__}: {one_line(str(exc))})\n")
        return
    if index is not None:
        note_unverified(command, path, index.status, index.line, index.reason)


class CliError(Exception):
    """A problem to report as one line on stderr, with an exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def positive_int(text: str) -> int:
    """An argparse type: a whole number above 0 (decimal, or 0x/0o/0b-prefixed)."""
    try:
        value = int(text, 0)
    except ValueError:
        try:
            value = int(text)  # "010"
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


UINT64_MAX = 2**64 - 1


def gas_budget(text: str) -> int:
    """An argparse type: a step budget, 1 to 2**64-1 (EIP-3155's ``gas`` is a
    uint64, and readers of the trace expect one)."""
    value = positive_int(text)
    if value > UINT64_MAX:
        raise argparse.ArgumentTypeError(
            f"above 2**64-1 (18446744073709551615), the largest EIP-3155 gas: {text!r}")
    return value


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def byte_size(text: str) -> int:
    """An argparse type: a size in bytes, ``100``, ``64K``, ``10M``, ``2G``
    (K = 1024 bytes, as ``head -c`` counts), above 0."""
    digits = text.strip()
    unit = digits[-1:].upper() if digits[-1:].isalpha() else ""
    digits = digits[:len(digits) - len(unit)]
    if unit not in _SIZE_UNITS or not digits.isdigit():
        raise argparse.ArgumentTypeError(
            f"not a size in bytes (a whole number, optionally with K, M or G): {text!r}")
    value = int(digits) * _SIZE_UNITS[unit]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def text_token(text: str) -> str:
    """An argument that goes into a trace as JSON text (a genesis token): refused
    when it holds bytes that are not UTF-8 (argv's lone surrogates, which no
    JSON encoder takes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"not UTF-8 text: {text!r}") from None
    return text


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def refuse_overwriting(outputs: Iterable[tuple[str, str | None]],
                       inputs: Iterable[tuple[str, str | None]]) -> None:
    """A :class:`CliError` when an output path is a file the command reads (the
    program, a key), or two outputs are one file -- ``--force`` or not: the run
    would destroy what it runs on.  Each item is (what it is, path or None)."""
    seen: list[tuple[str, str]] = [(what, path) for what, path in inputs if path]
    for what, path in outputs:
        if not path:
            continue
        for other_what, other in seen:
            if _same_file(path, other):
                raise CliError(f"{path}: is {other_what}; not writing the {what} over it "
                               "(choose another file)")
        seen.append((f"the {what}", path))


def open_output(path: str, force: bool) -> BinaryIO:
    """``path`` opened to write, as a new file unless ``force``: an existing
    regular file is :class:`FileExistsError` (the caller's one line, "use
    --force"); a device or a pipe (``/dev/null``, ``/dev/stdout``, a FIFO) is
    written to, as there is nothing in it to lose.  Other errors: OSError."""
    if force:
        return open(path, "wb")
    try:
        return open(path, "xb")
    except FileExistsError:
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)
        except OSError:
            regular = True  # a dangling link, or gone since: not written through
        if regular:
            raise
        return open(path, "wb")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def say_if_nothing_traced(command: str, steps: int, program: Program, error: str | None,
                          target: str | None = None) -> None:
    """One line on stderr when a run traced no instruction: the scope left out
    everything that ran (a library module run with ``-m``, a target that never
    ran), and the user should hear how to widen it.  Not when the program died
    of an uncaught exception (a syntax error: nothing ran, and its traceback
    says why)."""
    if steps or (error is not None and not error.startswith("SystemExit")):
        return
    if target is not None:
        hint = f"--target {target} never ran"
    elif program.is_module:
        top = program.target.split(".")[0]
        hint = (f"by default only your own code is traced, not the standard library or "
                f"site-packages: add --include {top} to trace {program.target}")
    else:
        hint = ("nothing in scope ran (--include PATH|MODULE traces library code, "
                "--exclude leaves code out)")
    sys.stderr.write(f"blocktrace {command}: 0 steps recorded: {hint}\n")


def comma_list(values: list[str]) -> list[str]:
    """Repeatable options that also take comma-separated values, flattened."""
    return [part for value in values for part in value.split(",") if part]


def split_program(
    parser: argparse.ArgumentParser, args: Sequence[str]
) -> tuple[list[str], str | None, list[str]]:
    """Split a sub-command's arguments where the program's begin: at its first
    positional argument (SCRIPT), at ``-m MODULE`` or after ``--``.

    Returns (blocktrace's own arguments, the module or None, the program's
    arguments: ``[SCRIPT, *ARGS]``, or the module's ``ARGS``).  argparse alone
    cannot be told this: it reads every ``--word`` of the line as an option of
    its own, prefix-matched, before it hands out positionals."""
    options = parser._option_string_actions  # argparse's table of option strings
    own: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            return own, None, list(args[i + 1:])
        if not token.startswith("-") or token == "-":
            return own, None, list(args[i:])
        i += 1
        if token.startswith("--"):
            name, eq, _ = token.partition("=")
            action = options.get(name)
            wants = 0 if eq or action is None else _values_taken(action)
        else:  # a cluster of short options: -v, -vo FILE, -oFILE, -mMODULE
            wants = 0
            for j in range(1, len(token)):
                if token[j] == "m":
                    if j > 1:
                        own.append(token[:j])
                    if j + 1 < len(token):
                        return own, token[j + 1:], list(args[i:])
                    return own, (args[i] if i < len(args) else ""), list(args[i + 1:])
                action = options.get(f"-{token[j]}")
                if action is None:
                    break  # argparse says what is wrong with it
                if _values_taken(action):
                    wants = 0 if j + 1 < len(token) else _values_taken(action)
                    break
        own.append(token)
        own.extend(args[i:i + wants])
        i += wants
    return own, None, []


def own_options_among(parser: argparse.ArgumentParser, program_args: Sequence[str]) -> list[str]:
    """The program's arguments that are spelled as one of the command's own
    options: most likely put after SCRIPT by mistake."""
    options = parser._option_string_actions
    return [a for a in program_args
            if a.startswith("-") and a.partition("=")[0] in options and a not in ("-h", "--help")]


def _values_taken(action: argparse.Action) -> int:
    if action.nargs is None:
        return 1
    if isinstance(action.nargs, int):
        return action.nargs
    raise AssertionError(f"{action.option_strings}: an option before SCRIPT takes a fixed "
                         "number of values")


def chosen_program(
    module: str | None, program: list[str], nothing: str
) -> tuple[Program, str]:
    """The program a command runs -- ``-m MODULE ARGS`` or ``SCRIPT ARGS``, as
    :func:`split_program` found them -- checked, and the name its default output
    file takes.  ``nothing``: the error when neither."""
    from blocktrace.vm.runner import Program

    if module is not None:
        if not module:
            raise CliError("argument -m: expected a module name")
        chosen, name = Program(module, list(program), is_module=True), module
    elif program:
        chosen = Program(program[0], list(program[1:]))
        name = os.path.splitext(os.path.basename(os.path.normpath(program[0])))[0]
    else:
        raise CliError(nothing)
    problem = chosen.check()
    if problem is not None:
        raise CliError(problem)
    return chosen, name


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit 2, and no
    option may be abbreviated (``--check`` is a program's, never a prefix of
    ``--checkpoint-every``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {one_line(message)} (see --help)\n")
        raise SystemExit(2)


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, told the terminal's width as
    ``shutil.get_terminal_size`` finds it (``COLUMNS``, else standard output's
    terminal, else 80) without importing shutil: argparse makes a formatter for
    every ``add_argument``, and shutil brings bz2, lzma and fnmatch to every
    command's start (~2 ms)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _terminal_columns() - 2  # as argparse does with shutil's answer
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
            columns = 0
    return columns or 80


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or only of the module that registers
    ``command`` when the table knows it."""
    from blocktrace import __version__

    parser = _Parser(
        prog="blocktrace",
        description="Record, verify, prove and diff tamper-evident traces of Python programs.",
    )
    parser.add_argument("--version", action="version", version=f"blocktrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    if command == "--version":  # argparse answers it first, whatever follows: no command
        modules: list[str] | dict[str, tuple[str, ...]] = []
    else:
        modules = ([name for name, commands in _COMMAND_MODULES.items() if command in commands]
                   or _COMMAND_MODULES)
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


class ProgramRun:
    """What a handler returns to have a program run (``blocktrace run``): the
    program made ready, the stepper on (``launch``), and what the command does
    with its outcome (``then``: the exit status).  :func:`main` runs it from
    its own frame, so that no frame of the command's lies under the program."""

    def __init__(self, launch: Launch, then: Callable[[Outcome], int]) -> None:
        self.launch = launch
        self.then = then


class Command:
    """A command line, parsed, its handler called: done (``program`` None, the
    exit status in ``status``), or a program to run (``program``), whose end
    :meth:`finish` reports.  Errors are one line on stderr and an exit status,
    as :func:`main` promises."""

    def __init__(self, argv: Sequence[str] | None) -> None:
        self._as_command = argv is None
        words = list(sys.argv[1:] if argv is None else argv)
        _check_interpreter()
        if words and not words[0].startswith("-") and words[0] not in _COMMANDS:
            hint = (f"; to trace it: blocktrace run {words[0]}"
                    if words[0].endswith(".py") or os.path.isfile(words[0])
                    else _did_you_mean(words[0], _COMMANDS)
                    or f"; the commands: {', '.join(_COMMANDS)}")
            _Parser(prog="blocktrace").error(f"unknown command {words[0]!r}{hint}")
        collecting = gc.isenabled()
        gc.disable()  # importing the command's modules makes no garbage worth a collection
        try:
            parser = build_parser(words[0] if words else None)
        except ModuleNotFoundError as exc:  # a command's module imports a dependency
            if exc.name not in _DEPENDENCIES:
                raise
            sys.stderr.write(f"blocktrace: {_not_installed(exc.name)}\n")
            raise SystemExit(2) from None
        finally:
            if collecting:
                gc.enable()
        split = None
        if words and words[0] in _RUNS_A_PROGRAM:
            command = _subparser(parser, words[0])
            own, module, program = split = split_program(command, words[1:])
            words = [words[0], *own]
        args, unknown = parser.parse_known_args(words)
        if unknown:  # said by the command's parser, naming it, with the option meant
            command = _subparser(parser, args.command)
            near = next((_did_you_mean(word.partition("=")[0], command._option_string_actions)
                         for word in unknown if word.startswith("--")), "")
            command.error(f"unrecognized arguments: {' '.join(unknown)}{near}")
        if split is not None:
            args.module, args.program = module, program
        self.name: str = args.command
        if self._as_command and self.name in _NAMES_AS_BYTES:
            _names_as_bytes()
            # What the start made (modules, the parser) lives until the process ends:
            # no collection looks at it again, the one at the interpreter's exit neither
            # (a command that runs no program: the program's objects are never frozen).
            gc.freeze()
        self.program: Launch | None = None
        self._then: Callable[[Outcome], int] | None = None
        self.status = self._guarded(lambda: self._handle(args))

    def _handle(self, args: argparse.Namespace) -> int:
        try:
            result = args.handler(args)
        except ModuleNotFoundError as exc:  # the program has not started: it is ours
            if exc.name not in _DEPENDENCIES:
                raise
            raise _not_installed(exc.name) from None
        if isinstance(result, ProgramRun):
            self.program, self._then = result.launch, result.then
            return 0
        status: int = result
        return status

    def finish(self, exc: BaseException | None) -> int:
        """The exit status, once the program's call returned or raised ``exc``."""
        launch, then = self.program, self._then
        assert launch is not None and then is not None
        return self._guarded(lambda: then(launch.finish(exc)))

    def _guarded(self, work: Callable[[], int]) -> int:
        try:
            return work()
        except CliError as exc:
            sys.stderr.write(f"blocktrace {self.name}: {one_line(str(exc))}\n")
            return exc.status
        except ProgramInterrupted as exc:
            return _end_interrupted() if self._as_command else exc.status
        except KeyboardInterrupt:
            sys.stderr.write(f"blocktrace {self.name}: interrupted\n")
            return _end_interrupted() if self._as_command else 130
        except BrokenPipeError:
            return 1


def main(argv: Sequence[str] | None = None) -> int:
    """The command (``argv`` None: ``sys.argv``); returns the exit status.

    Ctrl-C ends the command as it ends ``python``: run as the command, the
    process dies of ``SIGINT`` once the interpreter has finished (so a shell
    loop running it stops too); called with an ``argv``, 130 is returned.

    A program (``blocktrace run``) is called from this frame, the fewest frames
    of blocktrace's under it: this one and the ``blocktrace`` script's
    (``python -m blocktrace`` does the same in its ``__main__`` module)."""
    command = Command(argv)
    ready = command.program
    if ready is None:
        return command.status
    with ready.bottom():
        try:
            ready.call(*ready.args)
        except BaseException as exc:
            return command.finish(exc)
    return command.finish(None)


def _names_as_bytes() -> None:
    """stdout writes the lone surrogates a file name that is not UTF-8 holds as
    its bytes (as Python does in the C locale), not a UnicodeEncodeError (in a
    UTF-8 locale).  Only for commands that run no program: a traced program's
    stdout stays as Python made it."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and getattr(sys.stdout, "encoding", "").lower() in ("utf-8", "utf8"):
        reconfigure(errors="surrogateescape")


def _check_interpreter() -> None:
    """One line and exit 2, not a traceback, when this Python is too old to run
    blocktrace (``python3 -m blocktrace`` in a checkout, ``python3`` a 3.11)."""
    if sys.version_info < (3, 12):  # noqa: UP036 -- this Python is the one not supported
        import platform

        sys.stderr.write(
            "blocktrace: needs CPython 3.12 or newer (it is built on sys.monitoring); this is "
            f"Python {platform.python_version()}, {sys.executable}: set one up with "
            "bash scripts/dev demo (README, \"Set up\")\n")
        raise SystemExit(2)


_DEPENDENCIES = ("msgspec", "typing_extensions")


def _not_installed(name: str) -> CliError:
    """A dependency missing: this Python is not the one blocktrace was installed into."""
    import platform

    return CliError(f"{name} is not installed in this Python ({platform.python_version()}, "
                    f"{sys.executable}): run blocktrace from the environment it was installed "
                    "into (README, \"Set up\"), or pip install -e . in the checkout")


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse keeps sub-commands as an action
        if isinstance(action.choices, dict) and name in action.choices:
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise LookupError(name)


def _end_interrupted() -> NoReturn:
    """Raise a ``KeyboardInterrupt`` out of the command, printing nothing more
    (what there was to say is said): the interpreter then finishes as after a
    program's uncaught Ctrl-C -- ``atexit`` handlers, buffered files -- and
    ends by ``SIGINT`` as ``python`` does (an exit status of 130 where it
    cannot)."""
    marker = KeyboardInterrupt()
    previous = sys.excepthook

    def quiet(kind: type[BaseException], value: BaseException, tb: object) -> None:
        if value is not marker:
            previous(kind, value, tb)  # type: ignore[arg-type]

    sys.excepthook = quiet
    raise marker
