"""blocktrace next to other Python tracers, side by side in one run.

    python benchmarks/bench_peers.py [--repeat 5] [--fib 22] [--python PY] [--only NAME ...]

Times, on the workloads of benchmarks/workloads.py and a recursive ``fib``,
the program untraced; a ``sys.settrace`` no-op; coverage.py with its
sys.monitoring core and with its C trace-function core; viztracer; hunter;
PySnooper; and blocktrace's stepper with the discard tracer, with ChainTracer
(every instruction) and with ChainTracer at ``level="line"`` and
``level="call"``.  It prints each one's time as a multiple of untraced, the
bytes each wrote for ``fib``, and what each records, as a Markdown table.

The peers are installed from PyPI into a virtual environment of their own,
made under a cache directory (``--cache``; default ``$XDG_CACHE_HOME`` or
``~/.cache``, then ``blocktrace/bench-peers/``) from the interpreter given by
``--python`` (default: this one); a peer that cannot be installed or imported
is left out, saying why.  blocktrace itself is imported from this checkout
(its C extensions built in place for that Python).

Each measurement runs in a fresh process (tracers leave state behind: trace
functions, sys.monitoring tool ids, coverage's collector): it runs the workload
once untraced (specialisation, imports), then times starting the tracer,
running the workload, stopping the tracer and writing what it recorded to a
file.  Making the tracer object (opening its file) is not timed, for any
tracer.  The time is the process's CPU time by default (``--clock cpu``: on a
loaded machine the time spent waiting for a core is not the tracer's), elapsed
time with ``--clock wall``.  The processes are interleaved (every tracer once
per round, for ``--repeat`` rounds) and the best time of each is kept; a peer
that costs 100 times untraced or more on a workload is measured there in the
first round only (blocktrace's own figures get every round).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def fib(n: int) -> int:
    """The recursive workload: fib(22) makes 57,313 calls."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    needs: str | None  # the PyPI distribution it needs, if any
    records: str


CONFIGS = [
    Config("untraced", "untraced", None, "nothing"),
    Config("settrace", "`sys.settrace` no-op", None,
           "nothing: a Python trace function that returns itself (call, line and return events "
           "reach it), the floor of every settrace-based tool"),
    Config("coverage-sysmon", "coverage.py, sysmon core", "coverage",
           "which lines ran, as a set per file (no order, counts or values); each line's "
           "sys.monitoring callback is disabled after its first run"),
    Config("coverage-ctrace", "coverage.py, C core (CTracer)", "coverage",
           "which lines ran, as a set per file; a C trace function sees every line event"),
    Config("viztracer", "viztracer", "viztracer",
           "every call and return of Python and C functions in scope, with timestamps, into a "
           "ring buffer (1 M entries by default: the oldest are dropped), saved as JSON at the "
           "end; no lines, no values, nothing to verify"),
    Config("hunter", "hunter (CodePrinter)", "hunter",
           "every call, line and return event in scope printed with its source line, as text; "
           "no values, nothing to verify"),
    Config("pysnooper", "PySnooper", "PySnooper",
           "every line of the snooped functions with the locals that changed (their reprs), "
           "calls and return values, as text; nothing to verify"),
    Config("discard", "blocktrace, discard", None,
           "nothing: the stepper runs every instruction in scope (gas, depth, sites) and drops "
           "the events"),
    Config("chain", "blocktrace, ChainTracer", None,
           "every instruction (op, gas, depth, site), calls, returns, exceptions; every line "
           "hash-chained, the file sealed"),
    Config("chain-line", "blocktrace, `--level line`", None,
           "calls, returns, exceptions and the first instruction of each source line run; "
           "hash-chained, sealed; gas still counts every instruction"),
    Config("chain-call", "blocktrace, `--level call`", None,
           "calls (with arguments), returns (with values), exceptions; hash-chained, sealed; "
           "gas still counts every instruction"),
]
BY_NAME = {c.name: c for c in CONFIGS}
CLOCKS = {"cpu": time.process_time_ns, "wall": time.perf_counter_ns}
CLOCK = CLOCKS["cpu"]
PEERS = ["coverage", "viztracer", "hunter", "PySnooper"]
BLOCKTRACE_DEPS = ["msgspec", "typing-extensions"]


