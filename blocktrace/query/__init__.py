"""Asking a trace questions: SQL over traces (DuckDB), Parquet datasets, timelines.

``connect(paths)`` gives a DuckDB connection with the tables of docs/QUERY.md
registered as views; ``export_trace(path, dir)`` writes one trace into a Parquet
dataset.  DuckDB and pyarrow come with the ``query`` extra
(``pip install 'blocktrace[query]'``); the timeline exports
(``blocktrace.query.timeline``) need neither.
"""

from __future__ import annotations

from blocktrace.query.connect import MissingExtra, connect, require_extra
from blocktrace.query.dataset import (
    Exported,
    QueryInputError,
    TamperedTrace,
    cache_dir,
    export_trace,
)
from blocktrace.query.schema import SCHEMA_VERSION, TABLES

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "Exported",
    "MissingExtra",
    "QueryInputError",
    "TamperedTrace",
    "cache_dir",
    "connect",
    "export_trace",
    "require_extra",
]
