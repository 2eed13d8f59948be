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
"""

from __future__ import annotations

import argparse
import os
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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
