"""Start-up cost of ``blocktrace run``: an empty script, against ``python`` on it.

Issue 13 asks that ``blocktrace run empty.py`` cost at most 0.1 s more than
``python empty.py``.  Both are run alternately in one process (the machine is
shared: interleaving puts them under the same load), each ``--repeat`` times, as
fresh processes; reported are the wall and the CPU time (user + system, from
``wait4``) of each, best and median, and the difference.

Byte-code caches are on, as in an installed package (pip compiles them): the
caches go to a temporary ``PYTHONPYCACHEPREFIX`` warmed by a first run of each,
whatever ``PYTHONDONTWRITEBYTECODE`` says.  ``--no-cache`` measures without.

    .venv-3.13/bin/python benchmarks/bench_startup.py [--repeat 20] [--no-cache] [--pure]

``--commands`` measures instead the reading commands as a user runs them, each a
fresh process (issue 18 item 4: ``show`` and ``prove`` of any line of a
12-million-line trace in under 100 ms): ``--version``, a usage error (``show``
with no arguments), ``verify --help``, ``diff A B`` of two recordings of the same
small run (``examples/fib.py 6``, plain and ``.jsonl.zst``: the process's start is
most of it), ``show TRACE STEP``, ``show --line TRACE
LINE``, ``prove TRACE LINE -o P`` and ``check-proof P``, on ``--trace`` (an
indexed plain ``.jsonl``: ``blocktrace run -o big.jsonl examples/fib.py 27``
then ``blocktrace verify big.jsonl``) and on a small trace the script records
(``examples/fib.py 15``), beside the floors ``python -S -c pass``, ``python -c
pass`` and ``python -c "import msgspec"`` (what reading a trace cannot do
without).  Each ``--tree NAME=PATH`` (default: this checkout) is a checkout with
its C extensions built; the trees alternate in each round (reversed every other
round), and their exit status and output must agree.  Reported per command and
tree: CPU (user + sys of the child, ``wait4``) and wall, best and median, in ms.
``--importtime N`` also runs each command N times more with ``-X importtime``
and reports, per tree, the smallest time each import took (noise only adds):
the whole import graph, the top-level imports by cumulative time and
blocktrace's own modules by their self time.  ``--callgrind`` runs each command
once under ``valgrind --tool=callgrind`` and reports the instructions executed
(steady where the machine is shared).

The children run "as installed": the interpreter is a virtual environment made
in a temporary directory whose site-packages holds only a ``.pth`` line naming
this interpreter's site-packages (so msgspec and the rest are found, but no
``.pth`` file there runs: an editable install's import hook would import
pathlib and more at every start, which a pip-installed blocktrace does not);
blocktrace itself comes from the tree through ``PYTHONPATH``.  ``--as-is``
runs this interpreter unchanged instead.

    .venv-3.13/bin/python benchmarks/bench_startup.py --commands --trace big.jsonl \
        [--tree before=/tmp/base --tree after=.] [--repeat 10] [--importtime 5] [--callgrind]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _measure(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv}: exit status {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-cache", action="store_true",
                        help="no byte-code caches (every module compiled at each start)")
    parser.add_argument("--pure", action="store_true", help="BLOCKTRACE_PURE=1")
    parser.add_argument("--commands", action="store_true",
                        help="the reading commands as fresh processes (see the module's text)")
    parser.add_argument("--trace", type=Path, help="--commands: an indexed plain .jsonl trace")
    parser.add_argument("--tree", action="append", metavar="NAME=PATH",
                        help="--commands: a checkout to measure (repeatable)")
    parser.add_argument("--importtime", type=int, default=0, metavar="N",
                        help="--commands: N runs of each with -X importtime")
    parser.add_argument("--callgrind", action="store_true",
                        help="--commands: instructions of one run of each under callgrind")
    parser.add_argument("--as-is", action="store_true",
                        help="--commands: this interpreter as it is (no installed-like venv)")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    if args.commands:
        commands(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "empty.py"
        script.write_text("")
        env = dict(os.environ)
        if args.no_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        if args.pure:
            env["BLOCKTRACE_PURE"] = "1"
        python = [sys.executable, str(script)]
        blocktrace = [sys.executable, "-m", "blocktrace", "run", "-o",
                      str(Path(tmp) / "empty.trace.jsonl"), "--force", str(script)]
        for argv in (python, blocktrace):  # warm the caches and the page cache
            _measure(argv, env, tmp)
        runs: dict[str, list[tuple[float, float]]] = {"python": [], "blocktrace run": []}
        for _ in range(args.repeat):
            runs["python"].append(_measure(python, env, tmp))
            runs["blocktrace run"].append(_measure(blocktrace, env, tmp))

    print(f"Python {sys.version.split()[0]}, {args.repeat} runs each, interleaved; "
          f"byte-code caches {'off' if args.no_cache else 'on'}"
          f"{', BLOCKTRACE_PURE=1' if args.pure else ''}")
    print(f"{'':16}{'wall best':>11}{'wall median':>13}{'CPU best':>10}{'CPU median':>12}")
    summary: dict[str, list[float]] = {}
    for name, times in runs.items():
        walls = [w for w, _ in times]
        cpus = [c for _, c in times]
        summary[name] = [min(walls), statistics.median(walls), min(cpus), statistics.median(cpus)]
        print(f"{name:16}" + "".join(f"{v:>{w}.3f}" for v, w in
                                      zip(summary[name], (11, 13, 10, 12), strict=True)))
    more = [b - a for a, b in zip(summary["python"], summary["blocktrace run"], strict=True)]
    print(f"{'difference':16}" + "".join(f"{v:>{w}.3f}" for v, w in
                                        zip(more, (11, 13, 10, 12), strict=True)))
    print(f"blocktrace run costs {more[2]:.3f} s more CPU than python at best "
          f"({more[3]:.3f} s at the median); the target is at most 0.100 s")


# -- the reading commands (--commands) -------------------------------------------------


def _child(argv: list[str], env: dict[str, str], cwd: Path,
           stdin: bytes | None = None) -> tuple[float, float, int, bytes, bytes]:
    """Wall and CPU seconds, exit status, stdout and stderr of one fresh process,
    run in ``cwd`` (``python -m`` puts its working directory first on the path:
    started in a checkout, every tree would run that checkout's code)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE)
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return (wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status),
                out.read(), err.read())


