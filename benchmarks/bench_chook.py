"""The C instruction hook against the Python closure it replaces, in one run.

    python benchmarks/bench_chook.py [--repeat 7] [--n 200000]

Times a tight arithmetic loop, interleaved and keeping the best of N:
untraced; a no-op Python sys.monitoring INSTRUCTION callback on the loop's code
object (the floor); the stepper's per-instruction Python closure
(``sites[id(code)][offset]``, gas, ``vm.site``, the tracer call) with the discard
tracer; and ``blocktrace.vm._chook.InstructionHook`` doing the same with the same
tracer.  Prints nanoseconds per instruction event and the ratios, as Markdown.
"""

from __future__ import annotations

import argparse
import dis
import importlib
import os
import platform
import sys
import time
from collections.abc import Callable
from types import CodeType
from typing import Any

import blocktrace
from blocktrace.events import OpStart
from blocktrace.vm.hook import python_instruction_hook
from blocktrace.vm.stepper import Stepper

try:
    InstructionHook: Any = importlib.import_module("blocktrace.vm._chook").InstructionHook
except ImportError:
    sys.exit("blocktrace.vm._chook is not built: python setup.py build_ext --inplace")

M = sys.monitoring
DISABLE = M.DISABLE
_RESUME = dis.opmap["RESUME"]


def loop(n: int) -> int:
    """The traced workload: integer arithmetic in a loop, all in one code object."""
    total = 0
    for i in range(n):
        total += (i * 7 + 3) % 11
    return total


def build_sites(code: CodeType) -> list[OpStart | None]:
    """offset -> a reusable OpStart, RESUME left None (as the stepper does)."""
    sites: list[OpStart | None] = [None] * (len(code.co_code) + 2)
    for ins in dis.get_instructions(code):
        if ins.opcode != _RESUME:
            sites[ins.offset] = OpStart(
                ins.offset, ins.opcode, ins.opname, (ins.positions and ins.positions.lineno) or 0, 1
            )
    return sites


def missing(code: CodeType, offset: int) -> OpStart | None:
    return None


def out_of_gas(code: CodeType, offset: int) -> None:
    raise RuntimeError("out of gas in a benchmark")


def failed(exc: BaseException) -> None:
    raise exc


def python_closure(
    sites: dict[int, list[OpStart | None]], vm: Any, tracer: Callable[[Any, Any], object]
) -> Callable[[CodeType, int], object]:
    """The stepper's fast path as a Python closure (what the hook replaces)."""
    return python_instruction_hook(sites, vm, tracer, missing, out_of_gas, failed, DISABLE)


def free_tool() -> int:
    for tool in (5, 4, 3, 2):
        if M.get_tool(tool) is None:
            M.use_tool_id(tool, "bench_chook")
            return tool
    sys.exit("no free sys.monitoring tool id")


def timed(n: int, callback: Callable[..., object] | None) -> int:
    """ns for loop(n), with ``callback`` on its INSTRUCTION events (None: untraced)."""
    if callback is None:
        t = time.perf_counter_ns()
        loop(n)
        return time.perf_counter_ns() - t
    tool = free_tool()
    try:
        M.register_callback(tool, M.events.INSTRUCTION, callback)
        M.set_local_events(tool, loop.__code__, M.events.INSTRUCTION)
        t = time.perf_counter_ns()
        loop(n)
        elapsed = time.perf_counter_ns() - t
    finally:
        M.set_local_events(tool, loop.__code__, 0)
        M.register_callback(tool, M.events.INSTRUCTION, None)
        M.free_tool_id(tool)
        M.restart_events()  # a DISABLEd RESUME must fire again in the next config
    return elapsed


def count_events(n: int) -> int:
    count = [0]

    def counting(code: CodeType, offset: int) -> None:
        count[0] += 1

    timed(n, counting)
    return count[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--n", type=int, default=200_000, help="loop iterations")
    args = ap.parse_args()
    code = loop.__code__
    tracer = blocktrace.discard_trace
    loop(args.n)  # warm up: specialisation
    events = count_events(args.n)

    def floor_cb(code: CodeType, offset: int) -> None:
        pass

    def fresh_vm() -> Stepper:
        vm = Stepper()  # not started: only its gas and site attributes are used
        return vm

    def closure() -> Callable[..., object]:
        return python_closure({id(code): build_sites(code)}, fresh_vm(), tracer)

    def hook() -> Callable[..., object]:
        sites = {id(code): build_sites(code)}
        made: Callable[..., object] = InstructionHook(
            sites, fresh_vm(), tracer, missing, out_of_gas, failed, DISABLE
        )
        return made

    configs: dict[str, Callable[[], Callable[..., object] | None]] = {
        "untraced": lambda: None,
        "floor": lambda: floor_cb,
        "closure": closure,
        "hook": hook,
    }
    best = {label: 1 << 62 for label in configs}
    for _ in range(args.repeat):
        for label, make in configs.items():
            best[label] = min(best[label], timed(args.n, make()))
    per = {label: ns / events for label, ns in best.items()}
    f = per["floor"]
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"best of {args.repeat}, interleaved; {events} instruction events per run\n")
    print("| untraced ns/ev | floor ns/ev | closure ns/ev (x floor) | hook ns/ev (x floor) "
          "| hook / closure |")
    print("|---|---|---|---|---|")
    print(f"| {per['untraced']:.1f} | {f:.1f} | {per['closure']:.1f} ({per['closure'] / f:.2f}x) "
          f"| {per['hook']:.1f} ({per['hook'] / f:.2f}x) | {per['hook'] / per['closure']:.2f} |")


if __name__ == "__main__":
    main()
