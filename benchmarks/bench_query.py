"""What querying traces costs, measured in one run.

    python benchmarks/bench_query.py [--fib 22] [--repeat 5]

1. ``run --clock``: ChainTracer with and without ``clock=True`` on the objects workload
   (benchmarks/workloads.py), interleaved, best of N: the ratio.
2. Export: records ``examples/fib.py N`` (``--fib``; 22 is ~1.2 million lines, 26 ~8 million),
   then times, in CPU seconds (best of N): decoding alone (msgspec, a Python reader's
   floor), the conversion to the tables (no verify, no Parquet), conversion + Parquet,
   verify alone, the whole export in this process (verify reads the conversion's buffers
   in a thread: CPU of all threads, and wall time), the ``blocktrace export`` command in a
   fresh process (start-up included) and of the trace's first 300 lines (start-up
   alone), and the perfetto and speedscope exports. Peak
   memory of an export, in a fresh process, for the trace and for one 4x smaller, to show
   it does not grow with the trace.
3. The Parquet dataset's size against the .jsonl.
4. ``GROUP BY line`` over ops, and a GROUP BY over calls, on the exported dataset (best of N,
   wall clock, the connection opened once); and a query on the .jsonl itself, which exports
   into the cache first (its one-time cost).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS

import blocktrace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _chain_run(path: str, clock: bool) -> int:
    tracer = blocktrace.ChainTracer(path, genesis="bench", clock=clock, force=True)
    previous = blocktrace.set_tracer(tracer)
    try:
        t = time.process_time_ns()  # CPU time: steadier than wall time on a shared machine
        blocktrace.start()
        WORKLOADS["objects"]()
        blocktrace.stop()
        return time.process_time_ns() - t
    finally:
        blocktrace.set_tracer(previous)
        tracer.close()


def clock_cost(tmp: str, repeat: int) -> None:
    WORKLOADS["objects"]()
    best = {False: 1 << 62, True: 1 << 62}
    for _ in range(repeat):
        for clock in (False, True):
            best[clock] = min(best[clock], _chain_run(os.path.join(tmp, "c.jsonl"), clock))
    print(f"run --clock, objects workload, best of {repeat} (CPU): ChainTracer "
          f"{best[False] / 1e6:.1f} ms, with clock {best[True] / 1e6:.1f} ms: "
          f"{best[True] / best[False]:.3f}x (+{(best[True] / best[False] - 1) * 100:.1f}%)")


def _cpu() -> float:
    self_, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


def _record(tmp: str, n: int) -> str:
    out = os.path.join(tmp, f"fib{n}.jsonl")
    subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", out, "--force",
                    os.path.join(ROOT, "examples", "fib.py"), str(n)], check=True,
                   stdout=subprocess.DEVNULL)
    return out


_PEAK = """
import resource, sys
from blocktrace.query import export_trace
export_trace(sys.argv[1], sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_mib(trace: str, out: str) -> float:
    done = subprocess.run([sys.executable, "-c", _PEAK, trace, out], check=True,
                          capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024


def _command_cpu(*args: str) -> float:
    """CPU seconds of ``blocktrace ARGS`` in a fresh process (start-up included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "blocktrace", *args], check=True,
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def export_costs(tmp: str, n: int, repeat: int) -> str:
    import shutil

    from blocktrace.chain.verify import verify_file
    from blocktrace.format import decode_line
    from blocktrace.query import export_trace
    from blocktrace.query.dataset import _convert
    from blocktrace.query.tables import RunFacts, trace_batches

    trace = _record(tmp, n)
    size = os.path.getsize(trace)
    with open(trace, "rb") as f:
        lines = sum(1 for _ in f)
    print(f"\ntrace: examples/fib.py {n}: {lines} lines, {size / 2**20:.0f} MiB")

    def rate(label: str, seconds: float) -> None:
        print(f"| {label} | {seconds:.2f} | {lines / seconds / 1e6:.2f} |")

    def best(run: object) -> float:
        times = []
        for _ in range(repeat):
            t = _cpu()
            run()  # type: ignore[operator]
            times.append(_cpu() - t)
        return min(times)

    print(f"\nCPU seconds, best of {repeat}:\n\n| step | CPU s | M lines/s |\n|---|---|---|")

    def decode() -> None:
        with open(trace, "rb") as f:
            for raw in f:
                decode_line(raw)

    rate("read + blocktrace.format.decode_line of every line (a Python reader's floor)",
         best(decode))
    rate("conversion to the tables (Arrow batches)",
         best(lambda: [None for _ in trace_batches(trace, RunFacts(trace))]))
    incoming = os.path.join(tmp, "incoming")

    def convert_and_write() -> None:
        shutil.rmtree(incoming, ignore_errors=True)
        os.mkdir(incoming)
        _convert(trace, incoming, RunFacts(trace), None, False)

    rate("conversion + Parquet writing (no verify)", best(convert_and_write))
    rate("verify alone (verify_file)", best(lambda: verify_file(trace)))
    out = os.path.join(tmp, "dataset")
    walls = []

    def whole() -> None:
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        export_trace(trace, out)
        walls.append(time.perf_counter() - t)

    rate("whole export_trace: verify + conversion + Parquet, one pass, all threads", best(whole))
    print(f"| the same, wall clock | {min(walls):.2f} | {lines / min(walls) / 1e6:.2f} |")
    shutil.rmtree(out, ignore_errors=True)
    rate("`blocktrace export --to parquet`, a fresh process (start-up included)",
         min(_command_cpu("export", trace, "--to", "parquet", out) for _ in range(repeat)))
    tiny = os.path.join(tmp, "tiny.jsonl")
    with open(trace, "rb") as src, open(tiny, "wb") as dst:
        dst.writelines(itertools.islice(src, 300))

    def startup() -> float:
        shutil.rmtree(out + "-tiny", ignore_errors=True)
        return _command_cpu("export", tiny, "--to", "parquet", out + "-tiny")

    print(f"| start-up: `blocktrace export --to parquet` of its first 300 lines (unsealed), "
          f"a fresh process | {min(startup() for _ in range(repeat)):.3f} | |")
    shutil.rmtree(out + "-tiny", ignore_errors=True)
    for kind in ("perfetto", "speedscope"):
        rate(f"`blocktrace export --to {kind}` (fresh process)",
             _command_cpu("export", trace, "--to", kind, os.path.join(tmp, f"t.{kind}")))
        os.unlink(os.path.join(tmp, f"t.{kind}"))
    parquet = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(f"\nParquet dataset {parquet / 2**20:.1f} MiB: the .jsonl is {size / parquet:.1f}x "
          "larger")
    small = _record(tmp, n - 3)  # ~4.2x fewer lines
    print(f"peak memory of an export (fresh process): {_peak_mib(trace, out + '-p1'):.0f} MiB "
          f"for {lines} lines, {_peak_mib(small, out + '-p2'):.0f} MiB for fib.py {n - 3}")
    os.unlink(small)
    return trace


def query_costs(tmp: str, trace: str, repeat: int) -> None:
    from blocktrace.query import connect

    con = connect([os.path.join(tmp, "dataset")])
    for label, sql in (
        ("GROUP BY line over ops",
         "SELECT line, count(*) FROM ops GROUP BY line"),
        ("GROUP BY file, line over ops",
         "SELECT file, line, count(*) FROM ops GROUP BY ALL ORDER BY 3 DESC LIMIT 10"),
        ("GROUP BY function over calls",
         "SELECT function, count(*), sum(self_steps) FROM calls GROUP BY ALL"),
    ):
        best = 1e9
        for _ in range(repeat):
            t = time.perf_counter()
            con.execute(sql).fetchall()
            best = min(best, time.perf_counter() - t)
        print(f"{label}: {best:.3f} s (best of {repeat})")
    os.environ["BLOCKTRACE_CACHE"] = os.path.join(tmp, "cache")
    t = time.perf_counter()
    connect([trace]).execute("SELECT line, count(*) FROM ops GROUP BY line").fetchall()
    first = time.perf_counter() - t
    t = time.perf_counter()
    connect([trace]).execute("SELECT line, count(*) FROM ops GROUP BY line").fetchall()
    print(f"the same query on the .jsonl: {first:.2f} s the first time (exported into the "
          f"cache), {time.perf_counter() - t:.3f} s after")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--fib", type=int, default=22)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-clock", action="store_true")
    args = ap.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bt-bench-query-") as tmp:
        if not args.skip_clock:
            clock_cost(tmp, args.repeat)
        trace = export_costs(tmp, args.fib, args.repeat)
        query_costs(tmp, trace, args.repeat)


if __name__ == "__main__":
    main()
