"""Cost of recording values (``--locals`` / ``--globals``), measured in one run.

    python benchmarks/bench_values.py [--repeat 7] [--clock thread|process|wall] [--workload ledger]

For each workload (benchmarks/workloads.py, and ``ledger`` below) it times, interleaved
and keeping the best of N, a plain ChainTracer and ChainTracer with
``locals="changes"``, ``locals="on"`` and ``globals="changes"`` (issue 18 item 2:
``changes`` at most 1.5x a plain ChainTracer per event, and clearly cheaper than
``on``).  It prints nanoseconds per traced instruction event, each mode's ratio to
the plain ChainTracer and the trace's bytes per event, as a Markdown table.

``--clock thread`` (the default) is the CPU time of the program's thread from start()
to stop(); ``--clock process`` the whole process's CPU time from start() to the
trace closed (the writer's thread hashing and writing every line included: what the
recording costs the machine); ``--clock wall`` the same span's wall time.

    valgrind --tool=callgrind --separate-threads=yes \
        python benchmarks/bench_values.py --only "locals changes" --workload objects --runs 3

runs one mode untimed (``--workload empty``: the same without the workload's body, to
subtract; ``--count``: prints the values' line starts of a run): callgrind's count of
the interpreter's thread (``callgrind.out.PID-01``), minus the empty run's, over the
runs, is the traced region's instructions, which load does not change.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_tracers
from workloads import WORKLOADS

import blocktrace

MODES: dict[str, dict[str, str]] = {
    "plain": {},
    "locals changes": {"locals": "changes"},
    "locals on": {"locals": "on"},
    "globals changes": {"globals": "changes"},
}


def ledger(n: int = 400) -> int:
    """What ``--locals changes`` is for: a long function with many locals, most of
    which change rarely -- a loop over a list of records parsing each one, with
    accumulators (14 locals; one to four change a line)."""
    records = [f"{i % 7},item{i % 13},{(i * 37) % 101}" for i in range(n)]
    currency = "EUR"
    threshold = 30
    total = 0
    count = 0
    largest = 0
    skipped = 0
    best = ""
    for record in records:
        kind, name, text = record.split(",")
        amount = int(text)
        if kind == "0" or amount < threshold:
            skipped += 1
            continue
        total += amount
        count += 1
        if amount > largest:
            largest = amount
            best = name
    return total + count + largest + skipped + len(currency) + len(best)


WORKLOADS = {**WORKLOADS, "ledger": ledger}


def empty() -> int:
    """The workloads' frame without a body (``--only``: what to subtract)."""
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workload", choices=sorted([*WORKLOADS, "empty"]), action="append")
    ap.add_argument("--only", choices=sorted(MODES),
                    help="run this mode --runs times, untimed (for callgrind)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--count", action="store_true",
                    help="with --only: print the values' line starts of a run")
    ap.add_argument("--clock", choices=("wall", "thread", "process"), default="thread")
    args = ap.parse_args()
    bench_tracers.clock = time.thread_time_ns if args.clock == "thread" else time.perf_counter_ns
    timed = bench_tracers.stepped
    if args.clock != "thread":
        timed = whole(time.process_time_ns if args.clock == "process" else time.perf_counter_ns)
    tmp = tempfile.mkdtemp(prefix="bt-bench-values-")
    counter = [0]

    def chain(options: dict[str, str]) -> Callable[[], blocktrace.Tracer]:
        def make() -> blocktrace.Tracer:
            counter[0] += 1
            path = os.path.join(tmp, f"t{counter[0]}.jsonl")
            return blocktrace.ChainTracer(path, genesis="bench", force=True, **options)  # type: ignore[arg-type]
        return make

    if args.only is not None:
        try:
            once(args.only, args.workload or ["objects"], args.runs, chain, args.count)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        print(f"Python {platform.python_version()} on {platform.machine()}, "
              f"{os.cpu_count()} cores, best of {args.repeat}, interleaved, {args.clock} clock\n")
        print("| workload | events | " + " | ".join(f"{m} ns/ev (x plain)" for m in MODES)
              + " | " + " | ".join(f"{m} bytes/ev" for m in MODES) + " |")
        print("|---|---|" + "---|" * 2 * len(MODES))
        for name in args.workload or ["arithmetic", "objects", "ledger"]:
            fn = WORKLOADS[name]
            fn()  # warm up: specialisation, imports
            best: dict[str, int] = {}
            size: dict[str, int] = {}
            events = 0
            for _ in range(args.repeat):
                for mode, options in MODES.items():
                    ns, events = timed(fn, chain(options))
                    best[mode] = min(best.get(mode, 1 << 62), ns)
                    for f in os.listdir(tmp):
                        size[mode] = os.path.getsize(os.path.join(tmp, f))
                        os.unlink(os.path.join(tmp, f))
            plain = best["plain"]
            cells = [f"{best[m] / events:.0f} ({best[m] / plain:.2f}x)" for m in MODES]
            cells += [f"{size[m] / events:.0f}" for m in MODES]
            print(f"| {name} | {events} | " + " | ".join(cells) + " |")
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def whole(clock: Callable[[], int]) -> Callable[..., tuple[int, int]]:
    """``stepped`` timed from start() to the trace closed (sealed, its writer's
    thread done), on ``clock``."""

    def timed(fn: Callable[[], object], make: Callable[[], blocktrace.Tracer]) -> tuple[int, int]:
        saved = bench_tracers.clock
        bench_tracers.clock = clock
        try:
            t = clock()
            _, events = bench_tracers.stepped(fn, make)
            return clock() - t, events
        finally:
            bench_tracers.clock = saved

    return timed


def once(mode: str, names: list[str], runs: int,
         chain: Callable[[dict[str, str]], Callable[[], blocktrace.Tracer]], count: bool) -> None:
    """``--only``: each workload traced ``runs`` times in ``mode``, untimed; with
    ``count``, the count of its values' line starts (op lines with locals or
    globals) of a run (a run of its own: reading the trace costs)."""
    for name in names:
        fn = empty if name == "empty" else WORKLOADS[name]
        fn()  # warm up, as the timed runs do
        with_values = 0
        for _ in range(runs):
            tracer = chain(MODES[mode])()
            bench_tracers.stepped(fn, lambda tracer=tracer: tracer)  # type: ignore[misc]
            path = tracer.path  # type: ignore[attr-defined]
            if count:
                with open(path, "rb") as f:
                    with_values = sum(1 for line in f
                                      if b'"locals":' in line or b'"globals":' in line)
            os.unlink(path)
        if count:
            print(f"{name}: {mode}, {with_values} line starts with values a run")


if __name__ == "__main__":
    main()
