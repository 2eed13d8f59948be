"""Cost and size of the trace levels (op, line, call), measured in one run.

    python benchmarks/bench_levels.py [--repeat 7] [--clock thread|wall]

For each workload (benchmarks/workloads.py) it records the workload with
``ChainTracer(level=...)`` at each level, interleaved, best of N, and prints per
executed source line (the op lines of the line-level trace: the line starts the
run executed): the cost of each level, its ratio to ``op``'s, the trace bytes and
op's bytes over each level's.  Cost is the traced run's time minus the untraced
run's (the tracing overhead); the ratios of whole traced runs are printed too.
``--clock thread`` (the default) times CPU time of the tracing thread, which a
loaded machine disturbs less than wall time.  ``--paired``: each level's cost is
the median over the repeats of its run minus the untraced run just before it
(instead of best traced minus best untraced): for a workload whose tracing cost
is a small part of its run (stdlib: ~0.3 ms of ~7 ms), the two bests' noise is
larger than the cost; paired differences cancel most of it (use ``--repeat 100``).

``--only LEVEL`` (``untraced``, ``op``, ``line``, ``call``) runs the one workload
``--repeat`` times at that level and prints nothing: for counting instructions,
which load does not change, e.g. per run of stdlib at ``call`` level (``--between``:
each traced run after an untraced one, as in ``--paired``)::

    perf stat -x, -e instructions:u python benchmarks/bench_levels.py \
        --workload stdlib --only call --repeat 200

minus the same with ``--only untraced``, over 200 (``--workload empty``: the
per-run fixed cost: start, stop and seal) (all threads: the writer's too;
valgrind's ``--tool=callgrind`` total where the CPU has no counters for perf).

Targets (issue 13): ``line`` at most half of ``op``'s cost per executed source
line and at least 4x fewer bytes; ``call`` at most a quarter of ``op``'s cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS

import blocktrace

LEVELS = ("op", "line", "call")


def recorded(fn: Callable[[], object], path: str, level: str,
             clock: Callable[[], int]) -> tuple[int, int]:
    """(ns, bytes) of one run of ``fn`` recorded at ``level``, into a new file (the
    trace before it removed, untimed: a file overwritten in place costs its close
    a write-back of the data on ext4 -- some 20-40 µs of the tracing thread per
    run that a trace written to a new file, the usual case, does not pay)."""
    if os.path.exists(path):
        os.remove(path)
    tracer = blocktrace.ChainTracer(path, genesis="bench", level=level)  # type: ignore[arg-type]
    previous = blocktrace.set_tracer(tracer)
    try:
        t = clock()
        blocktrace.start()
        fn()
        blocktrace.stop()
        elapsed = clock() - t
    finally:
        blocktrace.set_tracer(previous)
        tracer.close()
    return elapsed, os.path.getsize(path)


def _empty() -> None:
    """A workload of nothing: what a run costs whatever it records."""


def source_lines(path: str) -> int:
    """Op lines of a line-level trace: the source lines the run executed."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.startswith(b'{"pc":') and b'"event"' not in line)


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="bt-levels-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the traces: up to ~100 MB a workload


def run(tmp: str) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workload", choices=sorted([*WORKLOADS, "empty"]), action="append",
                    help="empty (with --only): a run that executes nothing: the per-run fixed cost")
    ap.add_argument("--clock", choices=("thread", "wall"), default="thread")
    ap.add_argument("--paired", action="store_true",
                    help="median of (level run - the untraced run before it) over the repeats")
    ap.add_argument("--only", choices=("untraced", *LEVELS),
                    help="run one workload at one level --repeat times, print nothing")
    ap.add_argument("--between", action="store_true",
                    help="with --only: run the workload untraced before each run (as the "
                         "paired measure does: code the program runs while tracing is off "
                         "is instrumented afresh by Python, and a run learns it again)")
    args = ap.parse_args()
    clock = time.thread_time_ns if args.clock == "thread" else time.perf_counter_ns
    if args.only is not None:
        fn = {**WORKLOADS, "empty": _empty}[(args.workload or ["stdlib"])[0]]
        path = os.path.join(tmp, "only.jsonl")
        for level in LEVELS:  # the same warm-up (imports, first runs) whatever the level
            recorded(fn, path, level, clock)
        for _ in range(args.repeat):
            if args.between or args.only == "untraced":
                fn()
            if args.only != "untraced":
                recorded(fn, path, args.only, clock)
        return
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"{'median of paired differences' if args.paired else 'best'} of {args.repeat}, "
          f"interleaved, {args.clock} clock\n")
    print("| workload | source lines | untraced ns/line | op ns/line | line ns/line (x op) "
          "| call ns/line (x op) | whole run line/op, call/op | bytes op / line / call "
          "| op/line bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.workload or list(WORKLOADS):
        fn = WORKLOADS[name]
        fn()  # warm up: specialisation, imports
        best: dict[str, int] = {}
        size: dict[str, int] = {}
        paired: dict[str, list[int]] = {level: [] for level in LEVELS}
        for _ in range(args.repeat):
            t = clock()
            fn()
            untraced = clock() - t
            best["untraced"] = min(best.get("untraced", 1 << 62), untraced)
            for level in LEVELS:
                path = os.path.join(tmp, f"{name}-{level}.jsonl")
                ns, size[level] = recorded(fn, path, level, clock)
                best[level] = min(best.get(level, 1 << 62), ns)
                paired[level].append(ns - untraced)
        lines = source_lines(os.path.join(tmp, f"{name}-line.jsonl"))
        base = best["untraced"]
        if args.paired:
            cost = {lv: max(statistics.median(paired[lv]), 1) / lines for lv in LEVELS}
        else:
            cost = {lv: max(best[lv] - base, 1) / lines for lv in LEVELS}
        print(
            f"| {name} | {lines} | {base / lines:.0f} | {cost['op']:.0f} "
            f"| {cost['line']:.0f} ({cost['line'] / cost['op']:.2f}x) "
            f"| {cost['call']:.0f} ({cost['call'] / cost['op']:.2f}x) "
            f"| {best['line'] / best['op']:.2f}, {best['call'] / best['op']:.2f} "
            f"| {size['op']:,} / {size['line']:,} / {size['call']:,} "
            f"| {size['op'] / size['line']:.1f}x |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
