"""Golden traces on a real third-party test suite: more-itertools, from its sdist.

    python benchmarks/golden_thirdparty.py [--work DIR] [--version 11.2.1] [-k EXPR]
        [--rounds 2] [--runs untraced,calls,lines,ops,run-ops] [--skip-speed]

Needs network access to PyPI or the pip cache (``pip download`` of the sdist);
not part of the test suite (it runs the package's suite about eight times).

1. Speed, interleaved (``--rounds`` rounds of every run, one after the other):
   the suite untraced; with goldens at ``calls`` and ``lines`` level (the
   project's own code in scope: the package and its tests), the run that records
   the goldens (``--blocktrace-golden-update``) and the run that compares with
   them; the run that records ``ops``-level goldens; and ``blocktrace run`` of
   the suite at ``--level op`` (the plain recording cost, one trace, same
   scope).  CPU time of the pytest process (user + system: the machine may be
   loaded) and wall time, best and median of the rounds; ratios to the
   untraced run's.  Goldens and traces are deleted after each run.
2. Behaviour check, at ``ops`` level with only ``more_itertools/recipes.py`` in
   scope: record goldens, run again unchanged (tests that differ between two
   unchanged runs are non-deterministic and set aside), change one line of
   ``take()`` to an expression with the same value but other instructions, and
   compare.  The tests that fail must be exactly the tests that executed that
   line -- found independently, by a ``sys.settrace`` plugin in a separate run
   -- and each report's first divergence must be at that line.

Prints Markdown.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

PACKAGE = "more-itertools"
TARGET_FILE = "more_itertools/recipes.py"
BEFORE = "    return list(islice(iterable, n))\n"
AFTER = "    return (list(islice(iterable, n)), None)[0]\n"

TRUTH_PLUGIN = '''
import os, sys, threading
import pytest

TARGET = (os.path.realpath(os.environ["TRUTH_FILE"]), int(os.environ["TRUTH_LINE"]))
HIT = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    seen = []

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno == TARGET[1]:
            seen.append(1)
        return local

    def anywhere(frame, event, arg):
        if os.path.realpath(frame.f_code.co_filename) == TARGET[0]:
            return local
        return None

    sys.settrace(anywhere)
    threading.settrace(anywhere)
    try:
        return (yield)
    finally:
        sys.settrace(None)
        threading.settrace(None)
        if seen:
            HIT.append(item.nodeid)


def pytest_sessionfinish(session):
    with open(os.environ["TRUTH_OUT"], "w") as out:
        out.write("\\n".join(HIT))
'''

_FAILED = re.compile(r"^FAILED (\S+)", re.M)


def fetch(work: str, version: str) -> str:
    if not glob.glob(os.path.join(work, f"more_itertools-{version}.tar.gz")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
                        "--no-deps", "-q", f"{PACKAGE}=={version}", "-d", work], check=True)
    archive = glob.glob(os.path.join(work, f"more_itertools-{version}.tar.gz"))[0]
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return archive[: -len(".tar.gz")]


def pytest(project: str, *args: str, env: dict[str, str] | None = None, run: str | None = None,
           ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run the suite; ``run``: under ``blocktrace run --level op -o RUN`` instead."""
    seconds, _, result = timed(project, *args, env=env, run=run)
    return seconds, result


def timed(project: str, *args: str, env: dict[str, str] | None = None, run: str | None = None,
          ) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """``pytest``, and the CPU seconds (user + system) the process took."""
    environ = dict(os.environ, PYTHONPATH=project, PYTHONHASHSEED="0")
    environ.update(env or {})
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args]
    if run is not None:
        command[1:1] = ["-m", "blocktrace", "run", "--level", "op", "-o", run, "--force"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=project, env=environ, capture_output=True, text=True,
                            check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def failed(result: subprocess.CompletedProcess[str]) -> set[str]:
    return set(_FAILED.findall(result.stdout))


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else result.stderr.strip()[-200:]


def _clear(project: str) -> int:
    """Delete the goldens (and their folders); returns their total size in bytes."""
    traces = os.path.join(project, "tests", "__traces__")
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(traces, "*", "*")))
    shutil.rmtree(traces, ignore_errors=True)
    return size


