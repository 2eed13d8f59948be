"""``blocktrace query``: answers checked against the trace's own lines, output formats,
read-only queries, and one-line errors for bad input."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .helpers import Check, Runner, copy_to, lines_of


def _json(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ops_count_and_hottest_line_match_the_trace(queried: Path, blocktrace_cli: Runner) -> None:
    lines = lines_of(queried)
    ops = [d for d in lines if "pc" in d and "op" in d and "event" not in d]
    rows = _json(blocktrace_cli(
        "query", queried, "SELECT line, count(*) AS n FROM ops GROUP BY line ORDER BY n DESC, "
        "line LIMIT 1", "--json",
    ))
    counts: dict[int, int] = {}
    for d in ops:
        counts[d["line"]] = counts.get(d["line"], 0) + 1
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    assert rows == [{"line": best[0], "n": best[1]}]
    (total,) = _json(blocktrace_cli("query", queried, "SELECT count(*) AS n, max(step) AS last "
                                    "FROM ops", "--json"))
    assert total == {"n": len(ops), "last": len(ops) - 1}


def test_ops_rows_are_the_op_lines(queried: Path, blocktrace_cli: Runner) -> None:
    lines = lines_of(queried)
    rows = _json(blocktrace_cli("query", queried, "SELECT * FROM ops ORDER BY step", "--json"))
    numbered = [(n, d) for n, d in enumerate(lines, 1) if "pc" in d and "event" not in d]
    assert len(rows) == len(numbered)
    names = {d["code"]: d["name"] for d in lines if d.get("event") == "call"}
    for step, (row, (n, d)) in enumerate(zip(rows, numbered, strict=True)):
        assert row["step"] == step and row["line_no"] == n
        assert (row["pc"], row["op"], row["opName"], row["line"], row["depth"]) == (
            d["pc"], d["op"], d["opName"], d["line"], d["depth"])
        assert row["gas"] == int(d["gas"], 16) and row["thread"] == 1 and row["gasCost"] == 1
        assert row["function"] == names[d["code"]]
        assert row["file"].endswith("queried.py")


def test_calls_pair_calls_with_returns(queried: Path, blocktrace_cli: Runner) -> None:
    rows = _json(blocktrace_cli("query", queried, "SELECT * FROM calls ORDER BY call_id",
                                "--json"))
    lines = lines_of(queried)
    assert len(rows) == sum(1 for d in lines if d.get("event") == "call")
    fact = [r for r in rows if r["function"] == "fact"]
    assert [r["depth"] for r in fact] == [3, 4, 5, 6, 7, 8]
    assert [json.loads(r["value"]) for r in fact] == [720, 120, 24, 6, 2, 1]
    for outer, inner in itertools.pairwise(fact):  # nested: parent, steps
        assert inner["parent_id"] == outer["call_id"]
        assert outer["step_in"] < inner["step_in"] < inner["step_out"] <= outer["step_out"]
        assert outer["steps"] == outer["self_steps"] + inner["steps"]
    unwound = [r for r in rows if r["ended"] == "unwind"]
    assert [(r["function"], r["exception"]) for r in unwound] == [("fails", "ValueError")] * 2
    assert {r["kind"] for r in rows if r["function"] == "squares"} == {"call", "resume"}
    assert {r["ended"] for r in rows if r["function"] == "squares"} == {"yield", "return"}
    module = rows[0]
    assert module["function"] == "<module>" and module["parent_id"] is None
    assert module["steps"] == sum(1 for d in lines if "pc" in d and "event" not in d)
    assert all(r["first_line"] for r in rows)


def test_exceptions_and_values(queried: Path, blocktrace_cli: Runner) -> None:
    rows = _json(blocktrace_cli(
        "query", queried, "SELECT kind, type, message, function FROM exceptions ORDER BY line_no",
        "--json"))
    assert [(r["kind"], r["function"]) for r in rows] == [
        ("raise", "fails"), ("raise", "main"), ("handled", "main")] * 2
    assert {r["type"] for r in rows} == {"ValueError"}
    assert {r["message"] for r in rows} == {"too big: 3", "too big: 4"}
    # when did `total` change, and to what (values recorded with --locals changes)
    rows = _json(blocktrace_cli(
        "query", queried, "SELECT step, value FROM values WHERE name = 'total' "
        "AND function = 'main' ORDER BY step", "--json"))
    assert [json.loads(r["value"]) for r in rows] == [0, 1, 3, 2, 1, 721, 735]


def test_runs_row(queried: Path, blocktrace_cli: Runner) -> None:
    (run,) = _json(blocktrace_cli("query", queried, "SELECT * FROM runs", "--json"))
    lines = lines_of(queried)
    assert run["status"] == "sealed" and run["verified"] is True
    assert run["format"] == "blocktrace" and run["client"] == "blocktrace"
    assert run["genesis"] == lines[0]["genesis"] and run["pid"] == lines[0]["pid"]
    assert run["pass"] is True and run["gas_used"] == int(lines[-1]["gasUsed"], 16)
    assert run["lines"] == len(lines) and run["head"] == lines[-1]["hash"]
    assert run["run"].startswith("queried-") and run["run"].endswith(lines[0]["hash"][:12])


def test_csv_and_table_output(queried: Path, blocktrace_cli: Runner) -> None:
    sql = "SELECT function, count(*) AS calls FROM calls GROUP BY 1 ORDER BY 2 DESC, 1"
    done = blocktrace_cli("query", queried, sql, "--csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["function", "calls"]
    assert rows[1] == ["fact", "6"]
    table = blocktrace_cli("query", queried, sql)
    assert table.returncode == 0
    out = table.stdout.splitlines()
    assert out[0].split() == ["function", "calls"] and set(out[1]) <= {"-", " "}
    assert out[2].split() == ["fact", "6"] and out[-1] == f"({len(rows) - 1} rows)"
    # numbers are right-aligned under their header
    assert out[2].endswith("6") and out[0].endswith("calls")


def test_the_cache_is_used_once_exported(
    queried: Path, blocktrace_cli: Runner, tmp_path: Path
) -> None:
    trace = copy_to(queried, tmp_path / "copy.jsonl")
    first = blocktrace_cli("query", trace, "SELECT count(*) FROM ops")
    assert "exported" in first.stderr and "once" in first.stderr
    again = blocktrace_cli("query", trace, "SELECT count(*) FROM ops")
    assert again.returncode == 0 and again.stderr == "" and again.stdout == first.stdout
    trace.write_bytes(trace.read_bytes())  # a rewritten file is exported again
    with trace.open("ab"):
        pass
    import os
    st = trace.stat()
    os.utime(trace, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert "exported" in blocktrace_cli("query", trace, "SELECT 1").stderr


def test_a_directory_of_traces(
    queried: Path, fib: Path, blocktrace_cli: Runner, tmp_path: Path
) -> None:
    copy_to(queried, tmp_path / "a" / "q.jsonl")
    copy_to(fib, tmp_path / "a" / "deeper" / "f.jsonl")
    rows = _json(blocktrace_cli("query", tmp_path / "a", "SELECT name, ops FROM runs ORDER BY "
                                "name", "--json"))
    assert [r["name"] for r in rows] == ["f.jsonl", "q.jsonl"]


def test_tampered_is_refused_unless_allowed(
    queried: Path, blocktrace_cli: Runner, tmp_path: Path, one_line_error: Check
) -> None:
    lines = queried.read_bytes().split(b"\n")
    edited = next(i for i in range(40, len(lines)) if b'"line":' in lines[i])
    lines[edited] = lines[edited].replace(b'"line":', b'"line":1', 1)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines))
    done = blocktrace_cli("query", bad, "SELECT count(*) FROM ops")
    assert done.returncode == 1 and f"TAMPERED at line {edited + 1}" in done.stderr
    one_line_error(done)
    rows = _json(blocktrace_cli("query", bad, "SELECT status, verified, status_line FROM runs",
                                "--allow-unverified", "--json"))
    assert rows == [{"status": "tampered", "verified": False, "status_line": edited + 1}]
    again = blocktrace_cli("query", bad, "SELECT count(*) FROM ops")  # from the cache: refused
    assert again.returncode == 1 and "TAMPERED" in again.stderr


@pytest.mark.parametrize(("sql", "text"), [
    ("SELEC 1", "SQL error: Parser Error"),
    ("SELECT * FROM nope", "Table with name nope does not exist"),
    ("SELECT nope FROM ops", 'column "nope" not found'),
    ("SELECT 1; SELECT 2", "give one SQL statement (found 2)"),
    ("COPY (SELECT 1) TO 'out.csv'", "read-only: COPY statements are refused"),
    ("CREATE TABLE t AS SELECT 1", "read-only: CREATE statements are refused"),
    ("ATTACH 'x.db'", "read-only: ATTACH statements are refused"),
    ("INSTALL httpfs", "read-only"),
    ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
])
def test_bad_sql_is_one_line_exit_2(
    sql: str, text: str, queried: Path, blocktrace_cli: Runner, one_line_error: Check,
    tmp_path: Path,
) -> None:
    assert blocktrace_cli("query", queried, "SELECT 1").returncode == 0  # exported once
    done = blocktrace_cli("query", queried, sql, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    one_line_error(done)
    assert text in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_copy_to_a_dataset_directory_is_refused(
    queried: Path, blocktrace_cli: Runner, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    assert blocktrace_cli("export", queried, "--to", "parquet", out).returncode == 0
    target = out / "leak.csv"
    done = blocktrace_cli("query", out, f"COPY (SELECT 1) TO '{target}'")
    assert done.returncode == 2 and not target.exists()


def test_bad_inputs_are_one_line_exit_2(
    tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check, queried: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        "no traces in this directory": [empty],
        "no such file or directory": [tmp_path / "missing.jsonl"],
    }
    text = tmp_path / "notes.txt"
    text.write_text("just some words\nand more\n")
    cases["not an EIP-3155 trace"] = [text]
    blank = tmp_path / "blank.jsonl"
    blank.write_bytes(b"")
    cases["empty"] = [blank]
    mixed = tmp_path / "mixed"
    assert blocktrace_cli("export", queried, "--to", "parquet", mixed).returncode == 0
    copy_to(queried, mixed / "stray.jsonl")
    cases["mixed formats"] = [mixed]
    for expected, inputs in cases.items():
        done = blocktrace_cli("query", *inputs, "SELECT 1")
        assert done.returncode == 2, (expected, done.stderr)
        one_line_error(done)
        assert expected in done.stderr, (expected, done.stderr)
    twice = blocktrace_cli("query", queried, copy_to(queried, tmp_path / "again.jsonl"),
                           "SELECT 1")
    assert twice.returncode == 2 and "the same run" in twice.stderr.splitlines()[-1]
