"""Parquet datasets of traces: exporting, finding traces, the query cache.

A dataset is a directory::

    DIR/dataset.json                         {"format": "blocktrace-query", "schema": 1}
    DIR/<table>/run=<id>/part-0.parquet      one file per table and run (zstd)

partitioned by run in the Hive layout that DuckDB, pyarrow, polars and Spark
read unchanged; exporting more traces into the same directory adds runs (one
run's export replaces its own partition, nothing else).  A run's files are
written into ``DIR/.incoming-*`` and moved into place once complete.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import msgspec

from blocktrace.format import Status, Verification
from blocktrace.format.callline import json_text
from blocktrace.format.errors import TraceError
from blocktrace.format.identity import cache_key
from blocktrace.format.index import cache_home
from blocktrace.limits import MAX_KEY_FILE_BYTES, read_small_file
from blocktrace.query.columns import Tick
from blocktrace.query.lines import blocktrace_header
from blocktrace.query.schema import SCHEMA_VERSION, TABLES, arrow_schema
from blocktrace.query.tables import RunFacts, runs_batch, trace_batches
from blocktrace.query.verifying import Verifier, start_verify

__all__ = [
    "DATASET_FILE",
    "Exported",
    "QueryInputError",
    "TamperedTrace",
    "cache_dir",
    "cached_dataset",
    "export_trace",
    "find_inputs",
    "verify_or_refuse",
]

DATASET_FILE = "dataset.json"
_DATASET_KIND = "blocktrace-query"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class QueryInputError(Exception):
    """Input that cannot be queried or exported; ``str()`` is the one line to print."""


class TamperedTrace(QueryInputError):
    """A trace whose chain does not verify, refused without ``allow_unverified``."""


def _refused(exc: TraceError) -> QueryInputError:
    """A trace the format module cannot read, refused as verify answers it:
    :class:`TamperedTrace` where verify says TAMPERED, else unusable input."""
    return (TamperedTrace if exc.status == "tampered" else QueryInputError)(str(exc))


@dataclass
class Exported:
    """One trace written into a dataset."""

    path: str
    run: str
    status: str
    lines: int
    seconds: float
    refusal: str | None = None
    """For a tampered trace: why it is refused without ``allow_unverified``."""


def _run_id(path: str, first: dict[str, Any] | None) -> str:
    """``<file stem>-<12 hex>``: the hex is the trace's id (its header line's hash,
    as in checkpoint origins) or, for a client trace, its content's SHA-256."""
    stem = os.path.basename(path)
    for suffix in (".jsonl", ".trace"):
        stem = stem.removesuffix(suffix)
    stem = _SAFE.sub("_", stem)[:40].strip("._") or "trace"
    digest = first.get("hash") if first is not None else None
    if not isinstance(digest, str) or len(digest) < 12:
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
        digest = sha.hexdigest()
    return f"{stem}-{digest[:12]}"


def verify_or_refuse(path: str, allow_unverified: bool, progress: Any = None) -> Verification:
    """What verify says of a blocktrace trace; ``TamperedTrace`` for a tampered one
    unless ``allow_unverified``, ``QueryInputError`` when it is not a trace.
    ``progress``: told the bytes read.

    Said by the trace's index, as ``show`` and ``prove`` say it: the kept one when
    it is intact and commits to the file as it is (no pass), else built in one
    chain-check pass and kept, so the next reader needs none either."""
    from blocktrace.format import TraceReader

    try:
        index = TraceReader(path).index(progress=progress)
    except TraceError:
        index = None
    if index is None:  # not a usable trace: verify says why
        from blocktrace.chain.verify import verify_file

        return _judged(path, verify_file(path), allow_unverified)
    said = Verification(path, cast(Status, index.status), index.reason, index.line,
                        lines=index.lines, head=index.head, version=index.version,
                        root=index.root, tree_size=index.tree_size)
    return _judged(path, said, allow_unverified)


def _convert(path: str, incoming: str, facts: RunFacts, verifier: Verifier | None,
             allow_unverified: bool, tick: Tick | None = None) -> Verification | None:
    """The tables of the trace into ``incoming``, one Parquet file each; verify's
    answer (judged: a tampered trace refused unless ``allow_unverified``)."""
    writers: dict[str, Any] = {}
    verification: Verification | None = None
    try:
        feed = verifier.feed if verifier is not None else None
        for table, batch in trace_batches(path, facts, feed, tick):
            writer = writers.get(table)
            if writer is None:
                os.mkdir(os.path.join(incoming, table))
                writer = writers[table] = _parquet_writer(
                    os.path.join(incoming, table, "part-0.parquet"), table)
            writer.write_batch(batch)
        if verifier is not None:
            verification = _judged(path, verifier.result(), allow_unverified)
        os.mkdir(os.path.join(incoming, "runs"))
        writers["runs"] = _parquet_writer(os.path.join(incoming, "runs", "part-0.parquet"),
                                          "runs")
        writers["runs"].write_batch(runs_batch(facts, verification))
    except TraceError as exc:
        if verifier is not None and verification is None:  # a tampered line: say so
            _judged(path, verifier.result(), allow_unverified)
        raise _refused(exc) from None
    finally:
        if verifier is not None:
            verifier.close()
        for writer in writers.values():
            writer.close()
    return verification


