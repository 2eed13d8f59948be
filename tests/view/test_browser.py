"""The viewer's page in a real browser: Debian's headless Chromium driven by Playwright.

Each test opens a real trace -- one of ours recorded with ``--locals``, a geth and a revm trace
from ``../shared/refdata``, a diff, a ``--html`` page from ``file://`` -- through the real
``blocktrace view`` command, presses keys, clicks, and checks what the page shows. One browser
serves the whole module (the CI budget is tight). Screenshots are kept as artifacts in
``$BLOCKTRACE_SCREENSHOTS`` when set, else in pytest's temporary directory (its path is printed
by ``-s`` and kept by pytest for the last three runs). Where Playwright or Chromium is missing
the tests skip, saying why; Playwright is launched on the system browser, never on one it
downloads (``playwright install`` is not needed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .api_support import PROGRAM, REFDATA, record

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
LOOP_BODY = 9  # PROGRAM's line calling add, entered four times (total: 0, 0, 11, 33, 66)

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")


def _chromium() -> str | None:
    wanted = os.environ.get("BLOCKTRACE_CHROMIUM")
    for name in ((wanted,) if wanted else CHROMIUM):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium: install Debian's package (apt-get install chromium; "
                    ".ci/run does so as root) or set BLOCKTRACE_CHROMIUM")
    with playwright_api.sync_playwright() as driver:
        try:
            launched = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except playwright_api.Error as exc:
            pytest.skip(f"Chromium at {executable} does not start under Playwright: "
                        f"{str(exc).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (kept as CI artifacts when BLOCKTRACE_SCREENSHOTS is set)."""
    chosen = os.environ.get("BLOCKTRACE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("view-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


class Page:
    """One browser tab on the viewer, failing the test on any script error in the page."""

    def __init__(self, browser: Any, url: str, shots: Path, *, dark: bool = False) -> None:
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 720}, color_scheme="dark" if dark else "light")
        self.context.set_default_timeout(60_000)  # waits, not timings: a loaded machine's too
        self.tab = self.context.new_page()
        self.shots = shots
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.tab.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("request", lambda request: self.requests.append(request.url))
        self.tab.goto(url)
        self.tab.wait_for_selector("body[data-ready]", timeout=60_000)

    def step(self) -> int:
        return int(self.tab.get_attribute("body", "data-step") or "-1")

    def press(self, *keys: str) -> int:
        """Press keys one by one, each time waiting until the page has drawn its answer."""
        for key in keys:
            before = self.settled()
            self.tab.keyboard.press(key)
            self.settle(before)
        return self.step()

    def click(self, selector: str) -> int:
        before = self.settled()
        self.tab.click(selector)
        self.settle(before)
        return self.step()

    def settled(self) -> int:
        return int(self.tab.evaluate("window.blocktraceView.settled"))

    def settle(self, before: int) -> None:
        """Wait until the work an input started (navigation, drawing) is done: the page counts
        finished bursts of work in ``settled``."""
        self.tab.wait_for_function(
            "([before]) => { const app = window.blocktraceView;"
            " return app.settled > before && app.pending === 0; }",
            arg=[before], timeout=60_000, polling=20)

    def text(self, selector: str) -> str:
        return self.tab.locator(selector).first.inner_text()

    def op(self, field: str, t: int = 0) -> str:
        return self.text(f'.pane[data-t="{t}"] .op .f-{field}')

    def values(self, t: int = 0) -> dict[str, tuple[str, str]]:
        rows = self.tab.locator(f'.pane[data-t="{t}"] table.values tbody tr')
        out = {}
        for i in range(rows.count()):
            cells = rows.nth(i).locator("th, td")
            if cells.count() == 3:
                out[cells.nth(0).inner_text().replace("≠ ", "")] = (
                    cells.nth(1).inner_text(), cells.nth(2).inner_text())
        return out

    def shoot(self, name: str) -> None:
        self.tab.screenshot(path=str(self.shots / f"{name}.png"))

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("view-traces")
    ours = record(folder, "--locals", "on")
    # B computes add's argument with more ops: its steps part from A's in the loop.
    other = record(folder, "--locals", "on", name="prog_b",
                   program=PROGRAM.replace("i * 11", "i * 11 + (i == 2)"))
    return {"ours": ours, "other": other}


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[..., str]]:
    """``serve(trace, [trace_b])``: the real ``blocktrace view --no-browser``; its URL (one
    server per trace or pair, shared by the module's tests)."""
    servers: list[subprocess.Popen[str]] = []
    urls: dict[tuple[Path, ...], str] = {}

    def start(*paths: Path) -> str:
        if paths not in urls:
            urls[paths] = launch(*paths)
        return urls[paths]

    def launch(*paths: Path) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "blocktrace", "view", "--no-browser", *map(str, paths)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        servers.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/\S+", line)
        if not found:
            proc.kill()
            raise AssertionError(f"no URL from blocktrace view: {line!r} {proc.stderr.read()!r}")
        return found.group(0)

    yield start
    for proc in servers:
        proc.terminate()
        proc.wait(timeout=60)


