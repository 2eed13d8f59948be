"""The C line writer (``blocktrace.chain._cwriter``), measured in one run.

    python benchmarks/bench_cwriter.py [--repeat 7] [--n 200000] [--format 3 --format 4]

1. ns per ``op(event, gas, depth)`` of a site (a real ``OpStart``, plain ints):
   the whole op line built, sealed and buffered in C, into a real unbuffered
   file (os.devnull), with the tree (16 lines per leaf) and without
   (``lines_per_leaf=0``), next to the loop's own cost of calling a
   three-argument C function (``slice``) and to the pure-Python reference
   writer (``PyLineWriter``) doing the same.
2. ns per ``line(body)`` for a 100-byte op-line body, C and Python.
3. MB/s of ``sha256`` (this module's, SHA-NI when the CPU has it, and the
   portable C one in a subprocess with ``BLOCKTRACE_SHA_PORTABLE=1``) against
   ``hashlib.sha256`` on 1 MiB inputs, and ns per 64-byte hash.

4. With ``--format`` (repeatable, interleaved: an A/B of the chain rules): 1 and 2 for
   each format version's C writer (``LineWriter(version=)``); the CPU time of the writer's
   own thread per op line (``LineWriter(threaded=True, fd=)`` fed ``op`` calls from here,
   ``thread_cpu_ns``: the chain, the copy into its chunk, the file's writes); and ns per line of the
   writer's line function alone (``hash_lines(..., version)``: version 3's
   ``sha256_line``, version 4's ``sha256_line4`` and, as the writer's thread runs it,
   ``sha256_line4_defer``: each digest taken with the next line's first blocks) for each
   line size.

CPU time (``process_time``), best of N runs, since the machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import repeat
from typing import Any

from blocktrace.chain.writer import PyLineWriter
from blocktrace.events import OpStart

try:
    from blocktrace.chain import _cwriter
except ImportError:
    sys.exit("bench_cwriter: the C extension is not built (python setup.py build_ext --inplace)")

PREFIX = b'{"pc":12,"op":100,"gas":"0x'
SUFFIX = b',"opName":"LOAD_FAST","line":5,"code":3'
BODY = PREFIX + b'2540be3f6","gasCost":"0x1","depth":1' + SUFFIX


_three = slice  # a C call of 3 arguments doing next to nothing, for the loop's floor


def _best(run: Callable[[], int], repeat_: int) -> float:
    return float(min(run() for _ in range(repeat_)))


GAS = 9_999_999_990


def _calls(fn: Callable[[Any, int, int], Any], event: Any, n: int) -> Callable[[], int]:
    """n calls fn(event, GAS, 1): a writer's op(), as the stepper's hook makes them."""
    def run() -> int:
        t = time.process_time_ns()
        for _ in repeat(None, n):
            fn(event, GAS, 1)
        return time.process_time_ns() - t

    return run


def _lines(line: Callable[[bytes], None], body: bytes, n: int) -> Callable[[], int]:
    def run() -> int:
        t = time.process_time_ns()
        for _ in repeat(None, n):
            line(body)
        return time.process_time_ns() - t

    return run


def _writer(cls: Any, sink: Any, per_leaf: int, event: OpStart, **kw: Any) -> Any:
    w = cls(sink.write, lines_per_leaf=per_leaf, **kw)
    w.add_site(id(event), PREFIX, SUFFIX, event)
    return w


def _sha_rates(repeat_: int) -> dict[str, float]:
    """MB/s on 1 MiB and ns per 64-byte input, for this process's implementation."""
    big = os.urandom(1 << 20)
    small = os.urandom(64)
    out: dict[str, float] = {}
    for name, fn in (("own", _cwriter.sha256), ("hashlib", lambda d: hashlib.sha256(d).digest())):
        def run_big(fn: Callable[[bytes], bytes] = fn) -> int:
            t = time.process_time_ns()
            for _ in range(20):
                fn(big)
            return time.process_time_ns() - t

        def run_small(fn: Callable[[bytes], bytes] = fn) -> int:
            t = time.process_time_ns()
            for _ in repeat(None, 100_000):
                fn(small)
            return time.process_time_ns() - t

        out[name + "_mbs"] = 20 * len(big) / 1e6 / (_best(run_big, repeat_) / 1e9)
        out[name + "_small_ns"] = _best(run_small, repeat_) / 100_000
    return out


