"""One file identity (blocktrace.format.identity) and the index's stamp built on it:
each way a trace changes under a kept index stales it, on real files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest

from blocktrace.format import TraceReader
from blocktrace.format.identity import FileIdentity, cache_key, identity_of, identity_or_none
from blocktrace.format.index import (
    INDEX_FORMAT,
    Stamp,
    decode_index,
    encode_index,
    index_paths,
    sealed,
)
from tests.format.recording import next_tick, record_exceptions


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_exceptions(tmp_path_factory.mktemp("identity"), 40)


@pytest.fixture
def copy(trace: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.jsonl"
    shutil.copyfile(trace, target)
    return target


def _indexed(path: Path) -> FileIdentity:
    """Index ``path`` (kept beside it); the identity the index stamps."""
    index = TraceReader(path).index()
    assert index is not None and index.status == "sealed"
    assert TraceReader(path).index(build=False) is not None  # kept, and trusted as it is
    return index.stamp.file


def _edited_keeping_size(path: Path) -> bytes:
    """The trace with a line in its middle changed, same size, same last line."""
    lines = path.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    at = next(i for i in range(middle, len(lines)) if b'"depth":1' in lines[i])
    lines[at] = lines[at].replace(b'"depth":1', b'"depth":7', 1)
    return b"".join(lines)


def _kept_stamp(path: Path, file: FileIdentity) -> None:
    """Put ``file`` in the stamp of the index kept beside ``path``."""
    beside, *_ = index_paths(str(path))
    index = decode_index(Path(beside).read_bytes())
    assert index is not None
    index.stamp = Stamp(file, index.stamp.kind)
    Path(beside).write_bytes(encode_index(index))


def test_the_identity_is_what_stat_says(copy: Path) -> None:
    st = os.stat(copy)
    ident = identity_of(copy)
    assert ident == FileIdentity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert identity_or_none(copy) == ident
    assert identity_or_none(copy.parent / "gone.jsonl") is None
    with pytest.raises(OSError):
        identity_of(copy.parent / "gone.jsonl")


def test_a_trace_replaced_by_mv_is_another_file(copy: Path) -> None:
    before = _indexed(copy)
    other = copy.with_name("other.jsonl")
    other.write_bytes(_edited_keeping_size(copy))
    os.replace(other, copy)
    now = identity_of(copy)
    assert now.inode != before.inode and now.size == before.size
    assert TraceReader(copy).index(build=False) is None
    fresh = TraceReader(copy).index()
    assert fresh is not None and fresh.status == "tampered"


def test_a_replacement_within_one_clock_tick_is_told_by_its_inode(copy: Path) -> None:
    """The file system's timestamps come from a coarse clock: a trace replaced
    (same size, same last line) within the tick the index was built in has the
    same times.  Its inode still tells it from the file indexed."""
    before = _indexed(copy)
    other = copy.with_name("other.jsonl")
    other.write_bytes(_edited_keeping_size(copy))
    os.replace(other, copy)
    now = identity_of(copy)
    _kept_stamp(copy, msgspec.structs.replace(now, device=before.device, inode=before.inode))
    assert TraceReader(copy).index(build=False) is None
    # the control: the same stamp with the inode it has now is trusted
    _kept_stamp(copy, now)
    assert TraceReader(copy).index(build=False) is not None


def test_an_edit_in_place_keeping_size_and_mtime_stales_the_index(copy: Path) -> None:
    before = _indexed(copy)
    next_tick(copy.parent, before.ctime_ns)
    st = os.stat(copy)
    with open(copy, "r+b") as f:  # in place: the same inode
        f.write(_edited_keeping_size(copy))
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = identity_of(copy)
    assert (now.inode, now.size, now.mtime_ns) == (before.inode, before.size, before.mtime_ns)
    assert TraceReader(copy).index(build=False) is None
    fresh = TraceReader(copy).index()
    assert fresh is not None and fresh.status == "tampered"


def test_touch_back_to_an_old_mtime_still_stales_the_index(copy: Path) -> None:
    """``touch -d`` sets the modification time to any value; the status change
    time moves all the same."""
    before = _indexed(copy)
    next_tick(copy.parent, before.ctime_ns)
    subprocess.run(["touch", "-d", "2001-02-03 04:05:06", str(copy)], check=True)
    os.utime(copy, ns=(before.mtime_ns, before.mtime_ns))  # and back to the one indexed
    now = identity_of(copy)
    assert now.mtime_ns == before.mtime_ns and now.ctime_ns > before.ctime_ns
    assert TraceReader(copy).index(build=False) is None
    rebuilt = TraceReader(copy).index()
    assert rebuilt is not None and rebuilt.status == "sealed"  # the bytes are the same


def test_a_trace_copied_to_another_file_system_is_indexed_again(
    copy: Path, tmp_path: Path
) -> None:
    """The trace and its index copied with their times (``cp -p``) onto another
    file system: the index is not trusted there."""
    _indexed(copy)
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system at /dev/shm")
    beside, *_ = index_paths(str(copy))
    target = Path(shm, f"blocktrace-identity-{os.getpid()}-{tmp_path.name}")
    target.mkdir()
    try:
        moved = target / copy.name
        subprocess.run(["cp", "-p", str(copy), beside, str(target)], check=True)
        assert identity_of(moved).device != identity_of(copy).device
        assert TraceReader(moved).index(build=False) is None
        again = TraceReader(moved).index()
        assert again is not None and again.status == "sealed"
    finally:
        shutil.rmtree(target)


def test_a_version_1_index_is_never_trusted_nor_replaced(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version 1 index stamped only size, change time and kind: it is not read
    (it could not tell a replaced trace), and not replaced either (the version
    that wrote it may still be in use): this version's goes to the cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _indexed(copy)
    beside, cached, _ = index_paths(str(copy))
    index = decode_index(Path(beside).read_bytes())
    assert index is not None
    fields = msgspec.to_builtins(index)
    file = index.stamp.file
    fields[0] = [file.size, file.ctime_ns, index.stamp.kind]  # version 1's stamp
    old = sealed(b"blocktrace-index/1\n", msgspec.msgpack.encode(fields))
    Path(beside).write_bytes(old)
    assert decode_index(old) is None
    assert TraceReader(copy).index(build=False) is None
    assert TraceReader(copy).index() is not None
    assert Path(beside).read_bytes() == old and old[:19] != INDEX_FORMAT
    assert Path(cached).read_bytes().startswith(INDEX_FORMAT)
    assert TraceReader(copy).index(build=False) is not None


def test_cache_keys_follow_the_identity(copy: Path) -> None:
    key = cache_key(str(copy), "1")
    assert cache_key(str(copy), "1") == key
    assert cache_key(str(copy), "2") != key
    st = os.stat(copy)
    next_tick(copy.parent, st.st_ctime_ns)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))  # same times: the change time moves
    assert cache_key(str(copy), "1") != key
    odd = copy.parent / os.fsdecode(b"\x80odd.jsonl")
    shutil.copyfile(copy, odd)
    assert len(cache_key(str(odd), "1")) == 32  # a name that is not UTF-8
