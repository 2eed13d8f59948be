"""Speed of ``blocktrace diff`` on long Ethereum clients' EIP-3155 traces (issue 18 item 3:
at least 500 k lines/s per input, same client and across clients).

How the traces are made (``make``):

* **The steps** come from a small interpreter (``loop_steps``) running a real EVM
  bytecode: a caller at depth 1 counting down from ``--iterations`` and, each time
  round, ``DELEGATECALL``-ing one of two callees, chosen by the counter
  (``counter % 1000 == 0`` picks the second):

  caller ``62 NNNNNN 5b 6000 6000 6000 6000 84 6103e8 90 06 15 600c 01 620186a0 f4 50 6001
  90 03 80 6004 57`` (``PUSH3 n; loop: JUMPDEST; PUSH1 0 x4; DUP5; PUSH2 1000; SWAP1; MOD;
  ISZERO; PUSH1 0x0c; ADD; PUSH3 100000; DELEGATECALL; POP; PUSH1 1; SWAP1; SUB; DUP1;
  PUSH1 4; JUMPI``, then the end of code: an implicit STOP), callee ``0x0c`` ``602a 6000 52``
  (``MSTORE`` of 42, then the end of code), callee ``0x0d`` ``6020 6000 6000 3e``
  (``RETURNDATACOPY`` of 32 bytes of empty return data: a fault that ends the frame and
  takes its gas).  Each step's pc, opcode, gas left, the gas cost, the stack (bottom
  first), depth and memory size follow the EVM's rules for these opcodes (Shanghai
  static costs, a warm ``DELEGATECALL`` of 100 that forwards all but 1/64 of the rest,
  a memory expansion of 3 per word); about 25 steps per iteration.

* **Each client's line shape** is learned from its real trace of ``negative_refund`` in
  ``../shared/refdata/eip3155`` (goevmlab's test data): the order of the members of its
  first op line, whether each number is a JSON number or a hex string, the members
  every op line carries that no step changes (erigon's ``memory``/``returnData``,
  revm's ``reservoir``/``stateGas``/``returnData``), and the lines after its last op
  line (summary, separate ``stateRoot``, nethermind's coloured ``FAIL`` line, revm's
  dump) are copied as they are.

* **Each client's quirks** (``QUIRKS``, from the same real traces): the implicit STOP
  line at the end of code (geth, eels, erigon, revm; revm's with ``"error":"Stop"``),
  geth's ``{"output","gasUsed"}`` line at every call-frame exit (with the error after
  a fault), a second line for the faulting op (geth: the stack after the pops, and the
  error; nimbus: the same stack and ``Opcode Dispatch Error: ...``), the faulting op's
  error on its one line (besu, revm) or none (eels, erigon, evmone, nethermind),
  evmone's static ``DELEGATECALL`` cost, besu's ``gasCost`` of 0 for a faulting op.

* **Divergences** (``--hunks``): in B, the top stack word of every ``steps / hunks``-th
  step (a step at depth 1 whose stack is not empty, the next one if it is) is
  incremented, so each is a one-step hunk.

Rows: a trace against an identical copy of itself (same client), the same client with
~10/100/1000 one-step divergences, and pairs of different clients (geth x evmone, besu x
revm, nethermind x nimbus, eels x erigon) whose steps are the same; then (session 17)
some of these pairs compressed (``.gz`` as ``gzip -6`` writes it, ``.zst`` as ``zstd -3``
does: one member or frame each, made with the ``gzip`` module and ``zstandard``), with
``--fields`` (every field), ``--ignore``, ``--stack-top 2``, against a trace that writes
only the top 2 stack words (``--stack-top 2``), and one whose lines are spaced as
``json.dumps`` writes them (``"pc": 0, "op": 96``).  Each row is the CPU
time (user + system) of ``blocktrace diff A B`` as a whole process (``os.wait4``), best
of ``--repeat``, the lines per second per input (lines of A / CPU time), and the peak
RSS.  ``--base DIR`` runs the same command with ``PYTHONPATH=DIR`` (the tree before,
its C extensions built), alternated, and checks that both print the same bytes (text
and ``--json``).  ``--profile`` prints a cProfile (CPU time) of ``diff_files`` in-process on
the first cross-client pair (geth x evmone).

    python benchmarks/bench_diff_clients.py [--iterations 60000] [--repeat 3] \
        [--base /tmp/clients-base] [--tmp /tmp/clients-bench] [--profile]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REFDATA = Path(__file__).resolve().parent.parent.parent / "shared" / "refdata" / "eip3155"
CLIENTS = ("besu", "eels", "erigon", "evmone", "geth", "nethermind", "nimbus", "revm")


@dataclass(slots=True)
class Quirks:
    stop_line: bool = False
    stop_error: str | None = None
    frame_exit: bool = False
    fault_duplicate: str | None = None  # "popped" (geth) or "same" (nimbus)
    fault_error: str | None = None
    fault_cost: int | None = None
    static_call_cost: bool = False


QUIRKS: dict[str, Quirks] = {
    "besu": Quirks(fault_error="Out of bounds", fault_cost=0),
    "eels": Quirks(stop_line=True),
    "erigon": Quirks(stop_line=True),
    "evmone": Quirks(static_call_cost=True),
    "geth": Quirks(stop_line=True, frame_exit=True, fault_duplicate="popped",
                   fault_error="return data out of bounds"),
    "nethermind": Quirks(),
    "nimbus": Quirks(fault_duplicate="same",
                     fault_error="Opcode Dispatch Error: OutOfBounds, depth=2"),
    "revm": Quirks(stop_line=True, stop_error="Stop", fault_error="OutOfOffset"),
}

_NAMES = {0x00: "STOP", 0x01: "ADD", 0x03: "SUB", 0x06: "MOD", 0x15: "ISZERO",
          0x3E: "RETURNDATACOPY", 0x50: "POP", 0x52: "MSTORE", 0x57: "JUMPI",
          0x5A: "GAS", 0x5B: "JUMPDEST", 0x60: "PUSH1", 0x61: "PUSH2", 0x62: "PUSH3",
          0x80: "DUP1", 0x84: "DUP5", 0x90: "SWAP1", 0xF4: "DELEGATECALL"}
_COST = {0x01: 3, 0x03: 3, 0x06: 5, 0x15: 3, 0x50: 2, 0x57: 10, 0x5A: 2, 0x5B: 1, 0x60: 3,
         0x61: 3, 0x62: 3, 0x52: 3, 0x80: 3, 0x84: 3, 0x90: 3, 0x3E: 3, 0x00: 0}


def caller_code(iterations: int) -> bytes:
    return bytes.fromhex(f"62{iterations:06x}5b60006000600060008461" "03e8900615600c01620186a0f4"
                         "50600190038060045" "7")


CALLEE = {0x0C: bytes.fromhex("602a600052"), 0x0D: bytes.fromhex("602060006000" "3e")}


@dataclass(slots=True)
class Event:
    """One traced step (``kind`` "op"), or a frame's end (``kind`` "exit")."""

    kind: str
    pc: int = 0
    op: int = 0
    gas: int = 0
    cost: int = 0
    stack: tuple[int, ...] = ()
    depth: int = 1
    mem: int = 0
    fault: bool = False
    stop: bool = False  # the implicit STOP at the end of code
    popped: tuple[int, ...] = ()  # a fault's stack after its pops
    used: int = 0  # exit: gas the frame used


