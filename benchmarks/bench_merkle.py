"""Cost of the Merkle root and of proofs, measured in one run.

    python benchmarks/bench_merkle.py [--repeat 7]

1. Proof verification in trees of 2^32+ leaves (never built: a proof is
   O(log n)); the trees hold identical leaves so the proofs can be computed in
   O(log^2 n) by the benchmark itself.
2. ``MerkleAccumulator.append_leaf_data`` per leaf of 16 real op lines, and per
   line, against the chain's own per-line cost (one running-SHA-256 update and
   a digest copy).
3. The trace writer (ChainTracer, driven by the real stepper over
   benchmarks/workloads.py) per event with the root, and with the accumulator
   replaced by one that does nothing (the lines are still grouped); CPU time,
   best of N, interleaved, since the machine is shared; the cost of
   grouping (a list append per line, a join per leaf) is timed on its own.  The
   root's share is (with - without + grouping) / without.
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
from collections.abc import Buffer, Callable
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

    def append() -> None:
        acc.append_leaf_data(leaf)

    per_leaf = _per_call(append, n, repeat)
    running = hashlib.sha256(b"blocktrace-chain/1\n")
    body = OP_LINE[:-80]

    def chain_line() -> None:
        running.update(body)
        running.copy().digest()

    per_chain_line = _per_call(chain_line, n, repeat)
    group: list[bytes] = []

    def grouping() -> None:
        group.append(OP_LINE)
        if len(group) == LINES_PER_LEAF:
            b"".join(group)
            group.clear()

    per_group_line = _per_call(grouping, n * 4, repeat)
    print("### Accumulator\n")
    print(f"leaf of {LINES_PER_LEAF} op lines = {len(leaf)} bytes\n")
    print("| what | ns |")
    print("|---|---|")
    print(f"| `append_leaf_data` per leaf (leaf hash + amortised node hashes) | {per_leaf:.0f} |")
    print(f"| the same per line | {per_leaf / LINES_PER_LEAF:.0f} |")
    for lines in (1, 64, 256):  # what other leaf sizes would cost, per line
        other = OP_LINE * lines
        append_other = functools.partial(MerkleAccumulator().append_leaf_data, other)
        cost = _per_call(append_other, max(500, n * 16 // lines), repeat)
        print(f"| per line if a leaf held {lines} line(s) | {cost / lines:.0f} |")
    print(f"| grouping lines into leaves, per line (append + join/16) | {per_group_line:.0f} |")
    print(f"| the chain's own hashing per line (update + copy().digest()) | "
          f"{per_chain_line:.0f} |")
    print()


class _NoRoot(MerkleAccumulator):
    """Stands in for the accumulator to time the writer without the root: it
    counts leaves and hashes nothing."""

    def append_leaf_data(self, data: Buffer) -> None:
        self._size += 1

    def root(self) -> bytes:
        return b"\0" * 32


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

    tmp = tempfile.mkdtemp(prefix="bt-bench-merkle-")
    counter = [0]

    def make(root: bool) -> Any:
        counter[0] += 1
        path = os.path.join(tmp, f"t{counter[0]}.jsonl")
        tracer = blocktrace.ChainTracer(path, genesis="bench")
        if not root:
            tracer._merkle = _NoRoot()
        return tracer

    group: list[bytes] = []

    def grouping() -> None:
        group.append(OP_LINE)
        if len(group) == LINES_PER_LEAF:
            b"".join(group)
            group.clear()

    per_group_line = _per_call(grouping, 80_000, repeat)
    print("### Writer per event, with and without the root\n")
    print("| workload | events | without root ns/ev | with root ns/ev | root share "
          "(incl. grouping) |")
    print("|---|---|---|---|---|")
    for name, fn in WORKLOADS.items():
        if workloads and name not in workloads:
            continue
        fn()
        best = {True: 1 << 62, False: 1 << 62}
        events = 0
        for _ in range(repeat):
            for root in (False, True):
                ns, events = _stepped(fn, make(root))
                best[root] = min(best[root], ns)
        with_root, without = best[True] / events, best[False] / events
        share = (with_root - without + per_group_line) / without
        print(f"| {name} | {events} | {without:.0f} | {with_root:.0f} | {share * 100:.1f}% |")
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
