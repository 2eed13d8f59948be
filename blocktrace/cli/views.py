"""``blocktrace lines`` (annotated source of a trace) and ``blocktrace types``
(runtime types of a program: table, stubs, patch)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from blocktrace.cli import (
    PROGRAM_ARGS_HELP,
    CliError,
    ProgramInterrupted,
    ProgramRun,
    chosen_program,
    comma_list,
    note_chain,
    one_line,
    own_options_among,
    refuse_overwriting,
    say_if_nothing_traced,
)
from blocktrace.limits import MAX_LINE_BYTES, MAX_SOURCE_BYTES, MAX_TABLE_BYTES, size_text

if TYPE_CHECKING:
    from blocktrace.format import TraceError


def register(sub: Any) -> None:
    lines = sub.add_parser(
        "lines",
        help="show a trace's source annotated with per-statement hits and values",
        description="Print each traced source file with how often every statement ran and, "
        "for traces recorded with --locals, sample values of the names it mentions after it "
        "ran (tracefunc's view, from a recorded trace). A trace line over "
        f"{size_text(MAX_LINE_BYTES)} is refused (exit 2); a source file over "
        f"{size_text(MAX_SOURCE_BYTES)} is not shown.",
        epilog="The hit column: one count per statement; a line holding several shows them "
        "as a/b/...: the statement first, then each comprehension (one hit per element it "
        "produced) and each lambda (one hit per call) in it, in source order. '!' marks a "
        "statement that never ran. Counts per statement need the source file unchanged and "
        "the same Python minor version as the recording; otherwise they are per line.",
    )
    lines.add_argument("trace", metavar="TRACE", help="a trace file from blocktrace run")
    lines.add_argument("--function", metavar="NAME",
                       help="only this function (name or qualified name)")
    lines.add_argument("--json", action="store_true",
                       help="one JSON object per statement instead of the annotated source")
    lines.set_defaults(handler=_lines)

    types = sub.add_parser(
        "types",
        help="record the runtime types of a program: table, .pyi stubs or a patch",
        description="Run SCRIPT (or -m MODULE) like python would and record the types of "
        "parameters, return values, locals, globals and members; or, with --from, read "
        "tables recorded earlier (e.g. by pytest --blocktrace-types).",
        epilog=PROGRAM_ARGS_HELP,
    )
    types.add_argument("-o", "--output", metavar="FILE",
                       help="type table to write: .jsonl, or .csv for CSV "
                       "(default: NAME.types.jsonl when running a program)")
    types.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    types.add_argument("--stubs", metavar="DIR", help="write .pyi stubs into DIR")
    types.add_argument("--patch", metavar="FILE",
                       help="write a unified diff adding the annotations to the source")
    types.add_argument("--root", metavar="DIR", default=".",
                       help="source root for --patch paths (default: current directory)")
    types.add_argument("--from", dest="tables", action="append", default=[], metavar="TABLE",
                       help="read a recorded .jsonl table instead of running (repeatable; "
                       f"at most {size_text(MAX_TABLE_BYTES)} each)")
    types.add_argument("--loop-limit", type=_limit, default=8, metavar="K",
                       help="stop watching a line once its types were stable for K visits, "
                       "until the next call (0: never stop; default 8)")
    types.add_argument("--include", action="append", default=[], metavar="PATH|MODULE",
                       help="trace only this file, directory or module (repeatable)")
    types.add_argument("--exclude", action="append", default=[], metavar="PATH|MODULE",
                       help="never trace this file, directory or module (repeatable)")
    types.add_argument("--force", action="store_true", help="overwrite existing output files")
    types.add_argument("-m", dest="module", metavar="MODULE ...",
                       help="run a library module (the rest of the line is its arguments)")
    types.add_argument("program", nargs="*", metavar="SCRIPT [ARGS...]")
    types.set_defaults(handler=_types, parser=types)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _lines(args: argparse.Namespace) -> int:
    from blocktrace.progress import following
    from blocktrace.views.lines import TraceFormatError, render_json, render_text, view_trace

    try:
        # followed from outside (a read through the index, a compressed file), and
        # told by a whole read of a plain file itself: a follower thread may wait
        # long for the GIL while the reading thread runs Python
        with following([args.trace], f"lines {args.trace}") as progress:
            views = view_trace(args.trace, args.function, progress.update)
    except OSError as exc:
        raise CliError(f"{args.trace}: cannot read: {exc.strerror or exc}") from None
    except TraceFormatError as exc:  # its message names the file; 1 where verify says TAMPERED
        raise _as_verify_says(args.trace, exc) from None
    if args.function:
        from blocktrace.views.lines import _selected

        if not _selected(views, args.function):
            raise CliError(f"{args.trace}: no traced source defines {args.function!r}")
    if args.json:
        sys.stdout.buffer.write(render_json(views, args.function))
        sys.stdout.flush()
    else:
        sys.stdout.write(render_text(views, args.function))
    sys.stdout.flush()
    note_chain("lines", args.trace)
    return 0


def _as_verify_says(path: str, exc: TraceError) -> CliError:
    """The error for a line ``lines`` cannot read past the header: a line damaged
    inside (a byte flipped) fails the chain there or before, so it is said as
    verify says it (``TAMPERED at line N``, exit 1) when the trace's chain pass
    stops at or before that line; else the reader's own line (exit 2)."""
    from blocktrace.format import TraceError, TraceReader

    if exc.status == "unusable" and exc.lineno is not None and exc.lineno > 1:
        try:
            index = TraceReader(path).index()
        except (TraceError, OSError):
            index = None
        if (index is not None and index.status == "tampered" and index.line is not None
                and index.line <= exc.lineno):
            return CliError(f"{one_line(path)}: TAMPERED at line {index.line}: "
                            f"{one_line(index.reason)} (blocktrace verify says more)", 1)
    return CliError(str(exc), exc.exit_status)


