"""The ``blocktrace`` command: argument parsing and exit codes only.

Each sub-command lives in its own module here with ``register(subparsers)``,
which adds its parser and sets ``handler`` (``args -> exit code``).  The work is
done by the library layers; a handler only calls them and reports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from blocktrace.vm.runner import Program

__all__ = [
    "CliError", "ProgramInterrupted", "chosen_program", "comma_list", "main", "positive_float",
    "positive_int",
]

# Sub-command modules, in the order ``blocktrace --help`` lists them.
_COMMAND_MODULES = (
    "blocktrace.cli.run",
    "blocktrace.cli.verify",
    "blocktrace.cli.diff",
    "blocktrace.cli.proofs",
    "blocktrace.cli.snapshot",
    "blocktrace.cli.views",
)


class ProgramInterrupted(Exception):
    """The traced program ended by Ctrl-C (its traceback printed, its output
    written): the command ends as ``python`` would, by ``SIGINT``."""

    def __init__(self, status: int = 130) -> None:
        super().__init__(status)
        self.status = status


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


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def comma_list(values: list[str]) -> list[str]:
    """Repeatable options that also take comma-separated values, flattened."""
    return [part for value in values for part in value.split(",") if part]


def chosen_program(
    module: str | None, module_args: list[str], program: list[str], nothing: str
) -> tuple[Program, str]:
    """The program a command runs -- ``-m MODULE ARGS`` or ``SCRIPT ARGS`` -- checked,
    and the name its default output file takes.  ``nothing``: the error when neither."""
    from blocktrace.vm.runner import Program

    if module:
        chosen, name = Program(module, list(module_args), is_module=True), module
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
    """argparse, but a usage mistake is one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from blocktrace import __version__

    parser = _Parser(
        prog="blocktrace",
        description="Record, verify, prove and diff tamper-evident traces of Python programs.",
    )
    parser.add_argument("--version", action="version", version=f"blocktrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command (``argv`` None: ``sys.argv``); returns the exit status.

    Ctrl-C ends the command as it ends ``python``: run as the command, the
    process dies of ``SIGINT`` once the interpreter has finished (so a shell
    loop running it stops too); called with an ``argv``, 130 is returned."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except CliError as exc:
        sys.stderr.write(f"blocktrace {args.command}: {exc}\n")
        return exc.status
    except ProgramInterrupted as exc:
        return exc.status if argv is not None else _end_interrupted()
    except KeyboardInterrupt:
        sys.stderr.write(f"blocktrace {args.command}: interrupted\n")
        return 130 if argv is not None else _end_interrupted()
    except BrokenPipeError:
        return 1
    return status


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
