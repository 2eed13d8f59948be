"""The viewer's two uses of a trace's identity (blocktrace.format.identity), on real
files: the check before each answer (HTTP 409 once the file is not the one
opened) and the name of the tables' cache entry."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from blocktrace.view.model import Changed, TraceModel
from blocktrace.view.tables import cache_key
from tests.format.recording import next_tick
from tests.view.api_support import record


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("recorded"))


@pytest.fixture
def trace(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BLOCKTRACE_VIEW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    target = tmp_path / "t.jsonl"
    shutil.copyfile(recorded, target)
    return target


def _same_size_edit(path: Path) -> bytes:
    data = path.read_bytes()
    at = data.index(b'"gas":"0x') + 9
    return data[:at] + (b"1" if data[at:at + 1] != b"1" else b"2") + data[at + 1:]


def _replace_by_mv(path: Path) -> None:
    other = path.with_name("other.jsonl")
    other.write_bytes(_same_size_edit(path))
    os.replace(other, path)


def _edit_in_place(path: Path) -> None:
    st = os.stat(path)
    next_tick(path.parent, st.st_ctime_ns)
    data = _same_size_edit(path)
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _touch_back(path: Path) -> None:
    subprocess.run(["touch", "-d", "2001-02-03 04:05:06", str(path)], check=True)


CHANGES: dict[str, Callable[[Path], None]] = {
    "replaced by mv": _replace_by_mv,
    "edited in place, same size and mtime": _edit_in_place,
    "touched back to an old mtime": _touch_back,
}


@pytest.mark.parametrize("change", CHANGES)
def test_the_viewer_refuses_to_read_a_trace_changed_under_it(trace: Path, change: str) -> None:
    model = TraceModel(str(trace), background=False)
    model.check_unchanged()  # as opened
    key = cache_key(str(trace))
    assert cache_key(str(trace)) == key
    CHANGES[change](trace)
    with pytest.raises(Changed, match="changed on disk"):
        model.check_unchanged()
    assert cache_key(str(trace)) != key


def test_the_viewer_refuses_a_trace_gone_or_copied_elsewhere(trace: Path, tmp_path: Path) -> None:
    model = TraceModel(str(trace), background=False)
    key = cache_key(str(trace))
    kept = tmp_path / "kept.jsonl"
    os.rename(trace, kept)
    with pytest.raises(Changed):
        model.check_unchanged()
    shutil.copy2(kept, trace)  # a copy at the same path, with the same times
    with pytest.raises(Changed):
        model.check_unchanged()
    assert cache_key(str(trace)) != key


def test_a_trace_named_in_bytes_not_utf8_changed_under_the_viewer(
    trace: Path, tmp_path: Path
) -> None:
    """The 409's message names the file in JSON (the server encodes it): a name
    that is not UTF-8 is written with its bytes as ``\\xNN``."""
    odd = tmp_path / os.fsdecode(b"\x80t.jsonl")
    os.rename(trace, odd)
    model = TraceModel(str(odd), background=False)
    assert model.meta()["path"].endswith("\\x80t.jsonl")
    _touch_back(odd)
    with pytest.raises(Changed) as changed:
        model.check_unchanged()
    answer = msgspec.json.encode({"error": str(changed.value)}).decode()
    assert "\\x80t.jsonl changed on disk" in answer
    assert model.verify()["status"] == "unusable"
    msgspec.json.encode(model.verify())
