"""``blocktrace view --html OUT.html``: one self-contained page, no server.

The page is the viewer's own (``static/index.html`` with its CSS and ES
modules inlined by :func:`inline_page`) plus one JSON object,
``{meta, verify, steps, calls, sources, diff}`` (docs/VIEW.md), in a
``<script type="application/json" id="blocktrace-data">`` element; the page's
local backend answers the API's questions from it.  Everything is in the
file: it works from ``file://`` with no network.  Traces over
:data:`MAX_HTML_STEPS` steps (or :data:`MAX_HTML_BYTES` of trace) are refused:
the page would hold them whole.
"""

from __future__ import annotations

import os
import re
from typing import Any

import msgspec

from blocktrace.view.model import MAX_WINDOW, Model, TraceModel
from blocktrace.view.session import Session

__all__ = ["MAX_HTML_BYTES", "MAX_HTML_STEPS", "HtmlTooLarge", "html_data", "inline_page",
           "write_html"]

MAX_HTML_STEPS = 100_000
"""Steps (of each trace) a ``--html`` page holds at most."""
MAX_HTML_BYTES = 64 << 20
"""Bytes of trace (each) a ``--html`` page holds at most."""

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class HtmlTooLarge(ValueError):
    """The trace is over the bound a static page holds; ``str()`` is the one line."""


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
    meta = model.meta()
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


def _script_json(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</``, no ``<!--``)."""
    text = msgspec.json.encode(obj).decode()
    return (text.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


_CSP = re.compile(r'<meta\s+http-equiv="Content-Security-Policy"[^>]*>')
_INLINE_CSP = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
)
"""The served page allows only its own files; the inlined one only its inline
script and style (and still nothing from the network)."""
_LINK = re.compile(r'<link\s+rel="stylesheet"\s+href="([^"]+)"\s*/?>')
_MODULE = re.compile(r'<script\s+type="module"\s+src="([^"]+)"\s*>\s*</script>')
_IMPORT = re.compile(r"""^\s*import\s+(?:[\w*{}\s,]+\s+from\s+)?["'](\./[^"']+)["'];?\s*$""",
                     re.MULTILINE)
_EXPORT = re.compile(r"^export\s+(?=(?:async\s+)?function|const|let|class)", re.MULTILINE)


def _read_static(relative: str) -> str:
    """A file of the page, named as index.html names it (``static/x.css``) or
    relative to the static directory (``x.js``)."""
    relative = relative.removeprefix("static/")
    root = os.path.realpath(STATIC_DIR)
    target = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([root, target]) != root:
        raise ValueError(f"{relative}: outside the viewer's static files")
    with open(target, encoding="utf-8") as f:
        return f.read()


def _bundle(entry: str) -> str:
    """The ES module ``entry`` and what it imports (relative ``./x.js``), as one
    script: modules in dependency order, ``import`` lines dropped and
    ``export`` keywords removed.  The page's modules keep to that subset
    (named imports of top-level names unique across modules)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        text = _read_static(name)
        base = os.path.dirname(name)
        for match in _IMPORT.finditer(text):
            visit(os.path.normpath(os.path.join(base, match.group(1))))
        order.append(name)

    visit(entry.removeprefix("static/"))
    parts = []
    for name in order:
        text = _EXPORT.sub("", _IMPORT.sub("", _read_static(name)))
        parts.append(f"// --- {name}\n{text}")
    return "\n".join(parts).replace("</script", "<\\/script")


def inline_page(data: dict[str, Any]) -> str:
    """The viewer's page with its CSS and modules inlined and ``data`` embedded."""
    blob = f'<script type="application/json" id="blocktrace-data">{_script_json(data)}</script>'
    try:
        page = _read_static("index.html")
    except OSError:
        return _TRIVIAL_PAGE.replace("<!--DATA-->", blob)
    page = _CSP.sub(_INLINE_CSP, page)
    page = _LINK.sub(lambda m: f"<style>\n{_read_static(m.group(1))}\n</style>", page)
    page = _MODULE.sub(lambda m: f'<script type="module">\n{_bundle(m.group(1))}\n</script>',
                       page)
    if "</head>" in page:
        return page.replace("</head>", blob + "\n</head>", 1)
    return blob + page


_TRIVIAL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>blocktrace view</title>
<!--DATA--></head>
<body><h1>blocktrace view</h1><pre id="out"></pre>
<script>
const data = JSON.parse(document.getElementById("blocktrace-data").textContent);
document.getElementById("out").textContent = JSON.stringify(data.meta, null, 2);
</script></body></html>
"""


def write_html(models: list[Model], out: str) -> None:
    """Write the self-contained page for ``models`` to ``out`` (HtmlTooLarge:
    over the bound)."""
    page = inline_page(html_data(models))
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, out)