def _run(code: bytes, gas: int, depth: int, out: list[Event]) -> tuple[int, bool]:
    """Run ``code`` (only the opcodes above); append its events; (gas left, success)."""
    stack: list[int] = []
    mem = 0
    pc = 0
    while True:
        if pc >= len(code):
            out.append(Event("op", pc, 0, gas, 0, tuple(stack), depth, mem, stop=True))
            return gas, True
        op = code[pc]
        cost = _COST.get(op, 0)
        if op == 0xF4:
            cost = 100
        event = Event("op", pc, op, gas, cost, tuple(stack), depth, mem)
        out.append(event)
        nxt = pc + 1
        if 0x60 <= op <= 0x7F:
            size = op - 0x5F
            stack.append(int.from_bytes(code[pc + 1: pc + 1 + size], "big"))
            nxt = pc + 1 + size
        elif op == 0x5B:
            pass
        elif op == 0x80 or op == 0x84:
            stack.append(stack[-1 - (op - 0x80)])
        elif op == 0x90:
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif op in (0x01, 0x03, 0x06):
            a, b = stack.pop(), stack.pop()
            stack.append((a + b) % (1 << 256) if op == 0x01 else
                         (a - b) % (1 << 256) if op == 0x03 else (a % b if b else 0))
        elif op == 0x15:
            stack.append(int(stack.pop() == 0))
        elif op == 0x50:
            stack.pop()
        elif op == 0x5A:
            stack.append(gas - cost)
        elif op == 0x52:
            offset = stack.pop()
            stack.pop()
            words = (offset + 32 + 31) // 32
            cost += 3 * (words - mem // 32)
            event.cost = cost
            mem = max(mem, words * 32)
        elif op == 0x57:
            dest, cond = stack.pop(), stack.pop()
            if cond:
                nxt = dest
        elif op == 0x3E:  # RETURNDATACOPY out of the (empty) return data: a fault
            event.fault = True
            stack.pop(), stack.pop(), stack.pop()
            event.popped = tuple(stack)
            out.append(Event("exit", used=gas, depth=depth, fault=True))
            return 0, False
        elif op == 0xF4:
            want, address = stack.pop(), stack.pop()
            for _ in range(4):
                stack.pop()
            rest = gas - cost
            forwarded = min(want, rest - rest // 64)
            event.cost = cost + forwarded
            left, ok = _run(CALLEE[address], forwarded, depth + 1, out)
            if ok:
                out.append(Event("exit", used=forwarded - left, depth=depth + 1))
            gas = gas - cost - forwarded + left
            stack.append(int(ok))
            pc = nxt
            continue
        gas -= cost
        pc = nxt


class Shape:
    """One client's op line shape, learned from its real trace (see the docstring)."""

    def __init__(self, client: str) -> None:
        lines = (REFDATA / client / "negative_refund.jsonl").read_bytes().splitlines(
            keepends=True)
        ops = [i for i, line in enumerate(lines) if line.startswith(b'{"pc"')]
        first = json.loads(lines[ops[0]])
        self.order = list(first)
        self.hex = {key for key, value in first.items() if isinstance(value, str)
                    and value.startswith("0x") and key not in ("memory", "returnData")}
        self.constant = {key: json.dumps(value, separators=(",", ":"))
                         for key, value in first.items()
                         if key in ("memory", "returnData", "reservoir", "stateGas")}
        self.tail = b"".join(lines[ops[-1] + 1:])
        self.quirks = QUIRKS[client]

    def line(self, event: Event, *, stack: tuple[int, ...] | None = None,
             error: str | None = None, cost: int | None = None) -> bytes:
        quirks = self.quirks
        values = {
            "pc": event.pc, "op": event.op, "gas": event.gas,
            "gasCost": event.cost if cost is None else cost, "memSize": event.mem,
            "depth": event.depth, "refund": 0,
        }
        parts = []
        for key in self.order:
            if key == "stack":
                words = event.stack if stack is None else stack
                parts.append('"stack":[' + ",".join(f'"0x{w:x}"' for w in words) + "]")
            elif key == "opName":
                parts.append(f'"opName":"{_NAMES[event.op]}"')
            elif key in self.constant:
                parts.append(f'"{key}":{self.constant[key]}')
            elif key in values:
                value = values[key]
                parts.append(f'"{key}":"0x{value:x}"' if key in self.hex else f'"{key}":{value}')
        if event.stop and quirks.stop_error:
            error = quirks.stop_error
        if error is not None:
            parts.append(f'"error":"{error}"')
        return ("{" + ",".join(parts) + "}\n").encode()


def make(client: str, path: Path, iterations: int, hunks: int = 0) -> tuple[int, int]:
    """Write ``client``'s trace of the loop to ``path`` (see the docstring);
    ``(lines, steps)``."""
    shape = Shape(client)
    quirks = shape.quirks
    events: list[Event] = []
    _run(caller_code(iterations), 0x7FFFFFFFFFFF, 1, events)
    every = 0
    if hunks:
        every = max(1, sum(1 for e in events if e.kind == "op" and not e.stop) // hunks)
    lines = steps = 0
    pending_change = False
    with path.open("wb", buffering=1 << 20) as out:
        for event in events:
            if event.kind == "exit":
                if quirks.frame_exit:
                    error = f',"error":"{quirks.fault_error}"' if event.fault else ""
                    out.write(b'{"output":"","gasUsed":"0x%x"%s}\n' % (event.used,
                                                                        error.encode()))
                    lines += 1
                continue
            if event.stop and not quirks.stop_line:
                continue
            if not event.stop:
                steps += 1
                if every and steps % every == every // 2:
                    pending_change = True
            stack = None
            if pending_change and event.depth == 1 and event.stack and not event.stop:
                stack = (*event.stack[:-1], event.stack[-1] + 1)
                pending_change = False
            if event.fault:
                cost = quirks.fault_cost
                if quirks.fault_duplicate:
                    out.write(shape.line(event, stack=stack, cost=cost))
                    dup = event.popped if quirks.fault_duplicate == "popped" else None
                    out.write(shape.line(event, stack=dup, error=quirks.fault_error, cost=cost))
                    lines += 2
                else:
                    out.write(shape.line(event, stack=stack, error=quirks.fault_error,
                                         cost=cost))
                    lines += 1
                continue
            cost = 100 if event.op == 0xF4 and quirks.static_call_cost else None
            out.write(shape.line(event, stack=stack, cost=cost))
            lines += 1
        out.write(shape.tail)
        lines += shape.tail.count(b"\n")
    return lines, steps


ALL_FIELDS = ("pc,op,gas,gasCost,memSize,stack,depth,refund,opName,error,returnData,line,code,"
              "function,file,thread,locals,globals,event")


def variant(source: Path, out: Path, how: str) -> None:
    """``source`` compressed (``gz``, ``zst``), with its stacks cut to the top 2 words
    (``top2``), or spaced (``spaced``), written to ``out``."""
    data = source.read_bytes()
    if how == "gz":
        out.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
    elif how == "zst":
        import zstandard

        out.write_bytes(zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data))
    else:
        with out.open("wb", buffering=1 << 20) as handle:
            for line in data.splitlines(keepends=True):
                if not line.startswith(b"{"):
                    handle.write(line)
                    continue
                obj = json.loads(line)
                if how == "top2" and isinstance(obj.get("stack"), list):
                    obj["stack"] = obj["stack"][-2:]
                text = (json.dumps(obj) if how == "spaced"
                        else json.dumps(obj, separators=(",", ":")))
                handle.write(text.encode() + b"\n")


def _child(argv: list[str], env: dict[str, str], out: Path) -> tuple[float, float, bytes]:
    """CPU seconds (user + system), peak RSS (MB) and output of a child running ``argv``."""
    with out.open("wb") as handle:
        # (in the traces' directory: ``python -m`` puts the current directory first on
        # the path, before PYTHONPATH, and this tree's checkout must not shadow --base)
        child = subprocess.Popen(argv, env=env, stdout=handle, cwd=out.parent)
        _, _, usage = os.wait4(child.pid, 0)
        child.returncode = 0
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read_bytes()


def _count(path: Path) -> int:
    """The lines of a trace, plain or compressed (as the diff reads it)."""
    from blocktrace.eip3155.reader import open_trace

    with open_trace(str(path)) as stream:
        return sum(piece.count(b"\n") for piece in iter(lambda: stream.read(1 << 22), b""))


def _lines(path: Path) -> int:
    """``_count`` in a child: decompressing here would raise this process's peak RSS,
    which every child it starts reports as its own (``ru_maxrss`` survives ``exec``)."""
    out = subprocess.run([sys.executable, __file__, "--count", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return int(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=60000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base", help="a checkout of the tree before (C built)")
    parser.add_argument("--tmp", help="where the traces go (kept; default a temp dir)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rows", default="", help="row labels to run, separated by ;")
    parser.add_argument("--make", nargs=4, metavar=("CLIENT", "PATH", "ITERATIONS", "HUNKS"),
                        help="only write one trace")
    parser.add_argument("--variant", nargs=3, metavar=("SOURCE", "PATH", "HOW"),
                        help="only write one variant of a trace (gz, zst, top2, spaced)")
    parser.add_argument("--count", metavar="TRACE", help="only print a trace's line count")
    args = parser.parse_args()
    if args.count:
        print(_count(Path(args.count)))
        return
    if args.make:
        client, path, iterations, hunks = args.make
        make(client, Path(path), int(iterations), int(hunks))
        return
    if args.variant:
        source, path, how = args.variant
        variant(Path(source), Path(path), how)
        return
    where = Path(args.tmp or tempfile.mkdtemp(prefix="bench-diff-clients-"))
    where.mkdir(parents=True, exist_ok=True)
    made: dict[str, tuple[Path, int]] = {}

    def trace(client: str, hunks: int = 0) -> Path:
        name = f"{client}-{hunks}" if hunks else client
        if name not in made:
            path = where / f"{name}-{args.iterations}.jsonl"
            if path.exists():  # (made by an earlier run: the same bytes)
                made[name] = path, 0
                return path
            # made by a child: this process stays small (a child's peak RSS starts at it)
            subprocess.run([sys.executable, __file__, "--make", client, str(path),
                            str(args.iterations), str(hunks)], check=True)
            made[name] = path, 0
        return made[name][0]

    def varied(path: Path, how: str) -> Path:
        suffix = {"gz": ".jsonl.gz", "zst": ".jsonl.zst"}.get(how, f"-{how}.jsonl")
        out = path.with_name(path.name.removesuffix(".jsonl") + suffix)
        if not out.exists():
            subprocess.run([sys.executable, __file__, "--variant", str(path), str(out), how],
                           check=True)
        return out

    rows: list[tuple[str, Path, Path, tuple[str, ...]]] = []
    for client in ("geth", "revm"):
        rows.append((f"{client} x {client} (identical)", trace(client), trace(client), ()))
        for hunks in (10, 100, 1000):
            rows.append((f"{client} x {client}, ~{hunks} divergences", trace(client),
                         trace(client, hunks), ()))
    for a, b in (("geth", "evmone"), ("besu", "revm"), ("nethermind", "nimbus"),
                 ("eels", "erigon")):
        rows.append((f"{a} x {b}", trace(a), trace(b), ()))
    for kind in ("gz", "zst"):
        rows.append((f"geth x geth, ~100 divergences, .{kind}", varied(trace("geth"), kind),
                     varied(trace("geth", 100), kind), ()))
        rows.append((f"geth x evmone, .{kind}", varied(trace("geth"), kind),
                     varied(trace("evmone"), kind), ()))
        rows.append((f"besu x revm, .{kind}", varied(trace("besu"), kind),
                     varied(trace("revm"), kind), ()))
    rows.append(("geth x geth, ~100 divergences, --fields (all 19)", trace("geth"),
                 trace("geth", 100), ("--fields", ALL_FIELDS)))
    rows.append(("revm x revm, ~100 divergences, --fields (all 19)", trace("revm"),
                 trace("revm", 100), ("--fields", ALL_FIELDS)))
    rows.append(("geth x evmone, --ignore stack,gas", trace("geth"), trace("evmone"),
                 ("--ignore", "stack,gas")))
    rows.append(("geth x geth, ~100 divergences, --stack-top 2", trace("geth"),
                 trace("geth", 100), ("--stack-top", "2")))
    rows.append(("geth x geth's top 2 stack words, --stack-top 2", trace("geth"),
                 varied(trace("geth"), "top2"), ("--stack-top", "2")))
    rows.append(("geth x geth spaced (json.dumps)", trace("geth"), varied(trace("geth"), "spaced"),
                 ()))
    if args.rows:
        wanted = set(args.rows.split(";"))
        rows = [row for row in rows if row[0] in wanted]
    trees = {"now": dict(os.environ)}
    if args.base:
        trees["base"] = dict(os.environ, PYTHONPATH=args.base)
    print(f"Python {sys.version.split()[0]}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, best of {args.repeat}, "
          f"CPU time of `blocktrace diff A B` (user + system), {args.iterations} iterations")
    for label, a, b, options in rows:
        count = _lines(a)
        cpu = {tree: float("inf") for tree in trees}
        rss = dict.fromkeys(trees, 0.0)
        outputs: dict[str, set[bytes]] = {tree: set() for tree in trees}
        for _ in range(args.repeat):
            for tree, env in trees.items():
                for as_json in ((), ("--json",)):
                    argv = [sys.executable, "-m", "blocktrace", "diff", *as_json, *options,
                            a.name, b.name]
                    seconds, peak, out = _child(argv, env, where / "out.bin")
                    outputs[tree].add(out)
                    if not as_json:
                        cpu[tree] = min(cpu[tree], seconds)
                        rss[tree] = max(rss[tree], peak)
        print(f"{label}: {count:,} lines in A, {_lines(b):,} in B")
        for tree in trees:
            print(f"  {tree:>4}: {cpu[tree]:.2f} s = {count / cpu[tree]:,.0f} lines/s per "
                  f"input, peak RSS {rss[tree]:.0f} MB")
        if args.base:
            same = outputs["now"] == outputs["base"] and len(outputs["now"]) == 2
            print(f"  output (text and --json) {'identical' if same else 'DIFFERENT'} to base")
    if args.profile:
        import cProfile
        import pstats

        from blocktrace.eip3155 import diff_files

        profile = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
        profile.runcall(diff_files, str(trace("geth")), str(trace("evmone")))
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
