"""Cost and size of the trace levels (op, line, call), measured in one run.

    python benchmarks/bench_levels.py [--repeat 7] [--clock thread|process|wall]
    python benchmarks/bench_levels.py --workload stdlib --repeat 100 --paired [--whole]

For each workload (benchmarks/workloads.py) it records the workload with
``ChainTracer(level=...)`` at each level, interleaved, best of N, and prints per
executed source line (the op lines of the line-level trace: the line starts the
run executed): the cost of each level, its ratio to ``op``'s, the trace bytes and
op's bytes over each level's.  Cost is the traced run's time minus the untraced
run's (the tracing overhead); the ratios of whole traced runs are printed too.
``--clock thread`` (the default) times CPU time of the tracing thread, which a
loaded machine disturbs less than wall time; ``process`` the CPU time of every
thread (op's lines are made and hashed on the writer's thread: counting only the
tracing thread makes op look cheaper than it is); ``wall``.  ``--paired``: each
level's cost is the median over the repeats of its run minus the untraced run just
before it (instead of best traced minus best untraced), by all three clocks at once
(one row each): for a workload whose tracing cost is a small part of its run
(stdlib: ~0.3 ms of ~7 ms), the two bests' noise is larger than the cost; paired
differences cancel most of it (use ``--repeat 100``).  A run is timed from
``start()`` to ``stop()`` (the seal included); ``--whole`` from the tracer's
construction to its close, what a ``blocktrace run`` pays besides start-up.

``--parts LEVEL``: the fixed cost's parts (each step of a run of nothing: the
tracer's construction, ``set_tracer``, ``start``, ``stop``, the previous tracer
set back, ``close``), CPU time of the tracing thread, min and median of
``--repeat`` runs (use ``--repeat 300``).

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
from functools import partial
from operator import call

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS

import blocktrace

LEVELS = ("op", "line", "call")


CLOCKS: dict[str, Callable[[], int]] = {
    "thread": time.thread_time_ns,    # CPU of the tracing thread
    "process": time.process_time_ns,  # CPU of every thread (the writer's too)
    "wall": time.perf_counter_ns,
}
"""What ``--paired`` reports, each run timed by all three at once."""


def recorded(fn: Callable[[], object], path: str, level: str,
             clocks: tuple[Callable[[], int], ...], whole: bool = False) -> tuple[list[int], int]:
    """(ns by each clock, bytes) of one run of ``fn`` recorded at ``level``, into a new
    file (the trace before it removed, untimed: a file overwritten in place costs its
    close a write-back of the data on ext4 -- some 20-40 µs of the tracing thread per
    run that a trace written to a new file, the usual case, does not pay).  Timed from
    ``start()`` to ``stop()``; ``whole``: from the tracer's construction to its close
    (what ``blocktrace run`` or ``with blocktrace.trace(ChainTracer(...))`` pays)."""
    if os.path.exists(path):
        os.remove(path)
    now = partial(map, call, clocks)  # few instructions between set_tracer and start
    before = list(now()) if whole else []
    tracer = blocktrace.ChainTracer(path, genesis="bench", level=level)  # type: ignore[arg-type]
    previous = blocktrace.set_tracer(tracer)
    try:
        if not whole:
            before = list(now())
        blocktrace.start()
        fn()
        blocktrace.stop()
        after = list(now())
    finally:
        blocktrace.set_tracer(previous)
        tracer.close()
    if whole:
        after = list(now())
    return [b - a for a, b in zip(before, after, strict=True)], os.path.getsize(path)


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


PARTS = ("construct", "set_tracer", "start", "stop", "restore", "close")


def parts(level: str, repeat: int, tmp: str) -> None:
    """The fixed cost's parts: CPU time of the tracing thread of each step of a run
    of nothing (tracer made, set, started, stopped, the previous one set back,
    closed), min and median over ``repeat`` runs, in µs."""
    clock = time.thread_time_ns
    took: dict[str, list[int]] = {part: [] for part in PARTS}
    for i in range(repeat + 20):  # the first 20: warm-up
        path = os.path.join(tmp, f"parts-{i}.jsonl")
        t0 = clock()
        tracer = blocktrace.ChainTracer(path, genesis="bench", level=level)  # type: ignore[arg-type]
        t1 = clock()
        previous = blocktrace.set_tracer(tracer)
        t2 = clock()
        blocktrace.start()
        t3 = clock()
        blocktrace.stop()
        t4 = clock()
        blocktrace.set_tracer(previous)
        t5 = clock()
        tracer.close()
        t6 = clock()
        os.remove(path)
        if i >= 20:
            for part, a, b in zip(PARTS, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6),
                                  strict=True):
                took[part].append(b - a)
    print(f"Python {platform.python_version()}, level {level}, {repeat} runs of nothing, CPU "
          f"time of the tracing thread, µs min / median, load average {os.getloadavg()[0]:.1f}")
    print(" | ".join(f"{part} {min(v) / 1000:.1f} / {statistics.median(v) / 1000:.1f}"
                     for part, v in took.items()))


def _timed(fn: Callable[[], object], clocks: tuple[Callable[[], int], ...]) -> list[int]:
    before = [c() for c in clocks]
    fn()
    after = [c() for c in clocks]
    return [b - a for a, b in zip(before, after, strict=True)]


def run(tmp: str) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workload", choices=sorted([*WORKLOADS, "empty"]), action="append",
                    help="empty (with --only): a run that executes nothing: the per-run fixed cost")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="thread",
                    help="without --paired: thread (CPU of the tracing thread), process "
                         "(CPU of all threads) or wall")
    ap.add_argument("--paired", action="store_true",
                    help="median of (level run - the untraced run before it) over the repeats, "
                         "by each clock: thread CPU, process CPU, wall")
    ap.add_argument("--whole", action="store_true",
                    help="time each run from the tracer's construction to its close (default: "
                         "from start() to stop())")
    ap.add_argument("--only", choices=("untraced", *LEVELS),
                    help="run one workload at one level --repeat times, print nothing")
    ap.add_argument("--parts", choices=LEVELS,
                    help="the fixed cost's parts at this level: the tracing thread's CPU time "
                         "of each step of --repeat runs of nothing (construct, set_tracer, "
                         "start, stop, restore, close)")
    ap.add_argument("--between", action="store_true",
                    help="with --only: run the workload untraced before each run (as the "
                         "paired measure does: code the program runs while tracing is off "
                         "is instrumented afresh by Python, and a run learns it again)")
    args = ap.parse_args()
    if args.parts is not None:
        parts(args.parts, args.repeat, tmp)
        return
    names = tuple(CLOCKS) if args.paired else (args.clock,)
    clocks = tuple(CLOCKS[n] for n in names)
    if args.only is not None:
        fn = {**WORKLOADS, "empty": _empty}[(args.workload or ["stdlib"])[0]]
        path = os.path.join(tmp, "only.jsonl")
        for level in LEVELS:  # the same warm-up (imports, first runs) whatever the level
            recorded(fn, path, level, clocks, args.whole)
        for _ in range(args.repeat):
            if args.between or args.only == "untraced":
                fn()
            if args.only != "untraced":
                recorded(fn, path, args.only, clocks, args.whole)
        return
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"{'median of paired differences' if args.paired else 'best'} of {args.repeat}, "
          f"interleaved, {'/'.join(names)} clock{'s' if args.paired else ''}, "
          f"{'whole run (construction to close)' if args.whole else 'start() to stop()'}, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| workload | clock | source lines | untraced ns/line | op ns/line | line ns/line (x op) "
          "| call ns/line (x op) | whole run line/op, call/op | bytes op / line / call "
          "| op/line bytes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.workload or list(WORKLOADS):
        fn = WORKLOADS[name]
        fn()  # warm up: specialisation, imports
        best: dict[str, list[int]] = {}
        size: dict[str, int] = {}
        paired: dict[str, list[list[int]]] = {level: [] for level in LEVELS}
        for _ in range(args.repeat):
            untraced = _timed(fn, clocks)
            best["untraced"] = [min(a, b) for a, b in
                                zip(best.get("untraced", untraced), untraced, strict=True)]
            for level in LEVELS:
                path = os.path.join(tmp, f"{name}-{level}.jsonl")
                ns, size[level] = recorded(fn, path, level, clocks, args.whole)
                best[level] = [min(a, b) for a, b in zip(best.get(level, ns), ns, strict=True)]
                paired[level].append([t - u for t, u in zip(ns, untraced, strict=True)])
        lines = source_lines(os.path.join(tmp, f"{name}-line.jsonl"))
        for i, clock_name in enumerate(names):
            base = best["untraced"][i]
            if args.paired:
                cost = {lv: max(statistics.median(d[i] for d in paired[lv]), 1) / lines
                        for lv in LEVELS}
            else:
                cost = {lv: max(best[lv][i] - base, 1) / lines for lv in LEVELS}
            print(
                f"| {name} | {clock_name} | {lines} | {base / lines:.0f} | {cost['op']:.0f} "
                f"| {cost['line']:.0f} ({cost['line'] / cost['op']:.2f}x) "
                f"| {cost['call']:.0f} ({cost['call'] / cost['op']:.2f}x) "
                f"| {best['line'][i] / best['op'][i]:.2f}, {best['call'][i] / best['op'][i]:.2f} "
                f"| {size['op']:,} / {size['line']:,} / {size['call']:,} "
                f"| {size['op'] / size['line']:.1f}x |"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
