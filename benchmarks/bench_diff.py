"""Speed and memory of ``blocktrace diff`` on two long real-client traces.

Builds, in a temporary directory, two traces of ``--lines`` lines each by
repeating the real op lines of one state test as written by two different
clients (geth and revm by default: different dialects, same normalised steps),
perturbing a few steps of the second so the differ also has hunks to find.
Reports lines per second per input (reading + normalising alone, and the whole
diff; CPU time, best of three runs, because the machine is shared; the wall
time of the diff is printed beside it) and the peak resident memory of a child
process that runs the diff, for the full length and for a tenth of it (memory
must not grow with length).

    /tmp/v13/bin/python benchmarks/bench_diff.py [--lines 400000]
    python benchmarks/bench_diff.py --fib 22 [--repeat 3] [--tmp /tmp/diff-x]

``--fib N`` instead diffs two real recordings of ``examples/fib.py N`` (blocktrace
traces of ~1.2 M lines for N = 22), with and without the byte-level pass over the
steps both have in common (``blocktrace.eip3155.skip``), interleaved.

``--hunks 10,100,1000`` instead diffs real recordings of a program and of the same
program with one character changed (a branch taken at other iterations: that many
hunks), ``--lines`` lines each (default here 2.4 M), plain and ``.jsonl.zst``, and a
``--locals on`` pair whose values differ at every line start; it reports the CPU
time of ``blocktrace diff A B`` as a whole process (and its peak RSS) and of
``diff_files`` in-process, per input.  ``--base DIR`` runs the same commands with
``PYTHONPATH=DIR`` (a checkout of the tree before, its C extensions built),
alternated with this tree's, and checks that both print the same bytes (text and
``--json``)::

    python benchmarks/bench_diff.py --hunks 10,100,1000 --base /tmp/differ-base \
        --tmp /tmp/diff-bench --repeat 3

``--only by-line,line trace`` keeps only the pairs whose label holds one of those
texts.  ``--inserts 10,100,1000`` does the same with a statement added to a function the loop
calls every so many iterations (steps inserted: hunks of unequal sides), a statement
added to the loop body (a hunk at every iteration, a few steps apart; plain, zstd and
``--by-line``), an op-level trace against a line-level one of the same program, and
a call-level trace against an op-level and a line-level one (``--only "call trace"``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

REFDATA = Path(__file__).resolve().parent.parent.parent / "shared" / "refdata" / "eip3155"

_CHILD = """
import sys
from blocktrace.eip3155 import diff_files
report = diff_files(sys.argv[1], sys.argv[2])
print(report.steps.hunk_count, report.steps.steps_a, report.steps.steps_b)
"""


def _op_lines(client: str, test: str) -> list[bytes]:
    lines = (REFDATA / client / f"{test}.jsonl").read_bytes().splitlines(keepends=True)
    return [line for line in lines if line.startswith(b'{"pc"')]


def build(path: Path, lines: list[bytes], total: int, perturb_every: int = 0) -> int:
    written = 0
    with path.open("wb") as out:
        while written < total:
            for line in lines:
                if written >= total:
                    break
                if perturb_every and written % perturb_every == perturb_every // 2:
                    line = line.replace(b'"pc":', b'"pc":9', 1)
                out.write(line)
                written += 1
    return written


def _best[T](work: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """Fewest CPU seconds of ``repeat`` runs (the machine is shared: CPU time, not wall
    time, and the best run, are what the code costs), and the result."""
    best = float("inf")
    result: T
    for _ in range(repeat):
        start = time.process_time()
        result = work()
        best = min(best, time.process_time() - start)
    return best, result


def _count_steps(normalise: Callable[[str], Iterator[object]], path: Path) -> int:
    return sum(1 for _ in normalise(str(path)))


def _rate(lines: int, seconds: float) -> str:
    return f"{lines / seconds:,.0f} lines/s"


def _child_peak_rss_mb(a: Path, b: Path) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", _CHILD, str(a), str(b)],
                          capture_output=True, text=True, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far (KiB on Linux).
    return max(peak, before) / 1024, done.stdout.strip()


def _cpu_of_child(argv: list[str], env: dict[str, str] | None = None) -> float:
    """CPU seconds (user + system) of a child process running ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fib_traces(n: int, where: Path, repeat: int) -> None:
    """Issue 18 item 3: ``blocktrace diff`` of two real recordings of ``examples/fib.py n``
    (the same behaviour; and one whose module code differs by a statement near the
    start, so the rest differs in gas), with the byte-level pass over the common steps
    and without it (the reference path), interleaved; CPU time, best of ``repeat``."""
    from blocktrace.eip3155 import diff_files, skip

    fib = Path(__file__).resolve().parent.parent / "examples" / "fib.py"
    changed = where / "fib_changed.py"
    changed.write_text(fib.read_text().replace("import sys\n", "import sys; _ = 0\n", 1))
    traces = {}
    for name, program in (("a", fib), ("b", fib), ("c", changed)):
        traces[name] = where / f"{name}.jsonl"
        subprocess.run([sys.executable, "-m", "blocktrace", "run", "--force", "-o",
                        str(traces[name]), str(program), str(n)], check=True,
                       stdout=subprocess.DEVNULL)
    count = sum(1 for _ in traces["a"].open("rb"))
    print(f"examples/fib.py {n}: {count:,} lines per trace "
          f"({traces['a'].stat().st_size / 1e6:.0f} MB), Python {sys.version.split()[0]}, "
          f"C pass {'built' if skip._c is not None else 'NOT built'}")
    native = skip._c
    for label, other in (("same behaviour", "b"), ("one statement added near the start", "c")):
        best = {"pass": float("inf"), "reference": float("inf")}
        report = None
        for _ in range(repeat):
            for mode in best:
                skip._c = native if mode == "pass" else None
                start = time.process_time()
                report = diff_files(str(traces["a"]), str(traces[other]))
                best[mode] = min(best[mode], time.process_time() - start)
        skip._c = native
        assert report is not None
        print(f"  {label} ({report.steps.hunk_count} hunk(s), {report.steps.common:,} common "
              f"steps): with the pass {_rate(count, best['pass'])} per input "
              f"({best['pass']:.2f} s), reference {_rate(count, best['reference'])} "
              f"({best['reference']:.2f} s): {best['reference'] / best['pass']:.1f}x")
    cli = [sys.executable, "-m", "blocktrace", "diff", str(traces["a"]), str(traces["b"])]
    pure = dict(os.environ, BLOCKTRACE_PURE="1")
    seconds = {"C": float("inf"), "pure": float("inf")}
    for _ in range(repeat):
        seconds["C"] = min(seconds["C"], _cpu_of_child(cli))
        seconds["pure"] = min(seconds["pure"], _cpu_of_child(cli, pure))
    print(f"  `blocktrace diff A B` (whole process, CPU): {seconds['C']:.2f} s = "
          f"{_rate(count, seconds['C'])} per input; BLOCKTRACE_PURE=1 {seconds['pure']:.2f} s = "
          f"{_rate(count, seconds['pure'])}")


