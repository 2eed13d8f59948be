"""Compressed traces and the random-access index, measured as ratios in one run.

    python benchmarks/bench_store.py [--big TRACE] [--options TRACE]

1. Recording the three workloads with ChainTracer to ``.jsonl``, ``.jsonl.zst`` and
   ``.jsonl.gz``, interleaved (minimum of rounds): cost and size ratios.
2. ``verify`` of each compressed trace against the plain one.
3. With ``--big TRACE`` (a large plain trace; it is also compressed to zstd for
   the run): the index build against ``verify`` on it, then ``show``
   (``line_of_step`` + the lines) of random steps and ``prove`` of random lines
   through the index, in milliseconds, in-process (a fresh ``TraceReader`` each
   time, as a new command would have).
4. With ``--settings``: recording with other zstd levels and frame sizes (CPU of
   all threads, size).
5. With ``--options TRACE``: the compression ratio of zstd levels, frame sizes and
   long-distance matching on the trace's first 64 MiB.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS

from blocktrace import trace
from blocktrace.chain.proof import TraceFile, make_bundle
from blocktrace.chain.verify import verify_file
from blocktrace.format import TraceReader
from blocktrace.format.compressed import FrameWriter
from blocktrace.format.index import index_paths
from blocktrace.tracers.chain import ChainTracer

SUFFIXES = (".jsonl", ".jsonl.zst", ".jsonl.gz")


def _record(run: Callable[[], object], path: str) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds of every thread of the process (the writer's and
    zstd's too), and CPU seconds of the program's own thread (the hot path's)."""
    start, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
    tracer = ChainTracer(path, force=True)
    with trace(tracer):
        run()
    tracer.close()
    return time.perf_counter() - start, time.process_time() - cpu, time.thread_time() - own


