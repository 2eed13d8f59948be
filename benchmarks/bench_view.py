"""``blocktrace view`` at scale: first step, table build, request latency, memory.

    python benchmarks/bench_view.py [--lines 3000000] [--requests 30] [--keep DIR]

Records a program of many short calls with ``--locals changes`` (about
``--lines`` trace lines), then, in one run on the same machine:

- ``blocktrace verify`` of it (the speed the table build is compared with);
- ``blocktrace view --no-browser`` with an empty cache: the time until the
  first window of steps is answered (the page's first screen), and until the
  tables are built (``meta.ready``): lines per second, and the ratio to verify;
- then ``--requests`` requests of each kind at random steps (window of 100,
  stack, values, nav over/out/back-out/next-hit/next-call, search, timeline):
  median and worst latency;
- the server's resident memory (VmRSS, and its peak VmHWM) after all that;
- a second start with the cache filled: time until ready.

Prints Markdown.  Figures go to docs/PERFORMANCE.md as measured; never timed
assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

PROGRAM = """\
def step(n):
    s = 0
    for k in range(n):
        s += k
    return s


def main(rounds):
    total = 0
    for i in range(rounds):
        total += step(i % 7)
    print(total)


main({rounds})
"""
LINES_PER_ROUND = 40
"""About how many trace lines one round writes (measured on 3.13)."""


def run(*args: str, cwd: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "blocktrace", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"blocktrace {' '.join(args)} failed: {proc.stderr}")
    return time.perf_counter() - start


def cpu_run(*args: str, cwd: str, env: dict[str, str] | None = None) -> tuple[float, int]:
    """CPU time (user + system, s) and peak resident memory (KiB) of one
    ``python ARGS`` process (its own rusage, by wait4: load does not inflate CPU time)."""
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        assert proc.stderr is not None
        raise SystemExit(f"python {' '.join(args)} failed: {proc.stderr.read()!r}")
    if proc.stderr is not None:
        proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=600) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


class Viewer:
    def __init__(self, trace: str, cache: str) -> None:
        env = dict(os.environ, BLOCKTRACE_VIEW_CACHE=cache)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "blocktrace", "view", "--no-browser", trace],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().split()[-1]

    def api(self, call: str, **params: Any) -> tuple[float, int, Any]:
        query = urllib.parse.urlencode(params)
        start = time.perf_counter()
        status, body = get(f"{self.url}api/{call}?{query}")
        return time.perf_counter() - start, status, body

    def first_step(self) -> float:
        while True:
            _, status, _ = self.api("window", **{"from": 0, "count": 100})
            if status == 200:
                return time.perf_counter() - self.started
            time.sleep(0.01)

    def ready(self) -> tuple[float, dict[str, Any]]:
        while True:
            _, _, meta = self.api("meta")
            trace = meta["traces"][0]
            if trace["ready"]:
                return time.perf_counter() - self.started, trace
            self.builder_peak = max(self.builder_peak, self._children_peak())
            time.sleep(0.05)

    def verified(self) -> float:
        """Seconds from the start until the server's verify pass (which builds the
        reader's index: windows anywhere) is done."""
        while True:
            _, _, verdict = self.api("verify")
            if verdict.get("status") != "pending":
                return time.perf_counter() - self.started
            time.sleep(0.05)

    builder_peak = 0

    def _children_peak(self) -> int:
        """The largest VmHWM (KiB) among the server's child processes (the
        table builder), 0 when there is none."""
        pid = self.proc.pid
        peak = 0
        children = []
        try:  # children are listed per thread: the builder is started by a worker thread
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    children += [int(c) for c in f.read().split()]
        except OSError:
            return 0
        for child in children:
            try:
                peak = max(peak, rss(child)[1])
            except (OSError, KeyError):
                pass
        return peak

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--keep", metavar="DIR", help="keep the trace here (and reuse it)")
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="bench-view-")
    os.makedirs(root, exist_ok=True)
    trace = os.path.join(root, "big.trace.jsonl")
    rounds = max(1, args.lines // LINES_PER_ROUND)
    if not os.path.exists(trace):
        with open(os.path.join(root, "big.py"), "w") as f:
            f.write(PROGRAM.format(rounds=rounds))
        took = run("run", "--locals", "changes", "--no-embed-source", "-o", trace, "big.py",
                   cwd=root)
        print(f"recorded in {took:.1f} s")
    size = os.path.getsize(trace)
    verify_s = run("verify", trace, cwd=root)
    # The table pass against verify, as CPU time of each process, interleaved (two rounds).
    cpu_rounds = []
    for _ in range(2):
        verify_cpu, _ = cpu_run("-m", "blocktrace", "verify", trace, cwd=root)
        scratch = tempfile.mkdtemp(prefix="bench-view-cache-")
        try:
            build_cpu, build_peak = cpu_run(
                "-m", "blocktrace.view.build", trace, cwd=root,
                env=dict(os.environ, BLOCKTRACE_VIEW_CACHE=scratch))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        cpu_rounds.append((verify_cpu, build_cpu, build_peak))
    cache = tempfile.mkdtemp(prefix="bench-view-cache-")
    rng = random.Random(14)
    try:
        viewer = Viewer(trace, cache)
        try:
            first = viewer.first_step()
            built, meta = viewer.ready()
            indexed = viewer.verified()
            lines, steps = meta["lines"], meta["steps"]
            latencies: dict[str, list[float]] = {}

            def time_it(kind: str, call: str, **params: Any) -> Any:
                took, status, body = viewer.api(call, **params)
                if status != 200:
                    raise SystemExit(f"{call} {params}: {status} {body}")
                latencies.setdefault(kind, []).append(took * 1000)
                return body

            file = meta["files"][0]
            for _ in range(args.requests):
                at = rng.randrange(steps)
                time_it("window (100 steps)", "window", **{"from": at, "count": 100})
                time_it("stack", "stack", step=at)
                time_it("values", "values", step=at)
                for how in ("over", "out", "back-out"):
                    time_it(f"nav {how}", "nav", step=at, how=how)
                time_it("nav next-hit", "nav", step=at, how="next-hit", file=file, line=4)
                time_it("nav next-call", "nav", step=at, how="next-call", function="step")
                time_it("search (first 5 from here)", "search", name="total", text="1",
                        limit=5, **{"from": at})
                width = rng.choice((steps, steps // 100, 1000))
                start = rng.randrange(max(1, steps - width))
                time_it("timeline (400 buckets)", "timeline",
                        **{"from": start, "to": start + width - 1, "buckets": 400})
            now_rss, peak_rss = rss(viewer.proc.pid)
            builder_peak = viewer.builder_peak
        finally:
            viewer.stop()
        again = Viewer(trace, cache)
        try:
            cached_first = again.first_step()
            cached_ready, _ = again.ready()
        finally:
            again.stop()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n### blocktrace view, {lines:,} lines ({size / 1e6:.0f} MB), {steps:,} steps\n")
    print(f"Python {platform.python_version()}, {platform.machine()}; one run, machine loaded "
          "by other work\n")
    print("| what | figure |\n|---|---|")
    print(f"| `blocktrace verify` | {verify_s:.1f} s ({lines / verify_s / 1e6:.2f} M lines/s) |")
    print(f"| first step shown (first window answered) | {first:.2f} s |")
    for verify_cpu, build_cpu, build_peak in cpu_rounds:
        print(f"| CPU time: `verify` / table pass (`python -m blocktrace.view.build`, own "
              f"process) | {verify_cpu:.1f} s / {build_cpu:.1f} s: the pass at "
              f"{verify_cpu / build_cpu:.2f}x verify's speed (peak {build_peak / 1024:.0f} MiB) |")
    print(f"| tables ready (empty cache; wall, the server's verify running meanwhile) | "
          f"{built:.1f} s ({lines / built / 1e6:.2f} M lines/s) |")
    print(f"| verify's pass done in the server (the reader's index built: windows, values and "
          f"search anywhere) | {indexed:.1f} s |")
    print(f"| first step / ready again (cache filled) | {cached_first:.2f} s / "
          f"{cached_ready:.2f} s |")
    print(f"| server resident memory after the requests (peak) | {now_rss / 1024:.0f} MiB "
          f"({peak_rss / 1024:.0f} MiB) |")
    print(f"| table builder process, peak resident memory (sampled) | "
          f"{builder_peak / 1024:.0f} MiB |")
    print(f"\n{args.requests} requests of each kind at random steps, ms:\n")
    print("| request | median | worst |\n|---|---|---|")
    for kind, values in latencies.items():
        print(f"| {kind} | {statistics.median(values):.0f} | {max(values):.0f} |")


if __name__ == "__main__":
    main()
