"""``blocktrace replay TRACE``: re-run a recorded program and check it did exactly the same."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from blocktrace.cli import CliError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="re-run a program recorded with --record-inputs and check it does the same",
        description=(
            "Verify TRACE, re-run the program it recorded with the same argv, stdin, "
            "environment variables, working directory and hash seed, and compare the new "
            "trace with TRACE step by step. Exit status: 0 same behaviour, 1 different "
            "(the first divergence, as blocktrace diff reports it) or TRACE fails its "
            "check (TAMPERED, as blocktrace verify says), 2 cannot replay (unusable, "
            "unsealed, no inputs recorded, ...)."
        ),
    )
    parser.add_argument("trace", metavar="TRACE", help="a trace written by "
                        "blocktrace run --record-inputs")
    parser.add_argument("--by-line", action="store_true",
                        help="compare one executed source line at a time (allows another "
                        "Python version than the recording's)")
    parser.add_argument("--keep", metavar="FILE", help="keep the re-run's trace in FILE")
    parser.add_argument("--json", action="store_true", help="print the diff as one JSON object")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from blocktrace.eip3155 import TraceError, render_json, render_text
    from blocktrace.replay import ReplayError, replay

    if args.keep and os.path.exists(args.keep):
        raise CliError(f"{args.keep} exists: not overwriting it")
    try:
        done = replay(args.trace, by_line=args.by_line, keep=args.keep)
    except (ReplayError, TraceError) as exc:
        raise CliError(str(exc), exc.exit_status) from None
    report = done.report
    for name in done.changed:
        sys.stderr.write(f"note: {name} changed since the recording (its SHA-256 differs): "
                         "the re-run ran other code\n")
    if args.json:
        sys.stdout.write(render_json(report))
    elif report.equal:
        unit = "source lines" if args.by_line else "steps"
        sys.stdout.write(f"same behaviour, {report.steps.steps_a} {unit}\n")
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        sys.stdout.write(render_text(report, colour=colour))
    return 0 if report.equal else 1