def _judged(path: str, result: Verification, allow_unverified: bool) -> Verification:
    if result.status == "unusable":
        raise QueryInputError(f"{path}: {result.reason}")
    if result.status == "tampered" and not allow_unverified:
        raise TamperedTrace(f"{path}: {_refusal(result)}")
    return result


def _refusal(result: Verification) -> str:
    where = f" at line {result.line}" if result.line is not None else ""
    return (
        f"TAMPERED{where}: {result.reason} "
        "(refused; --allow-unverified takes it, marked in runs.status)"
    )


def utf8_dataset_path(directory: str) -> None:
    """:class:`QueryInputError` when the dataset at ``directory`` has a path that
    is not UTF-8 text: pyarrow and DuckDB take no other (a trace may have any
    name; only the dataset's directory must be text)."""
    where = os.path.abspath(directory)
    if json_text(where) != where:
        raise QueryInputError(
            f"{directory}: a dataset's path must be UTF-8 text (pyarrow and DuckDB take "
            f"no other): {json_text(where)}"
        )


def _check_dataset(out_dir: str) -> None:
    marker = os.path.join(out_dir, DATASET_FILE)
    if os.path.exists(marker):
        _read_marker(out_dir)
        return
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise QueryInputError(
            f"{out_dir}: exists and is not a directory: not writing a dataset there"
        )
    if os.path.isdir(out_dir) and any(not n.startswith(".") for n in os.listdir(out_dir)):
        raise QueryInputError(
            f"{out_dir}: not empty and not a blocktrace dataset: not writing into it"
        )
    os.makedirs(out_dir, exist_ok=True)
    with open(marker, "wb") as f:
        f.write(msgspec.json.encode({"format": _DATASET_KIND, "schema": SCHEMA_VERSION}))


def _read_marker(directory: str) -> None:
    try:
        marker = msgspec.json.decode(read_small_file(
            os.path.join(directory, DATASET_FILE), MAX_KEY_FILE_BYTES, DATASET_FILE))
    except (OSError, ValueError) as exc:
        raise QueryInputError(f"{directory}: unreadable {DATASET_FILE}: {exc}") from None
    if not isinstance(marker, dict) or marker.get("format") != _DATASET_KIND:
        raise QueryInputError(f"{directory}: {DATASET_FILE} is not a blocktrace dataset's")
    if marker.get("schema") != SCHEMA_VERSION:
        raise QueryInputError(
            f"{directory}: a dataset of schema {marker.get('schema')!r}, this blocktrace "
            f"reads schema {SCHEMA_VERSION}: export the traces again"
        )


def export_trace(path: str, out_dir: str, *, allow_unverified: bool = False,
                 tick: Tick | None = None) -> Exported:
    """Write the query tables of the trace at ``path`` into the dataset ``out_dir``
    (created if missing), streaming.  A blocktrace trace is verified in the same
    pass over its bytes (``verifying``); a tampered one is refused
    (``TamperedTrace``, nothing written) unless ``allow_unverified``.  ``tick``:
    called from the reading loop now and then (``Progress.look``)."""
    started = time.perf_counter()
    if os.path.isdir(path):
        raise QueryInputError(f"{path}: is a directory, not a trace file")
    utf8_dataset_path(out_dir)
    try:
        first = blocktrace_header(path)
    except TraceError as exc:  # a trace that cannot be read: refused as verify answers
        raise _refused(exc) from None
    except OSError as exc:
        raise QueryInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    # a blocktrace trace is verified from the conversion's own reads (one pass)
    verifier = start_verify(path) if first is not None else None
    verification: Verification | None = None
    created = not os.path.exists(out_dir)
    try:
        try:
            _check_dataset(out_dir)
            run = _run_id(path, first)
            facts = RunFacts(path)
            incoming = tempfile.mkdtemp(prefix=".incoming-", dir=out_dir)
        except BaseException:
            if verifier is not None:
                verifier.close()
            raise
        try:
            verification = _convert(path, incoming, facts, verifier, allow_unverified, tick)
            for table in TABLES:
                target = os.path.join(out_dir, table, f"run={run}")
                if os.path.exists(target):
                    shutil.rmtree(target)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.rename(os.path.join(incoming, table), target)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
    except QueryInputError:
        if created:  # refused: no dataset left behind that this call began
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    status = verification.status if verification is not None else "no chain"
    refusal = _refusal(verification) if verification is not None and status == "tampered" else None
    return Exported(path, run, status, facts.lines, time.perf_counter() - started, refusal)


ZSTD_LEVEL = 3
"""Parquet's compression: zstd at this level (docs/PERFORMANCE.md: level 1 was
no faster here, and larger)."""


ORDERED = ("step", "line_no", "call_id", "step_in", "line_in")
"""The columns that only grow along a trace: the only ones whose Parquet
statistics (min/max per row group and page) let a reader skip row groups, so
the only ones written with statistics (the others' cost ~20% of the writing:
docs/PERFORMANCE.md); the small ``runs`` and ``sources`` tables keep them all."""