def _installed_like(tmp: Path) -> str:
    """A virtual environment's python that finds this interpreter's packages (a
    ``.pth`` line naming its site-packages) without running their ``.pth`` files."""
    import site
    import venv

    home = tmp / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(home)
    python = home / "bin" / "python"
    theirs = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    Path(theirs, "bench-startup-deps.pth").write_text(
        "".join(f"{p}\n" for p in site.getsitepackages()))
    return str(python)


def _steps_and_lines(python: str, env: dict[str, str], trace: Path) -> tuple[int, int]:
    """(steps, lines) of a trace, as ``verify --json`` says them."""
    _, _, code, out, err = _child([python, "-m", "blocktrace", "verify", "--json", str(trace)],
                                  env, trace.parent)
    if code != 0:
        raise SystemExit(f"verify {trace}: exit {code}: {err.decode(errors='replace')}")
    import json

    said = json.loads(out)
    return int(said["steps"]), int(said["lines"])


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _importtimes(stderr: bytes) -> list[tuple[str, int, int, int]]:
    """(module, self us, cumulative us, depth) per line of ``-X importtime``."""
    rows = []
    for line in stderr.decode(errors="replace").splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            rows.append((m[4], int(m[1]), int(m[2]), (len(m[3]) - 1) // 2))
    return rows


def _callgrind(argv: list[str], env: dict[str, str], tmp: Path) -> int:
    out = tmp / "callgrind.out"
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           *argv], env=env, cwd=tmp, capture_output=True, check=False)
    text = out.read_text(errors="replace") if out.exists() else ""
    out.unlink(missing_ok=True)
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if m is None:
        raise SystemExit(f"callgrind gave no count for {argv}: {proc.stderr[-300:]!r}")
    return int(m[1])