def _refdata(client: str, test: str) -> Path:
    path = REFDATA / client / f"{test}.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/refdata holds the client traces)")
    return path


def _head(trace: Path) -> str:
    from blocktrace.format import TraceReader

    head = TraceReader(str(trace)).verify().head
    assert head
    return head


# -- our trace, served ---------------------------------------------------------------------


def test_stepping_our_trace_by_keys(browser: Any, serve: Callable[..., str],
                                    traces: dict[str, Path], shots: Path) -> None:
    page = Page(browser, serve(traces["ours"]), shots)
    page.tab.wait_for_selector('#evidence[data-status="sealed"]', timeout=60_000)
    assert _head(traces["ours"]) in page.text("#evidence")
    assert "valid and sealed" in page.text("#evidence")
    assert page.step() == 0
    assert page.press("j", "j", "ArrowRight") == 3
    assert page.op("step") == "3"
    assert page.press("k") == 2
    assert page.press("ArrowLeft") == 1
    # The current source line is marked, the gutter counts each line's entries.
    loop_body = page.tab.locator(f'.source li[data-line="{LOOP_BODY}"] .hits')
    assert loop_body.inner_text() == "4"
    last = page.press("End")
    assert last > 40 and page.op("step") == str(last)
    assert page.press("Home") == 0
    # Step over a call: from the loop body's line into add and back out again.
    page.click(f'.source li[data-line="{LOOP_BODY}"]')
    at_loop = page.step()
    assert page.op("line") == str(LOOP_BODY) and page.op("function") == "main"
    entered = at_loop
    while page.op("function") != "add":
        entered = page.press("j")
    depth_in = int(page.op("depth"))
    out = page.press("o")
    assert out > entered and int(page.op("depth")) == depth_in - 1
    assert page.press("O") < entered
    back = page.press("N")
    assert int(page.op("depth")) <= depth_in - 1 and back < out
    over = page.press("n", "n")
    assert over > back
    page.shoot("ours-stepping")
    page.close()


def test_values_search_and_changed_at(browser: Any, serve: Callable[..., str],
                                      traces: dict[str, Path], shots: Path) -> None:
    page = Page(browser, serve(traces["ours"]), shots)
    page.tab.fill("#search-name", "total")
    page.tab.fill("#search-text", "33")
    page.tab.press("#search-text", "Enter")
    page.tab.wait_for_selector("#search-results li button")
    results = page.tab.locator("#search-results li")
    assert results.count() >= 1
    assert "total = 33" in results.first.inner_text()
    found = int(page.tab.locator("#search-results li button").first.get_attribute("data-step"))
    assert page.click("#search-results li button") == found
    values = page.values()
    assert values["total"][0] == "33"
    assert values["total"][1] == f"step {found}"
    # One op later (same line, same frame) the value is unchanged: "changed at" jumps back to
    # where it last changed, and there the row says it is fresh.
    function = page.op("function")  # add's total becomes 33 (11 + 22) before main's does
    page.press("n")
    assert page.op("function") == function
    assert page.values()["total"] == ("33", f"step {found}")
    assert page.tab.locator('table.values tr.changed th:text-is("total")').count() == 0
    page.click('.pane table.values tbody tr:has(th:text-is("total")) button')
    assert page.step() == found
    assert page.tab.locator('table.values tr.changed th:text-is("total")').count() == 1
    page.shoot("ours-search")
    page.close()


