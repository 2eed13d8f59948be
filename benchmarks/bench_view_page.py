"""The viewer's page in a real browser: how soon a ``--html`` page and a served page are usable.

    python benchmarks/bench_view_page.py [--rounds 250] [--loads 7]

Records a small program with ``--locals on`` (``--rounds`` loop rounds, about 20 trace lines
each: the default gives about 5,000 lines; 500 about 10,000), writes ``blocktrace view --html``
of it, and opens it ``--loads`` times in Debian's headless Chromium (Playwright launched on the
system browser), timing from navigation to the first step drawn and to the page being ready
(timeline drawn, evidence shown). Then the same against ``blocktrace view --no-browser`` (the
server answering windows). Prints Markdown: median and worst of the loads. Figures go to
docs/PERFORMANCE.md as measured; never timed assertions.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROGRAM = """\
def step(x):
    y = x * 3 + 1
    return y % 1000


def main(rounds):
    total = 0
    for i in range(rounds):
        total = step(total + i)
    return total


print(main({rounds}))
"""


def blocktrace(*args: str | Path, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"blocktrace {args[0]} failed: {proc.stderr.strip()}")


def loads(browser: Any, url: str, times: int) -> tuple[list[float], list[float]]:
    """Seconds from navigation to the first step drawn, and to ready, for each load."""
    first, ready = [], []
    for _ in range(times):
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector("body[data-step]", timeout=60_000)
        first.append(time.perf_counter() - start)
        page.wait_for_selector("body[data-ready]", timeout=60_000)
        ready.append(time.perf_counter() - start)
        page.close()
    return first, ready


def row(what: str, first: list[float], ready: list[float]) -> str:
    ms = lambda values: f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f}"  # noqa: E731
    return f"| {what} | {ms(first)} | {ms(ready)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=250)
    parser.add_argument("--loads", type=int, default=7)
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("needs Playwright: pip install -e '.[test]'") from None
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "prog.py").write_text(PROGRAM.format(rounds=args.rounds))
        trace = work / "prog.trace.jsonl"
        blocktrace("run", "--locals", "on", "-o", trace, "prog.py", cwd=work)
        lines = sum(1 for _ in trace.open("rb"))
        page = work / "prog.html"
        blocktrace("view", "--html", page, trace, cwd=work)
        server = subprocess.Popen(
            [sys.executable, "-m", "blocktrace", "view", "--no-browser", str(trace)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
        try:
            assert server.stdout is not None
            url = re.search(r"http://\S+", server.stdout.readline())
            if url is None:
                raise SystemExit("blocktrace view printed no URL")
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                html = loads(browser, page.as_uri(), args.loads)
                served = loads(browser, url.group(0), args.loads)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
        size = page.stat().st_size
    print(f"Python {platform.python_version()}, {chromium} headless, {args.loads} loads each; "
          f"a trace of {lines:,} lines recorded with --locals on ({size / 1e6:.1f} MB of HTML)\n")
    print("| page | first step drawn, ms (median / worst) | ready, ms (median / worst) |")
    print("|---|---|---|")
    print(row("`--html` from file://", *html))
    print(row("served by `blocktrace view`", *served))


if __name__ == "__main__":
    main()
