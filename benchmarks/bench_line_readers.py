"""The readers that go over every line of a trace by its bytes, two source trees side by side:
before/after figures for a change to how they tell line kinds (session 18, docs/PERFORMANCE.md).

    python benchmarks/bench_line_readers.py --tree before=/tmp/base --tree after=. \\
        --trace t.jsonl [--rounds 6] [--repeat 3] [--jobs stabilise,lines_view,...]

Each ``--tree NAME=PATH`` is a checkout with its C extensions built for this Python; each job
runs in a fresh ``python`` with ``PYTHONPATH=PATH``, from a temporary directory, once to warm
up and then ``--repeat`` times, and reports its best thread CPU time (``time.thread_time``:
the reader's own work, without the start or the imports).  The trees alternate within each
round, in the order given, then reversed the next round; the best round is printed per tree.
Jobs: ``stabilise`` (the golden rewrite), ``lines_view`` (``blocktrace lines``' pass),
``tables_ref`` and ``tables_native`` (the viewer's table pass, Python reference and C),
``codemap`` (the code map's one pass; the trace's index is built first) and ``columns`` (the
query export's C reader, ``format._cscan.OpColumns.feed``, over the whole file; a line it
leaves to Python is passed over, not decoded: the C reader's own work).  For instruction
counts, run one job under ``valgrind --tool=callgrind`` with ``--child JOB TRACE K`` for two
values of K and take the difference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

JOBS = ("stabilise", "lines_view", "tables_ref", "tables_native", "codemap", "columns")


def _job(name: str, trace: str) -> None:
    import shutil

    from blocktrace.format import TraceReader

    if name in ("tables_ref", "tables_native"):
        from blocktrace.view import tables

        build = tables.build_tables_reference if name == "tables_ref" else tables.build_tables
        directory = tempfile.mkdtemp()
        try:
            build(TraceReader(trace), directory)
        finally:
            shutil.rmtree(directory)
    elif name == "lines_view":
        from blocktrace.views.lines import view_trace

        view_trace(trace)
    elif name == "codemap":
        from blocktrace.views import codemap

        reader = TraceReader(trace)
        index = reader.index(build=True)
        assert index is not None
        codemap._build(reader, index)
    elif name == "columns":
        from blocktrace.format import _cscan  # type: ignore[attr-defined]

        with open(trace, "rb") as f:
            data = f.read()
        columns, pos, number = _cscan.OpColumns(), 0, 1
        while pos < len(data):
            stop, pos, number = columns.feed(data, pos, number, 1 << 62)
            if stop == 0:
                break
            pos = data.index(b"\n", pos) + 1  # a line for Python: passed over
            number += 1
    elif name == "stabilise":
        from blocktrace.golden.stabilise import Normaliser, stabilise

        rules = Normaliser(root=os.getcwd(), argv=["bench"])
        with open(trace, "rb", buffering=0) as source, \
                tempfile.TemporaryFile() as target:
            stabilise(source, target, rules)
    else:
        raise SystemExit(f"no job {name!r}: one of {', '.join(JOBS)}")


def child(name: str, trace: str, repeat: int) -> None:
    _job(name, trace)
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        _job(name, trace)
        best = min(best, time.thread_time() - start)
    print(f"{best:.6f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--trace")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--child", nargs=3, metavar=("JOB", "TRACE", "REPEAT"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if not args.trace or len(args.tree) < 2:
        parser.error("give --trace and two --tree NAME=PATH")
    trees = [tuple(t.split("=", 1)) for t in args.tree]
    trace = os.path.abspath(args.trace)
    print(f"Python {sys.version.split()[0]}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {args.rounds} rounds, "
          f"best of {args.repeat} thread CPU seconds each")
    with tempfile.TemporaryDirectory() as cwd:
        for job in args.jobs.split(","):
            best = {name: float("inf") for name, _ in trees}
            for r in range(args.rounds):
                for name, path in trees if r % 2 == 0 else trees[::-1]:
                    out = subprocess.run(
                        [sys.executable, os.path.abspath(__file__), "--child", job, trace,
                         str(args.repeat)],
                        cwd=cwd, env={**os.environ, "PYTHONPATH": os.path.abspath(path)},
                        capture_output=True, text=True, check=True,
                    )
                    best[name] = min(best[name], float(out.stdout.split()[-1]))
            first = trees[0][0]
            print(f"{job:14} " + "  ".join(
                f"{name} {seconds:.4f} s ({seconds / best[first]:.3f}x)"
                for name, seconds in best.items()))


if __name__ == "__main__":
    main()
