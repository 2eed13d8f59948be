"""``blocktrace verify`` writes (or refreshes) the trace's index in its one pass, so
``show``, ``prove``, the viewer and exports after a verify never scan again; a
stale or edited index is still refused and rebuilt."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from blocktrace.chain.rewrite import rechain_trace
from blocktrace.format import TraceReader
from blocktrace.format.compressed import zstd_available
from blocktrace.format.index import decode_index, index_paths
from tests.format.recording import record_exceptions


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trace of ~4,800 lines (a few index checkpoints)."""
    return record_exceptions(tmp_path_factory.mktemp("verify-index"), 150)


@pytest.fixture
def copy(trace: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.jsonl"
    shutil.copyfile(trace, target)
    return target


def _kept(path: Path) -> bytes:
    return Path(index_paths(str(path))[0]).read_bytes()


def test_verify_keeps_the_index_readers_then_use(copy: Path, blocktrace_cli) -> None:  # type: ignore[no-untyped-def]
    beside = Path(index_paths(str(copy))[0])
    assert not beside.exists()
    proc = blocktrace_cli("verify", copy)
    assert proc.returncode == 0, proc.stderr
    assert "valid and sealed" in proc.stdout and proc.stderr == ""
    kept = TraceReader(copy).index(build=False)  # no pass: the one verify wrote
    assert kept is not None and kept.status == "sealed"
    built = TraceReader(copy)
    os.unlink(beside)
    fresh = built.index()
    assert fresh is not None
    assert (kept.lines, kept.steps, kept.head, kept.root, kept.offsets, kept.first_steps,
            kept.chunks) == (fresh.lines, fresh.steps, fresh.head, fresh.root, fresh.offsets,
                             fresh.first_steps, fresh.chunks)
    assert f"Merkle root {kept.root} over {kept.leaves} leaves" in proc.stdout


def test_verify_no_index_writes_none(copy: Path, blocktrace_cli) -> None:  # type: ignore[no-untyped-def]
    proc = blocktrace_cli("verify", "--no-index", copy)
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(index_paths(str(copy))[0])


def test_verify_refreshes_a_stale_or_edited_index(copy: Path, blocktrace_cli) -> None:  # type: ignore[no-untyped-def]
    assert blocktrace_cli("verify", copy).returncode == 0
    beside = Path(index_paths(str(copy))[0])
    data = bytearray(beside.read_bytes())
    data[-40] ^= 1
    beside.write_bytes(bytes(data))
    assert TraceReader(copy).index(build=False) is None  # edited: refused
    assert blocktrace_cli("verify", copy).returncode == 0
    refreshed = decode_index(beside.read_bytes())
    assert refreshed is not None and TraceReader(copy).index(build=False) is not None
    # another valid trace at the same path: the old index is refused, verify writes the new one
    other = rechain_trace(copy.read_bytes(), lambda n, b: b.replace(b'"line":2,', b'"line":3,'))
    copy.write_bytes(other)
    assert TraceReader(copy).index(build=False) is None
    assert blocktrace_cli("verify", copy).returncode == 0
    again = TraceReader(copy).index(build=False)
    assert again is not None and again.head != refreshed.head


def test_verify_of_a_tampered_trace_keeps_what_the_check_found(copy: Path, blocktrace_cli) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(copy.read_bytes())
    at = data.index(b'"line":', len(data) // 2) + 7
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    copy.write_bytes(bytes(data))
    proc = blocktrace_cli("verify", copy)
    assert proc.returncode == 1 and "TAMPERED" in proc.stdout
    kept = TraceReader(copy).index(build=False)
    assert kept is not None and kept.status == "tampered" and kept.line is not None
    assert f"at line {kept.line}:" in proc.stdout


def test_verify_keeps_the_index_in_the_cache_when_the_place_beside_is_taken(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blocktrace_cli  # type: ignore[no-untyped-def]
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    beside, cached, _ = index_paths(str(copy))
    os.mkdir(beside)  # something that is not an index is in the way
    proc = blocktrace_cli("verify", copy)
    assert proc.returncode == 0, proc.stderr
    files = list(cache.rglob("*.idx"))
    assert len(files) == 1 and decode_index(files[0].read_bytes()) is not None
    assert cached.endswith(files[0].name)


@pytest.mark.skipif(not zstd_available(), reason="the zstd extra is not installed")
def test_verify_of_a_compressed_trace_keeps_its_index(
    copy: Path, tmp_path: Path, blocktrace_cli  # type: ignore[no-untyped-def]
) -> None:
    from blocktrace.format.compressed import FrameWriter

    zst = tmp_path / "copy.jsonl.zst"
    with open(copy, "rb") as f, open(zst, "wb", buffering=0) as out:
        writer = FrameWriter(out, "zstd")
        writer.write(f.read())
        writer.close()
    assert blocktrace_cli("verify", zst).returncode == 0
    kept = TraceReader(zst).index(build=False)
    assert kept is not None and kept.frames
    reader = TraceReader(zst)
    step = kept.steps - 3
    line = reader.line_of_step(step)
    assert TraceReader(copy).line_of_step(step) == line
