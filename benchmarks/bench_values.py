"""Cost of recording values (``--locals`` / ``--globals``), measured in one run.

    python benchmarks/bench_values.py [--repeat 7] [--clock thread] [--workload objects]

For each workload (benchmarks/workloads.py) it times, interleaved and keeping the
best of N, a plain ChainTracer and ChainTracer with ``locals="changes"``,
``locals="on"`` and ``globals="changes"`` (issue 18 item 2: ``changes`` at most
1.5x a plain ChainTracer per event, and clearly cheaper than ``on``).  It prints
nanoseconds per traced instruction event and each mode's ratio to the plain
ChainTracer, as a Markdown table.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), action="append")
    ap.add_argument("--clock", choices=("wall", "thread"), default="thread")
    args = ap.parse_args()
    bench_tracers.clock = time.thread_time_ns if args.clock == "thread" else time.perf_counter_ns
    tmp = tempfile.mkdtemp(prefix="bt-bench-values-")
    counter = [0]

    def chain(options: dict[str, str]) -> Callable[[], blocktrace.Tracer]:
        def make() -> blocktrace.Tracer:
            counter[0] += 1
            path = os.path.join(tmp, f"t{counter[0]}.jsonl")
            return blocktrace.ChainTracer(path, genesis="bench", force=True, **options)  # type: ignore[arg-type]
        return make

    try:
        print(f"Python {platform.python_version()} on {platform.machine()}, "
              f"{os.cpu_count()} cores, best of {args.repeat}, interleaved, {args.clock} clock\n")
        print("| workload | events | " + " | ".join(f"{m} ns/ev (x plain)" for m in MODES) + " |")
        print("|---|---|" + "---|" * len(MODES))
        for name in args.workload or ["arithmetic", "objects"]:
            fn = WORKLOADS[name]
            fn()  # warm up: specialisation, imports
            best: dict[str, int] = {}
            events = 0
            for _ in range(args.repeat):
                for mode, options in MODES.items():
                    ns, events = bench_tracers.stepped(fn, chain(options))
                    best[mode] = min(best.get(mode, 1 << 62), ns)
                    for f in os.listdir(tmp):
                        os.unlink(os.path.join(tmp, f))
            plain = best["plain"]
            cells = [f"{best[m] / events:.0f} ({best[m] / plain:.2f}x)" for m in MODES]
            print(f"| {name} | {events} | " + " | ".join(cells) + " |")
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
