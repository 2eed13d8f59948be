"""The viewer's tables: cached by the trace's identity and head, rebuilt when the
trace changes or the cache entry is damaged (real traces, real files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blocktrace.view.model import TraceModel

from .api_support import PROGRAM, record


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("BLOCKTRACE_VIEW_CACHE", str(directory))
    return directory


def _entries(cache: Path) -> list[str]:
    return sorted(name for name in os.listdir(cache) if not name.startswith("."))


def _steps(trace: Path) -> int:
    model = TraceModel(str(trace))
    assert model.wait(120)
    steps: int = model.meta()["steps"]
    return steps


def test_the_tables_are_cached_and_rebuilt_when_the_trace_changes(
    tmp_path: Path, cache: Path
) -> None:
    trace = record(tmp_path)
    first = _steps(trace)
    (entry,) = _entries(cache)
    assert _steps(trace) == first and _entries(cache) == [entry]  # read from the cache
    record(tmp_path, program=PROGRAM.replace("range(4)", "range(6)"))  # same path, new run
    second = _steps(trace)
    assert second > first
    assert len(_entries(cache)) == 2


def test_a_damaged_cache_entry_is_built_again(tmp_path: Path, cache: Path) -> None:
    trace = record(tmp_path)
    steps = _steps(trace)
    (entry,) = _entries(cache)
    (cache / entry / "tables.msgpack").write_bytes(b"\x00garbage")
    assert _steps(trace) == steps
    (cache / entry / "calls.bin").write_bytes(b"")
    assert _steps(trace) == steps


def test_the_cache_is_private(tmp_path: Path, cache: Path) -> None:
    _steps(record(tmp_path))
    assert (cache.stat().st_mode & 0o077) == 0
    (entry,) = _entries(cache)
    assert ((cache / entry).stat().st_mode & 0o077) == 0


def test_without_a_writable_cache_the_tables_are_built_anyway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache would go\n")
    monkeypatch.setenv("BLOCKTRACE_VIEW_CACHE", str(blocked / "view"))
    trace = record(tmp_path)
    model = TraceModel(str(trace))
    assert model.wait(120)
    meta = model.meta()
    assert meta["ready"] and meta["steps"] > 0 and "error" not in meta
    assert model.stack(meta["steps"] // 2)["frames"]


LONG = """\
def step(n):
    s = 0
    for k in range(n):
        s += k
    return s


total = 0
for i in range(2000):
    total += step(i % 7)
"""


def test_a_far_window_waits_for_the_index_instead_of_reading_from_the_start(
    tmp_path: Path, cache: Path
) -> None:
    """Tables built before verify's pass has built the reader's index: a window far
    into the trace is 503 (the page asks again), not a read from the file's start;
    the meta's summary comes from the tables, not from the last line."""
    import threading

    from blocktrace.format.index import index_paths
    from blocktrace.view.model import EARLY_LINES, NotReady, _Background

    trace = record(tmp_path, "--locals", "changes", program=LONG, name="long")
    model = TraceModel(str(trace))
    assert model.wait(120)
    model._verify.done.wait(120)
    for path in index_paths(str(trace)):  # as if verify's pass had not got there yet
        if os.path.exists(path):
            os.remove(path)
    model.reader._index = None
    gate = threading.Event()
    model._verify = _Background(gate.wait, "blocktrace-view-verify-held")
    meta = model.meta()
    assert meta["lines"] > EARLY_LINES + 20_000 and meta["summary"]["pass"] is True
    far = meta["steps"] - 10
    with pytest.raises(NotReady):
        model.window(far, 5)
    with pytest.raises(NotReady):
        model.values(far)
    assert [s["step"] for s in model.window(0, 3)] == [0, 1, 2]  # near the start: read
    gate.set()
    model._verify.done.wait(120)
    assert [s["step"] for s in model.window(far, 5)] == list(range(far, far + 5))
