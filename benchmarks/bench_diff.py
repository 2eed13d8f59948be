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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--test", default="negative_refund")
    parser.add_argument("--clients", default="geth,revm")
    parser.add_argument("--fib", type=int, metavar="N",
                        help="only diff two recordings of examples/fib.py N (issue 18 item 3)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", help="where the --fib traces go (deleted after)")
    args = parser.parse_args()
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
