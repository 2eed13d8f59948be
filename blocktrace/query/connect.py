"""A DuckDB connection with the query tables registered as views over Parquet.

Traces named as ``.jsonl`` files are exported into the cache the first time
(``dataset.cached_dataset``); datasets are read where they are.  With
``read_only`` (what ``blocktrace query`` uses) the connection can read only the
datasets' directories afterwards -- no other file, no extension install -- and
that setting is locked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from blocktrace.query.dataset import (
    Exported,
    QueryInputError,
    cached_dataset,
    find_inputs,
    utf8_dataset_path,
)
from blocktrace.query.schema import TABLES

if TYPE_CHECKING:
    import duckdb

__all__ = ["MissingExtra", "connect", "require_extra"]

INSTALL_HINT = "pip install 'blocktrace[query]' (in a checkout: pip install -e '.[query]')"


class MissingExtra(QueryInputError):
    """DuckDB or pyarrow is not installed."""


def require_extra(*modules: str) -> None:
    """Raise ``MissingExtra`` (one line saying what to install) unless ``modules``
    (by default DuckDB and pyarrow) import."""
    for module in modules or ("duckdb", "pyarrow"):
        try:
            __import__(module)
        except ImportError:
            raise MissingExtra(
                f"{module} is not installed; querying and exporting traces need it: "
                f"{INSTALL_HINT}"
            ) from None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def dataset_dirs(
    paths: Sequence[str], *, allow_unverified: bool = False,
    on_export: Callable[[Exported], None] | None = None,
) -> list[str]:
    """The dataset directories holding everything ``paths`` names (traces are
    exported into the cache on first use), checked for runs given twice."""
    datasets, traces = find_inputs(paths)
    dirs = [os.path.abspath(d) for d in datasets]
    dirs += [
        os.path.abspath(cached_dataset(t, allow_unverified=allow_unverified,
                                       on_export=on_export))
        for t in traces
    ]
    seen: dict[str, tuple[str, str]] = {}
    for d in dirs:
        utf8_dataset_path(d)
        runs_dir = os.path.join(d, "runs")
        for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else ():
            run = name.removeprefix("run=")
            trace_id = run.rsplit("-", 1)[-1]  # the same trace under another file name too
            if trace_id in seen and seen[trace_id][1] != d:
                raise QueryInputError(
                    f"the same run is given twice ({seen[trace_id][0]} and {run})"
                )
            seen[trace_id] = (run, d)
    return list(dict.fromkeys(dirs))


def connect(
    paths: Sequence[str] | str, *, allow_unverified: bool = False, read_only: bool = True,
    on_export: Callable[[Exported], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views ``ops``, ``calls``,
    ``exceptions``, ``values``, ``sources`` and ``runs`` over the traces and
    datasets named by ``paths`` (docs/QUERY.md).  A tampered trace is refused
    (``TamperedTrace``) unless ``allow_unverified``; ``read_only``: the
    connection reads the datasets and nothing else, for good."""
    require_extra()
    import duckdb

    if isinstance(paths, str):
        paths = [paths]
    dirs = dataset_dirs(paths, allow_unverified=allow_unverified, on_export=on_export)
    con = duckdb.connect(":memory:")
    for table in TABLES:
        globs = ", ".join(_quote(os.path.join(d, table, "run=*", "*.parquet")) for d in dirs)
        con.execute(
            f'CREATE VIEW "{table}" AS SELECT run, * EXCLUDE (run) FROM read_parquet('
            f"[{globs}], hive_partitioning = true, hive_types = {{'run': 'VARCHAR'}})"
        )
    if read_only:
        allowed = ", ".join(_quote(d.rstrip(os.sep) + os.sep) for d in dirs)
        con.execute(f"SET allowed_directories = [{allowed}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET lock_configuration = true")
    return con