def commands(args: argparse.Namespace) -> None:
    if args.trace is None:
        raise SystemExit("--commands needs --trace (an indexed plain .jsonl trace)")
    here = Path(__file__).resolve().parent.parent
    trees = [(n, Path(p).resolve()) for n, _, p in (t.partition("=") for t in args.tree or
                                                     [f"this={here}"])]
    big = args.trace.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        python = sys.executable if args.as_is else _installed_like(tmp)
        envs = {}
        for name, tree in trees:
            env = {k: v for k, v in os.environ.items()
                   if k not in ("BLOCKTRACE_PURE", "PYTHONDONTWRITEBYTECODE")}
            env.update(PYTHONPATH=str(tree), PYTHONPYCACHEPREFIX=str(tmp / f"pyc-{name}"),
                       XDG_CACHE_HOME=str(tmp / f"cache-{name}"))
            envs[name] = env
        first = envs[trees[0][0]]
        small = tmp / "small.jsonl"
        _, _, code, _, err = _child([python, "-m", "blocktrace", "run", "-o", str(small),
                                     str(here / "examples" / "fib.py"), "15"], first, tmp)
        if code != 0:
            raise SystemExit(f"recording the small trace: {err.decode(errors='replace')}")
        # diff: two recordings of the same small run (the same steps: exit 0), plain and .zst
        small_diff: dict[str, tuple[Path, Path]] = {}
        for suffix in (".jsonl", ".jsonl.zst"):
            pair = (tmp / f"diff-a{suffix}", tmp / f"diff-b{suffix}")
            for trace in pair:
                _, _, code, _, err = _child([python, "-m", "blocktrace", "run", "-o", str(trace),
                                             str(here / "examples" / "fib.py"), "6"], first, tmp)
                if code != 0:
                    raise SystemExit(f"recording {trace.name}: {err.decode(errors='replace')}")
            small_diff[suffix] = pair
        rng = random.Random(args.seed)
        cases: list[tuple[str, list[str], bytes | None]] = [
            ("python -S -c pass", [python, "-S", "-c", "pass"], None),
            ("python -c pass", [python, "-c", "pass"], None),
            ("python -c 'import msgspec'", [python, "-c", "import msgspec"], None),
            ("--version", [python, "-m", "blocktrace", "--version"], None),
            ("usage error (show)", [python, "-m", "blocktrace", "show"], None),
            ("verify --help", [python, "-m", "blocktrace", "verify", "--help"], None),
        ]
        for suffix, (diff_a, diff_b) in small_diff.items():
            cases.append((f"diff A B ({suffix[1:]})",
                          [python, "-m", "blocktrace", "diff", str(diff_a), str(diff_b)], None))
        _, diff_lines = _steps_and_lines(python, first, small_diff[".jsonl"][0])
        print(f"diff A B: two recordings of examples/fib.py 6, {diff_lines:,} lines each",
              flush=True)
        for label, trace in (("big", big), ("small", small)):
            steps, lines = _steps_and_lines(python, first, trace)
            step, line = rng.randrange(steps), rng.randrange(2, lines + 1)
            bundle = tmp / f"{label}.proof.json"
            cases += [
                (f"show {label} STEP", [python, "-m", "blocktrace", "show", str(trace),
                                        str(step)], None),
                (f"show --line {label} LINE", [python, "-m", "blocktrace", "show", "--line",
                                               str(trace), str(line)], None),
                (f"prove {label} LINE -o P", [python, "-m", "blocktrace", "prove", str(trace),
                                              str(line), "-o", str(bundle)], None),
                (f"check-proof {label}", [python, "-m", "blocktrace", "check-proof",
                                          str(bundle)], None),
            ]
            print(f"{label}: {trace.name}, {lines:,} lines, {steps:,} steps, "
                  f"{trace.stat().st_size:,} bytes; step {step:,}, line {line:,}", flush=True)

        def once(name: str, label: str, argv: list[str],
                 extra: list[str] | None = None) -> tuple[float, float, int, bytes, bytes]:
            if argv[-2:-1] == ["-o"]:
                Path(argv[-1]).unlink(missing_ok=True)
            full = argv[:1] + (extra or []) + argv[1:]
            result = _child(full, envs[name], tmp)
            if result[2] not in (0, 2) or (result[2] == 2 and "usage" not in label):
                raise SystemExit(f"{name}: {' '.join(argv)}: exit {result[2]}: "
                                 f"{result[4].decode(errors='replace')}")
            return result

        for name, _ in trees:  # warm the byte-code caches and the page cache
            for label, argv, _ in cases:
                once(name, label, argv)
        wall: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        print(f"{args.repeat} rounds, trees {', '.join(n for n, _ in trees)}, python "
              f"{sys.version.split()[0]} ({'as is' if args.as_is else 'installed-like'}); "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
        for r in range(args.repeat):
            order = trees if r % 2 == 0 else trees[::-1]
            for label, argv, _ in cases:
                answers = {}
                for name, _ in order:
                    w, c, code, out, _ = once(name, label, argv)
                    if "prove" in label:
                        out = Path(argv[-1]).read_bytes()
                    answers[name] = (code, out)
                    wall.setdefault((name, label), []).append(w)
                    cpu.setdefault((name, label), []).append(c)
                if len(set(answers.values())) != 1:
                    raise SystemExit(f"{label}: the trees answer differently")
        print(f"load after: {os.getloadavg()[0]:.1f}")
        print()
        print("| command | " + " | ".join(f"{n} CPU best / median ms | {n} wall best / median ms"
                                         for n, _ in trees) + " |")
        print("|---|" + "---|---|" * len(trees))
        for label, _, _ in cases:
            cells = []
            for name, _ in trees:
                cs = [c * 1000 for c in cpu[(name, label)]]
                ws = [w * 1000 for w in wall[(name, label)]]
                cells.append(f"{min(cs):.0f} / {statistics.median(cs):.0f} | "
                             f"{min(ws):.0f} / {statistics.median(ws):.0f}")
            print(f"| {label} | " + " | ".join(cells) + " |")

        if args.callgrind:
            print()
            print("Instructions (callgrind, one run each, millions):")
            print("| command | " + " | ".join(n for n, _ in trees) + " |")
            print("|---|" + "---|" * len(trees))
            for label, argv, _ in cases:
                counts = []
                for name, _ in trees:
                    if argv[-2:-1] == ["-o"]:
                        Path(argv[-1]).unlink(missing_ok=True)
                    counts.append(_callgrind(argv, envs[name], tmp))
                print(f"| {label} | " + " | ".join(f"{c / 1e6:.1f}" for c in counts) + " |")

        if args.importtime:
            for label, argv, _ in cases:
                if argv[2:3] != ["blocktrace"]:
                    continue
                print()
                print(f"### -X importtime of {label}: smallest of {args.importtime} runs, ms")
                for name, _ in trees:
                    best_self: dict[str, int] = {}
                    best_cum: dict[str, int] = {}
                    order_seen: list[tuple[str, int]] = []
                    for _ in range(args.importtime):
                        rows = _importtimes(once(name, label, argv, ["-X", "importtime"])[4])
                        for module, own, cum, depth in rows:
                            if module not in best_self:
                                order_seen.append((module, depth))
                            best_self[module] = min(own, best_self.get(module, own))
                            best_cum[module] = min(cum, best_cum.get(module, cum))
                    total = sum(best_self.values())
                    ours = sum(v for m, v in best_self.items() if m.split(".")[0] == "blocktrace")
                    top = sorted((m for m, d in order_seen if d == 0),
                                 key=lambda m: -best_cum[m])[:10]
                    own_top = sorted((m for m in best_self if m.split(".")[0] == "blocktrace"),
                                     key=lambda m: -best_self[m])[:10]
                    print(f"{name}: {len(best_self)} modules, {total / 1000:.1f} ms in all "
                          f"(blocktrace's own code {ours / 1000:.1f} ms)")
                    print("  top-level, cumulative: " + ", ".join(
                        f"{m} {best_cum[m] / 1000:.1f}" for m in top))
                    print("  blocktrace modules, self: " + ", ".join(
                        f"{m} {best_self[m] / 1000:.1f}" for m in own_top))
        shutil.rmtree(tmp / "venv", ignore_errors=True)


if __name__ == "__main__":
    main()
