"""Build a trace's viewer tables in a process of their own.

    python -m blocktrace.view.build TRACE

The server starts this so that the streaming pass (in C when
``blocktrace.view._ctables`` is built, at about twice ``verify``'s speed; the
pure-Python reference takes minutes for a trace of millions of lines) neither
holds the server's interpreter lock while the page asks questions, nor counts
in the server's memory.  It writes
the cache entry (:func:`blocktrace.view.tables.load_or_build`), prints
``lines N`` on stdout as it goes, and exits 0; 2 with one line on stderr when
the trace is not usable.
"""

from __future__ import annotations

import sys

from blocktrace.format import TraceError, TraceReader
from blocktrace.view.tables import load_or_build

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m blocktrace.view.build TRACE\n")
        return 2
    last = 0

    def progress(line: int) -> None:
        nonlocal last
        if line - last >= 100_000:
            last = line
            sys.stdout.write(f"lines {line}\n")
            sys.stdout.flush()

    try:
        load_or_build(TraceReader(args[0]), progress)
    except TraceError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"{args[0]}: {exc.strerror or exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
