"""TypeTracer: recorded types, unions across calls, the loop optimisation, tables."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

import blocktrace
from blocktrace.views.types import TypeRef, TypeTable, TypeTracer, format_union, type_of

from . import samples_types

m: Any = samples_types  # unannotated on purpose

FILE = m.__file__


def run(tracer: TypeTracer) -> None:
    with blocktrace.trace(tracer, include=[FILE]):
        account = m.Account("ann")
        account.deposit(5)
        account.deposit(2.5)
        m.Account.parse("1.5")
        m.total([1, 2], 3, 4, start=1, bonus=2)
        m.total((1.5,))
        m.maybe(True)
        m.maybe(False)
        list(m.countdown(3))
        m.loop(200)


def types_of(table: TypeTable, function: str, kind: str, name: str = "") -> str:
    refs: set[TypeRef] = set()
    for row in table.rows():
        if row.function == function and row.kind == kind and row.name == name:
            refs.update(row.types)
    return format_union(refs)


@pytest.fixture(scope="module")
def table() -> TypeTable:
    tracer = TypeTracer()
    run(tracer)
    return tracer.table


def test_parameters_and_returns_merge_into_unions(table: TypeTable) -> None:
    assert types_of(table, "Account.__init__", "param", "owner") == "str"
    assert types_of(table, "Account.deposit", "param", "amount") == "float | int"
    assert types_of(table, "Account.deposit", "return") == "float | int"
    assert types_of(table, "Account.parse", "return") == "decimal.Decimal"
    assert types_of(table, "maybe", "param", "flag") == "bool"
    assert types_of(table, "maybe", "return") == "str | None"
    assert types_of(table, "total", "param", "values") == "list[int] | tuple[float]"
    assert types_of(table, "total", "param", "extra") == "tuple[int, int]"
    assert types_of(table, "total", "param", "named") == "dict[str, int]"


def test_rows_carry_file_class_function_line(table: TypeTable) -> None:
    rows = [r for r in table.rows() if r.function == "Account.deposit" and r.kind == "return"]
    assert len(rows) == 1
    row = rows[0]
    assert row.file == FILE and row.cls == "Account"
    assert row.line == m.Account.deposit.__code__.co_firstlineno + 3
    assert sum(row.counts) == 2
    plain = [r for r in table.rows() if r.function == "maybe"]
    assert all(r.cls is None for r in plain)
    # builtins have no module; other types their module and qualified name
    assert TypeRef(None, "str") in next(r for r in plain if r.kind == "return").types
    dec = next(r for r in table.rows() if r.function == "Account.parse" and r.kind == "return")
    assert dec.types == [TypeRef("decimal", "Decimal")]


def test_locals_globals_members_and_yields(table: TypeTable) -> None:
    assert types_of(table, "total", "local", "result") == "float | int"
    assert types_of(table, "total", "global", "SCALE") == "int"
    members = {r.name: format_union(r.types) for r in table.rows() if r.kind == "member"}
    assert members["owner"] == "str"
    assert members["balance"] == "float | int"
    assert types_of(table, "countdown", "yield") == "int"


def test_loop_optimisation_stops_watching_stable_lines() -> None:
    with_opt, without = TypeTracer(loop_limit=4), TypeTracer(loop_limit=None)
    for tracer in (with_opt, without):
        with blocktrace.trace(tracer, include=[FILE]):
            m.loop(500)
    assert without.line_visits >= 500
    assert with_opt.line_visits < 50
    # and nothing is lost: the same rows and types either way
    assert [(r.line, r.kind, r.name, r.types) for r in with_opt.table.rows()] == [
        (r.line, r.kind, r.name, r.types) for r in without.table.rows()
    ]


def test_loop_optimisation_restarts_on_the_next_call() -> None:
    tracer = TypeTracer(loop_limit=3)
    with blocktrace.trace(tracer, include=[FILE]):
        m.loop(50)
        m.loop(50)
        m.late_change(2)
    assert tracer.restarts >= 1
    # a type that only shows up late in a loop still reaches the return value
    assert types_of(tracer.table, "late_change", "return") == "str"


def test_program_behaviour_is_unchanged() -> None:
    tracer = TypeTracer(loop_limit=2)
    with blocktrace.trace(tracer, include=[FILE]):
        result = [m.loop(n) for n in range(30)]
    assert result == [sum(range(n)) for n in range(30)]


def test_type_of_containers() -> None:
    assert format_union([type_of([1, 2, "a"])]) == "list[int | str]"
    assert format_union([type_of({"a": [1]})]) == "dict[str, list[int]]"
    assert format_union([type_of(tuple(range(10)))]) == "tuple[int, ...]"
    assert format_union([type_of([]), type_of([1])]) == "list[int]"
    assert format_union([type_of(None), type_of(1)]) == "int | None"


def test_jsonl_round_trip_and_merge(table: TypeTable, tmp_path: Path) -> None:
    path = tmp_path / "types.jsonl"
    table.write(path)
    again = TypeTable.read(path)
    assert again.rows() == table.rows()
    merged = TypeTable()
    merged.merge(again)
    merged.merge(TypeTable.read(path))
    doubled = {(r.function, r.line, r.kind, r.name): r.counts for r in merged.rows()}
    for r in table.rows():
        assert doubled[(r.function, r.line, r.kind, r.name)] == [2 * n for n in r.counts]


def test_csv_table(table: TypeTable, tmp_path: Path) -> None:
    path = tmp_path / "types.csv"
    table.write(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == len(table)
    dep = [r for r in rows if r["function"] == "Account.deposit" and r["kind"] == "param"
           and r["name"] == "amount"]
    assert dep[0]["types"] == "float | int" and dep[0]["class"] == "Account"


def test_bad_table_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"file": "x"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        TypeTable.read(path)


def test_the_state_after_a_frames_last_statement_is_recorded(tmp_path: Path) -> None:
    """No line start follows a frame's last statement: a module's last
    assignment and a function's local set just before an implicit return are
    sampled when the frame returns (new types only: counts stay per line start)."""
    import importlib.util
    import sys

    source = tmp_path / "ends.py"
    source.write_text(
        "def setup(n):\n"
        "    total = n * 2\n"
        "    cache = {'n': total}\n"
        "def twice(n):\n"
        "    doubled = n * 2\n"
        "    return doubled\n"
        "setup(1)\n"
        "result = twice(3)\n"
        "label = 'last'\n"
    )
    spec = importlib.util.spec_from_file_location("ends", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    tracer = TypeTracer(loop_limit=None)
    with blocktrace.trace(tracer, include=[str(source)]):
        spec.loader.exec_module(module)
    sys.modules.pop("ends", None)
    rows = {(r.function, r.kind, r.name): r for r in tracer.table.rows() if r.line in (3, 6, 9)}
    assert format_union(rows[("setup", "local", "cache")].types) == "dict[str, int]"
    assert format_union(rows[("<module>", "global", "label")].types) == "str"
    assert rows[("<module>", "global", "result")].counts == [1]
    # `return doubled` starts a line: its locals were sampled there, and once only
    assert rows[("twice", "local", "doubled")].counts == [1]
