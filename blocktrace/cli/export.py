"""``blocktrace export``: traces into a Parquet dataset (and timeline formats)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from blocktrace.cli import CliError, one_line, open_output
from blocktrace.format.errors import TraceError

_FORMATS = ("parquet", "perfetto", "speedscope")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export traces: a Parquet dataset (needs [query]), a Perfetto timeline, a "
        "speedscope flame graph",
        description="Export traces. --to parquet DIR: the query tables (docs/QUERY.md) as a "
        "Parquet dataset partitioned by run, which DuckDB, pyarrow, polars and Spark read "
        "unchanged; exporting into an existing dataset adds runs. --to perfetto FILE: Chrome "
        "trace-event JSON (ui.perfetto.dev, chrome://tracing), a track per thread and "
        "process, calls as nested slices, exceptions as instant events; on the instruction "
        "clock (1 step = 1 us) unless the run was recorded with --clock. --to speedscope "
        "FILE: a flame graph by steps (www.speedscope.app). Each trace is verified first: a "
        "tampered one is refused (exit 1) unless --allow-unverified, and is then marked. "
        "Exit 0 done, 1 tampered (refused), 2 bad input.",
    )
    p.add_argument("traces", nargs="+", metavar="TRACE|DIR",
                   help="trace files, or directories of .jsonl traces")
    p.add_argument("--to", nargs=2, required=True, metavar=("FORMAT", "OUT"),
                   help=f"what to write ({', '.join(_FORMATS)}) and where")
    p.add_argument("--allow-unverified", action="store_true",
                   help="export tampered traces too, marked (runs.status; the process name)")
    p.add_argument("--clock", choices=("auto", "steps", "wall"), default="auto",
                   help="timelines: instructions (1 step = 1 us), wall clock (recorded with "
                   "blocktrace run --clock), or auto: wall clock when recorded (perfetto)")
    p.add_argument("--force", action="store_true",
                   help="perfetto, speedscope: overwrite an existing OUT file")
    p.set_defaults(handler=export)


def export(args: argparse.Namespace) -> int:
    kind, args.output = args.to
    if kind not in _FORMATS:
        raise CliError(f"--to {kind}: not a format blocktrace exports ({', '.join(_FORMATS)})")
    import gc

    gc.freeze()  # the imports' objects live to the end: collections need not walk them
    if kind == "parquet":
        return _parquet(args)
    return _timeline(args, kind)


def _timeline(args: argparse.Namespace, kind: str) -> int:
    from blocktrace.query import QueryInputError, TamperedTrace
    from blocktrace.query.dataset import find_inputs, verify_or_refuse
    from blocktrace.query.timeline import TimelineError, write_perfetto, write_speedscope

    if not args.force and os.path.isfile(args.output):  # (before the verify pass)
        raise CliError(f"{one_line(args.output)} exists: not overwriting it (use --force)")
    try:
        datasets, traces = find_inputs(args.traces)
        if datasets:
            raise QueryInputError(f"{datasets[0]}: a Parquet dataset: give the traces instead")
        from blocktrace.progress import Progress, following, size_of

        statuses = []
        for t in traces:  # (a pass of its own, before the timeline's: its own progress line)
            with Progress(size_of(t), f"export {kind}: verify {t}") as progress:
                statuses.append(verify_or_refuse(t, args.allow_unverified, progress).status)
        write = write_perfetto if kind == "perfetto" else write_speedscope
        clock = args.clock if kind == "perfetto" or args.clock != "auto" else "steps"

        try:
            out = open_output(args.output, args.force)
        except FileExistsError:  # (made since the check above)
            raise CliError(f"{one_line(args.output)} exists: not overwriting it "
                           "(use --force)") from None
        regular = os.path.isfile(args.output)
        try:
            # the reading loop looks at the files' positions itself (a follower
            # thread may wait for the GIL longer than a short pass takes)
            with out, following(traces, f"export {kind}") as progress:
                write(traces, statuses, out, clock=clock, tick=progress.look)
        except BaseException:
            if regular:  # a half-written file of ours, not /dev/null
                try:
                    os.unlink(args.output)
                except OSError:
                    pass
            raise
    except TamperedTrace as exc:
        raise CliError(str(exc), status=1) from None
    except TraceError as exc:
        raise CliError(str(exc), exc.exit_status) from None
    except (QueryInputError, TimelineError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    sys.stdout.write(f"{len(traces)} trace{'s' if len(traces) != 1 else ''} -> {args.output} "
                     f"({kind})\n")
    return 0


def _parquet(args: argparse.Namespace) -> int:
    from blocktrace.query import QueryInputError, TamperedTrace, export_trace, require_extra
    from blocktrace.query.dataset import find_inputs

    try:
        require_extra("pyarrow")  # writing Parquet needs no DuckDB (~0.1 s to import)
        datasets, traces = find_inputs(args.traces)
        if datasets:
            raise QueryInputError(f"{datasets[0]}: is a dataset already, not a trace")
        from blocktrace.progress import following

        for path in traces:
            with following([path], f"export {path}") as progress:
                done = export_trace(path, args.output, allow_unverified=args.allow_unverified,
                                    tick=progress.look)
            sys.stdout.write(
                f"{done.path}: run {done.run} ({done.status}, {done.lines} lines) -> "
                f"{args.output} in {done.seconds:.2f} s\n"
            )
    except TamperedTrace as exc:
        raise CliError(str(exc), status=1) from None
    except QueryInputError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # (the dataset's directory: under a file, not writable)
        raise CliError(f"{one_line(args.output)}: cannot write: {exc.strerror or exc}") from None
    return 0
