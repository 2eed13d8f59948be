"""``query``'s dataset cache is named by the trace's identity
(blocktrace.format.identity): a trace changed or replaced since it was exported is
exported again, never answered from the old dataset; on real files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from blocktrace.query.dataset import cached_dataset
from tests.format.recording import next_tick


@pytest.fixture
def trace(queried: Path, tmp_path: Path) -> Path:
    target = tmp_path / "t.jsonl"
    shutil.copyfile(queried, target)
    return target


def test_an_unchanged_trace_is_exported_once(trace: Path) -> None:
    entry = cached_dataset(str(trace))
    assert cached_dataset(str(trace)) == entry


def test_a_trace_touched_back_is_exported_again(trace: Path) -> None:
    entry = cached_dataset(str(trace))
    st = os.stat(trace)
    next_tick(trace.parent, st.st_ctime_ns)
    subprocess.run(["touch", "-d", "2001-02-03 04:05:06", str(trace)], check=True)
    os.utime(trace, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cached_dataset(str(trace)) != entry


def test_a_trace_replaced_by_mv_is_exported_again(trace: Path) -> None:
    entry = cached_dataset(str(trace))
    other = trace.with_name("other.jsonl")
    shutil.copy2(trace, other)  # the same bytes and times, another file
    os.replace(other, trace)
    assert cached_dataset(str(trace)) != entry


def test_a_trace_whose_name_is_not_utf8_is_cached(trace: Path) -> None:
    odd = trace.with_name(os.fsdecode(b"\x80odd.jsonl"))
    os.rename(trace, odd)
    entry = cached_dataset(str(odd))
    assert os.path.isdir(entry) and cached_dataset(str(odd)) == entry
