"""``blocktrace view --html``: one self-contained page with the data blob, and the
bound it refuses past (real traces, the real command)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from blocktrace.view.html import MAX_HTML_STEPS

from .api_support import PROGRAM, REFDATA, record


def _blob(page: Path) -> dict:  # type: ignore[type-arg]
    text = page.read_text()
    found = re.search(
        r'<script[^>]*id="blocktrace-data"[^>]*>(.*?)</script>', text, re.S)
    assert found, text[:500]
    return json.loads(found.group(1))  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOCKTRACE_VIEW_CACHE", str(tmp_path / "cache"))


def test_html_holds_every_step_call_and_source(
    tmp_path: Path, blocktrace_cli: object
) -> None:
    trace = record(tmp_path)
    page = tmp_path / "out.html"
    proc = blocktrace_cli("view", "--html", page, trace, timeout=120)  # type: ignore[operator]
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert not re.search(r'(?:src|href)="(?:https?:)?//', text)  # nothing from the network
    data = _blob(page)
    assert set(data) >= {"meta", "verify", "steps", "calls", "sources", "diff"}
    meta = data["meta"]["traces"][0]
    assert data["meta"]["mode"] == "trace" and data["diff"] is None
    assert len(data["steps"][0]) == meta["steps"] > 0
    assert [s["step"] for s in data["steps"][0]] == list(range(meta["steps"]))
    assert data["verify"][0]["status"] == "sealed"
    assert [c["function"] for c in data["calls"][0]].count("add") == 4
    (source,) = data["sources"][0].values()
    assert source["text"] == PROGRAM
    assert proc.stderr.strip().endswith(str(page))


def test_html_of_a_diff_carries_both_traces_and_the_diff(
    tmp_path: Path, blocktrace_cli: object
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = record(tmp_path / "a")
    b = record(tmp_path / "b", program=PROGRAM.replace("range(4)", "range(3)"))
    page = tmp_path / "diff.html"
    proc = blocktrace_cli("view", "--html", page, a, b, timeout=120)  # type: ignore[operator]
    assert proc.returncode == 0, proc.stderr
    data = _blob(page)
    assert data["meta"]["mode"] == "diff" and len(data["steps"]) == 2
    assert data["diff"]["status"] == "done" and data["diff"]["equal"] is False


def test_html_of_a_client_trace(tmp_path: Path, blocktrace_cli: object) -> None:
    trace = REFDATA / "revm" / "negative_refund.jsonl"
    if not trace.exists():
        pytest.skip(f"reference traces absent ({trace})")
    page = tmp_path / "revm.html"
    proc = blocktrace_cli("view", "--html", page, trace, timeout=120)  # type: ignore[operator]
    assert proc.returncode == 0, proc.stderr
    data = _blob(page)
    assert data["meta"]["traces"][0]["dialect"] == "revm"
    assert data["verify"][0]["status"] == "unchained"
    assert data["steps"][0][0]["stack"] == []


def test_html_refuses_a_trace_over_its_bound(
    tmp_path: Path, blocktrace_cli: object, one_line_error: object
) -> None:
    loops = MAX_HTML_STEPS // 5
    big = record(tmp_path, "--no-embed-source", name="big",
                 program=f"x = 0\nfor i in range({loops}):\n    x = i\n")
    page = tmp_path / "big.html"
    proc = blocktrace_cli("view", "--html", page, big, timeout=300)  # type: ignore[operator]
    one_line_error(proc)  # type: ignore[operator]
    assert proc.returncode == 2
    assert f"over the {MAX_HTML_STEPS} a --html page holds" in proc.stderr
    assert not page.exists()


def test_html_does_not_overwrite_without_force(
    tmp_path: Path, blocktrace_cli: object, one_line_error: object
) -> None:
    trace = record(tmp_path)
    page = tmp_path / "out.html"
    page.write_text("mine")
    proc = blocktrace_cli("view", "--html", page, trace, timeout=120)  # type: ignore[operator]
    one_line_error(proc)  # type: ignore[operator]
    assert page.read_text() == "mine"
    proc = blocktrace_cli("view", "--html", trace, trace, timeout=120)  # type: ignore[operator]
    assert proc.returncode == 2
    assert trace.read_bytes().startswith(b'{"blocktrace"')