def test_search_by_keys_alone(browser: Any, serve: Callable[..., str],
                              traces: dict[str, Path], shots: Path) -> None:
    """`/` as the key list says: the name first, Tab to the text, Enter. It went to the
    text box, so the name stayed empty and the answer was a 400 ("search needs name=")."""
    page = Page(browser, serve(traces["ours"]), shots)
    page.press("/")
    assert page.tab.evaluate("document.activeElement.id") == "search-name"
    page.tab.keyboard.type("total")
    page.tab.keyboard.press("Tab")
    page.tab.keyboard.type("33")
    page.tab.keyboard.press("Enter")
    page.tab.wait_for_selector("#search-results li button")
    assert "total = 33" in page.text("#search-results li")
    # No name: the page says what is missing, without asking the server.
    page.tab.fill("#search-name", "")
    page.tab.press("#search-text", "Enter")
    page.tab.wait_for_selector("#search-results li.muted")
    assert page.text("#search-results") == "type the name of a recorded value first"
    page.close()  # no script error, no failed request logged


def test_timeline_calls_hits_and_exceptions(browser: Any, serve: Callable[..., str],
                                            traces: dict[str, Path], shots: Path) -> None:
    page = Page(browser, serve(traces["ours"]), shots)
    bars = page.tab.locator('.timeline .bar[data-function="add"]')
    assert bars.count() == 4
    second = int(bars.nth(1).get_attribute("data-start"))
    assert page.click('.timeline .bar[data-function="add"] >> nth=1') == second
    assert page.op("function") == "add"
    frames = page.tab.locator(".frames .fn").all_inner_texts()
    assert frames[:3] == ["add", "main", "<module>"]
    # c / Shift+C: the next and previous call of the selected function (add).
    third = int(bars.nth(2).get_attribute("data-start"))
    assert page.press("c") == third
    assert page.press("C", "C") == int(bars.nth(0).get_attribute("data-start"))
    # h: the next entry of the loop body's line (clicked), each iteration once.
    page.press("Home")
    hits = [page.click(f'.source li[data-line="{LOOP_BODY}"]')]
    for _ in range(3):
        hits.append(page.press("h"))
    assert hits == sorted(set(hits)) and len(hits) == 4
    assert page.text("#message").startswith("") and page.press("h") == hits[-1]
    assert "no next hit" in page.text("#message")
    assert page.press("H") == hits[-2]
    # e: the raise, with its error in the op panel and the line marked.
    page.press("Home")
    page.press("e")
    assert "ValueError: boom" in page.op("error")
    assert page.tab.locator(".source li.current.error").count() == 1
    page.shoot("ours-timeline-exception")
    # Clicking the timeline's empty track jumps to that point of the step axis.
    box = page.tab.locator(".timeline .track").first.bounding_box()
    before = page.settled()
    page.tab.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] - 3)
    page.settle(before)
    assert page.step() > hits[-1]
    page.close()


