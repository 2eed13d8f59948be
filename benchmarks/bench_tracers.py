"""Cost of recording, per instruction event, measured in one run.

    python benchmarks/bench_tracers.py [--repeat 7]

For each workload (benchmarks/workloads.py) it times, interleaved and keeping
the best of N: the program untraced; a no-op sys.monitoring INSTRUCTION callback
on the same code objects (the floor: the least any instruction-level tracer can
cost); the stepper with the discard tracer; with Recorder; with ChainTracer
writing to a file.  It prints nanoseconds per traced instruction event and the
ratios to the floor (and to untraced), as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from types import CodeType

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS

import blocktrace

M = sys.monitoring
FLOOR_TOOL = 5
clock = time.perf_counter_ns
"""Wall time, or with ``--clock thread`` CPU time of this thread (steadier on a
loaded machine)."""


def _codes(fn: Callable[[], object]) -> list[CodeType]:
    """The workload's own code objects (functions and methods of its module)."""
    import workloads

    out = []
    for obj in vars(workloads).values():
        code = getattr(obj, "__code__", None)
        if isinstance(code, CodeType):
            out.append(code)
        for member in vars(obj).values() if isinstance(obj, type) else ():
            code = getattr(member, "__code__", None)
            if isinstance(code, CodeType):
                out.append(code)
    # nested code (comprehensions, genexps)
    stack = list(out)
    while stack:
        c = stack.pop()
        for k in c.co_consts:
            if isinstance(k, CodeType):
                out.append(k)
                stack.append(k)
    return out


def untraced(fn: Callable[[], object]) -> int:
    t = clock()
    fn()
    return clock() - t


def floor(fn: Callable[[], object]) -> tuple[int, int]:
    """No-op INSTRUCTION callback on the workload's code; returns (ns, events)."""
    count = [0]

    def cb(code: CodeType, offset: int) -> None:
        pass

    def counting(code: CodeType, offset: int) -> None:
        count[0] += 1

    M.use_tool_id(FLOOR_TOOL, "floor")
    try:
        codes = _codes(fn)
        M.register_callback(FLOOR_TOOL, M.events.INSTRUCTION, counting)
        for c in codes:
            M.set_local_events(FLOOR_TOOL, c, M.events.INSTRUCTION)
        fn()
        M.register_callback(FLOOR_TOOL, M.events.INSTRUCTION, cb)
        t = clock()
        fn()
        elapsed = clock() - t
        for c in codes:
            M.set_local_events(FLOOR_TOOL, c, 0)
        M.register_callback(FLOOR_TOOL, M.events.INSTRUCTION, None)
    finally:
        M.free_tool_id(FLOOR_TOOL)
    return elapsed, count[0]


def stepped(fn: Callable[[], object], make: Callable[[], blocktrace.Tracer]) -> tuple[int, int]:
    tracer = make()
    previous = blocktrace.set_tracer(tracer)
    try:
        t = clock()
        stepper = blocktrace.start()
        fn()
        blocktrace.stop()
        elapsed = clock() - t
    finally:
        blocktrace.set_tracer(previous)
        close = getattr(tracer, "close", None)
        if close is not None:
            close()
    return elapsed, stepper.gas_used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), action="append")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall")
    args = ap.parse_args()
    global clock
    clock = time.thread_time_ns if args.clock == "thread" else time.perf_counter_ns
    tmp = tempfile.mkdtemp(prefix="bt-bench-")
    counter = [0]

    def chain() -> blocktrace.Tracer:
        counter[0] += 1
        return blocktrace.ChainTracer(os.path.join(tmp, f"t{counter[0]}.jsonl"), genesis="bench")

    configs: dict[str, Callable[[Callable[[], object]], tuple[int, int]]] = {
        "floor": floor,
        "discard": lambda fn: stepped(fn, lambda: blocktrace.discard_trace),
        "Recorder": lambda fn: stepped(fn, blocktrace.Recorder),
        "ChainTracer": lambda fn: stepped(fn, chain),
    }
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"best of {args.repeat}, interleaved, {args.clock} clock\n")
    print("| workload | events | untraced ns/ev | floor ns/ev | discard ns/ev (x floor) "
          "| Recorder ns/ev (x floor) | ChainTracer ns/ev (x floor) | ChainTracer / untraced |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.workload or list(WORKLOADS):
        fn = WORKLOADS[name]
        fn()  # warm up: specialisation, imports
        best: dict[str, int] = {}
        events = 0
        for _ in range(args.repeat):
            best["untraced"] = min(best.get("untraced", 1 << 62), untraced(fn))
            for label, run in configs.items():
                ns, n = run(fn)
                best[label] = min(best.get(label, 1 << 62), ns)
                if label == "floor":
                    events = n
        per = {k: v / events for k, v in best.items()}
        f = per["floor"]
        print(
            f"| {name} | {events} | {per['untraced']:.1f} | {f:.1f} "
            f"| {per['discard']:.0f} ({per['discard'] / f:.1f}x) "
            f"| {per['Recorder']:.0f} ({per['Recorder'] / f:.1f}x) "
            f"| {per['ChainTracer']:.0f} ({per['ChainTracer'] / f:.1f}x) "
            f"| {best['ChainTracer'] / best['untraced']:.2f}x |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
