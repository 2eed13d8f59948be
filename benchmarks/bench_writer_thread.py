"""ChainTracer with the line writer inline and on its own thread (issue 18 item 1),
per instruction event, against the floor, measured in one run.

    python benchmarks/bench_writer_thread.py [--repeat 5] [--workload arithmetic ...]
        [--format 3 --format 4]
    taskset -c 0 python benchmarks/bench_writer_thread.py   # one CPU

``--format`` (repeatable): the format versions ChainTracer writes, each measured in
the same interleaved rounds (an A/B of the chain rules: ``ChainTracer(format_version=)``);
by default the one blocktrace writes.  ``--writer-ops``: also each threaded ChainTracer
with the op lines' bodies made on the writer's thread (``BLOCKTRACE_WRITER_OPS=1``:
``LineWriter(thread_ops=True)``), the program's thread queuing a site, gas and depth.
``--ring-batch N`` (repeatable): each threaded ChainTracer once per N, the bytes of records
the program's thread queues before it publishes them to the writer's thread
(``BLOCKTRACE_RING_BATCH``: ``LineWriter(ring_batch=)``; 1 publishes each record, as
before session 13; default 2048): an A/B of the ring's hand-off in one run.
``--program-writes``: also each threaded ChainTracer with the program's thread writing the
chunks the writer's thread closed where its own count closes one (``BLOCKTRACE_WRITER_WRITES=0``:
``LineWriter(thread_writes=False)``, as before session 13; by default the writer's thread writes
each chunk as it closes it).
``--write-after N`` (repeatable): each threaded ChainTracer once per N, the closed chunks
the writer's thread lets wait before it writes them in one ``writev`` (``BLOCKTRACE_WRITE_AFTER``:
``LineWriter(write_after=)``, 1 to 16; 1 writes each as it closes it, as in session 13): an A/B
of the writes' unit, and of who writes them (the program's thread writes what waits when it
would otherwise wait for room in the ring), in one run.

For each workload (benchmarks/workloads.py) it runs, interleaved, best of N: the
floor (a no-op ``sys.monitoring`` INSTRUCTION callback, bench_tracers.floor), the
discard tracer, and ChainTracer writing a file with the inline C writer and with
``LineWriter(threaded=True)``; each measured three ways at once: CPU time of the
interpreter's thread, CPU time of the whole process (the writer's thread
included), and wall time; for the threaded writer also the CPU time of the
writer's own thread (``LineWriter.thread_cpu_ns``, read by the thread as it
ends).  The ratios are to the floor measured the same way (the floor has no
other thread: its three figures differ only by load).  On a machine shared
with other jobs, the CPU figures are the ones to read: with a cheap hand-off
the wall time on a quiet machine is about the larger of the two threads'.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_tracers
from workloads import WORKLOADS

import blocktrace
from blocktrace.format.versions import FORMAT_VERSION

Clocks = tuple[int, int, int, int]  # thread CPU, process CPU, wall, the writer thread's CPU


def _now() -> Clocks:
    return time.thread_time_ns(), time.process_time_ns(), time.perf_counter_ns(), 0


def _measured(run: Callable[..., tuple[int, int]], *args: Any) -> tuple[Clocks, int]:
    """bench_tracers' ``floor``, timed on the three clocks at once."""
    got: list[Clocks] = []

    def clock() -> int:  # read twice by run: keep all three each time
        got.append(_now())
        return 0

    bench_tracers.clock = clock
    _, n = run(*args)
    a, b = got
    return (b[0] - a[0], b[1] - a[1], b[2] - a[2], 0), n


