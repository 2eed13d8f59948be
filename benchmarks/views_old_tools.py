"""The old tools' side of bench_views.py: run INSIDE their own virtual environment
(blocktrace==0.0.16 with tracewrapper and deepdiff, tracefunc with fastcore),
never with the project's blocktrace importable.  Prints one JSON object.

    OLDVENV/bin/python benchmarks/views_old_tools.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import views_workload as w
from tracefunc import tracefunc

from blocktrace import blocktrace  # the 0.0.16 package of the old tools' venv

CONFIGS = {
    "readme": {"_globals": "changes", "_locals": "on", "_builtins": "changes"},
    "defaults": {"_globals": "On", "_locals": "On", "_builtins": "Off"},
    "locals": {"_globals": "off", "_locals": "on", "_builtins": "off"},
}


def best(fn, repeat):
    result, times = None, []
    for _ in range(repeat):
        t = time.process_time()
        result = fn()
        times.append(time.process_time() - t)
    return min(times), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blocks-n", type=int, default=30)
    parser.add_argument("--tracefunc-n", type=int, default=200)
    args = parser.parse_args()
    out = {"python": sys.version.split()[0], "blocktrace": {}, "tracefunc": {}}
    for name, options in CONFIGS.items():
        def run(options=options):
            example = blocktrace.BlockTrace("bench", **options)
            example.start()
            w.work(args.blocks_n)
            example.stop()
            return len(example.block)

        seconds, blocks = best(run, args.repeat)
        out["blocktrace"][name] = {"seconds": seconds, "blocks": blocks}

    def targeted():
        return len(tracefunc(w.work, args.tracefunc_n, target_func=w.stats))

    def whole():
        return len(tracefunc(w.work, args.tracefunc_n))

    for name, fn in (("targeted", targeted), ("whole", whole)):
        seconds, calls = best(fn, args.repeat)
        out["tracefunc"][name] = {"seconds": seconds, "calls": calls}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
