"""``blocktrace export --to parquet``: a dataset partitioned by run that pyarrow,
DuckDB (and polars, Spark where installed) read unchanged; client traces; the API."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from blocktrace.query import TABLES, TamperedTrace, connect, export_trace
from blocktrace.query.tables import RunFacts, trace_batches

from .helpers import CLIENTS, Check, Runner, client_trace, lines_of


def _export(blocktrace_cli, out: Path, *traces: Path, extra: tuple[str, ...] = ()) -> str:
    done = blocktrace_cli("export", *traces, "--to", "parquet", out, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def dataset(
    tmp_path_factory: pytest.TempPathFactory, queried: Path, fib: Path, blocktrace_cli: Runner
) -> Path:
    out = tmp_path_factory.mktemp("ds") / "dataset"
    _export(blocktrace_cli, out, queried)
    _export(blocktrace_cli, out, fib)  # a second export adds a run
    return out


def test_layout_is_hive_partitioned_by_run(dataset: Path, queried: Path, fib: Path) -> None:
    assert json.loads((dataset / "dataset.json").read_text())["schema"] == 1
    for table in TABLES:
        runs = sorted(p.name for p in (dataset / table).iterdir())
        assert len(runs) == 2 and all(r.startswith("run=") for r in runs), runs
        assert {r.split("=")[1].rsplit("-", 1)[0] for r in runs} == {"queried", "fib"}
    assert not [p for p in dataset.iterdir() if p.name.startswith(".incoming")]


def test_pyarrow_reads_the_dataset(dataset: Path, queried: Path, fib: Path) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds

    part = ds.partitioning(pa.schema([("run", pa.string())]), flavor="hive")
    ops = ds.dataset(dataset / "ops", format="parquet", partitioning=part).to_table()
    expected = {
        trace.stem: sum(1 for d in lines_of(trace) if "pc" in d and "event" not in d)
        for trace in (queried, fib)
    }
    counts = {
        r["run"].rsplit("-", 1)[0]: r["step_count"]
        for r in ops.group_by("run").aggregate([("step", "count")]).to_pylist()
    }
    assert counts == expected
    runs = ds.dataset(dataset / "runs", format="parquet", partitioning=part).to_table()
    assert sorted(runs.column("status").to_pylist()) == ["sealed", "sealed"]
    assert set(ops.schema.names) == {"run"} | {c for c, _, _ in TABLES["ops"]}


def test_duckdb_reads_the_dataset_and_query_accepts_it(
    dataset: Path, blocktrace_cli: Runner
) -> None:
    done = blocktrace_cli("query", dataset, "SELECT r.name, count(*) AS n FROM calls c JOIN runs "
                          "r USING (run) GROUP BY 1 ORDER BY 1", "--json")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    rows = json.loads(done.stdout)
    assert [r["name"] for r in rows] == ["fib.jsonl", "queried.jsonl"]
    import duckdb

    plain = duckdb.connect().execute(
        f"SELECT count(DISTINCT run) FROM read_parquet('{dataset}/ops/*/*.parquet', "
        "hive_partitioning = true)"
    ).fetchone()
    assert plain == (2,)


def test_polars_reads_the_dataset(dataset: Path) -> None:
    pl = pytest.importorskip("polars", reason="polars is not installed (optional)")
    frame = pl.read_parquet(dataset / "calls" / "**" / "*.parquet", hive_partitioning=True)
    assert frame.select(pl.col("run").n_unique()).item() == 2


def test_spark_reads_the_dataset(dataset: Path) -> None:
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: Spark cannot start (the dataset is plain Hive-style Parquet)")
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed")
    spark = pyspark.sql.SparkSession.builder.master("local[1]").appName("bt").getOrCreate()
    try:
        frame = spark.read.parquet(str(dataset / "ops"))
        assert frame.select("run").distinct().count() == 2
    finally:
        spark.stop()


def test_tampered_export_needs_allow_unverified(
    queried: Path, tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    data = queried.read_bytes().replace(b'"opName":"LOAD_CONST"', b'"opName":"LOAD_CONSX"', 1)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(data)
    out = tmp_path / "ds"
    done = blocktrace_cli("export", bad, "--to", "parquet", out)
    assert done.returncode == 1 and "TAMPERED" in done.stderr
    one_line_error(done)
    assert not (out / "ops").exists()
    with pytest.raises(TamperedTrace):
        export_trace(str(bad), str(out))
    _export(blocktrace_cli, out, bad, extra=("--allow-unverified",))
    con = connect([str(out)])
    assert con.execute("SELECT status, verified FROM runs").fetchall() == [("tampered", False)]
    assert con.execute("SELECT count(*) FROM ops WHERE opName = 'LOAD_CONSX'").fetchone() == (1,)


def test_export_usage_errors(
    tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check, queried: Path
) -> None:
    done = blocktrace_cli("export", queried, "--to", "xls", tmp_path / "x")
    assert done.returncode == 2
    one_line_error(done)
    notempty = tmp_path / "notempty"
    notempty.mkdir()
    (notempty / "precious.txt").write_text("keep")
    done = blocktrace_cli("export", queried, "--to", "parquet", notempty)
    assert done.returncode == 2 and "not a blocktrace dataset" in done.stderr
    one_line_error(done)


def test_connect_api_is_read_only(dataset: Path, tmp_path: Path) -> None:
    import duckdb

    con = connect(str(dataset))
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    with pytest.raises(duckdb.Error):
        con.execute(f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'")
    with pytest.raises(duckdb.Error):
        con.execute("SET enable_external_access = true")
    assert not (tmp_path / "x.csv").exists()
    writable = connect(str(dataset), read_only=False)
    writable.execute(f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'")
    assert (tmp_path / "x.csv").exists()


def test_client_traces_have_their_own_columns(tmp_path: Path) -> None:
    out = tmp_path / "clients"
    for client in CLIENTS:
        export_trace(str(client_trace(client, "negative_refund")), str(out))
    con = connect(str(out))
    from blocktrace.eip3155 import read_all

    clients = con.execute("SELECT path, client, format, status FROM runs").fetchall()
    assert len(clients) == len(CLIENTS)
    for path, client, fmt, status in clients:  # the writer as blocktrace diff tells it
        assert client == read_all(path)[1].dialect
        assert (fmt, status) == ("eip3155", "no chain")
    # every client's normalised steps agree on pc, op, gas, depth (as blocktrace diff finds)
    per_client = con.execute(
        "SELECT client, count(*), sum(pc), sum(gas), max(depth) FROM ops JOIN runs USING (run) "
        "GROUP BY client").fetchall()
    assert len({row[1:] for row in per_client}) == 1, per_client
    refunds = dict(con.execute(
        "SELECT split_part(path, '/', -2), min(refund) FROM ops JOIN runs USING (run) "
        "GROUP BY ALL").fetchall())
    assert refunds["revm"] == refunds["evmone"] == -4800  # revm's wrapped value reads signed
    assert refunds["nethermind"] is None
    stack = con.execute(
        "SELECT stack FROM ops JOIN runs USING (run) WHERE path LIKE '%/geth/%' AND step = 2"
    ).fetchone()
    assert stack == (["0x0", "0x0"],)


def test_a_trace_is_verified_in_the_same_pass(queried: Path, tmp_path: Path) -> None:
    done = export_trace(str(queried), str(tmp_path / "ok"))
    assert done.status == "sealed"
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(queried.read_bytes().replace(b'"name":"fact"', b'"name":"fakt"', 1))
    with pytest.raises(TamperedTrace):
        export_trace(str(bad), str(tmp_path / "no"))
    assert not (tmp_path / "no").exists()  # refused: no dataset begun
    (tmp_path / "given").mkdir()
    with pytest.raises(TamperedTrace):
        export_trace(str(bad), str(tmp_path / "given"))
    assert [p.name for p in (tmp_path / "given").iterdir()] == ["dataset.json"]
    assert export_trace(str(bad), str(tmp_path / "yes"), allow_unverified=True).status == (
        "tampered")


def test_sources_and_client_memory(tmp_path: Path) -> None:
    import hashlib

    import blocktrace

    program = b"print('hi')\n"
    trace = tmp_path / "sourced.jsonl"
    tracer = blocktrace.ChainTracer(trace, genesis="g")
    tracer.write_event("source", {"file": "/src/p.py", "sha256": hashlib.sha256(program)
                                  .hexdigest(), "size": len(program), "text": program.decode()})
    tracer.close()
    out = tmp_path / "ds"
    export_trace(str(trace), str(out))
    export_trace(str(client_trace("erigon", "negative_refund")), str(out))
    con = connect(str(out))
    assert con.execute("SELECT file, sha256, size, text, line_no FROM sources").fetchall() == [
        ("/src/p.py", hashlib.sha256(program).hexdigest(), len(program), "print('hi')\n", 2)]
    (with_memory,) = con.execute(
        "SELECT count(memory) FROM ops JOIN runs USING (run) WHERE client = 'erigon'").fetchone()
    erigon_lines = [json.loads(x) for x in client_trace("erigon", "negative_refund")
                    .read_text().splitlines() if x.startswith("{")]
    assert with_memory > 0 and with_memory <= sum(1 for d in erigon_lines if "memory" in d)


def test_a_script_without_a_main_guard_can_export_a_large_trace(
    queried: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    script = tmp_path / "notebook_like.py"  # no `if __name__ == "__main__":`
    script.write_text(
        "from blocktrace.query import dataset, export_trace\n"
        "dataset.PARALLEL_VERIFY_BYTES = 0\n"
        f"print(export_trace({str(queried)!r}, {str(tmp_path / 'ds')!r}).status)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sealed"]


def test_export_needs_no_duckdb(
    fib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blocktrace_cli: Runner,
    one_line_error: Check,
) -> None:
    """Writing Parquet is pyarrow's; DuckDB (~0.1 s to import) is for querying."""
    blocked = tmp_path / "blocked" / "duckdb"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('duckdb blocked by the test')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(blocked.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))
    _export(blocktrace_cli, tmp_path / "ds", fib)
    assert (tmp_path / "ds" / "ops").is_dir()
    done = blocktrace_cli("query", tmp_path / "ds", "SELECT count(*) FROM ops")
    assert done.returncode == 2 and "duckdb is not installed" in done.stderr
    assert "(in a checkout: pip install -e '.[query]')" in done.stderr  # PyPI has only 0.0.16
    one_line_error(done)


