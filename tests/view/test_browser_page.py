"""The page's files and the ``--html`` inliner, without a browser (test_browser.py runs them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from blocktrace.view.static import asset, bundle, inline_page

STATIC = Path(__file__).resolve().parents[2] / "blocktrace" / "view" / "static"


def test_only_the_page_files_are_served() -> None:
    page = asset("index.html")
    assert page is not None and page[1].startswith("text/html")
    script = asset("main.js")
    assert script is not None and script[1].startswith("text/javascript")
    for name in ("__init__.py", "../__init__.py", "x/../main.js", "/etc/passwd", "missing.js",
                 "Main.js", ".hidden.js", "main.js/", ""):
        assert asset(name) is None, name


def test_every_module_is_in_the_bundle_each_in_its_own_scope() -> None:
    script = bundle()
    modules = sorted(path.name for path in STATIC.glob("*.js"))
    for name in modules:
        assert f'modules["{name}"] = (() => {{' in script, name
    # Imports became reads of the imported module's exports; no module syntax is left.
    assert not re.search(r"^\s*(import|export)\b", script, re.M)
    assert script.index('modules["dom.js"]') < script.index('modules["main.js"]')


def test_the_inlined_page_holds_its_data_and_fetches_nothing() -> None:
    data = {"meta": {"mode": "trace", "traces": []}, "verify": [], "steps": [[{
        "step": 0, "values": {"locals": {"s": "</script><script>alert(1)</script><!--"}}}]],
        "calls": [[]], "sources": [{}], "diff": None}
    html = inline_page(json.dumps(data).encode(), "a <b> & c").decode()
    assert html.count("<script") == 2 and html.count("</script>") == 2
    found = re.search(r'<script id="blocktrace-data" type="application/json">(.*?)</script>',
                      html, re.S)
    assert found is not None and json.loads(found.group(1)) == data
    assert "<title>a &lt;b&gt; &amp; c</title>" in html
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert policy is not None and policy.group(1).startswith("default-src 'none'")
    # Nothing refers to another file: no src or href but inline data.
    assert re.findall(r'(?:src|href)="([^"]*)"', html) == ["data:,"]
    assert 'type="module"' not in html


@pytest.mark.parametrize("name", ["index.html", "view.css"])
def test_no_page_file_reaches_the_network(name: str) -> None:
    text = (STATIC / name).read_text()
    assert not re.search(r"https?://", text)
    assert "@import" not in text and "url(" not in text


def test_the_bundle_is_one_valid_classic_script(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to check the bundle's syntax (the browser tests run it)")
    script = tmp_path / "bundle.js"
    script.write_text(bundle())
    proc = subprocess.run([node, "--check", str(script)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_docs_list_every_key_the_page_knows() -> None:
    keys = re.findall(r'label: "([^"]*)", what: "([^"]*)"',
                      (STATIC / "keys.js").read_text())
    assert len(keys) > 15
    docs = (STATIC.parents[2] / "docs" / "VIEW.md").read_text()
    for label, what in keys:
        shown = " or ".join(f"`{key}`" for key in label.split(" or "))
        assert f"| {shown} | {what} |" in docs, label
