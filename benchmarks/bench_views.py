"""The seed tools' views against the tools they replace, measured in one run.

    python benchmarks/bench_views.py [--repeat 5] [--old-venv DIR] [--skip-old]

1. BlockTrace (``blocktrace.blocktrace``) against blocktrace 0.0.16, and
   ``blocktrace.tracefunc`` against tracefunc 0.0.7, on the same workload
   (benchmarks/views_workload.py).  The old tools are never project
   dependencies: on first use this script makes a virtual environment for them
   (``python -m venv DIR`` with the interpreter running this script, then
   ``DIR/bin/python -m pip install blocktrace==0.0.16 tracewrapper deepdiff
   tracefunc fastcore`` from PyPI) and runs benchmarks/views_old_tools.py in it.
   Default DIR: ``$TMPDIR/blocktrace-bench-oldtools-py3XY``.
2. TypeTracer's loop optimisation: the same loop-heavy workload untraced, under
   a no-op tracer, under TypeTracer without and with the optimisation.

Both sides run twice, interleaved, keeping the best of ``--repeat`` runs each
time, in process CPU time (the machine is shared: waiting for a core is not
the tracer's cost); the output is a Markdown table of times and ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgspec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import views_workload as w

import blocktrace
from blocktrace import blocktrace as compat
from blocktrace.tracers import VMState
from blocktrace.views.tracefunc import tracefunc
from blocktrace.views.types import TypeTracer

HERE = os.path.dirname(os.path.abspath(__file__))
OLD_PACKAGES = ["blocktrace==0.0.16", "tracewrapper", "deepdiff", "tracefunc==0.0.7", "fastcore"]
CONFIGS: dict[str, dict[str, str]] = {
    "readme": {"_globals": "changes", "_locals": "on", "_builtins": "changes"},
    "defaults": {"_globals": "On", "_locals": "On", "_builtins": "Off"},
    "locals": {"_globals": "off", "_locals": "on", "_builtins": "off"},
}
CONFIG_TEXT = {
    "readme": "README options (globals+builtins changes, locals on)",
    "defaults": "0.0.16 defaults (globals on, locals on)",
    "locals": "locals only",
}


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result: Any = None
    times = []
    for _ in range(repeat):
        t = time.process_time()
        result = fn()
        times.append(time.process_time() - t)
    return min(times), result


# -- the old tools, in their own venv ---------------------------------------------------------


def old_venv(path: str) -> str:
    python = os.path.join(path, "bin", "python")
    if os.path.exists(python):
        return python
    print(f"creating {path} for the old tools (once): {sys.executable} -m venv", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", path], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *OLD_PACKAGES], check=True)
    return python


def run_old(python: str, repeat: int, blocks_n: int, tracefunc_n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [python, os.path.join(HERE, "views_old_tools.py"), "--repeat", str(repeat),
         "--blocks-n", str(blocks_n), "--tracefunc-n", str(tracefunc_n)],
        capture_output=True, text=True, check=True,
    )
    result: dict[str, Any] = msgspec.json.decode(proc.stdout.strip().splitlines()[-1])
    return result


# -- ours ---------------------------------------------------------------------------------------


def run_new(repeat: int, blocks_n: int, tracefunc_n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"blocktrace": {}, "tracefunc": {}}
    for name, options in CONFIGS.items():
        def run(options: dict[str, str] = options) -> int:
            example = compat.BlockTrace("bench", **options)  # type: ignore[arg-type]
            example.start()
            w.work(blocks_n)
            example.stop()
            return len(example.block)

        seconds, blocks = best(run, repeat)
        out["blocktrace"][name] = {"seconds": seconds, "blocks": blocks}

    def save() -> int:
        example = compat.BlockTrace("bench", **CONFIGS["readme"])  # type: ignore[arg-type]
        example.start()
        w.work(blocks_n)
        example.stop()
        with tempfile.TemporaryDirectory() as tmp:
            example.save(os.path.join(tmp, "run.jsonl"))
        return len(example.block)

    seconds, blocks = best(save, repeat)
    out["blocktrace"]["readme+save"] = {"seconds": seconds, "blocks": blocks}
    for name, target in (("targeted", w.stats), ("whole", None)):
        def tf(target: Any = target) -> int:
            return len(tracefunc(w.work, tracefunc_n, target_func=target))

        seconds, calls = best(tf, repeat)
        out["tracefunc"][name] = {"seconds": seconds, "calls": calls}
    return out


class NoOp:
    """The baseline tracer: receives every event, does nothing."""

    def __call__(self, vm: VMState, event: object, /) -> None:
        return None


def run_types(repeat: int, n: int) -> dict[str, float]:
    include = [w.__file__]

    def under(tracer: Any) -> Callable[[], None]:
        def go() -> None:
            with blocktrace.trace(tracer() if callable(tracer) else tracer, include=include):
                for _ in range(5):
                    w.work(n)
        return go

    out = {}
    out["untraced"] = best(lambda: [w.work(n) for _ in range(5)], repeat)[0]
    out["no-op tracer"] = best(under(NoOp), repeat)[0]
    out["TypeTracer, no loop optimisation"] = best(
        under(lambda: TypeTracer(loop_limit=None)), repeat)[0]
    out["TypeTracer, loop optimisation (K=8)"] = best(
        under(lambda: TypeTracer(loop_limit=8)), repeat)[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blocks-n", type=int, default=30)
    parser.add_argument("--tracefunc-n", type=int, default=200)
    parser.add_argument("--types-n", type=int, default=2000)
    parser.add_argument("--old-venv", default=os.path.join(
        tempfile.gettempdir(), f"blocktrace-bench-oldtools-py{sys.version_info[0]}"
        f"{sys.version_info[1]}"))
    parser.add_argument("--skip-old", action="store_true", help="only our side (no venv)")
    args = parser.parse_args()

    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    python = None if args.skip_old else old_venv(args.old_venv)
    for _ in range(2):  # two interleaved passes, best of each side
        if python is not None:
            o = run_old(python, args.repeat, args.blocks_n, args.tracefunc_n)
            old = o if old is None else _best_of(old, o)
        n = run_new(args.repeat, args.blocks_n, args.tracefunc_n)
        new = n if new is None else _best_of(new, n)
    assert new is not None
    print(f"Python {platform.python_version()}, CPU time, best of {args.repeat} x 2 passes; "
          f"workload views_workload.work({args.blocks_n}) for BlockTrace, "
          f"work({args.tracefunc_n}) for tracefunc\n")
    print("| view | configuration | old tool | ours | ours faster by |")
    print("|---|---|---|---|---|")
    for name, text in CONFIG_TEXT.items():
        ours = new["blocktrace"][name]
        theirs = old["blocktrace"][name] if old else None
        _row("BlockTrace", f"{text}, {ours['blocks']} blocks", theirs, ours)
    save = new["blocktrace"]["readme+save"]
    _row("BlockTrace", "README options + save() of the standard trace",
         old["blocktrace"]["readme"] if old else None, save)
    for name, text in (("targeted", "target_func=stats (1 call)"), ("whole", "fn=work")):
        _row("tracefunc", text, old["tracefunc"][name] if old else None, new["tracefunc"][name])
    types = run_types(args.repeat, args.types_n)
    base = types["no-op tracer"]
    print(f"\nTypeTracer on views_workload.work({args.types_n}) x 5 (include: the workload):\n")
    print("| run | time | / no-op tracer |")
    print("|---|---|---|")
    for name, seconds in types.items():
        print(f"| {name} | {seconds * 1e3:.1f} ms | {seconds / base:.2f} |")
    opt = types["TypeTracer, loop optimisation (K=8)"]
    plain = types["TypeTracer, no loop optimisation"]
    print(f"\nloop optimisation: {plain / opt:.1f}x faster than without it")


def _best_of(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in a.items() if not isinstance(v, dict)}
    for tool in ("blocktrace", "tracefunc"):
        out[tool] = {
            name: min(a[tool][name], b[tool][name], key=lambda r: r["seconds"])
            for name in a[tool]
        }
    return out


def _row(view: str, text: str, theirs: dict[str, Any] | None, ours: dict[str, Any]) -> None:
    ours_s = ours["seconds"]
    if theirs is None:
        print(f"| {view} | {text} | - | {ours_s * 1e3:.1f} ms | - |")
        return
    theirs_s = theirs["seconds"]
    print(f"| {view} | {text} | {theirs_s * 1e3:.1f} ms | {ours_s * 1e3:.1f} ms | "
          f"{theirs_s / ours_s:.1f}x |")


if __name__ == "__main__":
    main()
