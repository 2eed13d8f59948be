"""``blocktrace query``: SQL over traces and Parquet datasets (DuckDB)."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from blocktrace.cli import CliError

if TYPE_CHECKING:
    import duckdb

    from blocktrace.query import Exported

_ALLOWED = ("SELECT", "EXPLAIN")
_TABLE_SAMPLE = 1000
"""Rows an aligned table's column widths are computed from (the rest stream)."""
_CELL_MAX = 100


def register(sub: Any) -> None:
    p = sub.add_parser(
        "query",
        help="run SQL over traces and Parquet datasets (DuckDB; needs [query])",
        description="Run one read-only SQL statement (DuckDB) over the tables ops, calls, "
        "exceptions, values, sources and runs of the given traces (docs/QUERY.md). A trace "
        "file is exported into a cache the first time (its one-time cost is said on stderr); "
        "a directory is a Parquet dataset (blocktrace export --to parquet) or holds .jsonl "
        "traces. Exit 0 done, 1 a trace is tampered (refused), 2 bad input or SQL.",
    )
    p.add_argument("inputs", nargs="+", metavar="TRACE|DIR",
                   help="traces, directories of traces, or datasets; then the SQL")
    p.add_argument("sql", metavar="SQL", help="one SELECT statement")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV (header row first)")
    fmt.add_argument("--json", action="store_true", help="print a JSON array of row objects")
    p.add_argument("--allow-unverified", action="store_true",
                   help="query tampered traces too (runs.status says so)")
    p.set_defaults(handler=query)


def _one_line(exc: BaseException) -> str:
    """DuckDB's message on one line (the echoed query and its caret dropped)."""
    parts = [
        part.strip() for part in str(exc).splitlines()
        if part.strip() and not part.startswith("LINE ") and set(part.strip()) != {"^"}
    ]
    return " ".join(parts) or type(exc).__name__


def open_connection(inputs: Sequence[str], allow_unverified: bool) -> duckdb.DuckDBPyConnection:
    """The read-only connection, or a ``CliError`` (tampered: exit 1)."""
    from blocktrace.query import QueryInputError, TamperedTrace, connect, require_extra

    try:
        require_extra()
        return connect(list(inputs), allow_unverified=allow_unverified, on_export=_said)
    except TamperedTrace as exc:
        raise CliError(str(exc), status=1) from None
    except QueryInputError as exc:
        raise CliError(str(exc)) from None


def _said(exported: Exported) -> None:
    sys.stderr.write(
        f"blocktrace query: {exported.path}: exported {exported.lines} lines into the cache "
        f"in {exported.seconds:.2f} s (once; later queries read the cache)\n"
    )


def _check_statement(sql: str) -> None:
    """One SELECT (or EXPLAIN): checked before any trace is read."""
    import duckdb

    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:  # (argv's bytes that are not UTF-8; DuckDB raises TypeError)
        raise CliError("the SQL is not UTF-8 text") from None
    try:
        statements = duckdb.connect(":memory:").extract_statements(sql)
    except duckdb.Error as exc:
        raise CliError(f"SQL error: {_one_line(exc)}") from None
    if len(statements) != 1:
        raise CliError(f"give one SQL statement (found {len(statements)})")
    kind = statements[0].type.name
    if kind not in _ALLOWED:
        raise CliError(
            f"a query is read-only: {kind} statements are refused (SELECT only; "
            "blocktrace export writes datasets)"
        )


def query(args: argparse.Namespace) -> int:
    from blocktrace.query import QueryInputError, require_extra

    try:
        require_extra()
    except QueryInputError as exc:
        raise CliError(str(exc)) from None
    import duckdb

    sql = args.sql
    _check_statement(sql)
    con = open_connection(args.inputs, args.allow_unverified)
    try:
        result = con.execute(sql)
        names = [d[0] for d in result.description or ()]
        rows = _rows(result)
        if args.csv:
            _write_csv(names, rows)
        elif args.json:
            _write_json(names, rows)
        else:
            _write_table(names, rows)
    except duckdb.Error as exc:
        raise CliError(f"SQL error: {_one_line(exc)}") from None
    return 0


def _rows(result: duckdb.DuckDBPyConnection) -> Iterator[tuple[Any, ...]]:
    while True:
        chunk = result.fetchmany(4096)
        if not chunk:
            return
        yield from chunk


def _write_csv(names: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(names)
    for row in rows:
        out.writerow(["" if v is None else v for v in row])


def _write_json(names: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    encode = msgspec.json.Encoder(enc_hook=str).encode
    write = sys.stdout.write
    write("[")
    first = True
    for row in rows:
        write(("\n" if first else ",\n") + encode(dict(zip(names, row, strict=True))).decode())
        first = False
    write("\n]\n" if not first else "]\n")


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= _CELL_MAX else text[: _CELL_MAX - 1] + "…"


def _write_table(names: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    """An aligned table: widths from the first rows, numbers to the right."""
    sample: list[tuple[Any, ...]] = []
    for row in rows:
        sample.append(row)
        if len(sample) >= _TABLE_SAMPLE:
            break
    widths = [len(n) for n in names]
    numeric = [True] * len(names)
    for row in sample:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(_cell(value)))
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                numeric[i] = False
    write = sys.stdout.write

    def line(cells: Sequence[str]) -> None:
        write("  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip() + "\n")

    line(names)
    line(["-" * w for w in widths])
    count = 0
    for row in sample:
        line([_cell(v) for v in row])
        count += 1
    for row in rows:
        line([_cell(v) for v in row])
        count += 1
    write(f"({count} row{'s' if count != 1 else ''})\n")
