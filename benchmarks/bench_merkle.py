"""Cost of the Merkle root and of proofs, measured in one run.

    python benchmarks/bench_merkle.py [--repeat 7]

1. Proof verification in trees of 2^32+ leaves (never built: a proof is
   O(log n)); the trees hold identical leaves so the proofs can be computed in
   O(log^2 n) by the benchmark itself.
2. The tree's own work per leaf and per line: in format 2 the leaf hash is the
   chain's per-leaf stream, so what is left is ``append_leaf_hash`` (on average
   one node hash) and the link hash of each leaf's first line; for comparison,
   format 1's separate leaf hashing (``append_leaf_data`` of 16 op lines).
3. The trace writer (ChainTracer driven by the real stepper over
   benchmarks/workloads.py), per event, with the tree (16 lines per leaf, what
   blocktrace writes) and without it (the same writer with ``lines_per_leaf=0``:
   one stream for the whole file, no leaves, no root), for the C line writer and
   the pure-Python one; CPU time, best of N, interleaved, since the machine is
   shared.  The root's share is (with - without) / without.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import blocktrace
from blocktrace.chain.merkle import (
    LINES_PER_LEAF,
    MerkleAccumulator,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

OP_LINE = (
    b'{"pc":12,"op":100,"gas":"0x2540be3f6","gasCost":"0x1","depth":1,"opName":"LOAD_FAST",'
    b'"line":5,"code":3,"hash":"8c6a1f1b9e1f0d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a4938271605f4e"}\n'
)


def _best(fn: Callable[[], int], repeat: int) -> int:
    return min(fn() for _ in range(repeat))


def _per_call(fn: Callable[[], object], n: int, repeat: int) -> float:
    def run() -> int:
        t = time.process_time_ns()
        for _ in range(n):
            fn()
        return time.process_time_ns() - t

    return _best(run, repeat) / n


@functools.cache
def _uniform(n: int) -> bytes:
    """Root of a tree of ``n`` identical leaves."""
    if n == 1:
        return leaf_hash(b"x")
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(_uniform(k), _uniform(n - k))


def bench_proofs(repeat: int) -> None:
    print("### Proof verification in huge trees (never built)\n")
    print("| tree size | proof hashes | verify_inclusion µs | verify_consistency µs |")
    print("|---|---|---|---|")
    for size in (2**32 + 1, 2**40 + 12345, 2**62 + 3):
        index = size // 3
        path = [_uniform(b - a) for a, b in inclusion_ranges(index, size)]
        r = _uniform(size)
        leaf = leaf_hash(b"x")
        size1 = size // 2 + 7
        cproof = [_uniform(b - a) for a, b in consistency_ranges(size1, size)]
        r1 = _uniform(size1)
        inc = _per_call(
            functools.partial(verify_inclusion, index, size, leaf, path, r), 2000, repeat
        )
        con = _per_call(
            functools.partial(verify_consistency, size1, size, cproof, r1, r), 2000, repeat
        )
        print(f"| {size} | {len(path)} / {len(cproof)} | {inc / 1000:.1f} | {con / 1000:.1f} |")
    print()


def bench_accumulator(repeat: int) -> None:
    leaf = OP_LINE * LINES_PER_LEAF
    n = 20_000
    acc = MerkleAccumulator()
    digest = hashlib.sha256(leaf).digest()

    def append_hash() -> None:
        acc.append_leaf_hash(digest)

    per_leaf_hash = _per_call(append_hash, n, repeat)
    prev = digest
    body = OP_LINE[:-78]

    def link() -> None:
        hashlib.sha256(b"\x02" + prev + body).digest()

    per_link = _per_call(link, n, repeat)
    v1 = MerkleAccumulator()

    def append_data() -> None:
        v1.append_leaf_data(leaf)

    per_leaf_data = _per_call(append_data, n, repeat)
    print("### The tree's own work (Python)\n")
    print(f"leaf of {LINES_PER_LEAF} op lines = {len(leaf)} bytes\n")
    print("| what | per leaf ns | per line ns |")
    print("|---|---|---|")
    print(f"| `append_leaf_hash` (amortised node hashes) | {per_leaf_hash:.0f} | "
          f"{per_leaf_hash / LINES_PER_LEAF:.0f} |")
    print(f"| link hash of a leaf's first line | {per_link:.0f} | "
          f"{per_link / LINES_PER_LEAF:.0f} |")
    print(f"| format 1: `append_leaf_data` (hash the leaf's bytes again) | {per_leaf_data:.0f} | "
          f"{per_leaf_data / LINES_PER_LEAF:.0f} |")
    print()


def _stepped(fn: Callable[[], object], tracer: Any) -> tuple[int, int]:
    previous = blocktrace.set_tracer(tracer)
    try:
        t = time.process_time_ns()
        stepper = blocktrace.start()
        fn()
        blocktrace.stop()
        elapsed = time.process_time_ns() - t
    finally:
        blocktrace.set_tracer(previous)
        tracer.close()
    return elapsed, stepper.gas_used


def bench_writer(repeat: int, workloads: list[str] | None = None) -> None:
    from workloads import WORKLOADS

    import blocktrace.tracers.chain as chain_module
    from blocktrace.chain.writer import ACCELERATED, PyLineWriter

    tmp = tempfile.mkdtemp(prefix="bt-bench-merkle-")
    counter = [0]
    writers: dict[str, Any] = {"python": PyLineWriter}
    if ACCELERATED:
        writers = {"C": chain_module.LineWriter, **writers}
    else:
        print("(the C line writer is not built: pure Python only)\n")

    def make(writer: Any, per_leaf: int) -> Any:
        counter[0] += 1
        path = os.path.join(tmp, f"t{counter[0]}.jsonl")
        saved = chain_module.LineWriter, chain_module.LINES_PER_LEAF
        chain_module.LineWriter, chain_module.LINES_PER_LEAF = writer, per_leaf
        try:
            return blocktrace.ChainTracer(path, genesis="bench")
        finally:
            chain_module.LineWriter, chain_module.LINES_PER_LEAF = saved

    print("### Writer per event, with and without the tree\n")
    print("| writer | workload | events | without tree ns/ev | with tree ns/ev | root share |")
    print("|---|---|---|---|---|---|")
    for name, fn in WORKLOADS.items():
        if workloads and name not in workloads:
            continue
        fn()
        for label, writer in writers.items():
            best = {0: 1 << 62, LINES_PER_LEAF: 1 << 62}
            events = 0
            for _ in range(repeat):
                for per_leaf in best:
                    ns, events = _stepped(fn, make(writer, per_leaf))
                    best[per_leaf] = min(best[per_leaf], ns)
            with_root, without = best[LINES_PER_LEAF] / events, best[0] / events
            share = (with_root - without) / without
            print(f"| {label} | {name} | {events} | {without:.0f} | {with_root:.0f} | "
                  f"{share * 100:.1f}% |")
            for entry in os.listdir(tmp):
                os.unlink(os.path.join(tmp, entry))
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workload", action="append", help="only this writer workload")
    ap.add_argument("--writer-only", action="store_true")
    args = ap.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"best of {args.repeat}\n")
    if not args.writer_only:
        bench_proofs(args.repeat)
        bench_accumulator(args.repeat)
    bench_writer(args.repeat, args.workload)


if __name__ == "__main__":
    main()