def test_a_call_level_trace_steps_through_calls(browser: Any, serve: Callable[..., str],
                                                tmp_path: Path, shots: Path) -> None:
    """A call-level trace (run --level call): each call and return is a step; the page
    says what it counts (diff and show count only the exceptions); over/out, the stack and
    the timeline work on calls."""
    trace = record(tmp_path, "--level", "call", name="calls")
    page = Page(browser, serve(trace), shots)
    page.tab.wait_for_selector(".step-note:not([hidden])", timeout=60_000)
    assert "a step is a call, a return or an exception" in page.text(".step-note")
    assert page.op("event") == "call" and page.op("function") == "<module>"
    assert page.press("j", "j") == 2
    assert (page.op("event"), page.op("function")) == ("call", "add")
    assert page.op("line") == "1"  # add's first line
    frames = page.tab.locator(".frames .fn").all_inner_texts()
    assert frames[:3] == ["add", "main", "<module>"]
    assert page.press("n") == 3  # over add's call: its return
    assert (page.op("event"), page.op("function")) == ("return", "add")
    bars = page.tab.locator('.timeline .bar[data-function="add"]')
    assert bars.count() == 4
    third = int(bars.nth(2).get_attribute("data-start"))
    assert page.click('.timeline .bar[data-function="add"] >> nth=2') == third
    assert page.op("event") == "call"
    page.press("e")
    assert "ValueError: boom" in page.op("error")
    last = page.press("End")
    assert (page.op("event"), page.op("function")) == ("return", "<module>") and last > 10
    page.shoot("calls-level")
    page.close()


def test_keys_are_listed_and_goto_works(browser: Any, serve: Callable[..., str],
                                        traces: dict[str, Path], shots: Path) -> None:
    page = Page(browser, serve(traces["ours"]), shots, dark=True)
    assert page.tab.locator("#help").is_hidden()
    page.press("?")
    assert page.tab.locator("#help").is_visible()
    listed = page.text("#help")
    for key in ("Shift+N", "Shift+O", "Home", "End", "Shift+E", "Shift+H", "Shift+C", "Esc"):
        assert key in listed
    page.shoot("ours-help-dark")
    page.press("Escape")
    assert page.tab.locator("#help").is_hidden()
    page.press("g")
    page.tab.keyboard.type("17")
    before = page.settled()
    page.tab.keyboard.press("Enter")
    page.settle(before)
    assert page.step() == 17 and page.op("step") == "17"
    # Dark mode: the system's preference is followed.
    background = page.tab.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(x) for x in re.findall(r"\d+", background)[:3]]
    assert sum(channels) < 3 * 80, background
    page.close()


# -- evidence ------------------------------------------------------------------------------


def test_a_trace_changed_while_viewed_is_no_longer_shown_valid(
        browser: Any, serve: Callable[..., str], traces: dict[str, Path], shots: Path,
        tmp_path: Path) -> None:
    """The server answers 409 once the file changed under it, and verify says
    'unusable'; the banner asked verify only until it left 'pending', so it went on
    saying 'valid and sealed' while every step failed to load."""
    copy = tmp_path / "changing.trace.jsonl"
    copy.write_bytes(traces["ours"].read_bytes())
    page = Page(browser, serve(copy), shots)
    page.tab.wait_for_selector('#evidence[data-status="sealed"]', timeout=60_000)
    with copy.open("ab") as f:  # anything written after opening: another ctime, size
        f.write(b"\n")
    page.tab.keyboard.press("n")  # step over: asks the server
    page.tab.wait_for_selector('#evidence[data-status="tampered"]', timeout=60_000)
    assert "UNUSABLE" in page.text("#evidence") and "changed" in page.text("#evidence")
    page.errors = [e for e in page.errors if "409" not in e]  # the refused reads, logged
    page.close()