def _stepped(fn: Callable[[], object], make: Callable[[], Any]) -> Clocks:
    """bench_tracers.stepped, timed on the three clocks (read before set_tracer: no
    Python code may run between it and start())."""
    tracer = make()
    a = _now()
    previous = blocktrace.set_tracer(tracer)
    try:
        blocktrace.start()
        fn()
        blocktrace.stop()
        b = _now()
    finally:
        blocktrace.set_tracer(previous)
        close = getattr(tracer, "close", None)
        if close is not None:
            close()
    writer = getattr(tracer, "_writer", None)
    own = getattr(writer, "thread_cpu_ns", 0)  # the thread ended with the seal
    return b[0] - a[0], b[1] - a[1], b[2] - a[2], own


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), action="append")
    ap.add_argument("--format", type=int, choices=(3, 4), action="append", dest="formats",
                    help="a format version to write (repeat: A/B in one run)")
    ap.add_argument("--writer-ops", action="store_true",
                    help="also threaded with the op bodies made on the writer's thread")
    ap.add_argument("--program-writes", action="store_true",
                    help="also threaded with the chunks written by the program's thread")
    ap.add_argument("--write-after", type=int, action="append", dest="afters",
                    help="closed chunks the writer's thread lets wait before it writes them "
                         "(repeat: A/B in one run)")
    ap.add_argument("--ring-batch", type=int, action="append", dest="batches",
                    help="bytes of records per publication to the writer's thread "
                         "(repeat: A/B in one run)")
    args = ap.parse_args()
    if any(not 1 <= b <= 16384 for b in args.batches or []):
        ap.error("--ring-batch: 1 to 16384 bytes")
    if any(not 1 <= a <= 16 for a in args.afters or []):
        ap.error("--write-after: 1 to 16 chunks")
    batches: list[str] = [str(b) for b in args.batches or []] or [""]
    afters: list[str] = [str(a) for a in args.afters or []] or [""]
    formats: list[int] = args.formats or [FORMAT_VERSION]
    tmp = tempfile.mkdtemp(prefix="bt-bench-thread-")
    counter = [0]

    def chain(threaded: str, version: int, ops: str = "0", batch: str = "", writes: str = "",
              after: str = "") -> Callable[[], Any]:
        def make() -> Any:
            counter[0] += 1
            os.environ["BLOCKTRACE_WRITER_THREAD"] = threaded
            os.environ["BLOCKTRACE_WRITER_OPS"] = ops
            os.environ["BLOCKTRACE_RING_BATCH"] = batch
            os.environ["BLOCKTRACE_WRITER_WRITES"] = writes
            os.environ["BLOCKTRACE_WRITE_AFTER"] = after
            path = os.path.join(tmp, f"t{counter[0]}.jsonl")
            tracer = blocktrace.ChainTracer(path, genesis="bench", format_version=version)
            if threaded == "1":
                assert tracer._writer.threaded, "the C writer with a thread is not there"
            return tracer
        return make

    def chained(threaded: str, version: int, ops: str = "0", batch: str = "", writes: str = "",
                after: str = "") -> Callable[[Callable[[], object]], Clocks]:
        return lambda fn: _stepped(fn, chain(threaded, version, ops, batch, writes, after))

    def name_of(mode: str, version: int) -> str:
        return mode if len(formats) == 1 else f"{mode} v{version}"

    configs: dict[str, Callable[[Callable[[], object]], Clocks]] = {
        "discard": lambda fn: _stepped(fn, lambda: blocktrace.discard_trace),
    }
    for version in formats:
        configs[name_of("inline", version)] = chained("0", version)
        for batch in batches:
            tag = f" batch {batch}" if batch else ""
            for after in afters:
                atag = tag + (f" after {after}" if after else "")
                configs[name_of("threaded", version) + atag] = chained(
                    "1", version, "0", batch, "", after)
            if args.writer_ops:
                configs[name_of("threaded", version) + " writer ops" + tag] = chained(
                    "1", version, "1", batch)
            if args.program_writes:
                configs[name_of("threaded", version) + " program writes" + tag] = chained(
                    "1", version, "0", batch, "0")
    chains = [k for k in configs if k != "discard"]
    cpus = len(os.sched_getaffinity(0))
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores "
          f"({cpus} in this process's affinity mask), best of {args.repeat}, interleaved; "
          f"load average {os.getloadavg()[0]:.1f}; format version(s) "
          f"{', '.join(map(str, formats))}\n")
    print("| workload | clock | floor ns/ev | discard (x floor) | "
          + " | ".join(f"ChainTracer {k} (x floor)" for k in chains) + " |")
    print("|---|---|---|---|" + "---|" * len(chains))
    for name in args.workload or ["arithmetic", "objects"]:
        fn = WORKLOADS[name]
        fn()
        best: dict[str, list[int]] = {}
        events = 0
        for _ in range(args.repeat):
            got, events = _measured(bench_tracers.floor, fn)
            runs = {"floor": got, **{label: run(fn) for label, run in configs.items()}}
            for label, clocks in runs.items():
                old = best.setdefault(label, [1 << 62] * 4)
                best[label] = [min(o, c) for o, c in zip(old, clocks, strict=True)]
            for entry in os.listdir(tmp):
                os.unlink(os.path.join(tmp, entry))
        for i, clock in enumerate(("thread CPU", "process CPU", "wall")):
            f = best["floor"][i] / events
            cells = " | ".join(
                f"{best[k][i] / events:.0f} ({best[k][i] / events / f:.1f}x)"
                for k in ("discard", *chains)
            )
            print(f"| {name} | {clock} | {f:.1f} | {cells} |")
        f = best["floor"][0] / events
        cells = " | ".join(
            f"{best[k][3] / events:.0f} ({best[k][3] / events / f:.1f}x)"
            if k.startswith("threaded") else "" for k in chains
        )
        print(f"| {name} | writer thread CPU | {f:.1f} | | {cells} |")
        sys.stdout.flush()
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