def _check_writable(path: str | None, force: bool) -> None:
    """Refuse, before the program runs, an output that could not be written."""
    if path is None:
        return
    if os.path.exists(path) and not force:
        raise CliError(f"{path} exists: not overwriting it (use --force)")
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory")
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise CliError(f"{path}: cannot write: no such directory")


def _refuse_overwriting(args: argparse.Namespace, sources: list[str], what: str) -> None:
    refuse_overwriting(
        [("type table", args.output), ("CSV table", args.csv), ("patch", args.patch)],
        [(what, path) for path in sources],
    )


def _types(args: argparse.Namespace) -> int | ProgramRun:
    from blocktrace.views.types import TypeTable, TypeTracer

    if args.tables and (args.program or args.module):
        raise CliError("give either --from TABLE or a program to run, not both")
    for path in (args.output, args.csv, args.patch):
        _check_writable(path, args.force)
    if args.stubs is not None and os.path.exists(args.stubs) and not os.path.isdir(args.stubs):
        raise CliError(f"{args.stubs}: not a directory (--stubs DIR)")
    if args.root is not None and not os.path.isdir(args.root):
        raise CliError(f"{args.root}: no such directory (--root DIR)")
    if args.tables:
        if args.output is None and args.csv is None and args.stubs is None and args.patch is None:
            raise CliError("nothing to write: give --stubs DIR, --patch FILE, -o FILE or "
                           "--csv FILE with --from")
        table = TypeTable()
        for path in args.tables:
            try:
                table.merge(TypeTable.read(path))
            except OSError as exc:
                raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise CliError(str(exc)) from None
        return _write_types(args, table)

    from blocktrace.tracers.render import Renderer
    from blocktrace.vm.runner import Outcome, launch
    from blocktrace.vm.scope import Scope, ScopeError
    from blocktrace.vm.stepper import Stepper

    program, name = chosen_program(
        args.module, args.program,
        "nothing to do: give a script (or -m MODULE), or --from TABLE",
    )
    if args.output is None:
        args.output = f"{name}.types.jsonl"
        _check_writable(args.output, args.force)
    _refuse_overwriting(args, program.source_files(), "the program")
    try:
        with program.on_path():
            scope = Scope(comma_list(args.include), comma_list(args.exclude), None)
    except ScopeError as exc:
        raise CliError(str(exc)) from None
    tracer = TypeTracer(loop_limit=args.loop_limit or None)
    stepper = Stepper(scope, renderer=Renderer())

    def then(outcome: Outcome) -> int:
        say_if_nothing_traced("types", stepper.gas_used, program, outcome.error)
        _write_types(args, tracer.table)
        if outcome.interrupted:
            raise ProgramInterrupted(outcome.status)
        return outcome.status

    # run from blocktrace.cli.main's own frame, as `blocktrace run` does: the
    # fewest frames of blocktrace's under the program
    return ProgramRun(launch(program, tracer, stepper), then)


