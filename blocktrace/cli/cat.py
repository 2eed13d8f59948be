"""``blocktrace cat``: a trace's ``.jsonl``, whatever form it is stored in."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any

from blocktrace.cli import CliError, note_chain, one_line, open_output, refuse_overwriting


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cat",
        help="write a trace's .jsonl (a .jsonl.zst or .jsonl.gz uncompressed, hashes in)",
        description="Write the exact .jsonl a plain recording would have written: a compact "
        ".jsonl.zst's lines with their hash members put back (zstd -d gives the lines without "
        "them), a .jsonl.gz uncompressed, a .jsonl as it is. The bytes are copied as they are "
        "(blocktrace verify checks them); a copied trace that is tampered or unsealed gets one "
        "note on stderr, as lines and show give; compressed data that cannot be read (a file cut "
        "inside a frame, a corrupt frame) ends the output there, with one line on stderr and "
        "exit status 2, since the output is not the whole trace (1 where verify says the trace "
        "is TAMPERED there); a file that is no blocktrace trace is refused (2).",
    )
    p.add_argument("trace", metavar="TRACE")
    p.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout "
                   "(a new file: an existing one is refused unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    p.set_defaults(handler=_cat)


def _cat(args: argparse.Namespace) -> int:
    from blocktrace.format import TraceError, TraceReader
    from blocktrace.format.compressed import CompressedDataError, open_at

    refuse_overwriting([("output", args.output)], [("the trace", args.trace)])
    try:
        # line 1 as verify judges it: nothing is written of a file that no command
        # reads as a trace (not one, or one that fails its check before any line)
        kind = TraceReader(args.trace).kind
        stream = open_at(args.trace, kind)
    except TraceError as exc:
        raise CliError(str(exc), exc.exit_status) from None
    except OSError as exc:
        raise CliError(f"{one_line(args.trace)}: cannot read: {exc.strerror or exc}") from None
    out: IO[bytes]
    try:
        out = open_output(args.output, args.force) if args.output else sys.stdout.buffer
    except FileExistsError:
        stream.close()
        raise CliError(
            f"{one_line(args.output)} exists: not overwriting it (use --force)"
        ) from None
    except OSError as exc:
        stream.close()
        raise CliError(f"{one_line(args.output)}: cannot write: {exc.strerror or exc}") from None
    ends_a_line = True
    try:
        with stream:
            # read1: the bytes before a problem are written before it is reported
            read1 = getattr(stream, "read1", stream.read)
            while chunk := read1(1 << 20):
                out.write(chunk)
                ends_a_line = chunk.endswith(b"\n")
        out.flush()
    except CompressedDataError as exc:
        out.flush()
        if exc.line is not None:  # a compact frame that fails its stored head: verify's 1
            raise CliError(
                f"{one_line(args.trace)}: TAMPERED at line {exc.line}: "
                f"{exc.reason.removeprefix(f'line {exc.line}: ')} (the lines before it were "
                "written; blocktrace verify says more)", status=1,
            ) from None
        raise _cut_short(args.trace, exc.reason, ends_a_line) from None
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CliError(f"cannot write: {exc.strerror or exc}") from None
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    note_chain("cat", args.trace)
    return 0


def _cut_short(path: str, reason: str, ends_a_line: bool) -> CliError:
    """The one line for compressed data that cannot be read on (the file ends inside
    a frame, a frame does not decompress or fails its checksum).  ``verify`` reads
    such a trace like a torn ``.jsonl`` (UNSEALED, the lines before it check), but
    ``cat`` cannot give the ``.jsonl`` byte for byte: its output stops there, and
    exit status 2 says it is not the whole trace, so that ``cat T > T.jsonl && rm
    T`` loses nothing silently.  Where the stop is comes from the chain pass
    (verify's own line number); 1 when verify says TAMPERED there.  ``ends_a_line``:
    the output's last byte is a newline (a gzip member is handed out before its
    checksum is checked, so part of a line may have been written)."""
    from blocktrace.format import TraceError, TraceReader
    from blocktrace.progress import Progress

    stops = f"{one_line(path)}: {one_line(reason)}: the output stops there, not the whole trace"
    try:
        with Progress(os.path.getsize(path), f"checking {path}") as progress:
            index = TraceReader(path).index(progress=progress)
    except (TraceError, OSError):
        index = None
    if index is None or index.status not in ("tampered", "unsealed") or index.line is None:
        return CliError(f"{stops} (blocktrace verify says more)")
    status = "TAMPERED" if index.status == "tampered" else "UNSEALED"
    part = "" if ends_a_line else " and part of it"
    return CliError(f"{stops}: it holds the lines before line {index.line}{part} (blocktrace "
                    f"verify: {status} at line {index.line})",
                    1 if index.status == "tampered" else 2)
