"""``blocktrace view --html OUT.html``: one self-contained page, no server.

The page is the viewer's own (``static/index.html`` with its CSS and ES
modules inlined by ``blocktrace.view.static.inline_page``) plus one JSON object,
``{meta, verify, steps, calls, sources, diff}`` (docs/VIEW.md), in a
``<script type="application/json" id="blocktrace-data">`` element; the page's
local backend answers the API's questions from it.  Everything is in the
file: it works from ``file://`` with no network.  Traces over
:data:`MAX_HTML_STEPS` steps (or :data:`MAX_HTML_BYTES` of trace) are refused:
the page would hold them whole.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import msgspec

from blocktrace.format.callline import json_text
from blocktrace.view.model import MAX_WINDOW, BadRequest, Model, TraceModel
from blocktrace.view.session import Session

__all__ = ["MAX_HTML_BYTES", "MAX_HTML_STEPS", "HtmlTooLarge", "HtmlUnreadable", "html_data",
           "write_html"]

MAX_HTML_STEPS = 100_000
"""Steps (of each trace) a ``--html`` page holds at most."""
MAX_HTML_BYTES = 64 << 20
"""Bytes of trace (each) a ``--html`` page holds at most."""

class HtmlTooLarge(ValueError):
    """The trace is over the bound a static page holds; ``str()`` is the one line."""


class HtmlUnreadable(ValueError):
    """The trace's steps cannot be read for a page; ``str()`` is the one line and
    ``status`` verify's exit status for the file (1: TAMPERED, else 2)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _meta(model: Model) -> dict[str, Any]:
    """``model.meta()``; a trace whose tables cannot be built (a line past where it
    is TAMPERED is not a trace line) is said as verify says it."""
    try:
        meta = model.meta()
        if meta.get("error"):  # (the tables could not be built: meta says why)
            raise BadRequest(f"{model.path}: {meta['error']}")
        return meta
    except BadRequest as exc:
        verdict = _final_verify(model)
        if verdict["status"] == "tampered":
            raise HtmlUnreadable(
                f"{model.path} is TAMPERED at line {verdict['line']} (blocktrace verify says "
                f"why): its steps cannot be read for a page ({exc})", 1) from None
        raise HtmlUnreadable(str(exc), 2) from None


def _all_steps(model: Model, total: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    while len(steps) < total:
        got = model.window(len(steps), MAX_WINDOW)
        if not got:
            break
        steps.extend(got)
    return steps


def _trace_data(model: Model) -> dict[str, Any]:
    size = os.path.getsize(model.path)
    if size > MAX_HTML_BYTES:
        raise HtmlTooLarge(
            f"{model.path}: {size} bytes is over the {MAX_HTML_BYTES >> 20} MiB a --html page "
            "holds; view it with the server (blocktrace view without --html)")
    if isinstance(model, TraceModel):
        model.wait()
    meta = _meta(model)
    total = meta["steps"] or 0
    if total > MAX_HTML_STEPS:
        raise HtmlTooLarge(
            f"{model.path}: {total} steps is over the {MAX_HTML_STEPS} a --html page holds; "
            "view it with the server (blocktrace view without --html)")
    timeline = model.timeline(0, max(0, total - 1), max(1, total))
    sources = {file: model.source(file) for file in meta.get("files") or []}
    return {
        "meta": meta,
        "verify": _final_verify(model),
        "steps": _all_steps(model, total),
        "calls": timeline["calls"],
        "sources": sources,
    }


def _final_verify(model: Model) -> dict[str, Any]:
    if isinstance(model, TraceModel):
        model._verify.done.wait()
    return model.verify()


def html_data(models: list[Model]) -> dict[str, Any]:
    """The JSON object a ``--html`` page carries (docs/VIEW.md)."""
    session = Session(models)
    traces = [_trace_data(model) for model in models]
    return {
        "meta": {"mode": session.mode, "traces": [t["meta"] for t in traces]},
        "verify": [t["verify"] for t in traces],
        "steps": [t["steps"] for t in traces],
        "calls": [t["calls"] for t in traces],
        "sources": [t["sources"] for t in traces],
        "diff": session.diff(wait=None) if session.mode == "diff" else None,
    }


def _page(data: dict[str, Any], title: str) -> bytes:
    """The page with ``data`` embedded: the viewer's own inliner
    (``blocktrace.view.static.inline_page``: modules bundled, CSS inlined, the
    no-network CSP), or a bare page showing the data when it is not installed."""
    blob = msgspec.json.encode(data)
    try:
        static = importlib.import_module("blocktrace.view.static")
    except ImportError:
        static = None
    inline_page = getattr(static, "inline_page", None)
    if inline_page is not None:
        page: bytes = inline_page(blob, title)
        return page
    escaped = blob.replace(b"<", b"\\u003c")
    return _BARE_PAGE.replace(b"<!--DATA-->", escaped)


_BARE_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>blocktrace view</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'">
<script type="application/json" id="blocktrace-data"><!--DATA--></script></head>
<body><h1>blocktrace view</h1><pre id="out"></pre>
<script>
const data = JSON.parse(document.getElementById("blocktrace-data").textContent);
document.getElementById("out").textContent = JSON.stringify(data.meta, null, 2);
</script></body></html>
"""


def write_html(models: list[Model], out: str) -> None:
    """Write the self-contained page for ``models`` to ``out`` (HtmlTooLarge:
    over the bound)."""
    title = "blocktrace view: " + " vs ".join(json_text(os.path.basename(m.path)) for m in models)
    page = _page(html_data(models), title)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(page)
    os.replace(tmp, out)