def test_a_tampered_trace_opens_and_is_never_shown_valid(
        browser: Any, serve: Callable[..., str], traces: dict[str, Path], shots: Path,
        tmp_path: Path) -> None:
    lines = traces["ours"].read_bytes().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if b'"total":33' in line)
    lines[number] = lines[number].replace(b'"total":33', b'"total":34')
    forged = tmp_path / "forged.trace.jsonl"
    forged.write_bytes(b"".join(lines))
    page = Page(browser, serve(forged), shots)
    page.tab.wait_for_selector('#evidence[data-status="tampered"]', timeout=60_000)
    banner = page.text("#evidence")
    assert f"TAMPERED at line {number + 1}" in banner
    assert "valid" not in banner.replace("TAMPERED", "").lower().split("—")[0]
    assert page.press("j") == 1  # still browsable
    page.shoot("tampered")
    page.close()
    # Cut short (as by a crash): intact but unsealed, and said so.
    cut = tmp_path / "cut.trace.jsonl"
    cut.write_bytes(b"".join(traces["ours"].read_bytes().splitlines(keepends=True)[:40]))
    page = Page(browser, serve(cut), shots)
    page.tab.wait_for_selector('#evidence[data-status="unsealed"]', timeout=60_000)
    assert "UNSEALED" in page.text("#evidence")
    assert "sealed ·" not in page.text("#evidence")
    page.close()


# -- client traces -------------------------------------------------------------------------


def test_a_geth_trace(browser: Any, serve: Callable[..., str], shots: Path) -> None:
    trace = _refdata("geth", "negative_refund")
    page = Page(browser, serve(trace), shots)
    page.tab.wait_for_selector('#evidence[data-status="unchained"]')
    assert "no hash chain" in page.text("#evidence")
    assert page.op("op").startswith("PUSH1")
    assert page.press("j", "j") == 2
    # geth's first ops push zeros: the stack panel shows them, top first.
    stack = page.tab.locator('.pane .evm-stack li').all_inner_texts()
    assert stack == ["0x0", "0x0"]
    summary = page.text(".summary-box")
    assert "gasUsed" in summary
    page.press("e")
    assert "invalid opcode" in page.op("error")
    assert page.tab.locator(".source li.op-row.current.error").count() == 1
    page.press("Home")
    page.press("j", "j", "j", "j", "j", "j")  # GAS, then the DELEGATECALL
    seven = page.tab.locator('.pane .evm-stack li').all_inner_texts()
    assert len(seven) == 6 and seven[0].startswith("0x35")  # GAS pushed the gas left
    # Search a client trace's stack: the steps where it came to hold that word.
    page.tab.fill("#search-name", "stack")
    page.tab.fill("#search-text", seven[0])
    page.tab.press("#search-text", "Enter")
    page.tab.wait_for_selector("#search-results li button")
    page.click("#search-results li button >> nth=0")
    assert seven[0] in page.tab.locator(".pane .evm-stack li").all_inner_texts()
    page.shoot("geth")
    page.close()


def test_a_revm_trace(browser: Any, serve: Callable[..., str], shots: Path) -> None:
    trace = _refdata("revm", "negative_refund")
    page = Page(browser, serve(trace), shots)
    page.tab.wait_for_selector('#evidence[data-status="unchained"]')
    first = [json.loads(line) for line in trace.read_text().splitlines()[:3]]
    assert page.op("pc") == str(first[0]["pc"])
    page.press("j")
    assert page.op("pc") == str(first[1]["pc"])
    assert "returndata" in page.text(".evm-box").lower()
    assert page.text(".evm-box .f-refund") != "not recorded"
    page.press("e")
    assert page.op("error")
    page.shoot("revm")
    page.close()


# -- a diff --------------------------------------------------------------------------------