_CHANGED = """
import sys


def work(i, m):
    if i % m == 5:
        return i * 2 + 1
    return i + 1


def main(n, m):
    total = 0
    for i in range(n):
        total += work(i, m)
    return total


print(main(int(sys.argv[1]), int(sys.argv[2])))
"""
_LINES_PER_ITERATION = 20
"""About how many trace lines one iteration of ``_CHANGED``'s loop writes."""


def _record(where: Path, program: str, out: Path, args: list[str], *options: str) -> None:
    """``blocktrace run`` of ``program`` saved as ``prog.py`` in its own directory
    (both versions of a pair then name the same file, as a changed checkout does)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "prog.py").write_text(program, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "blocktrace", "run", "--force", *options, "-o",
                    str(out), "prog.py", *args], cwd=where, check=True,
                   stdout=subprocess.DEVNULL)


def _pairs(where: Path, lines: int, hunks: list[int]
           ) -> list[tuple[str, Path, Path, tuple[str, ...]]]:
    """(label, A, B): for each hunk count a program and the program with ``== 5``
    made ``== 6`` (the branch runs one iteration later: two hunks each time it
    runs, every ``m`` iterations), plain and zstd, by step and ``--by-line``; and a
    ``--locals on`` pair with
    inputs 1 and 2 (the values differ at every line start)."""
    iterations = max(1, lines // _LINES_PER_ITERATION)
    changed = _CHANGED.replace("i % m == 5", "i % m == 6")
    pairs: list[tuple[str, Path, Path, tuple[str, ...]]] = []
    for count in hunks:
        m = max(7, 2 * iterations // max(1, count))
        args = [str(iterations), str(m)]
        for suffix in (".jsonl", ".jsonl.zst"):
            a, b = where / f"a{count}{suffix}", where / f"b{count}{suffix}"
            _record(where / "A", _CHANGED, a, args)
            _record(where / "B", changed, b, args)
            pairs.append((f"~{count} hunks, {suffix[1:]}", a, b, ()))
            pairs.append((f"~{count} hunks, {suffix[1:]}, --by-line", a, b, ("--by-line",)))
    for suffix in (".jsonl", ".jsonl.zst"):
        a, b = where / f"la{suffix}", where / f"lb{suffix}"
        loops = max(1, lines // 40)
        _record(where / "A", _CHANGED, a, [str(loops), "1000000000"], "--locals", "on")
        _record(where / "B", _CHANGED, b, [str(loops), "999999999"], "--locals", "on")
        pairs.append((f"--locals on, values differ everywhere, {suffix[1:]}", a, b, ()))
    return pairs


def _child(argv: list[str], env: dict[str, str], out: Path) -> tuple[float, float, bytes]:
    """CPU seconds (user + system) and peak RSS (MB) of a child running ``argv``, and
    what it printed (to ``out``: a file, so that the child's output costs it no pipe)."""
    with out.open("wb") as handle:
        # (run from the traces' directory: ``python -m`` puts its working directory
        # first on the path, before PYTHONPATH, so a checkout there would be the one run)
        child = subprocess.Popen(argv, env=env, stdout=handle, cwd=out.parent)
        _, _, usage = os.wait4(child.pid, 0)
        child.returncode = 0  # (reaped here)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read_bytes()


_INSERTED = """
import sys


def extra(i):
    return i * 2 + 1


def work(i, m):
    if i % m == 5:
        return extra(i)
    return i + 1


def main(n, m):
    total = 0
    for i in range(n):
        total += work(i, m)
    return total


print(main(int(sys.argv[1]), int(sys.argv[2])))
"""
_EXTRA = "    return i * 2 + 1\n"
_EXTRA_MORE = "    j = i * 2; j += 1; return j\n"
"""``extra``'s body with a statement added (steps inserted, its pcs shifted; on one
line, so that the lines of the functions after it stay where they were)."""
_LOOP = "        total += work(i, m)\n"
_LOOP_MORE = "        total += work(i, m); total -= 1\n"
"""A statement added to the loop body itself: every iteration parts and re-aligns."""
_LOOP_OWN_LINE = "        total += work(i, m)\n        total -= extra(0)\n"
"""A call added to the loop body on a line of its own (every iteration parts and
re-aligns by source line too; only the lines after it in ``main`` move)."""


def _insert_pairs(where: Path, lines: int, hunks: list[int]
                  ) -> list[tuple[str, Path, Path, tuple[str, ...]]]:
    """(label, A, B, options): for each hunk count a program and the same program with
    a statement added to a function the loop calls every ``m`` iterations (steps
    inserted, the rest of that call's steps at other pcs: a hunk each time it runs),
    plain and zstd; a pair whose loop body itself gained a statement (a hunk at every
    iteration, a few steps apart), plain and zstd; that pair ``--by-line``; a pair whose
    loop body gained a call on a line of its own, ``--by-line`` and as an op trace against
    a line trace (a difference every ~5 lines there), plain and zstd; and for each
    hunk count the first pair's op trace against a line trace of the changed program
    (different levels), plain and zstd; and call traces of each program against the
    other's op and line traces, plain and zstd."""
    iterations = max(1, lines // _LINES_PER_ITERATION)
    more = _INSERTED.replace(_EXTRA, _EXTRA_MORE)
    pairs: list[tuple[str, Path, Path, tuple[str, ...]]] = []
    for count in hunks:
        m = max(7, iterations // max(1, count))
        args = [str(iterations), str(m)]
        for suffix in (".jsonl", ".jsonl.zst"):
            a, b = where / f"ia{count}{suffix}", where / f"ib{count}{suffix}"
            _record(where / "A", _INSERTED, a, args)
            _record(where / "B", more, b, args)
            pairs.append((f"~{count} hunks, steps inserted, {suffix[1:]}", a, b, ()))
    every = _INSERTED.replace(_LOOP, _LOOP_MORE)
    args = [str(iterations * 4 // 5), "1000000000"]  # (the loop body grows by a fifth)
    for suffix in (".jsonl", ".jsonl.zst"):
        a, b = where / f"ea{suffix}", where / f"eb{suffix}"
        _record(where / "A", _INSERTED, a, args)
        _record(where / "B", every, b, args)
        pairs.append((f"statement added to the loop body (a hunk every iteration), "
                      f"{suffix[1:]}", a, b, ()))
        if suffix == ".jsonl":
            pairs.append(("the same, --by-line", a, b, ("--by-line",)))
    # A call added to the loop body on a line of its own: every iteration parts and
    # re-aligns at --by-line and at level line (an extra line every ~5 lines)
    own = _INSERTED.replace(_LOOP, _LOOP_OWN_LINE)
    for suffix in (".jsonl", ".jsonl.zst"):
        a, b = where / f"oa{suffix}", where / f"ob{suffix}"
        line_b = where / f"ob-line{suffix}"
        _record(where / "A", _INSERTED, a, args)
        _record(where / "B", own, b, args)
        _record(where / "B", own, line_b, args, "--level", "line")
        what = "a call on a line of its own added to the loop body (a hunk every iteration)"
        pairs.append((f"{what}, --by-line, {suffix[1:]}", a, b, ("--by-line",)))
        pairs.append((f"{what}, op trace against a line trace, {suffix[1:]}", a, line_b, ()))
    for count in hunks:
        for suffix in (".jsonl", ".jsonl.zst"):
            a, b = where / f"ia{count}{suffix}", where / f"ib-line{count}{suffix}"
            m = max(7, iterations // max(1, count))
            _record(where / "B", more, b, [str(iterations), str(m)], "--level", "line")
            pairs.append((f"~{count} hunks, op trace against a line trace, {suffix[1:]}",
                          a, b, ()))
    for count in hunks:  # (a return from ``extra`` at another pc: a hunk each time it runs)
        for suffix in (".jsonl", ".jsonl.zst"):
            m = max(7, iterations // max(1, count))
            call_a, call_b = where / f"ia-call{count}{suffix}", where / f"ib-call{count}{suffix}"
            _record(where / "A", _INSERTED, call_a, [str(iterations), str(m)], "--level", "call")
            _record(where / "B", more, call_b, [str(iterations), str(m)], "--level", "call")
            pairs.append((f"~{count} hunks, op trace against a call trace, {suffix[1:]}",
                          where / f"ia{count}{suffix}", call_b, ()))
            pairs.append((f"~{count} hunks, line trace against a call trace, {suffix[1:]}",
                          where / f"ib-line{count}{suffix}", call_a, ()))
    return pairs


def changed_programs(where: Path, lines: int, hunks: list[int], repeat: int,
                     base: str | None, inserts: bool = False,
                     only: list[str] | None = None) -> None:
    """Issue 18 item 3 for traces that part often and for compressed ones (see the
    module docstring)."""
    from blocktrace.eip3155 import diff_files

    pairs = (_insert_pairs if inserts else _pairs)(where, lines, hunks)
    if only is not None:
        pairs = [pair for pair in pairs if any(text in pair[0] for text in only)]
    here = dict(os.environ)
    trees = {"now": here}
    if base is not None:
        trees["base"] = dict(os.environ, PYTHONPATH=base)
    print(f"Python {sys.version.split()[0]}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, best of {repeat}, CPU time")
    for label, a, b, options in pairs:
        count = sum(1 for _ in a.open("rb")) if a.suffix == ".jsonl" else None
        if count is None:
            from blocktrace.format import TraceReader

            count = sum(1 for _ in TraceReader(str(a)).raw_lines())
        cpu = {tree: float("inf") for tree in trees}
        rss = dict.fromkeys(trees, 0.0)
        outputs: dict[str, set[bytes]] = {tree: set() for tree in trees}
        diff = [sys.executable, "-m", "blocktrace", "diff", *options]
        # The first diff of a trace also checks its chain once (the index kept beside
        # it, which `diff` notes from): timed alone, then every run finds the index.
        first, _, _ = _child([*diff, str(a), str(b)], here, where / "out.bin")
        for _ in range(repeat):
            for tree, env in trees.items():
                for json in ((), ("--json",)):
                    argv = [*diff, *json, str(a), str(b)]
                    seconds, peak, out = _child(argv, env, where / "out.bin")
                    outputs[tree].add(out)
                    if not json:
                        cpu[tree] = min(cpu[tree], seconds)
                        rss[tree] = max(rss[tree], peak)
        start = time.process_time()
        report = diff_files(str(a), str(b), by_line="--by-line" in options)
        inproc = time.process_time() - start
        print(f"{label}: {count:,} lines each, {report.steps.hunk_count} hunks, "
              f"{report.steps.differing_a:,} differing steps; the first `blocktrace diff` "
              f"(with the chain check that writes the index) {first:.2f} s")
        for tree in trees:
            print(f"  {tree:>4}: `blocktrace diff` {cpu[tree]:.2f} s = {_rate(count, cpu[tree])} "
                  f"per input, peak RSS {rss[tree]:.0f} MB")
        print(f"  now: diff_files in-process {inproc:.2f} s = {_rate(count, inproc)} per input")
        if base is not None:
            same = outputs["now"] == outputs["base"] and len(outputs["now"]) == 2
            print(f"  output (text and --json) {'identical' if same else 'DIFFERENT'} to base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--test", default="negative_refund")
    parser.add_argument("--clients", default="geth,revm")
    parser.add_argument("--fib", type=int, metavar="N",
                        help="only diff two recordings of examples/fib.py N (issue 18 item 3)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", help="where the --fib/--hunks traces go (deleted after)")
    parser.add_argument("--hunks", metavar="N,M",
                        help="only diff recordings of a program changed by one character, "
                        "with about these many hunks (and a --locals on pair)")
    parser.add_argument("--inserts", metavar="N,M",
                        help="only diff recordings of a program with a statement added, "
                        "with about these many hunks of steps inserted (and a pair that "
                        "parts at every iteration, --by-line, different levels)")
    parser.add_argument("--only", metavar="TEXT,TEXT",
                        help="--hunks/--inserts: only the pairs whose label holds one of "
                        "these (e.g. by-line,line trace); the traces are recorded all the same")
    parser.add_argument("--base", metavar="DIR",
                        help="--hunks: also run the tree at DIR (PYTHONPATH), alternated, "
                        "and compare the outputs")
    args = parser.parse_args()
    if args.hunks is not None or args.inserts is not None:
        lines = args.lines if args.lines != 400_000 else 2_400_000
        counts = args.inserts if args.inserts is not None else args.hunks
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            changed_programs(Path(tmp), lines, [int(x) for x in counts.split(",")],
                             args.repeat, args.base, inserts=args.inserts is not None,
                             only=None if args.only is None else args.only.split(","))
        return
    if args.fib is not None:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            fib_traces(args.fib, Path(tmp), args.repeat)
        return
    from blocktrace.eip3155 import diff_files, normalise

    client_a, client_b = args.clients.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.jsonl", Path(tmp) / "b.jsonl"
        small_a, small_b = Path(tmp) / "sa.jsonl", Path(tmp) / "sb.jsonl"
        build(a, _op_lines(client_a, args.test), args.lines)
        build(b, _op_lines(client_b, args.test), args.lines, perturb_every=100_000)
        build(small_a, _op_lines(client_a, args.test), args.lines // 10)
        build(small_b, _op_lines(client_b, args.test), args.lines // 10, perturb_every=10_000)
        size = (a.stat().st_size + b.stat().st_size) / 2 / 1e6
        print(f"inputs: {args.lines:,} lines each ({client_a}, {client_b}; "
              f"{size:.0f} MB each on average), Python {sys.version.split()[0]}")
        for label, path in ((client_a, a), (client_b, b)):
            seconds, steps = _best(partial(_count_steps, normalise, path))
            print(f"read+normalise {label}: {_rate(args.lines, seconds)} ({steps:,} steps)")
        wall = time.perf_counter()
        seconds, report = _best(lambda: diff_files(str(a), str(b)))
        wall = (time.perf_counter() - wall) / 3
        print(f"diff (both inputs): {_rate(args.lines, seconds)} per input, "
              f"{seconds:.2f} s CPU ({wall:.2f} s wall on average); "
              f"{report.steps.hunk_count} hunks found")
        peak_small, _ = _child_peak_rss_mb(small_a, small_b)
        peak, _ = _child_peak_rss_mb(a, b)
        print(f"peak RSS of a child diffing {args.lines // 10:,}-line traces: "
              f"{peak_small:.0f} MB; {args.lines:,}-line traces: {peak:.0f} MB")
        print(f"ratio peak RSS {args.lines:,} / {args.lines // 10:,} lines: "
              f"{peak / peak_small:.2f}")
        _blocktrace_traces(Path(tmp), args.lines)


_PROGRAM = """
def step(i, n):
    return (i * 7 + n) % 1000


def main(n):
    total = 0
    for i in range(LOOPS):
        total += step(i, n)
    return total


print(main(N))
"""


def _blocktrace_traces(tmp: Path, lines: int) -> None:
    """Two real ``blocktrace run`` traces (with locals) of about ``lines`` lines each."""
    from blocktrace.eip3155 import diff_files

    loops = max(1, lines // 17)
    paths = []
    for name, n in (("p", 1), ("q", 2)):
        where = tmp / name
        where.mkdir()
        program = _PROGRAM.replace("LOOPS", str(loops)).replace("N", str(n))
        (where / "prog.py").write_text(program, encoding="utf-8")
        subprocess.run([sys.executable, "-m", "blocktrace", "run", "--locals", "on", "-o",
                        "trace.jsonl", "prog.py"], cwd=where, check=True,
                       stdout=subprocess.DEVNULL)
        paths.append(where / "trace.jsonl")
    count = sum(1 for _ in paths[0].open("rb"))
    seconds, report = _best(lambda: diff_files(str(paths[0]), str(paths[1])))
    print(f"blocktrace traces with --locals on ({count:,} lines each; inputs 1 and 2, so "
          f"the locals differ at every line start): diff {_rate(count, seconds)} per input; "
          f"{report.steps.hunk_count} hunk(s), {report.steps.differing_a:,} differing steps")
    seconds, report = _best(lambda: diff_files(str(paths[0]), str(paths[0])))
    print(f"the same trace against itself: diff {_rate(count, seconds)} per input")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