def _parquet_writer(path: str, table: str, *, public: bool = False) -> Any:
    """A Parquet writer of ``table``'s schema (``write_batch``, ``close``): integer
    columns delta-encoded (steps, line numbers and gas count up by small amounts:
    ~4x smaller than dictionary pages and half the CPU), string columns
    dictionary-encoded, zstd, statistics for the :data:`ORDERED` columns.
    ``public``: ``pyarrow.parquet``'s writer; else the one it wraps (the same
    files), unless this pyarrow's differs from pyarrow 26's, then the public one."""
    names = [name for name, _, _ in TABLES[table]]
    ints = [name for name, kind, _ in TABLES[table] if kind in ("int64", "int32")]
    strings = [name for name, kind, _ in TABLES[table] if kind == "string"]
    stats = names if table in ("runs", "sources") else [n for n in names if n in ORDERED]
    options: dict[str, Any] = {
        "compression": "zstd", "compression_level": ZSTD_LEVEL, "use_dictionary": strings,
        "column_encoding": dict.fromkeys(ints, "DELTA_BINARY_PACKED"),
        "write_statistics": stats,
    }
    try:
        if public:
            raise ImportError
        # the writer pyarrow.parquet.ParquetWriter wraps: importing pyarrow.parquet
        # also imports pyarrow.fs (S3, SSL: ~0.035 s of every export's start-up)
        from pyarrow._parquet import ParquetWriter

        return _Writer(ParquetWriter(path, arrow_schema(table), version="2.6",
                                     data_page_version="1.0", writer_engine_version="V2",
                                     **options))
    except (ImportError, TypeError, AttributeError, ValueError):  # another pyarrow's
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, arrow_schema(table), **options)


class _Writer:
    """``pyarrow._parquet.ParquetWriter`` with ``pyarrow.parquet.ParquetWriter``'s
    two methods the export calls."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def write_batch(self, batch: Any) -> None:
        import pyarrow as pa

        self._writer.write_table(pa.Table.from_batches([batch], batch.schema))

    def close(self) -> None:
        self._writer.close()


# -- the query cache ----------------------------------------------------------------------


def cache_dir() -> str:
    """Where ``query`` keeps the datasets it exports on the fly:
    ``$BLOCKTRACE_CACHE``, else ``$XDG_CACHE_HOME/blocktrace/query``, else
    ``~/.cache/blocktrace/query``."""
    return os.environ.get("BLOCKTRACE_CACHE") or cache_home("query")


def cached_dataset(
    path: str, *, allow_unverified: bool = False,
    on_export: Callable[[Exported], None] | None = None,
) -> str:
    """The dataset directory holding the trace at ``path``, exported into the cache
    the first time (``on_export`` is told what that cost).  The cache entry is
    keyed by the file's real path and identity (:mod:`blocktrace.format.identity`:
    device, inode, size, modification and status change times), so a changed or
    replaced file is exported again (also one whose modification time was put
    back: that sets its change time); the verify status is kept with it, so a
    tampered trace is refused from the cache as it is from the file."""
    try:
        key = cache_key(path, str(SCHEMA_VERSION))
    except OSError as exc:
        raise QueryInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    entry = os.path.join(cache_dir(), key)
    status_file = os.path.join(entry, "status.json")
    if os.path.exists(status_file):
        with open(status_file, "rb") as f:
            status = msgspec.json.decode(f.read())
        if status.get("status") == "tampered" and not allow_unverified:
            raise TamperedTrace(f"{path}: {status.get('refusal')}")
        return entry
    os.makedirs(cache_dir(), exist_ok=True)
    building = tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir())
    try:
        exported = export_trace(path, building, allow_unverified=allow_unverified)
        with open(os.path.join(building, "status.json"), "wb") as f:
            f.write(msgspec.json.encode({"status": exported.status, "refusal": exported.refusal}))
        try:
            os.rename(building, entry)
        except OSError:  # another process cached it first
            pass
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if on_export is not None:
        on_export(exported)
    return entry


# -- what the user named ------------------------------------------------------------------


def find_inputs(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(datasets, traces)`` named by ``paths``: a dataset directory, a directory of
    ``.jsonl`` traces (searched recursively), or a trace file."""
    datasets: list[str] = []
    traces: list[str] = []
    if not paths:
        raise QueryInputError("no traces given")
    for path in paths:
        if os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).rglob("*.jsonl") if p.is_file())
            if os.path.exists(os.path.join(path, DATASET_FILE)):
                if found:
                    raise QueryInputError(
                        f"{path}: mixed formats: a Parquet dataset and .jsonl traces in one "
                        "directory; give one or the other"
                    )
                _read_marker(path)
                datasets.append(path)
            elif found:
                traces.extend(found)
            else:
                raise QueryInputError(
                    f"{path}: no traces in this directory (no .jsonl files, no {DATASET_FILE})"
                )
        elif os.path.exists(path):
            traces.append(path)
        else:
            raise QueryInputError(f"{path}: no such file or directory")
    return datasets, traces
