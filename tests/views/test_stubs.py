"""Recorded types as .pyi stubs and as a patch that `git apply` accepts."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import blocktrace
from blocktrace.views.stubs import module_name, unified_patch, write_stubs
from blocktrace.views.types import TypeTable, TypeTracer

SAMPLE = Path(__file__).with_name("samples_types.py")


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def exercise(mod: ModuleType) -> TypeTable:
    tracer = TypeTracer()
    with blocktrace.trace(tracer, include=[mod.__file__ or ""]):
        account = mod.Account("ann")
        account.deposit(5)
        account.deposit(2.5)
        mod.Account.parse("1.5")
        mod.total([1, 2], 3, start=1, bonus=2)
        mod.maybe(True)
        mod.maybe(False)
        list(mod.countdown(2))
        mod.loop(20)
    return tracer.table


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, ModuleType]:
    pkg = tmp_path / "proj" / "shop"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(SAMPLE, pkg / "accounts.py")
    mod = load(pkg / "accounts.py", "shop.accounts")
    return tmp_path / "proj", mod


def test_module_name_from_import_roots(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.py"
    assert module_name(str(path), [str(tmp_path)]) == "a.b.c"
    assert module_name(str(tmp_path / "a" / "__init__.py"), [str(tmp_path)]) == "a"


def test_stub_has_signatures_members_and_globals(
    project: tuple[Path, ModuleType], tmp_path: Path
) -> None:
    root, mod = project
    table = exercise(mod)
    written = write_stubs(table, tmp_path / "stubs", roots=[str(root)])
    stub = tmp_path / "stubs" / "shop" / "accounts.pyi"
    assert [Path(p) for p in written] == [stub]
    text = stub.read_text()
    ast.parse(text)  # a valid stub
    lines = {line.strip() for line in text.splitlines()}
    assert "import decimal" in lines
    assert "SCALE: int" in lines
    assert "class Account:" in lines
    assert "owner: str" in lines and "balance: float | int" in lines
    assert "def __init__(self, owner: str, balance: int = ...) -> None: ..." in lines
    assert "def deposit(self, amount: float | int) -> float | int: ..." in lines
    assert "@staticmethod" in lines
    assert "def parse(text: str) -> decimal.Decimal: ..." in lines
    assert ("def total(values: list[int], *extra: int, start: int = ..., **named: int)"
            " -> int: ...") in lines
    assert "def maybe(flag: bool) -> str | None: ..." in lines
    assert "def countdown(n: int) -> collections.abc.Iterator[int]: ..." in lines


def test_patch_applies_and_keeps_behaviour(project: tuple[Path, ModuleType]) -> None:
    root, mod = project
    table = exercise(mod)
    patch = unified_patch(table, root)
    assert patch.startswith("--- a/shop/accounts.py\n+++ b/shop/accounts.py\n")
    (root / "types.patch").write_text(patch)
    subprocess.run(["git", "apply", "types.patch"], cwd=root, check=True, timeout=120)
    source = (root / "shop" / "accounts.py").read_text()
    assert "def deposit(self, amount: float | int) -> float | int:" in source
    assert "def __init__(self, owner: str, balance: int = 0) -> None:" in source
    assert "def parse(text: str) -> decimal.Decimal:" in source  # decimal imported already
    assert "def countdown(n: int) -> 'collections.abc.Iterator[int]':" in source
    assert "if TYPE_CHECKING:\n    import collections.abc\n" in source
    patched = load(root / "shop" / "accounts.py", "shop.accounts_patched")
    assert patched.total([1, 2], 3, start=1, bonus=2) == 15
    assert patched.Account("x").deposit(2) == 2
    # the patched module evaluates its annotations: they are real types
    assert patched.maybe.__annotations__ == {"flag": bool, "return": str | None}
    # a second patch from the same table changes nothing: annotations already there
    assert unified_patch(table, root) == ""


def test_existing_annotations_win(tmp_path: Path) -> None:
    src = tmp_path / "ann.py"
    src.write_text("def f(x: object) -> object:\n    return x\n\n\ndef g(y):\n    return y\n")
    mod = load(src, "ann_mod")
    tracer = TypeTracer()
    with blocktrace.trace(tracer, include=[str(src)]):
        mod.f(1)
        mod.g("s")
    write_stubs(tracer.table, tmp_path / "out", roots=[str(tmp_path)])
    text = (tmp_path / "out" / "ann.pyi").read_text()
    assert "def f(x: object) -> object: ..." in text
    assert "def g(y: str) -> str: ..." in text


def test_coroutines_and_threads(tmp_path: Path) -> None:
    src = tmp_path / "conc.py"
    src.write_text(
        "import asyncio\n\n\n"
        "async def fetch(x):\n    await asyncio.sleep(0)\n    return str(x)\n\n\n"
        "def worker(n):\n    return [i * 2.0 for i in range(n)]\n"
    )
    mod = load(src, "conc_mod")
    import asyncio
    import threading

    tracer = TypeTracer()
    with blocktrace.trace(tracer, include=[str(src)]):
        assert asyncio.run(mod.fetch(3)) == "3"
        thread = threading.Thread(target=mod.worker, args=(4,))
        thread.start()
        thread.join()
    write_stubs(tracer.table, tmp_path / "out", roots=[str(tmp_path)])
    text = (tmp_path / "out" / "conc.pyi").read_text()
    assert "async def fetch(x: int) -> str: ..." in text  # the awaited result, not a coroutine
    assert "def worker(n: int) -> list[float]: ..." in text  # recorded on another thread


def test_a_program_run_as_main_names_its_own_classes_and_its_patch_still_runs(
    tmp_path: Path,
) -> None:
    """The program's classes are ``__main__.X`` at run time; in its own stub and
    patch they are its own (no ``import __main__``).  The patch quotes them: a
    method returning its class, or a class defined further down, does not exist
    yet where the annotation is evaluated."""
    script = tmp_path / "prog.py"
    script.write_text(
        "class Box:\n"
        "    class Lid:\n"
        "        pass\n"
        "    def __init__(self, size):\n"
        "        self.size = size\n"
        "        self.lid = Box.Lid()\n"
        "    def bigger(self):\n"
        "        return Box(self.size + 1)\n"
        "def make():\n"
        "    return Later()\n"
        "class Later:\n"
        "    pass\n"
        "b = Box(1).bigger()\n"
        "print(type(make()).__name__, b.size)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "types", "-o", "t.jsonl", "--stubs", "stubs",
         "--patch", "p.diff", "prog.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Later 2\n"
    stub = (tmp_path / "stubs" / "prog.pyi").read_text()
    assert "__main__" not in stub
    assert "b: Box\n" in stub and "    lid: Box.Lid\n" in stub
    assert "    def bigger(self) -> Box: ..." in stub
    assert "def make() -> Later: ..." in stub
    ast.parse(stub)
    patch = (tmp_path / "p.diff").read_text()
    assert "__main__" not in patch
    subprocess.run(["git", "apply", "p.diff"], cwd=tmp_path, check=True, timeout=120)
    source = script.read_text()
    assert "    def bigger(self) -> 'Box':\n" in source
    assert "def make() -> 'Later':\n" in source
    patched = subprocess.run([sys.executable, "prog.py"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120, check=False)
    assert (patched.returncode, patched.stdout, patched.stderr) == (0, "Later 2\n", "")