def _untraced(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def recording(rounds: int, tmp: str) -> None:
    print("recording (ChainTracer, minimum of interleaved rounds)")
    print("(cost: wall-clock ratio to the plain trace's; in brackets CPU time of all threads, "
          "then of the program's thread)")
    print(f"{'workload':<12}{'plain s':>9}{'zst/plain':>23}{'gz/plain':>23}"
          f"{'plain MB':>10}{'zst ratio':>11}{'gz ratio':>10}")
    for name, fn in WORKLOADS.items():
        best = {s: float("inf") for s in SUFFIXES}
        cpu = {s: float("inf") for s in SUFFIXES}
        own = {s: float("inf") for s in SUFFIXES}
        size: dict[str, int] = {}
        for _ in range(rounds):
            for suffix in SUFFIXES:
                path = os.path.join(tmp, name + suffix)
                wall, used, mine = _record(fn, path)
                best[suffix] = min(best[suffix], wall)
                cpu[suffix] = min(cpu[suffix], used)
                own[suffix] = min(own[suffix], mine)
                size[suffix] = os.path.getsize(path)
        plain, plain_cpu, plain_own = best[".jsonl"], cpu[".jsonl"], own[".jsonl"]
        zst, gz = (
            f"{best[s] / plain:.2f} ({cpu[s] / plain_cpu:.2f}, {own[s] / plain_own:.2f})"
            for s in (".jsonl.zst", ".jsonl.gz")
        )
        print(f"{name:<12}{plain:>9.3f}{zst:>23}{gz:>23}{size['.jsonl'] / 1e6:>10.1f}"
              f"{size['.jsonl'] / size['.jsonl.zst']:>11.2f}"
              f"{size['.jsonl'] / size['.jsonl.gz']:>10.2f}")
        verify: dict[str, float] = {s: float("inf") for s in SUFFIXES}
        vcpu: dict[str, float] = {s: float("inf") for s in SUFFIXES}
        for _ in range(rounds):
            for suffix in SUFFIXES:
                start, cpu0 = time.perf_counter(), time.process_time()
                assert verify_file(os.path.join(tmp, name + suffix)).status == "sealed"
                verify[suffix] = min(verify[suffix], time.perf_counter() - start)
                vcpu[suffix] = min(vcpu[suffix], time.process_time() - cpu0)
        print(f"{'':<12}verify zst/plain {verify['.jsonl.zst'] / verify['.jsonl']:.2f} "
              f"(CPU {vcpu['.jsonl.zst'] / vcpu['.jsonl']:.2f}), "
              f"gz/plain {verify['.jsonl.gz'] / verify['.jsonl']:.2f} "
              f"(CPU {vcpu['.jsonl.gz'] / vcpu['.jsonl']:.2f})")


def options(path: str) -> None:
    """What zstd options do to the size: level, frame size, long-distance matching
    (a long window), on the first 64 MiB of the trace at ``path`` (frames cut at
    whole lines, as the writer cuts them; the per-line SHA-256 bounds the ratio)."""
    import zstandard

    with open(path, "rb") as f:
        data = f.read(64 << 20)
    data = data[: data.rfind(b"\n") + 1]
    hashes = data.count(b"\n") * 32  # the random bytes every line carries
    print(f"\nzstd options on {len(data) / 1e6:.0f} MB of {os.path.basename(path)} "
          f"(bound with incompressible hashes: {len(data) / hashes:.2f}x)")
    print(f"{'level':>6}{'frame':>9}{'long':>6}{'ratio':>8}{'MB/s':>8}")
    for level, frame, long in [(1, 1 << 18, False), (3, 1 << 18, False), (1, 1 << 20, False),
                               (1, 4 << 20, False), (1, 4 << 20, True), (3, 4 << 20, True),
                               (9, 1 << 20, False), (19, 1 << 20, False)]:
        params = zstandard.ZstdCompressionParameters.from_level(
            level, enable_ldm=long, window_log=27 if long else 0, write_checksum=True
        )
        cctx = zstandard.ZstdCompressor(compression_params=params)
        start, size, at = time.process_time(), 0, 0
        while at < len(data):
            cut = data.rfind(b"\n", at, at + frame) + 1 or len(data)
            size += len(cctx.compress(data[at:cut]))
            at = cut
        spent = time.process_time() - start
        print(f"{level:>6}{frame >> 10:>8}K{'yes' if long else 'no':>6}"
              f"{len(data) / size:>8.2f}{len(data) / spent / 1e6:>8.0f}")


def settings(rounds: int, tmp: str) -> None:
    """Recording to ``.zst`` with other zstd levels and frame sizes: CPU of all
    threads against a plain recording's, and the size, interleaved rounds."""
    from blocktrace.format import compressed

    one_shot = compressed._one_shot
    defaults = compressed.FrameWriter.__init__.__kwdefaults__
    frame_default = defaults["frame_bytes"]
    configs = [(1, 1 << 18), (-1, 1 << 18), (-3, 1 << 18), (-5, 1 << 18), (1, 1 << 20)]
    print("\nzstd settings (recording; CPU of all threads and of the program's thread / plain)")
    try:
        for name, fn in WORKLOADS.items():
            cpu: dict[object, float] = {}
            own: dict[object, float] = {}
            size: dict[object, int] = {}
            for _ in range(rounds):
                for config in [None, *configs]:
                    path = os.path.join(tmp, name + (".jsonl" if config is None else ".jsonl.zst"))
                    if config is not None:
                        level, frame = config
                        compressed._one_shot = lambda kind, _l, level=level: one_shot(kind, level)
                        defaults["frame_bytes"] = frame
                    _, used, mine = _record(fn, path)
                    cpu[config] = min(cpu.get(config, float("inf")), used)
                    own[config] = min(own.get(config, float("inf")), mine)
                    size[config] = os.path.getsize(path)
            print(f"{name}: plain {cpu[None]:.3f} s CPU, {size[None] / 1e6:.1f} MB")
            for config in configs:
                level, frame = config
                print(f"  level {level:>3}, {frame >> 10:>5} KiB frames: all threads "
                      f"{cpu[config] / cpu[None]:.2f}, program's thread "
                      f"{own[config] / own[None]:.2f}, {size[None] / size[config]:.1f}x smaller")
    finally:
        compressed._one_shot = one_shot
        defaults["frame_bytes"] = frame_default


def _compress(src: str, dst: str) -> None:
    with open(src, "rb") as f, open(dst, "wb", buffering=0) as out:
        writer = FrameWriter(out, "zstd")
        while chunk := f.read(1 << 16):
            writer.write(chunk)
        writer.close()


def big(path: str, samples: int, tmp: str) -> None:
    zst = os.path.join(tmp, os.path.basename(path) + ".zst")
    _compress(path, zst)
    print(f"\n{path}: {os.path.getsize(path) / 1e9:.2f} GB, zstd copy "
          f"{os.path.getsize(path) / os.path.getsize(zst):.2f}x smaller")
    times: dict[str, tuple[float, float]] = {}
    for target in (path, zst):
        for candidate in index_paths(target):
            if os.path.exists(candidate):
                os.unlink(candidate)
        start, cpu = time.perf_counter(), time.process_time()
        result = verify_file(target)
        verify_s, verify_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        index = TraceReader(target).index()
        build_s, build_cpu = time.perf_counter() - start, time.process_time() - cpu
        assert index is not None and result.status == index.status
        times[target] = (verify_s, verify_cpu)
        print(f"{os.path.basename(target)}: {index.lines:,} lines, {index.steps:,} steps; "
              f"verify {verify_s:.1f} s, CPU {verify_cpu:.1f} s "
              f"({index.lines / verify_cpu / 1e6:.2f} M lines/s of CPU), "
              f"index build {build_s:.1f} s, CPU {build_cpu:.1f} s (build/verify "
              f"{build_s / verify_s:.2f}, CPU {build_cpu / verify_cpu:.2f}); "
              f"index {os.path.getsize(index_paths(target)[0]) / 1e3:.0f} kB")
        rng = random.Random(1)
        show_ms: list[float] = []
        for step in rng.sample(range(index.steps), samples):
            start = time.perf_counter()
            reader = TraceReader(target)
            first = reader.line_of_step(step)
            lines = list(reader.raw_lines(first, 5))
            show_ms.append((time.perf_counter() - start) * 1e3)
            assert lines
        prove_ms: list[float] = []
        for line in rng.sample(range(1, index.lines + 1), samples):
            start = time.perf_counter()
            reader = TraceReader(target)
            found = reader.index(build=False)
            make_bundle(TraceFile(target, index=found), line)
            prove_ms.append((time.perf_counter() - start) * 1e3)
        for what, ms in (("show (step -> 5 lines)", show_ms), ("prove (one line)", prove_ms)):
            ms.sort()
            print(f"  {what}: median {ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms "
                  f"over {len(ms)} random picks")
    (pw, pc), (zw, zc) = times[path], times[zst]
    print(f"verify zst/plain: wall {zw / pw:.2f}, CPU {zc / pc:.2f}")
    os.unlink(zst)
    for candidate in index_paths(zst):
        if os.path.exists(candidate):
            os.unlink(candidate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", metavar="TRACE", help="a large plain trace")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--skip-recording", action="store_true")
    parser.add_argument("--settings", action="store_true",
                        help="record with other zstd levels and frame sizes")
    parser.add_argument("--options", metavar="TRACE",
                        help="compare zstd options (level, frame size, long window) on a trace")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-store-")
    try:
        print(f"Python {sys.version.split()[0]}")
        if not args.skip_recording:
            recording(args.rounds, tmp)
        if args.settings:
            settings(args.rounds, tmp)
        if args.big:
            big(args.big, args.samples, tmp)
        if args.options:
            options(args.options)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