def test_integer_columns_are_delta_encoded(dataset: Path) -> None:
    """The encodings docs/QUERY.md states (they made the files ~20x smaller)."""
    import pyarrow.parquet as pq

    for table in ("ops", "calls"):
        part = next((dataset / table).glob("run=fib-*/part-0.parquet"))
        meta = pq.ParquetFile(part).metadata
        columns = {meta.schema.column(i).path.split(".")[0]: i for i in range(meta.num_columns)}
        kinds = {name: kind for name, kind, _ in TABLES[table]}
        for name, i in columns.items():
            encodings = meta.row_group(0).column(i).encodings
            if kinds[name] in ("int32", "int64"):
                assert "DELTA_BINARY_PACKED" in encodings, (table, name, encodings)
            elif kinds[name] == "string":
                assert "RLE_DICTIONARY" in encodings or meta.row_group(0).num_rows == 0
        assert meta.row_group(0).column(0).compression == "ZSTD"


_LIST_MODULES = """
import runpy, sys
sys.argv = ["blocktrace", *sys.argv[1:]]
try:
    runpy.run_module("blocktrace", run_name="__main__", alter_sys=True)
finally:
    with open(OUT, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
"""


def test_a_parquet_export_imports_no_duckdb_nor_the_client_reader(
    fib: Path, tmp_path: Path
) -> None:
    """What every export paid before its first line: DuckDB (querying's), the
    EIP-3155 client reader (client traces'), pyarrow.compute (~0.05 s; the
    columns' strings are gathered in C) and pyarrow.parquet's Python layer (with
    pyarrow.fs, ~0.035 s; its writer is used directly) are imported only when
    needed."""
    import subprocess
    import sys

    out = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", f"OUT = {str(out)!r}\n{_LIST_MODULES}", "export", str(fib),
         "--to", "parquet", str(tmp_path / "ds")],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    modules = set(out.read_text().splitlines())
    assert "pyarrow._parquet" in modules and "blocktrace.query.verifying" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] == "duckdb"
                   or m.startswith(("blocktrace.eip3155", "pyarrow.compute", "pyarrow.parquet",
                                    "pyarrow.fs")))
    assert heavy == []


