"""``pytest --blocktrace-types=DIR`` on a real little project, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec

STOCK = '''\
import time


class Stock:
    def __init__(self, items=None):
        self.items = dict(items or {})

    def add(self, name, count):
        self.items[name] = self.items.get(name, 0) + count
        return self.items[name]

    def value(self, prices):
        return sum(prices[name] * n for name, n in self.items.items())


def stamp():
    return time.time()


def label(stock):
    return f"{len(stock.items)} items at {stamp()}"
'''

CONFTEST = '''\
import pytest

from inventory.stock import Stock

TORN_DOWN = []


@pytest.fixture
def stock():
    s = Stock({"apple": 1})
    yield s
    TORN_DOWN.append(s)


def pytest_sessionfinish(session):
    print(f"\\nteardowns={len(TORN_DOWN)}")
'''

TESTS = '''\
import pytest

from inventory import stock as mod


@pytest.mark.parametrize("name,count", [("pear", 2), ("plum", 3.5)])
def test_add(stock, name, count):
    assert stock.add(name, count) == count


def test_value(stock):
    assert stock.value({"apple": 2.0}) == 2.0


def test_monkeypatched(stock, monkeypatch):
    monkeypatch.setattr(mod, "stamp", lambda: 42)
    assert mod.label(stock) == "1 items at 42"


def test_monkeypatch_undone(stock):
    assert mod.stamp() != 42


def test_tmp_path(tmp_path):
    (tmp_path / "x").write_text("1")
    assert (tmp_path / "x").read_text() == "1"
'''


def make_project(root: Path) -> None:
    (root / "src" / "inventory").mkdir(parents=True)
    (root / "src" / "inventory" / "__init__.py").write_text("")
    (root / "src" / "inventory" / "stock.py").write_text(STOCK)
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    (root / "tests" / "test_stock.py").write_text(TESTS)


def pytest_run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH="src", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PYTEST_ADDOPTS", None)
    # run under pytest-xdist itself, this test's worker id must not reach the
    # inner pytest (the plugin would name its table types-gwN.jsonl)
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "blocktrace.pytest_plugin",
         "-p", "no:cacheprovider", *args, "tests"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_suite_passes_and_types_are_collected(tmp_path: Path) -> None:
    make_project(tmp_path)
    plain = pytest_run(tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    traced = pytest_run(tmp_path, "--blocktrace-types=out")
    assert traced.returncode == 0, traced.stdout + traced.stderr
    # fixtures (with teardown), monkeypatch and parametrisation work as without it
    assert "6 passed" in plain.stdout and "6 passed" in traced.stdout
    assert "teardowns=5" in plain.stdout and "teardowns=5" in traced.stdout
    assert "blocktrace:" in traced.stdout and "type rows" in traced.stdout
    rows = [msgspec.json.decode(line) for line in
            (tmp_path / "out" / "types.jsonl").read_bytes().splitlines()]

    def names(function: str, kind: str, name: str = "") -> set[str]:
        return {t["name"] for r in rows if r["function"] == function and r["kind"] == kind
                and r["name"] == name for t in r["types"]}

    assert names("Stock.add", "param", "count") == {"int", "float"}  # both parameters
    assert names("Stock.add", "param", "name") == {"str"}
    assert names("Stock.value", "return") == {"float"}
    assert names("label", "param", "stock") == {"Stock"}
    assert names("stamp", "return") == {"float"}  # the real one, from the last test
    stub = (tmp_path / "out" / "stubs" / "inventory" / "stock.pyi").read_text()
    assert "def add(self, name: str, count: float | int) -> float | int: ..." in stub
    assert (tmp_path / "out" / "types.csv").read_text().startswith("file,class,function")


def test_include_narrows_what_is_recorded(tmp_path: Path) -> None:
    make_project(tmp_path)
    proc = pytest_run(tmp_path, "--blocktrace-types=out",
                      "--blocktrace-types-include=src/inventory")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {msgspec.json.decode(line)["file"] for line in
             (tmp_path / "out" / "types.jsonl").read_bytes().splitlines()}
    assert files == {str(tmp_path / "src" / "inventory" / "stock.py")}


def test_a_bad_include_is_a_usage_error(tmp_path: Path) -> None:
    make_project(tmp_path)
    proc = pytest_run(tmp_path, "--blocktrace-types=out", "--blocktrace-types-include=nowhere")
    assert proc.returncode == 4  # pytest's usage error
    assert "--blocktrace-types" in proc.stderr and "Traceback" not in proc.stderr


def test_a_types_dir_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    make_project(tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    proc = pytest_run(tmp_path, "--blocktrace-types=notes.txt")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # before any test runs
    assert "passed" not in proc.stdout
    assert "--blocktrace-types: notes.txt: not a directory" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_types_that_cannot_be_written_are_one_line_and_a_failed_session(
    tmp_path: Path,
) -> None:
    make_project(tmp_path)
    (tmp_path / "out" / "types.jsonl").mkdir(parents=True)  # in the way of the table
    proc = pytest_run(tmp_path, "--blocktrace-types=out")
    assert "6 passed" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    said = [line for line in proc.stdout.splitlines() if line.startswith("blocktrace:")]
    assert said == [f"blocktrace: --blocktrace-types: cannot write "
                    f"{tmp_path / 'out' / 'types.jsonl'}: Is a directory"], proc.stdout
