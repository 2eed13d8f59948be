"""``blocktrace export``: traces into a Parquet dataset (and timeline formats)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from blocktrace.cli import CliError

_FORMATS = ("parquet",)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export traces as a Parquet dataset (needs [query])",
        description="Export traces. --to parquet DIR: the query tables (docs/QUERY.md) as a "
        "Parquet dataset partitioned by run, which DuckDB, pyarrow, polars and Spark read "
        "unchanged; exporting into an existing dataset adds runs. Each trace is verified "
        "first: a tampered one is refused (exit 1) unless --allow-unverified, and runs.status "
        "says what verify says. Exit 0 done, 1 tampered (refused), 2 bad input.",
    )
    p.add_argument("traces", nargs="+", metavar="TRACE|DIR",
                   help="trace files, or directories of .jsonl traces")
    p.add_argument("--to", nargs=2, required=True, metavar=("FORMAT", "OUT"),
                   help=f"what to write ({', '.join(_FORMATS)}) and where")
    p.add_argument("--allow-unverified", action="store_true",
                   help="export tampered traces too, marked in runs.status")
    p.set_defaults(handler=export)


def export(args: argparse.Namespace) -> int:
    kind, args.output = args.to
    if kind not in _FORMATS:
        raise CliError(f"--to {kind}: not a format blocktrace exports ({', '.join(_FORMATS)})")
    return _parquet(args)


def _parquet(args: argparse.Namespace) -> int:
    from blocktrace.query import QueryInputError, TamperedTrace, export_trace, require_extra
    from blocktrace.query.dataset import find_inputs

    try:
        require_extra()
        datasets, traces = find_inputs(args.traces)
        if datasets:
            raise QueryInputError(f"{datasets[0]}: is a dataset already, not a trace")
        for path in traces:
            done = export_trace(path, args.output, allow_unverified=args.allow_unverified)
            sys.stdout.write(
                f"{done.path}: run {done.run} ({done.status}, {done.lines} lines) -> "
                f"{args.output} in {done.seconds:.2f} s\n"
            )
    except TamperedTrace as exc:
        raise CliError(str(exc), status=1) from None
    except QueryInputError as exc:
        raise CliError(str(exc)) from None
    return 0