def test_a_diff_side_by_side(browser: Any, serve: Callable[..., str],
                             traces: dict[str, Path], shots: Path) -> None:
    from blocktrace.view.diff import diff_object

    page = Page(browser, serve(traces["ours"], traces["other"]), shots)
    report = diff_object(str(traces["ours"]), str(traces["other"]))  # blocktrace diff's engine
    first = report["firstDivergence"]["aStep"]
    # The page opens at the first divergence, both sources shown, the differing field marked.
    assert page.step() == first
    assert page.tab.locator(".pane").count() == 2
    assert page.tab.locator('.pane[data-t="0"] .source li.current').count() == 1
    assert page.tab.locator('.pane[data-t="1"] .source li.current').count() == 1
    marked = page.tab.locator('.pane[data-t="0"] .op dt.differs').all_inner_texts()
    assert marked and all(m.startswith("≠") for m in marked)
    assert "first divergence at step" in page.text("#diffbar")
    hunks = report["hunks"]
    assert page.tab.locator("#diffbar .hunk").count() == len(hunks)
    assert page.tab.locator("#diffbar .hunk.current").count() == 1
    page.shoot("diff-first-divergence")
    # ] and [ move between hunks; d comes back to the first divergence.
    if len(hunks) > 1:
        assert page.press("]") == hunks[1]["aSteps"][0]
        assert page.press("[") == hunks[0]["aSteps"][0]
    page.press("End")
    assert page.press("d") == first
    # Outside the hunks, B follows A shifted by what the hunks added.
    page.press("Home")
    page.press("j")
    shown_b = page.op("step", t=1)
    assert shown_b == "1"
    # s: the keys step B instead; A follows.
    page.press("s")
    assert page.tab.locator('.pane.active[data-t="1"]').count() == 1
    page.press("j", "j")
    assert page.op("step", t=1) == "3"
    assert page.step() == 3  # before the first divergence the two run in lockstep
    page.close()


def test_a_diff_of_two_client_traces(browser: Any, serve: Callable[..., str],
                                     shots: Path) -> None:
    a = _refdata("geth", "00000936-mixed-1")
    b = _refdata("nethermind", "00000936-mixed-1")
    page = Page(browser, serve(a, b), shots)
    assert page.tab.locator(".pane").count() == 2
    assert page.tab.locator(".pane .evm-stack").count() == 2
    assert "first divergence" in page.text("#diffbar") or "agree" in page.text("#diffbar")
    page.shoot("diff-clients")
    page.close()


# -- the static --html page ----------------------------------------------------------------


def test_the_html_page_works_from_file_without_network(
        browser: Any, traces: dict[str, Path], shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "ours.html"
    proc = _run("view", "--html", out, traces["ours"])
    assert proc.returncode == 0, proc.stderr
    page = Page(browser, out.as_uri(), shots)
    assert all(url.startswith("file://") for url in page.requests), page.requests
    assert page.tab.locator('#evidence[data-status="sealed"]').count() == 1
    assert _head(traces["ours"]) in page.text("#evidence")
    assert page.press("j", "j") == 2
    bars = page.tab.locator('.timeline .bar[data-function="add"]')
    assert bars.count() == 4
    start = int(bars.nth(3).get_attribute("data-start"))
    assert page.click('.timeline .bar[data-function="add"] >> nth=3') == start
    page.tab.fill("#search-name", "total")
    page.tab.fill("#search-text", "33")
    page.tab.press("#search-text", "Enter")
    page.tab.wait_for_selector("#search-results li button")
    assert "total = 33" in page.text("#search-results")
    page.press("Escape", "Home")  # Esc leaves the search box: keys move the page again
    page.press("e")
    assert "ValueError" in page.op("error")
    page.press("Home")
    hit = page.click(f'.source li[data-line="{LOOP_BODY}"]')
    assert page.press("h") > hit
    assert page.tab.locator(f'.source li[data-line="{LOOP_BODY}"] .hits').inner_text() == "4"
    page.shoot("html-file")
    assert all(url.startswith("file://") for url in page.requests), page.requests
    page.close()


def test_the_html_page_of_a_diff(browser: Any, traces: dict[str, Path], shots: Path,
                                 tmp_path: Path) -> None:
    out = tmp_path / "diff.html"
    proc = _run("view", "--html", out, traces["ours"], traces["other"])
    assert proc.returncode == 0, proc.stderr
    page = Page(browser, out.as_uri(), shots)
    assert "first divergence at step" in page.text("#diffbar")
    assert page.tab.locator(".pane").count() == 2
    page.shoot("html-diff")
    page.close()