def test_statistics_only_where_they_skip_row_groups(dataset: Path) -> None:
    """Min/max statistics for the columns that only grow (a filter on steps or line
    numbers skips row groups by them), none for the others (their cost was ~20% of
    the writing; docs/PERFORMANCE.md)."""
    import duckdb
    import pyarrow.parquet as pq

    from blocktrace.query.dataset import ORDERED

    for table in ("ops", "calls"):
        part = next((dataset / table).glob("run=fib-*/part-0.parquet"))
        meta = pq.ParquetFile(part).metadata
        for i in range(meta.num_columns):
            name = meta.schema.column(i).path.split(".")[0]
            stats = meta.row_group(0).column(i).statistics
            has = stats is not None and stats.has_min_max
            assert has == (name in ORDERED), (table, name)
    # and the answers do not depend on them
    con = duckdb.connect()
    ops = f"read_parquet('{next((dataset / 'ops').glob('run=fib-*/part-0.parquet'))}')"
    first, last, n = con.execute(f"SELECT min(step), max(step), count(*) FROM {ops}").fetchone()
    assert (first, last) == (0, n - 1)
    assert con.execute(f"SELECT count(*) FROM {ops} WHERE step >= {n - 10}").fetchone() == (10,)
    assert con.execute(f"SELECT max(depth) FROM {ops}").fetchone()[0] > 1