# -- the child: one measurement in a fresh process ---------------------------------------------

# How many times each workload runs in the timed region: the untraced run takes
# 10-30 ms here, so that starting and stopping a tracer (measured on its own as
# "empty") does not decide its figure.
REPEATS = {"empty": 1, "arithmetic": 20, "objects": 50, "stdlib": 3, "fib": 5}


def empty() -> None:
    """The empty program: what starting, stopping and saving cost by themselves."""


def _workload(name: str, fib_n: int) -> tuple[ModuleType, Callable[[], object]]:
    """The module the workload lives in, and a call of it (``REPEATS[name]`` times)."""
    k = REPEATS[name]
    if name in ("fib", "empty"):
        module = sys.modules[__name__]
        if name == "empty":
            return module, lambda: module.empty()

        def run_fib() -> None:
            for _ in range(k):
                module.fib(fib_n)

        return module, run_fib
    import workloads

    def run() -> None:
        fn = getattr(workloads, name)
        for _ in range(k):
            fn()

    return workloads, run


def _snoop_module(module: ModuleType, snoop: Any, names: set[str] | None) -> None:
    """PySnooper on every function and class of ``module`` (or those ``names``):
    calls between them go through the module's names, so each is snooped, depth 1."""
    for key, value in list(vars(module).items()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if names is not None and key not in names:
            continue
        if isinstance(value, (FunctionType, type)):
            setattr(module, key, snoop(value))


def _measure(name: str, workload: str, fib_n: int, out: Path) -> dict[str, Any]:
    module, fn = _workload(workload, fib_n)
    fn()  # warm up: specialisation, imports
    extra: dict[str, Any] = {}
    if name == "untraced":
        t = CLOCK()
        fn()
        return {"ns": CLOCK() - t}
    if name == "settrace":
        def noop(frame: Any, event: str, arg: Any) -> Any:
            return noop

        t = CLOCK()
        sys.settrace(noop)
        fn()
        sys.settrace(None)
        return {"ns": CLOCK() - t}
    if name.startswith("coverage-"):
        import coverage

        core = name.removeprefix("coverage-")
        cov = coverage.Coverage(data_file=str(out / ".coverage"), config_file=False)
        cov.set_option("run:core", core)
        t = CLOCK()
        cov.start()
        fn()
        cov.stop()
        cov.save()
        ns = CLOCK() - t
        used = dict(cov.sys_info()).get("core")
        want = {"sysmon": "SysMonitor", "ctrace": "CTracer"}[core]
        if used != want:
            return {"skip": f"coverage ran its {used} core, not {want}"}
        return {"ns": ns}
    if name == "viztracer":
        from viztracer import VizTracer

        tracer = VizTracer(output_file=str(out / "viz.json"), verbose=0,
                           include_files=[str(BENCH)], register_global=False)
        t = CLOCK()
        tracer.start()
        fn()
        tracer.stop()
        recorded = CLOCK() - t
        tracer.save()
        return {"ns": CLOCK() - t, "ns_unsaved": recorded}
    if name == "hunter":
        import hunter

        stream = open(out / "hunter.txt", "w")  # noqa: SIM115
        action = hunter.CodePrinter(stream=stream, force_colors=False)
        t = CLOCK()
        hunter.trace(filename=module.__file__, action=action, threading_support=False)
        fn()
        hunter.stop()
        stream.close()
        return {"ns": CLOCK() - t}
    if name == "pysnooper":
        import pysnooper

        stream = open(out / "snoop.txt", "w")  # noqa: SIM115
        _snoop_module(module, pysnooper.snoop(output=stream, color=False),
                      {"fib", "empty"} if workload in ("fib", "empty") else None)
        _, fn = _workload(workload, fib_n)
        t = CLOCK()
        fn()
        stream.close()
        return {"ns": CLOCK() - t}
    import blocktrace
    from blocktrace.tracers.level import level_tracer

    trace = blocktrace.trace  # import blocktrace is lazy: its modules load here, untimed

    if name == "discard":
        tracer: Any = blocktrace.discard_trace
        chain = None
    else:
        level = {"chain": "op", "chain-line": "line", "chain-call": "call"}[name]
        chain = blocktrace.ChainTracer(out / "trace.jsonl", genesis="bench", level=level)
        tracer = level_tracer(chain, level)
    t = CLOCK()
    with trace(tracer):
        fn()
    if chain is not None:
        chain.close()
    extra["ns"] = CLOCK() - t
    return extra


def _versions() -> dict[str, Any]:
    from importlib import metadata

    from blocktrace._native import extension

    found: dict[str, Any] = {"python": platform.python_version()}
    for dist in PEERS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    found["C extensions"] = all(
        extension(m) is not None for m in ("blocktrace.chain._cwriter", "blocktrace.vm._chook"))
    return found


def child(args: argparse.Namespace) -> None:
    if args.child == "versions":
        print(json.dumps(_versions()))
        return
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    name, workload = args.child, args.child_workload
    out = Path(tempfile.mkdtemp(prefix="bt-peer-"))
    try:
        result = _measure(name, workload, args.fib, out)
        result["bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    except ImportError as exc:
        result = {"skip": f"cannot import it: {exc}"}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(result))


# -- the parent: the environment, the rounds, the table -----------------------------------------

def _cache_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "blocktrace" / "bench-peers"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["(no message)"])[-1]


