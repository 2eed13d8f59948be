"""The reading commands as a user runs them, two source trees side by side (issue 18
items 3 and 4): before/after figures for a change to the readers.

    python benchmarks/bench_readers_ab.py --tree before=/tmp/base --tree after=. \\
        --trace big.jsonl [--rounds 3] [--picks 5]

The commands run in an empty temporary directory (``python -m`` puts the working
directory first on ``sys.path``: run from inside a checkout, every tree ran that
checkout's code).  Each ``--tree NAME=PATH`` is a checkout with its C extensions built for this
Python (``setup.py build_ext --inplace``); its commands run as
``python -m blocktrace`` with ``PYTHONPATH=PATH``, so one interpreter and one
trace serve both.  ``--trace`` is a plain ``.jsonl`` blocktrace trace
(``blocktrace run -o big.jsonl examples/fib.py 27`` gives 13.4 M lines,
2.5 GB); ``diff`` compares it with a copy made in ``--tmp`` (deleted after).
The trees alternate within each round, in the order given, then reversed the
next round.  Measured per command, of the whole child process (start, imports,
the work, output): CPU time (user + sys, ``wait4``) and wall time.  (Not the
peak RSS: Linux keeps ``ru_maxrss`` across ``exec``, so a child would report
this script's own; measure memory with ``/usr/bin/time -f %M``.)

- ``verify TRACE`` (it also writes the index beside the trace): lines per CPU
  second;
- ``diff TRACE COPY``: lines per CPU second per input;
- with ``--export``, ``export --to perfetto`` and ``--to speedscope`` of the trace to
  ``/dev/null`` (what verify says of it read from the index verify kept): lines per CPU
  second;
- ``show`` with no arguments (a usage error, exit 2): the process's start, imports
  and argument parsing alone, for the rows below;
- ``show TRACE STEP``, ``show --line TRACE LINE`` and ``prove TRACE LINE`` of
  ``--picks`` random places (the same for every tree), the index in place:
  milliseconds each, of the whole process and in-process (a second
  ``Command(argv)`` in one process, the first having imported what it needs:
  the command's own work, what issue 18 item 4's 100 ms is about).

Compile both trees first (``python -m compileall -q TREE/blocktrace``): with
``PYTHONDONTWRITEBYTECODE`` set, every start compiles every module it imports.

Every tree's exit status and standard output must be the same for each command
(the script stops otherwise).  Best CPU over the rounds is reported for
verify and diff, the median for the one-line commands (max beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n


def run(python: str, tree: Path, argv: list[str], cache: Path, where: Path) -> tuple[
        float, float, int, bytes]:
    """CPU seconds, wall seconds, exit status and stdout of one command, run in
    ``where`` (an empty directory: ``python -m`` puts the working directory first
    on ``sys.path``, so run from inside a checkout every tree would run that
    checkout's code)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "XDG_CACHE_HOME": str(cache)}
    env.pop("BLOCKTRACE_PURE", None)
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen([python, "-m", "blocktrace", *argv], stdout=out,
                                stderr=subprocess.DEVNULL, env=env, cwd=where)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return usage.ru_utime + usage.ru_stime, wall, proc.returncode, out.read()


_IN_PROCESS = """
import os, sys, time
from blocktrace.cli import Command
Command(sys.argv[2:])  # the imports, and the page cache
cpu, wall = time.thread_time(), time.perf_counter()
status = Command(sys.argv[2:]).status
cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
sys.stdout.flush()
with open(sys.argv[1], "w") as out:
    out.write(f"{cpu} {wall} {status}")
"""


def in_process(python: str, tree: Path, argv: list[str], cache: Path,
               where: Path) -> tuple[float, float]:
    """CPU and wall seconds of a second ``Command(argv)`` in one process: the
    command's own work, its modules imported by the first."""
    env = {**os.environ, "PYTHONPATH": str(tree), "XDG_CACHE_HOME": str(cache)}
    env.pop("BLOCKTRACE_PURE", None)
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as said:
        subprocess.run([python, "-c", _IN_PROCESS, said.name, *argv], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=where)
        cpu, wall, _ = said.read().split()
    return float(cpu), float(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--trace", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--picks", type=int, default=5)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--tmp", help="where the copy for diff goes (deleted after)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--export", action="store_true",
                        help="also export --to perfetto and speedscope (to /dev/null), the "
                        "index kept: lines per CPU second")
    args = parser.parse_args()
    trees = []
    for spec in args.tree:
        name, _, path = spec.partition("=")
        trees.append((name, Path(path).resolve()))
    trace: Path = args.trace.resolve()
    lines = count_lines(trace)
    tmp = Path(tempfile.mkdtemp(prefix="bench-readers-", dir=args.tmp))
    copy = tmp / ("copy-" + trace.name)
    shutil.copyfile(trace, copy)
    caches = {name: tmp / f"cache-{name}" for name, _ in trees}
    where = tmp / "cwd"  # the children's working directory: no checkout's code in it
    where.mkdir()
    try:
        # the index, and the number of steps (verify --json's ``steps``, since session
        # 14: from the first tree that says it)
        steps = 0
        for name, tree in trees[::-1]:
            said = json.loads(run(args.python, tree, ["verify", "--json", str(trace)],
                                  caches[name], where)[3])
            steps = steps or int(said.get("steps", 0))
        if not steps:
            raise SystemExit("no tree's verify --json says the trace's steps")
        rng = random.Random(args.seed)
        picks = [(rng.randrange(steps), rng.randrange(2, lines)) for _ in range(args.picks)]
        commands: list[tuple[str, list[str]]] = [
            ("start (show, no args)", ["show"]),
            ("verify", ["verify", str(trace)]),
            ("diff", ["diff", str(trace), str(copy)]),
        ]
        exports = ("export perfetto", "export speedscope") if args.export else ()
        commands += [(label, ["export", "--to", label.split()[1], "/dev/null", str(trace)])
                     for label in exports]
        for step, line in picks:
            commands += [("show", ["show", str(trace), str(step)]),
                         ("show --line", ["show", "--line", str(trace), str(line)]),
                         ("prove", ["prove", str(trace), str(line)])]
        cpu: dict[tuple[str, str], list[float]] = {}
        wall: dict[tuple[str, str], list[float]] = {}
        print(f"{trace.name}: {lines:,} lines, {steps:,} steps, {trace.stat().st_size:,} bytes;"
              f" {args.rounds} rounds, trees {', '.join(n for n, _ in trees)}; load "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        for r in range(args.rounds):
            order = trees if r % 2 == 0 else trees[::-1]
            for label, argv in commands:
                answers = {}
                for name, tree in order:
                    c, w, code, out = run(args.python, tree, argv, caches[name], where)
                    answers[name] = (code, out)
                    cpu.setdefault((name, label), []).append(c)
                    wall.setdefault((name, label), []).append(w)
                if label in ("show", "show --line", "prove"):
                    for name, tree in order:
                        c, w = in_process(args.python, tree, argv, caches[name], where)
                        cpu.setdefault((name, label + ", in-process"), []).append(c)
                        wall.setdefault((name, label + ", in-process"), []).append(w)
                if len({a for a in answers.values()}) != 1:
                    raise SystemExit(f"{' '.join(argv)}: the trees answer differently: "
                                     + "; ".join(f"{n}: exit {a[0]}, {len(a[1])} bytes"
                                                 for n, a in answers.items()))
            print(f"round {r + 1} done, load {os.getloadavg()[0]:.1f}", flush=True)
        print()
        print("| command | " + " | ".join(n for n, _ in trees) + " |")
        print("|---|" + "---|" * len(trees))
        for label, per in (("verify", lines), ("diff", lines), *((e, lines) for e in exports)):
            cells = []
            for name, _ in trees:
                best = min(cpu[(name, label)])
                cells.append(f"{best:.2f} s CPU = {per / best / 1e6:.2f} M lines/s "
                             f"(rounds {', '.join(f'{c:.2f}' for c in cpu[(name, label)])}; "
                             f"wall best {min(wall[(name, label)]):.2f} s)")
            print(f"| {label} | " + " | ".join(cells) + " |")
        for label in ("start (show, no args)", "show", "show --line", "prove",
                      "show, in-process", "show --line, in-process", "prove, in-process"):
            cells = []
            for name, _ in trees:
                ws = [w * 1000 for w in wall[(name, label)]]
                cs = [c * 1000 for c in cpu[(name, label)]]
                cells.append(f"wall median {statistics.median(ws):.0f} ms (max {max(ws):.0f}), "
                             f"CPU median {statistics.median(cs):.0f} ms")
            print(f"| {label} | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
