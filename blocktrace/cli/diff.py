"""``blocktrace diff A B``: the first step where two traces part ways, then hunks."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from blocktrace.cli import CliError, note_chain
from blocktrace.eip3155 import (
    DEFAULT_MAX_HUNKS,
    DEFAULT_WINDOW,
    DIALECTS,
    TraceError,
    diff_files,
    render_json,
    render_text,
)
from blocktrace.eip3155.records import MemberError
from blocktrace.limits import MAX_LINE_BYTES, size_text

__all__ = ["register"]


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two traces (blocktrace or any EIP-3155 client) step by step",
        description=(
            "Compare two EIP-3155 traces (blocktrace's own or any client's: geth, revm, "
            "besu, nethermind, evmone, nimbus, erigon, eels) and report the first step "
            "where they differ, then each further divergent region as a hunk. "
            "Exit status: 0 same, 1 different, 2 unusable input (a line over "
            f"{size_text(MAX_LINE_BYTES)} is)."
        ),
    )
    parser.add_argument("a", metavar="A", help="first trace file (JSON Lines)")
    parser.add_argument("b", metavar="B", help="second trace file (JSON Lines)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--fields", type=_names, metavar="F,G",
        help="compare exactly these fields (default: pc,op,gas,depth,stack; for blocktrace "
        "traces pc,op,depth,line,function,thread,error,locals,globals)",
    )
    parser.add_argument("--ignore", type=_names, metavar="F,G",
                        help="leave these fields out of the comparison")
    parser.add_argument("--stack-top", type=_count, metavar="N",
                        help="compare only the top N stack items")
    parser.add_argument("--max-hunks", type=_count, default=DEFAULT_MAX_HUNKS, metavar="N",
                        help=f"hunks shown in full (default {DEFAULT_MAX_HUNKS}); "
                        "the rest are counted")
    parser.add_argument("--window", type=_count, default=DEFAULT_WINDOW, metavar="N",
                        help="steps looked ahead on each side to resynchronise after a "
                        f"divergence (default {DEFAULT_WINDOW})")
    parser.add_argument("--by-line", action="store_true",
                        help="blocktrace traces: compare one executed source line at a time "
                        "instead of one instruction (runs on different Python versions)")
    parser.add_argument("--dialect", choices=sorted(DIALECTS), metavar="NAME",
                        help="treat both inputs as this dialect instead of detecting it "
                        f"({', '.join(sorted(DIALECTS))})")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.window < 1:
        raise CliError("--window must be at least 1")
    from blocktrace.progress import following

    try:
        with following([args.a, args.b], f"diff {args.a} {args.b}"):
            report = diff_files(
                args.a, args.b, fields=args.fields, ignore=args.ignore,
                stack_top=args.stack_top, max_hunks=args.max_hunks, window=args.window,
                dialect_a=args.dialect, dialect_b=args.dialect, by_line=args.by_line,
            )
        # rendered before anything is written: a member first decoded for the report
        # (a stack the comparison ignored) may be what is unusable
        if args.json:
            text = render_json(report)
        else:
            colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
            text = render_text(report, colour=colour)
    except TraceError as exc:
        raise CliError(str(exc), exc.exit_status) from None
    except MemberError as exc:  # a step knows its line, not which input it came from
        from blocktrace.eip3155.normalise import member_file

        path = member_file((args.a, args.b), exc.lineno, exc.member)
        raise CliError(
            str(exc) if path is None else f"{path}:{exc.lineno}: {exc.problem}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    sys.stdout.write(text)
    sys.stdout.flush()
    for info in (report.a, report.b):
        if info.dialect == "blocktrace":  # the steps compared say nothing of the chain
            note_chain("diff", info.path)
    return 0 if report.equal else 1
