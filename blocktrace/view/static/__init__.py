"""The viewer's page: plain ES modules and CSS written here, no build step, nothing fetched.

Served by ``blocktrace view`` as files (:func:`asset`), the page loads ``static/main.js`` as a
module and asks the server's JSON endpoints for windows of the trace. For ``--html`` the same
files become one self-contained page (:func:`inline_page`): Chromium does not load module
scripts from ``file://``, so the modules are bundled into one classic script here, in Python, by
a deliberately small rule set the modules keep to:

- imports are whole lines ``import { a, b as c } from "./name.js";`` (relative, this folder);
- exports are declarations ``export function|async function|const|let|class NAME``;
- no ``export default``, no ``export { … }``, no import cycles, no ``</`` in the code.

Each module becomes a function whose result is its exports, called in dependency order, so
module-private names stay private as they are under a real module loader.
"""

from __future__ import annotations

import json
import re
from importlib import resources

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
ENTRY = "main.js"
_NAME = re.compile(r"[a-z][a-z0-9_-]*\.(?:html|js|css)")
_IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"\./([a-z][a-z0-9_-]*\.js)";\s*$', re.M)
_EXPORT = re.compile(
    r"^export\s+(?:(async\s+)?function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)", re.M)
_FORBIDDEN = re.compile(r"^\s*(?:import\b|export\s+(?:default|\{|\*))", re.M)


def asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of the page file ``name`` (``index.html``, ``main.js``, …),
    or None for any name that is not a file of this folder: the server serves nothing else."""
    if not _NAME.fullmatch(name):
        return None
    path = resources.files(__name__).joinpath(name)
    if not path.is_file():
        return None
    return path.read_bytes(), CONTENT_TYPES[name[name.rindex(".") :]]


def _text(name: str) -> str:
    found = asset(name)
    if found is None:
        raise FileNotFoundError(f"blocktrace.view.static: no page file {name!r}")
    return found[0].decode("utf-8")


def _module_order(entry: str) -> list[str]:
    """The modules reachable from ``entry``, each after every module it imports."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"blocktrace.view.static: import cycle through {name}")
        visiting.append(name)
        for match in _IMPORT.finditer(_text(name)):
            visit(match.group(2))
        visiting.pop()
        order.append(name)

    visit(entry)
    return order


def _module_function(name: str) -> str:
    source = _text(name)

    def as_const(match: re.Match[str]) -> str:
        names = []
        for part in match.group(1).split(","):
            words = part.split()
            if len(words) == 3 and words[1] == "as":
                names.append(f"{words[0]}: {words[2]}")
            elif len(words) == 1:
                names.append(words[0])
            elif words:
                raise ValueError(f"blocktrace.view.static: {name}: cannot bundle import {part!r}")
        return f"const {{ {', '.join(names)} }} = modules[{json.dumps(match.group(2))}];"

    body = _IMPORT.sub(as_const, source)
    exported = [match.group(2) for match in _EXPORT.finditer(body)]
    body = _EXPORT.sub(lambda match: match.group(0)[len("export") :].lstrip(), body)
    bad = _FORBIDDEN.search(body)
    if bad:
        raise ValueError(f"blocktrace.view.static: {name}: cannot bundle {bad.group(0).strip()!r}")
    return (
        f"modules[{json.dumps(name)}] = (() => {{\n{body}\n"
        f"return {{ {', '.join(exported)} }};\n}})();\n"
    )


def bundle(entry: str = ENTRY) -> str:
    """The modules reachable from ``entry`` as one classic script (see the module's rules)."""
    parts = [_module_function(name) for name in _module_order(entry)]
    script = '(() => {\n"use strict";\nconst modules = {};\n' + "".join(parts) + "})();\n"
    if "</" in script:
        raise ValueError("blocktrace.view.static: '</' in a module would end the inline script")
    return script


# The served page may load its own files; the static one nothing but what is inlined.
_SERVED_POLICY = "default-src 'self'; img-src 'self' data:"
_INLINE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
)


def inline_page(data: bytes, title: str) -> bytes:
    """One self-contained HTML page showing ``data`` (the JSON of ``{meta, verify, steps, calls,
    sources, diff}``, see docs/VIEW.md), with the CSS and the bundled script inlined: it works
    from ``file://`` and fetches nothing."""
    html = _text("index.html")
    css = _text("view.css")
    if "</" in css:
        raise ValueError("blocktrace.view.static: '</' in the stylesheet would end its element")
    # '<' occurs in JSON only inside strings, where \u003c means the same character: the data
    # can then never end the script element it sits in.
    payload = data.decode("utf-8").replace("<", "\\u003c")
    swaps = {
        f'content="{_SERVED_POLICY}"': f'content="{_INLINE_POLICY}"',
        "<title>blocktrace view</title>": f"<title>{_escape(title)}</title>",
        '<link rel="stylesheet" href="static/view.css">': f"<style>\n{css}</style>",
        '<script type="module" src="static/main.js"></script>': (
            f'<script id="blocktrace-data" type="application/json">{payload}</script>\n'
            f"<script>\n{bundle()}</script>"
        ),
    }
    for old, new in swaps.items():
        if old not in html:
            raise ValueError(f"blocktrace.view.static: index.html lacks {old!r}")
        html = html.replace(old, new)
    return html.encode("utf-8")


def _escape(text: str) -> str:
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        text = text.replace(char, entity)
    return text