def speed(project: str, select: tuple[str, ...], rounds: int, runs: list[str],
          other: str | None = None, other_env: dict[str, str] | None = None) -> None:
    """The interleaved speed runs (see the module's docstring); prints a Markdown table.
    ``other``: a directory holding another blocktrace (a checkout with its C extensions
    built), and/or ``other_env``, environment variables: each calls and lines run is done
    with them too, right after (an A/B in one run)."""
    variant: dict[str, str] | None = None
    if other is not None or other_env:
        variant = dict(other_env or {})
        if other is not None:
            variant["PYTHONPATH"] = f"{project}{os.pathsep}{other}"
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    outcome: dict[str, str] = {}

    def note(name: str, result: tuple[float, float, subprocess.CompletedProcess[str]]) -> None:
        wall.setdefault(name, []).append(result[0])
        cpu.setdefault(name, []).append(result[1])
        outcome[name] = last_line(result[2])
        print(f"  {name}: {result[1]:.1f} s CPU, {result[0]:.1f} s wall; {outcome[name]}",
              file=sys.stderr, flush=True)

    _clear(project)
    for round_ in range(rounds):
        print(f"round {round_ + 1} of {rounds}", file=sys.stderr, flush=True)
        for run in runs:
            if run == "untraced":
                note("untraced", timed(project, *select))
            elif run in ("calls", "lines", "ops"):
                opts = ("--blocktrace-golden", "--blocktrace-golden-level", run, *select)
                for label, env in (("", None), (" (other)", variant)):
                    if label and (env is None or run == "ops"):
                        continue
                    note(f"{run}: record goldens{label}",
                         timed(project, *opts, "--blocktrace-golden-update", env=env))
                    if run != "ops":
                        note(f"{run}: compare with goldens{label}", timed(project, *opts, env=env))
                    sizes[run] = _clear(project)
            elif run == "run-ops":
                trace = os.path.join(project, "suite.trace.jsonl")
                note("blocktrace run --level op", timed(project, *select, run=trace))
                sizes[run] = os.path.getsize(trace) if os.path.exists(trace) else 0
                for path in glob.glob(trace + "*"):
                    os.unlink(path)
            else:
                raise SystemExit(f"unknown run {run!r}")
    base = min(cpu["untraced"]) if "untraced" in cpu else None
    print(f"untraced: {outcome.get('untraced', '?')}\n")
    print(f"CPU seconds (user + system) of the pytest process, {rounds} interleaved round(s)\n")
    print("| run | CPU best | CPU median | vs untraced (best) | wall median | written |")
    print("|---|---|---|---|---|---|")
    for name, times in cpu.items():
        ratio = f"{min(times) / base:.2f}x" if base else "-"
        kind = name.split(":")[0] if ":" in name else ("run-ops" if "run" in name else "")
        shown = kind in sizes and ("record" in name or kind == "run-ops")
        written = f"{sizes[kind] / 1e6:,.1f} MB" if shown else ""
        print(f"| {name} | {min(times):.2f} | {statistics.median(times):.2f} | {ratio} "
              f"| {statistics.median(wall[name]):.2f} | {written} |")
    for name, text in outcome.items():
        if name != "untraced":
            print(f"\n- {name}: {text}", end="")
    print("\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", help="directory to work in (default: a new temporary one)")
    parser.add_argument("--version", default="11.2.1")
    parser.add_argument("-k", dest="select", help="pytest -k expression (a subset of the suite)")
    parser.add_argument("--deselect", metavar="NODEID", action="append", default=[],
                        help="leave this test out (repeatable; e.g. tests that make millions "
                        "of calls)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-behaviour", action="store_true")
    parser.add_argument("--other", metavar="DIR", help="also run the goldens with the "
                        "blocktrace package found in DIR (another checkout, C extensions built)")
    parser.add_argument("--other-env", metavar="NAME=VALUE", action="append", default=[],
                        help="run the goldens again with this environment variable set "
                        "(repeatable; with or without --other), e.g. BLOCKTRACE_WRITER_THREAD=0")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--runs", default="untraced,calls,lines,ops,run-ops",
                        help="which runs, comma-separated (default: all)")
    parser.add_argument("--reuse-goldens", action="store_true",
                        help="keep the ops-level goldens already in --work (no re-recording, "
                        "no unchanged re-run)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="golden-thirdparty-")
    project = fetch(work, args.version)
    select = (*(("-k", args.select) if args.select else ()),
              *(f"--deselect={node}" for node in args.deselect))
    print(f"{PACKAGE} {args.version}, Python {sys.version.split()[0]}, in {project}\n")

    if not args.skip_speed:
        other_env = dict(item.split("=", 1) for item in args.other_env)
        speed(project, select, args.rounds, args.runs.split(","), args.other, other_env)

    if args.skip_behaviour:
        return
    target = os.path.join(project, TARGET_FILE)
    with open(target) as handle:
        source = handle.read()
    line = source.splitlines(keepends=True).index(BEFORE) + 1
    opts = ("--blocktrace-golden", "--blocktrace-golden-level", "ops",
            "--blocktrace-golden-include", TARGET_FILE, *select)
    if args.reuse_goldens:
        recorded = again = subprocess.CompletedProcess([], 0, "(goldens reused)", "")
    else:
        _, recorded = pytest(project, *opts, "--blocktrace-golden-update")
        _, again = pytest(project, *opts)
    flaky = failed(again)
    with open(target, "w") as out:
        out.write(source.replace(BEFORE, AFTER))
    truth_dir = tempfile.mkdtemp(prefix="truth-", dir=work)
    with open(os.path.join(truth_dir, "truth_plugin.py"), "w") as out:
        out.write(TRUTH_PLUGIN)
    truth_out = os.path.join(truth_dir, "hit.txt")
    pytest(project, "-p", "truth_plugin", *select, env={
        "PYTHONPATH": f"{project}{os.pathsep}{truth_dir}", "TRUTH_FILE": target,
        "TRUTH_LINE": str(line), "TRUTH_OUT": truth_out})
    with open(truth_out) as handle:
        executed = set(handle.read().split())
    _, changed = pytest(project, *opts)
    failing = failed(changed)
    reports = changed.stdout.split("\n___")
    at_line = sum(1 for r in reports if "now:    pc " in r and f"recipes.py:{line}" in
                  r.split("now:", 1)[1].split("\n", 1)[0])
    print(f"one-line change: {TARGET_FILE}:{line} `{BEFORE.strip()}` -> `{AFTER.strip()}`\n")
    print(f"- goldens recorded (ops level, {TARGET_FILE} in scope): {last_line(recorded)}")
    print(f"- unchanged re-run: {last_line(again)}; non-deterministic tests: {len(flaky)}"
          + (f" ({', '.join(sorted(flaky))})" if flaky else ""))
    print(f"- tests that executed line {line} (sys.settrace, separate run): {len(executed)}")
    print(f"- tests failing after the change: {len(failing)} ({last_line(changed)})")
    print(f"- failing == executed (non-deterministic ones set aside): "
          f"{failing - flaky == executed - flaky}")
    print(f"  failing but not executed: {sorted(failing - flaky - executed)}")
    print(f"  executed but not failing: {sorted(executed - flaky - failing)}")
    print(f"- reports whose first divergence ('now:') is at recipes.py:{line}: {at_line} "
          f"of {len(failing)}")
    with open(target, "w") as out:
        out.write(source)


if __name__ == "__main__":
    main()
