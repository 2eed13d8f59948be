"""Golden traces at ``ops`` level: comparing a 1-million-step test against recording it.

    python benchmarks/bench_golden.py [--steps 1000000] [--repeat 3]

In one process, for a loop of about ``--steps`` traced instructions, keeping
the best of N: recording it as the plugin does (ChainTracer at ``op`` level,
then the golden form -- volatile values replaced and the chain re-sealed); the
comparison with an identical golden (the plugin's common case: a byte
comparison); and the comparison with a golden that differs in one instruction
near the start (verify the stored golden, then the diff engine over both files,
stopping after 3 hunks -- with one hunk it reads both to the end).  Prints
seconds and the ratios to recording, as Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator

from blocktrace.eip3155 import skip
from blocktrace.golden.compare import compare_golden
from blocktrace.golden.record import Recording
from blocktrace.golden.stabilise import Normaliser
from blocktrace.tracers import Level


def work(n: int, changed: bool = False) -> int:
    total = 0
    if changed:  # the changed run executes one more line here
        total = 1
    for i in range(n):
        total += i & 7
    return total


def record(
    n: int, root: str, changed: bool = False, level: Level = "op"
) -> tuple[float, Recording]:
    rec = Recording(level=level, values=False, include=[os.path.abspath(__file__)], exclude=None,
                    rules=Normaliser(root, ["bench"]))
    start = time.perf_counter()
    rec.start()
    work(n, changed)
    rec.finish(None)
    return time.perf_counter() - start, rec


def levels(n: int, root: str, repeat: int) -> None:
    """``--levels``: recording cost at each golden level (the stepper produces only the
    level's events), against the untraced loop, interleaved, best of ``repeat``."""
    best: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        work(n)
        best["untraced"] = min(best.get("untraced", 1e9), time.perf_counter() - start)
        for level in ("op", "line", "call"):
            seconds, rec = record(n, root, level=level)
            best[level] = min(best.get(level, 1e9), seconds)
            sizes[level] = os.path.getsize(rec.path)
            rec.cleanup()
    print(f"Python {platform.python_version()}, a loop of about {n * 7:,} instructions, "
          f"best of {repeat}, interleaved\n")
    print("| golden level | seconds | x untraced | x ops level | golden bytes |")
    print("|---|---|---|---|---|")
    for level, name in (("op", "ops"), ("line", "lines"), ("call", "calls")):
        print(f"| {name} | {best[level]:.3f} | {best[level] / best['untraced']:.1f}x "
              f"| {best[level] / best['op']:.2f}x | {sizes[level]:,} |")


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def golden_form(repeat: int) -> None:
    """``--golden-form``: the golden form (``stabilise``) of a calls-level trace of a
    recursive ``fib(24)`` (300k call and return lines, each call line naming its file),
    with rewritten line bodies reused and without (``_SEEN_BODIES = 0``), and with the
    line loop in Python (``_py_scan``) instead of C, against recording it,
    interleaved, best of ``repeat``; CPU time of this process (a loaded machine
    inflates wall time)."""
    import io
    import sys

    import blocktrace
    import blocktrace.golden.stabilise  # the module, not the function it exports

    module = sys.modules["blocktrace.golden.stabilise"]
    keep = tempfile.mkdtemp(prefix="bench-golden-form-")
    raw = os.path.join(keep, "calls.jsonl")
    best: dict[str, float] = {}
    for _ in range(repeat):
        start = time.process_time()
        with blocktrace.trace(blocktrace.ChainTracer(raw, level="call", force=True)):
            fib(24)
        best["record"] = min(best.get("record", 1e9), time.process_time() - start)
        scanner = module._scanner
        for name, size, loop in (("reused", 1 << 16, scanner),
                                 ("reused, Python loop", 1 << 16, lambda: module._py_scan),
                                 ("not reused", 0, scanner)):
            module._SEEN_BODIES = size
            module._scanner = loop  # the C loop (when built) or its Python reference
            start = time.process_time()
            with open(raw, "rb") as source:
                module.stabilise(source, io.BytesIO(), Normaliser(keep, ["bench"]))
            best[name] = min(best.get(name, 1e9), time.process_time() - start)
            module._scanner = scanner
    with open(raw, "rb") as trace:
        lines = sum(1 for _ in trace)
    shutil.rmtree(keep)
    print(f"Python {platform.python_version()}, fib(24) at calls level, {lines:,} lines, "
          f"best of {repeat}, interleaved\n")
    print("| what | CPU seconds | vs recording |")
    print("|---|---|---|")
    for name in ("record", "reused", "reused, Python loop", "not reused"):
        label = "record (ChainTracer, calls)" if name == "record" else f"golden form, {name}"
        print(f"| {label} | {best[name]:.2f} | {best[name] / best['record']:.2f}x |")


def countdown(n: int) -> Iterator[int]:
    while n:
        yield n
        n -= 1


def n_calls(n: int) -> int:
    """The calls ``fib(n)`` makes."""
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, a + b + 1
    return b


def generator(n: int) -> int:
    """A generator resumed and left about as often as ``fib(n)`` calls and returns
    (resume and yield lines, which the stepper handles in Python)."""
    return sum(countdown(n_calls(n)))


def per_call(n: int, repeat: int) -> None:
    """``--per-call``: what a ``calls``-level golden costs per call and return line:
    a recursive ``fib(n)`` (calls and returns, written by the stepper's C hook)
    and a generator resumed as often (resume and yield lines, its Python path),
    each untraced, recorded by a plain ``ChainTracer`` at ``call`` level, and
    recorded as the plugin does and compared with its stored golden (the common
    case: the same bytes), the golden form made as the test runs (one pass) or
    after it (``one_pass=False``, as before); with the writer's thread and
    without (``BLOCKTRACE_WRITER_THREAD``).  CPU time of the process (all its
    threads), interleaved, best of ``repeat``."""
    import blocktrace

    keep = tempfile.mkdtemp(prefix="bench-golden-calls-")
    rules = Normaliser(keep, ["bench"])
    stored: dict[tuple[str, bool], str] = {}
    lines: dict[str, int] = {}
    programs: dict[str, Callable[[int], int]] = {"fib": fib, "generator": generator}
    here = [os.path.abspath(__file__)]

    def golden(name: str, one_pass: bool) -> Recording:
        rec = Recording(level="call", values=False, include=here, exclude=None, rules=rules,
                        workdir=keep, one_pass=one_pass)
        rec.start(against=stored.get((name, one_pass)))
        programs[name](n)
        rec.finish(None)
        return rec

    for name in programs:
        for one_pass in (True, False):
            rec = golden(name, one_pass)
            path = stored[name, one_pass] = os.path.join(keep, f"{name}-{one_pass}.jsonl")
            os.replace(rec.path, path)
            rec.cleanup()
            with open(path, "rb") as trace:
                lines[name] = sum(1 for line in trace if line.startswith(
                    (b'{"event":"call"', b'{"event":"return"')))
        with open(stored[name, True], "rb") as one, open(stored[name, False], "rb") as two:
            assert one.read() == two.read()  # the same golden bytes either way
    raw = os.path.join(keep, "raw.jsonl")
    best: dict[tuple[str, str], float] = {}

    def note(key: tuple[str, str], seconds: float) -> None:
        best[key] = min(best.get(key, 1e9), seconds)

    saved = os.environ.get("BLOCKTRACE_WRITER_THREAD")
    try:
        for _ in range(repeat):
            for name, program in programs.items():
                start = time.process_time()
                program(n)
                note((name, "untraced"), time.process_time() - start)
                for thread in ("1", "0"):
                    os.environ["BLOCKTRACE_WRITER_THREAD"] = thread
                    where = "writer's thread" if thread == "1" else "inline writer"
                    start = time.process_time()
                    with blocktrace.trace(blocktrace.ChainTracer(raw, level="call", force=True),
                                          include=here):
                        program(n)
                    note((name, f"ChainTracer at call level, {where}"),
                         time.process_time() - start)
                    for one_pass in (True, False):
                        start = time.process_time()
                        rec = golden(name, one_pass)
                        seconds = time.process_time() - start
                        assert rec.same
                        rec.cleanup()
                        passes = "one pass" if one_pass else "two passes"
                        note((name, f"golden, {passes}, compared (same), {where}"), seconds)
    finally:
        if saved is None:
            os.environ.pop("BLOCKTRACE_WRITER_THREAD", None)
        else:
            os.environ["BLOCKTRACE_WRITER_THREAD"] = saved
    shutil.rmtree(keep)
    print(f"Python {platform.python_version()}, at calls level: fib({n}), {lines['fib']:,} "
          f"call and return lines; a generator, {lines['generator']:,} resume and yield "
          f"lines; best of {repeat}, interleaved, CPU time\n")
    print("| program | what | CPU seconds | ns per line (over untraced) |")
    print("|---|---|---|---|")
    for (name, what), seconds in best.items():
        base = best[name, "untraced"]
        per = "" if what == "untraced" else f"{(seconds - base) / lines[name] * 1e9:.0f}"
        print(f"| {name} | {what} | {seconds:.3f} | {per} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--levels", action="store_true",
                        help="only the recording cost at each level (ops, lines, calls)")
    parser.add_argument("--tmp", help="where the goldens go (deleted after)")
    parser.add_argument("--golden-form", action="store_true",
                        help="only the golden form of a calls-level trace, bodies reused or not")
    parser.add_argument("--per-call", type=int, metavar="N",
                        help="only the cost per call and return line of a calls-level golden "
                        "(fib(N); 25 is about 486k lines)")
    args = parser.parse_args()
    if args.per_call:
        per_call(args.per_call, args.repeat)
        return
    if args.golden_form:
        golden_form(args.repeat)
        return
    n = args.steps // 7  # about 7 instructions per iteration
    root = os.path.dirname(os.path.abspath(__file__))
    if args.levels:
        levels(n, root, args.repeat)
        return
    keep = tempfile.mkdtemp(prefix="bench-golden-", dir=args.tmp)
    golden = os.path.join(keep, "golden.jsonl")
    rec_times, same_times, diff_times, reference_times = [], [], [], []
    rec_cpu, same_cpu, diff_cpu, reference_cpu = [], [], [], []
    steps = 0
    text = ""
    native = skip._c
    for _ in range(args.repeat):
        cpu = time.process_time()
        seconds, rec = record(n, root)
        rec_cpu.append(time.process_time() - cpu)
        rec_times.append(seconds)
        shutil.copyfile(rec.path, golden)
        rec.cleanup()
        _, again = record(n, root)
        start, cpu = time.perf_counter(), time.process_time()
        same = compare_golden(golden, again.path, "op")
        same_times.append(time.perf_counter() - start)
        same_cpu.append(time.process_time() - cpu)
        assert same.equal
        again.cleanup()
        _, changed = record(n, root, changed=True)
        # with the byte-level pass over the common tail, then the reference path
        for c, walls, cpus in ((native, diff_times, diff_cpu),
                               (None, reference_times, reference_cpu)):
            skip._c = c
            start, cpu = time.perf_counter(), time.process_time()
            diff = compare_golden(golden, changed.path, "op")
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
            assert not diff.equal and diff.steps is not None
            assert text in ("", diff.text)  # the same report either way
            text = diff.text
            steps = diff.steps.steps_a
        skip._c = native
        changed.cleanup()
    size = os.path.getsize(golden)
    shutil.rmtree(keep)
    best_rec, best_same, best_diff = min(rec_times), min(same_times), min(diff_times)
    print(f"Python {platform.python_version()}, {steps:,} steps at ops level "
          f"({size / 1e6:.0f} MB golden), best of {args.repeat}; C pass "
          f"{'built' if native is not None else 'NOT built'}\n")
    print("| what | seconds (wall) | vs recording | CPU seconds | vs recording |")
    print("|---|---|---|---|---|")
    rows = (
        ("record the test (trace + golden form)", best_rec, min(rec_cpu)),
        ("compare, same behaviour (byte comparison)", best_same, min(same_cpu)),
        ("compare, one instruction differs (verify + diff to the end)", best_diff,
         min(diff_cpu)),
        ("the same without the byte-level pass (reference path)", min(reference_times),
         min(reference_cpu)),
    )
    for what, wall, cpu in rows:
        print(f"| {what} | {wall:.2f} | {wall / best_rec:.2f}x | {cpu:.2f} | "
              f"{cpu / min(rec_cpu):.2f}x |")


if __name__ == "__main__":
    main()