def _outside_root(table: Any, root: str | None) -> int:
    """How many of the table's source files a patch under ``root`` leaves out."""
    base = os.path.realpath(root if root is not None else os.getcwd())
    files = {row.file for row in table.rows()}
    return sum(1 for f in files
               if os.path.isfile(f) and not os.path.realpath(f).startswith(base + os.sep))


def _write_types(args: argparse.Namespace, table: Any) -> int:
    """Write the table where the options say (type table, CSV, stubs, patch)."""
    from blocktrace.views.stubs import stub_files, unified_patch, write_stubs

    _refuse_overwriting(args, sorted({row.file for row in table.rows()}), "a traced source file")
    writing = args.output  # named in the error: a failed write() has no file name of its own
    try:
        if args.output is not None:
            table.write(args.output)
        if args.csv is not None:
            writing = args.csv
            with open(args.csv, "w", encoding="utf-8", newline="") as f:
                f.write(table.to_csv())
        if args.patch is not None:
            writing = args.patch
            patch = unified_patch(table, args.root)
            with open(args.patch, "w", encoding="utf-8") as f:
                f.write(patch)
            files = sum(1 for line in patch.splitlines() if line.startswith("+++ "))
            said = (f"annotations for {files} file(s)" if files
                    else "empty: the run left no annotation to add")
            outside = _outside_root(table, args.root)
            if outside:
                root = os.path.abspath(args.root if args.root is not None else os.getcwd())
                some = (f"{outside} traced file is" if outside == 1
                        else f"{outside} traced files are")
                said = (f"{said}; {some} outside {one_line(root)}, not patched (give --root DIR)"
                        if files else f"empty: {some} outside {one_line(root)} (give --root DIR)")
            sys.stderr.write(f"blocktrace types: patch {one_line(args.patch)}: {said}\n")
        if args.stubs is not None:
            # which stubs there are is known only now (the modules the run went
            # through): a stub already there, perhaps written by hand, is kept
            stubs = stub_files(table, args.stubs)
            there = [path for path, _ in stubs if os.path.lexists(path)]
            if there and not args.force:
                saved = f"; the types are in {args.output}" if args.output is not None else ""
                raise CliError(f"{there[0]} exists: not overwriting it (use --force){saved}")
            writing = args.stubs
            written = write_stubs(table, args.stubs, stubs=stubs)
            sys.stderr.write(f"blocktrace types: {len(written)} stub file(s) in {args.stubs}\n")
    except OSError as exc:
        where = exc.filename if exc.filename is not None else writing
        raise CliError(f"{one_line(str(where))}: cannot write: {exc.strerror or exc}") from None
    misplaced = own_options_among(args.parser, args.program[0 if args.module else 1:])
    if misplaced:
        sys.stderr.write(f"blocktrace types: note: {', '.join(misplaced)} came after the program, "
                         "so the program got them as its arguments: put blocktrace's options "
                         "before SCRIPT (or -m MODULE)\n")
    return 0