def prepare(python: str, cache: Path) -> tuple[str, dict[str, str]]:
    """The peers' venv for ``python`` (made and filled when missing) -> its python,
    and {distribution: why it is missing} for those that could not be installed."""
    ask = "import sys; print(sys.implementation.name + '-%d.%d' % sys.version_info[:2])"
    tag = subprocess.run([python, "-c", ask], capture_output=True, text=True,
                         check=True).stdout.strip()
    venv = cache / tag
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"making {venv} for the peers", file=sys.stderr)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    missing: dict[str, str] = {}
    for dist in BLOCKTRACE_DEPS + PEERS:
        have = subprocess.run(
            [str(py), "-c", f"import importlib.metadata as m; m.version({dist!r})"],
            capture_output=True)
        if have.returncode == 0:
            continue
        print(f"installing {dist} from PyPI into {venv}", file=sys.stderr)
        got = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", dist],
            capture_output=True, text=True)
        if got.returncode != 0:
            missing[dist] = f"pip install {dist} failed: {_last_line(got.stderr)}"
    for dep in BLOCKTRACE_DEPS:
        if dep in missing:
            sys.exit(f"bench_peers: blocktrace's dependency {missing[dep]}")
    return str(py), missing


def _run_child(py: str, env: dict[str, str], argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run([py, str(Path(__file__).resolve()), *argv], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        return {"skip": f"failed: {_last_line(proc.stderr)}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


SLOW = 100  # a peer this many times untraced or more is measured in the first round only


def _cell(got: dict[str, Any] | None, base: int | None, workload: str) -> str:
    if got is None or base is None:
        return "--"
    if workload == "empty":
        return f"{got['ns'] / 1e6:.1f} ms"
    mark = "" if got.get("rounds", 2) > 1 else "\u2020"
    return f"{got['ns'] / base:.1f}x{mark}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="rounds (the best of each is kept)")
    ap.add_argument("--fib", type=int, default=22, help="the recursive workload's n")
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter to measure on (blocktrace's C extensions built for it)")
    ap.add_argument("--cache", help="where the peers' venvs go")
    ap.add_argument("--only", nargs="+", choices=[c.name for c in CONFIGS],
                    help="only these tracers (untraced is always measured)")
    ap.add_argument("--workload", action="append", choices=list(REPEATS))
    ap.add_argument("--clock", choices=list(CLOCKS), default="cpu",
                    help="cpu: the process's CPU time (default: on a loaded machine, time the\n"
                    "process spends waiting for a core is not the tracer's); wall: elapsed time")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-workload", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    py, missing = prepare(args.python, _cache_dir(args.cache))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(BENCH)])
    versions = _run_child(py, env, ["--child", "versions"])
    if "skip" in versions:
        sys.exit(f"bench_peers: blocktrace does not import in {py}: {versions['skip']}")
    configs = [c for c in CONFIGS if not args.only or c.name in args.only or c.name == "untraced"]
    skipped = {c.name: missing[c.needs] for c in configs if c.needs in missing}
    workloads = args.workload or list(REPEATS)
    if "untraced" not in [c.name for c in configs]:
        configs.insert(0, BY_NAME["untraced"])

    best: dict[tuple[str, str], dict[str, Any]] = {}

    def keep(key: tuple[str, str], ns: int, size: int | None) -> None:
        old = best.get(key)
        rounds = old["rounds"] + 1 if old else 1
        if old is None or ns < old["ns"]:
            best[key] = {"ns": ns, "bytes": size, "rounds": rounds}
        else:
            old["rounds"] = rounds

    started = time.monotonic()
    loads = [os.getloadavg()[0]]
    for r in range(args.repeat):
        for w in workloads:
            base = best.get(("untraced", w), {}).get("ns")
            for c in configs:
                if c.name in skipped:
                    continue
                old = best.get((c.name, w))
                if (old and base and w != "empty" and c.needs is not None
                        and old["ns"] >= SLOW * base):
                    continue
                got = _run_child(py, env, ["--child", c.name, "--child-workload", w,
                                           "--fib", str(args.fib), "--clock", args.clock])
                if "skip" in got:
                    skipped[c.name] = got["skip"]
                    continue
                keep((c.name, w), got["ns"], got.get("bytes"))
                if "ns_unsaved" in got:
                    keep((c.name + "-unsaved", w), got["ns_unsaved"], None)
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.repeat} done ({time.monotonic() - started:.0f} s, "
              f"load average {loads[-1]:.1f})", file=sys.stderr)

    def title(w: str) -> str:
        if w == "empty":
            return "empty program (ms)"
        n = f"fib({args.fib})" if w == "fib" else w
        return f"{n} x{REPEATS[w]}" if REPEATS[w] > 1 else n

    sized = "fib" if "fib" in workloads else workloads[-1]
    print(f"Python {versions['python']} on {platform.machine()}, {os.cpu_count()} cores, "
          f"{args.clock} time, best of {args.repeat} interleaved rounds, each measurement in a "
          f"fresh process; 1-minute load average {min(loads):.1f}-{max(loads):.1f} at the "
          "start and after each round; "
          f"blocktrace's C extensions {'built' if versions['C extensions'] else 'NOT built'}; "
          + ", ".join(f"{d} {versions.get(d) or 'missing'}" for d in PEERS) + ".\n"
          f"Times as multiples of untraced (\u2020: a peer at {SLOW}x or more, measured in one "
          "round only); the empty program's column is the time itself.\n")
    print("| tracer | " + " | ".join(title(w) for w in workloads)
          + f" | bytes written ({title(sized)}) | what it records |")
    print("|---" * (len(workloads) + 3) + "|")
    base = {w: best[("untraced", w)]["ns"] for w in workloads if ("untraced", w) in best}
    print("| untraced | " + " | ".join(
        f"{base[w] / 1e6:.1f} ms" if w in base else "--" for w in workloads) + " | | |")
    rows = [(c.name, c.label, c.records) for c in configs if c.name != "untraced"]
    if ("viztracer-unsaved", sized) in best:
        i = [r[0] for r in rows].index("viztracer") + 1
        rows.insert(i, ("viztracer-unsaved", "viztracer, not saved",
                        "as above, left in memory (timed to its stop, before its save)"))
    for name, label, records in rows:
        if name in skipped:
            continue
        cells = " | ".join(_cell(best.get((name, w)), base.get(w), w) for w in workloads)
        size = (best.get((name, sized)) or {}).get("bytes")
        print(f"| {label} | {cells} | {size if size else ''} | {records} |")
    for name, why in skipped.items():
        print(f"\n{BY_NAME[name].label}: left out ({why})")
    call, viz = best.get(("chain-call", "fib")), best.get(("viztracer", "fib"))
    if call and viz:
        holds = call["ns"] <= viz["ns"]
        print(f"\ncheck: blocktrace `--level call` on fib costs {call['ns'] / viz['ns']:.2f}x "
              f"what viztracer (saved) costs: {'holds' if holds else 'does NOT hold'}")


if __name__ == "__main__":
    main()