def test_the_writer_underneath_writes_what_pyarrow_parquet_writes(
    oddlines: Path, tmp_path: Path
) -> None:
    """The export writes with the writer ``pyarrow.parquet`` wraps (not importing
    pyarrow.parquet and pyarrow.fs); ``pyarrow.parquet``'s own is its fallback:
    both give the same files."""
    import pyarrow.parquet as pq

    from blocktrace.query.dataset import _parquet_writer

    batches = list(trace_batches(str(oddlines), RunFacts(str(oddlines))))
    for table in ("ops", "calls", "exceptions", "sources"):
        files = []
        for public in (False, True):
            path = tmp_path / f"{table}-{public}.parquet"
            writer = _parquet_writer(str(path), table, public=public)
            assert ("pyarrow.parquet" in type(writer).__module__) == public
            for name, batch in batches:
                if name == table:
                    writer.write_batch(batch)
            writer.close()
            files.append(pq.ParquetFile(path))
        fast, public_ = files
        assert fast.read().equals(public_.read()), table
        assert fast.schema_arrow == public_.schema_arrow
        a, b = fast.metadata, public_.metadata
        assert a.num_row_groups == b.num_row_groups > 0
        for g in range(a.num_row_groups):
            for i in range(a.num_columns):
                x, y = a.row_group(g).column(i), b.row_group(g).column(i)
                assert (x.encodings, x.compression, x.is_stats_set) == (
                    y.encodings, y.compression, y.is_stats_set), (table, i)


@pytest.mark.parametrize("damage", ["zst corrupt", "zst cut", "gz corrupt"])
def test_a_compressed_trace_damaged_mid_way_exports_the_lines_verify_checks(
    damage: str, tmp_path: Path, blocktrace_cli: Runner
) -> None:
    """A frame past the first that cannot be read (corrupt, or the file ends in
    it): verify says UNSEALED with the lines before it, and the export holds
    exactly those (it held none: the read that met the frame lost the buffer it
    was filling, 1 MiB of lines, and that was every line of a small trace)."""
    import pyarrow.parquet as pq

    from blocktrace.chain.verify import verify_file

    kind = damage.split()[0]
    if kind == "zst":
        pytest.importorskip("zstandard", reason="the zstd extra is not installed")
    program = tmp_path / "loop.py"
    program.write_text("t = 0\nfor i in range(20000):\n    t += i % 7\n")
    trace = tmp_path / f"t.jsonl.{kind}"
    assert blocktrace_cli("run", "-o", trace, program).returncode == 0
    data = trace.read_bytes()
    if kind == "gz":
        at = len(data) // 2
        data = data[:at] + bytes(64) + data[at + 64:]
    else:
        from tests.format.test_compact import _segments

        parts = _segments(data)
        i = [n for n, (what, _) in enumerate(parts) if what == "data"][3]
        frame = parts[i][1]
        if damage == "zst cut":
            data = b"".join(p for _, p in parts[:i]) + frame[: len(frame) // 2]
        else:
            parts[i] = ("data", frame[:40] + bytes(b ^ 0x55 for b in frame[40:200]) + frame[200:])
            data = b"".join(p for _, p in parts)
    trace.write_bytes(data)
    checked = verify_file(trace, keep_index=True)
    assert checked.status == "unsealed" and checked.lines > 1000, checked
    out = tmp_path / "ds"
    stdout = _export(blocktrace_cli, out, trace)
    assert f"(unsealed, {checked.lines} lines)" in stdout, stdout
    runs = pq.read_table(out / "runs").to_pylist()
    assert [(r["status"], r["lines"]) for r in runs] == [("unsealed", checked.lines)], runs
    assert pq.read_table(out / "ops").num_rows == checked.steps