LINE_SIZES = (50, 100, 200, 400)


def _streamed(repeat_: int, n: int) -> dict[int, tuple[float, float]]:
    """Line size -> (own, hashlib) ns per line to hash lines as the writer does
    (one stream per 16-line leaf: update, digest, update with the tail), both
    driven from C (``_cwriter.hash_lines``): hashlib's objects called as the
    writer would call them if it used OpenSSL instead of its own SHA-256."""
    out = {}
    for size in LINE_SIZES:
        body = bytes(i % 251 for i in range(size))
        own = hl = float("inf")
        for _ in range(repeat_):  # interleaved
            own = min(own, _cwriter.hash_lines(body, n, 16, False) / n)
            hl = min(hl, _cwriter.hash_lines(body, n, 16, True) / n)
        out[size] = (own, hl)
    return out


def _thread_ns(version: int, sink: Any, event: OpStart, n: int) -> float:
    """CPU ns of the writer's own thread per op line (it ends with stop_thread)."""
    w = _writer(_cwriter.LineWriter, sink, 16, event, version=version, threaded=True,
                fd=sink.fileno())
    _calls(w.op, event, n)()
    w.stop_thread()
    return float(w.thread_cpu_ns) / n


def _formats(formats: list[int], sink: Any, event: OpStart, n: int, rep: int) -> None:
    """Section 4: the C writer and its line function per format version, interleaved."""
    writers = {v: _writer(_cwriter.LineWriter, sink, 16, event, version=v) for v in formats}
    lines = {v: _cwriter.LineWriter(sink.write, version=v) for v in formats}
    bodies = {size: bytes(32 + i % 95 for i in range(size)) for size in LINE_SIZES}
    op = dict.fromkeys(formats, float("inf"))
    line = dict.fromkeys(formats, float("inf"))
    thread = dict.fromkeys(formats, float("inf"))
    ways = [(v, False) for v in formats] + [(4, True)] * (4 in formats)
    fn = {(way, size): float("inf") for way in ways for size in LINE_SIZES}
    for _ in range(rep):
        for v in formats:
            op[v] = min(op[v], _best(_calls(writers[v].op, event, n), 1) / n)
            line[v] = min(line[v], _best(_lines(lines[v].line, BODY, n), 1) / n)
            thread[v] = min(thread[v], _thread_ns(v, sink, event, n))
        for way in ways:
            for size, body in bodies.items():
                ns = _cwriter.hash_lines(body, n // 4, 16, False, *way) / (n // 4)
                fn[way, size] = min(fn[way, size], ns)
    print(f"\nper format version ({_cwriter.IMPLEMENTATION}), ns; interleaved, best of {rep}")
    print("  version   op(event, gas, depth)   line(body)   writer's thread a line   "
          + "   ".join(f"line fn {size:3} B" for size in LINE_SIZES))
    for v, deferred in ways:
        cells = (f"{op[v]:21.1f}   {line[v]:10.1f}   {thread[v]:22.1f}" if not deferred
                 else " " * 48 + "(thread's way)")
        print(f"  {v:7}   {cells}   "
              + "   ".join(f"{fn[(v, deferred), size]:13.1f}" for size in LINE_SIZES))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--sha-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--format", type=int, choices=(3, 4), action="append", dest="formats",
                    help="a format version for the C writer (repeat: A/B in one run)")
    args = ap.parse_args()
    if args.sha_only:  # the portable run, in a subprocess
        rates = _sha_rates(args.repeat)
        streamed = _streamed(args.repeat, args.n // 4)
        print(f"{_cwriter.IMPLEMENTATION} {rates['own_mbs']:.1f} {rates['own_small_ns']:.1f}",
              *(f"{own:.1f} {hl:.1f}" for own, hl in streamed.values()))
        return
    n, rep = args.n, args.repeat
    event = OpStart(pc=12, op=100, op_name="LOAD_FAST", line=5, code=3)
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs; SHA-256: {_cwriter.IMPLEMENTATION}")
    line_len = len(BODY) + 77
    print(f"op line: {line_len} bytes; CPU time, best of {rep} x {n}\n")

    with open(os.devnull, "wb", buffering=0) as sink:
        c16 = _writer(_cwriter.LineWriter, sink, 16, event)
        c0 = _writer(_cwriter.LineWriter, sink, 0, event)
        py16 = _writer(PyLineWriter, sink, 16, event)
        floor = _best(_calls(_three, event, n), rep) / n
        # interleaved, so that a busy neighbour hits every figure alike
        t_c16 = t_c0 = t_py = float("inf")
        for _ in range(rep):
            t_c16 = min(t_c16, _best(_calls(c16.op, event, n), 1) / n)
            t_c0 = min(t_c0, _best(_calls(c0.op, event, n), 1) / n)
            t_py = min(t_py, _best(_calls(py16.op, event, n // 4), 1) / (n // 4))
        l_c = _best(_lines(_cwriter.LineWriter(sink.write).line, BODY, n), rep) / n
        l_py = _best(_lines(PyLineWriter(sink.write).line, BODY, n // 4), rep) / (n // 4)

    print("per op line through op(event, gas, depth)         ns")
    print(f"  loop + a 3-argument C call (slice)          {floor:7.1f}")
    print(f"  C writer, 16 lines per leaf (the tree)      {t_c16:7.1f}   "
          f"(net of the loop {t_c16 - floor:.1f})")
    print(f"  C writer, no tree (lines_per_leaf=0)        {t_c0:7.1f}   "
          f"(net of the loop {t_c0 - floor:.1f})")
    print(f"  Python reference writer, 16 per leaf        {t_py:7.1f}")
    share = 100 * (t_c16 - t_c0) / (t_c0 - floor)
    print(f"  the tree's share of the C writer            {share:6.1f} %")
    print(f"  C against Python                            {t_py / t_c16:6.1f} x faster")
    print("\nper line(body), 16 lines per leaf               ns")
    print(f"  C                                           {l_c:7.1f}")
    print(f"  Python reference                            {l_py:7.1f}   ({l_py / l_c:.1f} x)")
    if args.formats:
        with open(os.devnull, "wb", buffering=0) as sink:
            _formats(args.formats, sink, event, n, rep)

    rates = _sha_rates(rep)
    portable = subprocess.run(
        [sys.executable, __file__, "--sha-only", "--repeat", str(rep)],
        env={**os.environ, "BLOCKTRACE_SHA_PORTABLE": "1"},
        capture_output=True, text=True, check=True,
    ).stdout.split()
    print("\nSHA-256                                  MB/s (1 MiB)   ns per 64 bytes")
    print(f"  hashlib (OpenSSL)                     {rates['hashlib_mbs']:9.1f}   "
          f"{rates['hashlib_small_ns']:9.1f}")
    base = rates["hashlib_mbs"]
    for impl, mbs, small in ((_cwriter.IMPLEMENTATION, rates["own_mbs"], rates["own_small_ns"]),
                             (portable[0], float(portable[1]), float(portable[2]))):
        print(f"  _cwriter.sha256 ({impl:8})           {mbs:9.1f}   {small:9.1f}   "
              f"({mbs / base:.2f} x hashlib)")
    streamed = _streamed(rep, n // 4)
    print("\nSHA-256 streamed per 16-line leaf, as the writer hashes (driven from C), ns per line")
    print("  line bytes   own             hashlib (OpenSSL)   hashlib / own")
    for k, size in enumerate(LINE_SIZES):
        for impl, own, hl in ((_cwriter.IMPLEMENTATION, *streamed[size]),
                              (portable[0], float(portable[3 + 2 * k]),
                               float(portable[4 + 2 * k]))):
            print(f"  {size:10}   {own:7.1f} {impl:8}  {hl:9.1f}          {hl / own:6.2f} x")


if __name__ == "__main__":
    main()
