"""Layers read one way (issue 12): no import cycle between blocktrace's packages,
even a lazy one inside a function, and the lower layers import only what they
may (chain/ and format/ never reach the stepper)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import blocktrace

ROOT = Path(blocktrace.__file__).parent
PACKAGES = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "blocktrace" or len(parts) < 2 or parts[1] not in PACKAGES:
        return None
    return parts[1]


def _graph() -> dict[str, set[str]]:
    """Package -> packages its modules import (any import statement, anywhere)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    target = _package(name)
                    if target is not None and target != package:
                        edges[package].add(target)
    return edges


def test_no_import_cycle_between_packages() -> None:
    edges = _graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for package in PACKAGES:
        if package not in state:
            visit(package, [])


def test_the_lower_layers_import_only_what_they_may() -> None:
    edges = _graph()
    assert edges.get("format", set()) == set(), "format/ is the bottom: it imports no package"
    assert edges.get("chain", set()) <= {"format"}, "chain/ works on bytes: it knows no vm"
    assert edges.get("eip3155", set()) <= {"format"}, "the differ never needs the program"
    assert edges.get("events", set()) == set()


_IMPORT_EACH_FIRST = """
import importlib, sys

failed = []
covered = set()
for module in sys.argv[1:]:  # sorted: a package comes before its submodules
    if module in covered:
        continue
    for name in [n for n in sys.modules if n == "blocktrace" or n.startswith("blocktrace.")]:
        del sys.modules[name]
    try:
        importlib.import_module(module)
    except Exception as exc:
        failed.append(f"{module}: {exc!r}")
        continue
    # Importing a submodule first runs its packages' __init__ to their end before it: a
    # submodule that this package's import loaded is imported first exactly as this was.
    covered.update(n for n in sys.modules if n.startswith(module + "."))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_each_module_imports_first() -> None:
    """Imported first into an interpreter with no blocktrace module loaded, every
    module loads (a cycle shows up as an ImportError only when the right module
    comes first)."""
    modules = sorted(
        "blocktrace." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(
            ".__init__"
        )
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
    )
    done = subprocess.run([sys.executable, "-c", _IMPORT_EACH_FIRST, *modules],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
