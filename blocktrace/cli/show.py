"""``blocktrace show``: the lines of a step range, through the trace's index."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from blocktrace.cli import CliError, note_unverified, one_line


def register(sub: Any) -> None:
    p = sub.add_parser(
        "show",
        help="print the lines of steps STEP[:COUNT] (random access through the index)",
        description="Print the exact lines of COUNT steps (default 1) from STEP (0-based, as "
        "`blocktrace diff` numbers steps), with the call, return and exception lines among "
        "them; --line numbers file lines instead (the header is line 1). The first use builds "
        "the trace's index (TRACE.idx, or in $XDG_CACHE_HOME/blocktrace when the trace's "
        "directory is not writable) in one pass; after that any range is read without reading "
        "what comes before it. Reads .jsonl, .jsonl.zst and .jsonl.gz alike.",
    )
    p.add_argument("trace", metavar="TRACE")
    p.add_argument("range", metavar="STEP[:COUNT]", type=_range)
    p.add_argument("--line", action="store_true",
                   help="STEP[:COUNT] numbers file lines (from 1), not steps")
    p.set_defaults(handler=_show)


def _range(text: str) -> tuple[int, int]:
    first, colon, count = text.partition(":")
    try:
        start = int(first)
        n = int(count) if colon else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"not STEP or STEP:COUNT: {text!r}") from None
    if start < 0 or n < 1:
        raise argparse.ArgumentTypeError(
            f"STEP is 0 or more and COUNT 1 or more: {text!r}"
        )
    return start, n


def _counted(index: Any, count: int, unit: str) -> str:
    """How many steps or lines the index holds: all the trace's when it is sealed,
    else those before where its chain stops checking."""
    if index.status == "tampered":
        return (f"{count} {unit} before line {index.line}, where it is TAMPERED: "
                "blocktrace verify says why")
    if index.status == "unsealed":
        return f"the trace has {count} {unit}; it is UNSEALED: cut short"
    return f"the trace has {count} {unit}"


def _past(index: Any) -> int:
    """The exit status for a step or line past those the index holds: 1 when they
    end where the trace is tampered (what verify says: the trace fails its
    check there), else 2 (asked past the end)."""
    return 1 if index.status == "tampered" else 2


def _show(args: argparse.Namespace) -> int:
    from blocktrace.format import TraceError

    try:
        reader, index, first, n = _locate(args)
        if not _as_indexed(args.trace, index, first, n):
            # the trace was changed after it was indexed: index it again (the chain check)
            reader, index, first, n = _locate(args, fresh=True)
        out = sys.stdout.buffer
        for _, raw in reader.raw_lines(first, n):
            out.write(raw)
        out.flush()
    except TraceError as exc:
        raise CliError(str(exc), exc.exit_status) from exc
    note_unverified("show", args.trace, index.status, index.line, index.reason)
    return 0


def _locate(args: argparse.Namespace, fresh: bool = False) -> tuple[Any, Any, int, int]:
    """The reader, its index (built again with ``fresh``), and the first and count
    of the lines to print."""
    from blocktrace.format import TraceReader
    from blocktrace.progress import Progress

    start, count = args.range
    reader = TraceReader(args.trace)
    with Progress(os.path.getsize(args.trace), f"indexing {args.trace}") as progress:
        index = reader.index(progress=progress, fresh=fresh)
    if index is None:
        raise CliError(f"{args.trace}: not a usable trace")
    if args.line:
        if start < 1:
            raise CliError("line numbers start at 1")
        if start > index.lines:
            raise CliError(f"{args.trace}: no line {start} "
                           f"({_counted(index, index.lines, 'lines')})", _past(index))
        return reader, index, start, count
    if start >= index.steps:
        also = ("; at call level only exception lines are steps here: --line "
                "numbers file lines" if reader.level == "call" else "")
        raise CliError(f"{args.trace}: no step {start} "
                       f"({_counted(index, index.steps, 'steps')}{also})", _past(index))
    end = start + count
    try:
        first = reader.line_of_step(start)
        last = reader.line_of_step(end) if end < index.steps else index.lines + 1
    except IndexError:
        # the lines are not those the index counted: a trace changed under a kept
        # index that still matches its stamp (or while it was read): index it again
        if not fresh:
            return _locate(args, fresh=True)
        raise CliError(f"{one_line(args.trace)}: the trace changed while it was read") from None
    return reader, index, first, last - first


def _as_indexed(path: str, index: Any, first: int, n: int) -> bool:
    """The lines to print are those the index was built from (checked against its
    subtree hashes: ``TraceFile.check_lines``); a tampered trace's are printed
    with the note that it is tampered."""
    from blocktrace.chain.proof import TraceFile
    from blocktrace.format import TraceError

    if index.status == "tampered":
        return True
    try:
        TraceFile(path, index=index).check_lines(first, min(n, index.lines - first + 1))
    except TraceError:
        return False
    return True
