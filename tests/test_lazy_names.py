"""The packages that load their names on first use (PEP 562) list each name three
times: imported under ``TYPE_CHECKING`` (for mypy and ruff), in ``_HOMES`` (where
``__getattr__`` finds it) and in ``__all__``.  Nothing but this test keeps the
three lists the same: a name missing from ``_HOMES`` is an ``AttributeError`` at
run time that mypy never sees."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import blocktrace

PACKAGES = ["blocktrace", "blocktrace.format", "blocktrace.snapshot"]
"""Every package of blocktrace with a module ``__getattr__`` (found below)."""

ROOT = Path(blocktrace.__file__).parent


def _source(package: str) -> str:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    return Path(module.__file__).read_text(encoding="utf-8")


def _literal(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            assert node.value is not None  # type: ignore[attr-defined]
            return ast.literal_eval(node.value)  # type: ignore[attr-defined]
    raise AssertionError(f"no {name} at module level")


def _typing_imports(tree: ast.Module) -> dict[str, str]:
    """name -> module of each ``from M import name`` under ``if TYPE_CHECKING:``
    (``typing`` itself left out)."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module != "typing":
                    assert stmt.module is not None and stmt.level == 0
                    for alias in stmt.names:
                        found[alias.asname or alias.name] = stmt.module
    return found


def _globals_defined(tree: ast.Module) -> set[str]:
    """Names bound at module level by plain assignment (``__version__``)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def drift(package: str, source: str) -> list[str]:
    """What is wrong between the three lists of ``package`` (whose ``__init__``
    is ``source``); empty when they agree."""
    tree = ast.parse(source)
    homes = _literal(tree, "_HOMES")
    exported = _literal(tree, "__all__")
    assert isinstance(homes, dict) and isinstance(exported, list)
    homes = {
        name: home if home.startswith("blocktrace") else f"{package}.{home}"
        for name, home in homes.items()
    }
    typed = _typing_imports(tree)
    own = _globals_defined(tree)
    problems = []
    if len(set(exported)) != len(exported):
        problems.append(f"__all__ repeats {sorted(n for n in exported if exported.count(n) > 1)}")
    lazy = set(exported) - own
    for name in sorted(lazy - set(homes)):
        problems.append(f"{name} is in __all__ but not in _HOMES")
    for name in sorted(set(homes) - lazy):
        problems.append(f"{name} is in _HOMES but not in __all__")
    for name in sorted(set(homes) | set(typed)):
        if homes.get(name) != typed.get(name):
            problems.append(
                f"{name}: _HOMES says {homes.get(name)}, TYPE_CHECKING imports it from "
                f"{typed.get(name)}"
            )
    return problems


def test_the_packages_listed_are_all_that_load_lazily() -> None:
    lazy = set()
    for init in ROOT.rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
            parts = init.parent.relative_to(ROOT.parent).parts
            lazy.add(".".join(parts))
    assert lazy == set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_three_lists_agree(package: str) -> None:
    assert drift(package, _source(package)) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_resolves_to_its_home_modules_object(package: str) -> None:
    module = importlib.import_module(package)
    tree = ast.parse(_source(package))
    homes = _literal(tree, "_HOMES")
    assert isinstance(homes, dict)
    for name, home in homes.items():
        home = home if home.startswith("blocktrace") else f"{package}.{home}"
        assert getattr(module, name) is getattr(importlib.import_module(home), name), name
    for name in module.__all__:
        getattr(module, name)
    # dir() lists the names not loaded yet too (a module __dir__ beside __getattr__)
    assert "__dir__" in vars(module), f"{package} has __getattr__ but no __dir__"
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        _ = module.no_such_name


def _with_name_added(source: str, where: str) -> str:
    """``source`` with one more name in one of its three lists."""
    tree = ast.parse(source)
    for node in tree.body:
        if where == "TYPE_CHECKING" and isinstance(node, ast.If):
            node.body.append(ast.ImportFrom("blocktrace.limits", [ast.alias("Extra")], 0))
        targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if where != "TYPE_CHECKING" and where in targets:
            value = node.value  # type: ignore[attr-defined]
            if isinstance(value, ast.Dict):
                value.keys.append(ast.Constant("Extra"))
                value.values.append(ast.Constant("blocktrace.limits"))
            else:
                value.elts.append(ast.Constant("Extra"))
    return ast.unparse(ast.fix_missing_locations(tree))


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("where", ["TYPE_CHECKING", "_HOMES", "__all__"])
def test_a_name_in_one_list_only_is_found(package: str, where: str) -> None:
    source = _source(package)
    changed = _with_name_added(source, where)
    assert changed != ast.unparse(ast.parse(source))
    problems = drift(package, changed)
    assert problems and all("Extra" in p for p in problems), problems
