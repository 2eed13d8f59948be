"""Two blocktrace versions whose index layouts differ, used on one trace (a
project's venv and pipx): each keeps its own index and code map and neither
builds them again on every command (docs/FORMAT.md, "The index").

The older version is ``layout1.py``, a process of its own that reads and writes
``TRACE.idx`` and ``TRACE.idx.codes`` as blocktrace before 7915e52 did (index
layout 1); this version is ``python -m blocktrace``.  A rebuild is told by the
kept files' inode and modification time (the test waits for the file system's
clock to tick before each command), never by time taken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from blocktrace.format import TraceReader
from blocktrace.format.index import INDEX_FORMAT, decode_index, index_paths
from blocktrace.views.codemap import CODES_FORMAT, code_map
from tests.format.recording import next_tick, record_exceptions

LAYOUT1 = Path(__file__).with_name("layout1.py")
INDEX_1 = b"blocktrace-index/1\n"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_exceptions(tmp_path_factory.mktemp("layouts"), 40)


@pytest.fixture(scope="module")
def bodies(recorded: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """What layout 1 wrote for this trace, less its stamp: the index's and the
    code map's msgpack arrays (their fields are layout 2's, in the same order)."""
    where = tmp_path_factory.mktemp("bodies")
    other = where / "t.jsonl"
    shutil.copyfile(recorded, other)
    index = TraceReader(other).index()
    cmap = code_map(TraceReader(other))
    assert index is not None and cmap is not None
    out = where / "index.msgpack", where / "codes.msgpack"
    out[0].write_bytes(msgspec.msgpack.encode(msgspec.to_builtins(index)))
    out[1].write_bytes(msgspec.msgpack.encode(msgspec.to_builtins(cmap)))
    return out


class Machine:
    """One trace, one cache directory, and the two versions' commands on them."""

    def __init__(self, tmp: Path, recorded: Path, bodies: tuple[Path, Path],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.trace = tmp / "t.jsonl"
        shutil.copyfile(recorded, self.trace)
        self.cache = tmp / "cache"
        monkeypatch.setenv("XDG_CACHE_HOME", str(self.cache))
        self.env = {**os.environ}
        self.bodies = bodies
        self.kept = [Path(p) for p in index_paths(str(self.trace))]
        self.kept += [Path(f"{p}.codes") for p in self.kept]
        self.history: list[dict[Path, tuple[int, int] | None]] = []

    def _tick(self) -> None:
        """Wait until a file written now has a later time than any kept one."""
        times = [p.stat().st_ctime_ns for p in self.kept if p.exists()]
        if times:
            next_tick(self.trace.parent, max(times))

    def old(self) -> list[str]:
        self._tick()
        proc = subprocess.run(
            [sys.executable, str(LAYOUT1), str(self.trace), *map(str, self.bodies)],
            capture_output=True, text=True, env=self.env, timeout=60, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        self.history.append(self.files())
        return proc.stdout.split()

    def new(self) -> None:
        self._tick()
        for args in (["show", str(self.trace), "3"], ["lines", "--function", "f", str(self.trace)]):
            proc = subprocess.run(
                [sys.executable, "-m", "blocktrace", *args],
                capture_output=True, text=True, env=self.env, timeout=60, check=False,
            )
            assert proc.returncode == 0, proc.stderr
            assert proc.stderr == ""  # (no TAMPERED / UNSEALED note)
        self.history.append(self.files())

    def files(self) -> dict[Path, tuple[int, int] | None]:
        """Each kept file's inode and modification time (None: not there)."""
        found: dict[Path, tuple[int, int] | None] = {}
        for p in self.kept:
            try:
                st = p.stat()
            except FileNotFoundError:
                found[p] = None
            else:
                found[p] = (st.st_ino, st.st_mtime_ns)
        return found

    def writes(self, since: int) -> dict[str, int]:
        """How many commands from the ``since``-th on wrote each kept file."""
        counts: dict[str, int] = {}
        for before, after in zip(self.history[since - 1 :], self.history[since:], strict=False):
            for p in self.kept:
                if after[p] != before[p]:
                    counts[p.name] = counts.get(p.name, 0) + 1
        return counts


@pytest.mark.parametrize("first", ["old", "new"])
def test_two_index_layouts_each_keep_their_own(
    first: str, tmp_path: Path, recorded: Path, bodies: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = Machine(tmp_path, recorded, bodies, monkeypatch)
    beside, cached, layout_named = m.kept[:3]
    if first == "new":
        m.new()
        assert beside.read_bytes().startswith(INDEX_FORMAT)  # nobody else's there: beside
    said = []
    for _ in range(4):
        said.append(m.old())
        m.new()
    # the first round settles (layout 1 takes TRACE.idx back, this version moves
    # to the cache); after that neither builds again: no kept file is written
    assert m.writes(since=3) == {}, m.history
    assert said[1:] == [["kept", "kept"]] * 3
    assert beside.read_bytes().startswith(INDEX_1)
    assert Path(f"{beside}.codes").read_bytes().startswith(CODES_FORMAT)
    assert decode_index(cached.read_bytes()) is not None
    assert Path(f"{cached}.codes").read_bytes().startswith(CODES_FORMAT)
    assert not layout_named.exists()


def test_a_cache_held_by_the_other_layout_too_gives_a_name_of_our_own(
    tmp_path: Path, recorded: Path, bodies: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both places layout 1 uses hold its index (a trace it saw in a directory it
    could not write, then in one it could): this version keeps its own under
    the name that carries its layout, ``KEY.2.idx``."""
    m = Machine(tmp_path, recorded, bodies, monkeypatch)
    beside, cached, layout_named = m.kept[:3]
    m.old()
    cached.parent.mkdir(parents=True)
    shutil.copyfile(beside, cached)
    shutil.copyfile(f"{beside}.codes", f"{cached}.codes")
    held = {p: p.read_bytes() for p in (beside, cached)}
    m.new()
    m.new()
    assert m.writes(since=2) == {}
    assert {p: p.read_bytes() for p in (beside, cached)} == held
    assert layout_named.name.endswith(".2.idx")
    assert decode_index(layout_named.read_bytes()) is not None
    assert Path(f"{layout_named}.codes").read_bytes().startswith(CODES_FORMAT)
    assert m.old() == ["kept", "kept"]


def test_a_damaged_index_of_ours_or_a_stale_one_is_replaced_in_place(
    tmp_path: Path, recorded: Path, bodies: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only an intact index of another layout is passed over: one cut short,
    edited, or of this layout but stale, is built again where it was."""
    m = Machine(tmp_path, recorded, bodies, monkeypatch)
    beside, cached, _ = m.kept[:3]
    m.new()
    good = beside.read_bytes()
    edited = bytearray(good)
    edited[-5] ^= 1
    for damaged in (good[: len(good) // 2], bytes(edited), b"not an index", INDEX_1):
        beside.write_bytes(damaged)
        m.new()
        assert beside.read_bytes() == good
    st = m.trace.stat()
    os.utime(m.trace, ns=(st.st_atime_ns, st.st_mtime_ns))  # the change time moves: stale
    m.new()
    assert decode_index(beside.read_bytes()) is not None and beside.read_bytes() != good
    assert not cached.exists()
