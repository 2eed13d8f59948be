"""``query``'s dataset cache is named by the trace's identity
(blocktrace.format.identity): a trace changed or replaced since it was exported is
exported again, never answered from the old dataset; on real files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import blocktrace
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


def _install_copy(where: Path) -> Path:
    """Another install of this blocktrace: the package copied to ``where``."""
    shutil.copytree(Path(blocktrace.__file__).parent, where / "blocktrace",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return where


def _entry_from(install: Path, trace: Path) -> str:
    """``cached_dataset`` as the blocktrace installed at ``install`` answers it,
    in a process of its own (``-c`` puts the working directory first on sys.path)."""
    code = ("import sys, blocktrace; from blocktrace.query.dataset import cached_dataset;"
            f"assert blocktrace.__file__.startswith({str(install)!r}), blocktrace.__file__;"
            "print(cached_dataset(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", code, str(trace)], cwd=install,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_another_install_keeps_its_own_entries(trace: Path, tmp_path: Path) -> None:
    """Two blocktrace installs (a project's venv and pipx, or an older and a newer
    checkout) never answer from each other's datasets: an older version's export
    may say something else of the same file (tidy, session 16: a damaged
    .jsonl.zst exported as an empty client trace by d77b7bf^ was then queried as
    such by later versions, which refuse it)."""
    ours = cached_dataset(str(trace))
    other = _install_copy(tmp_path / "other")
    theirs = _entry_from(other, trace)
    assert theirs != ours and os.path.isdir(theirs)
    assert _entry_from(other, trace) == theirs  # each reuses its own
    assert cached_dataset(str(trace)) == ours
    (other / "blocktrace" / "format" / "added.py").write_text("")  # the checkout changed
    assert _entry_from(other, trace) not in (ours, theirs)
