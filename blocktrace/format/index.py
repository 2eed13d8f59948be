"""The random-access index of a trace: built once, in the chain check's pass.

An index is a sparse table kept beside the trace (``TRACE.idx``; in
``$XDG_CACHE_HOME/blocktrace/`` when the trace's directory is not writable, or
when ``TRACE.idx`` is another blocktrace version's index, of another layout,
which is left as it is: :func:`index_paths`).
Every ``EVERY`` lines (1,024: 64 Merkle leaves) it records where the line
starts (byte offset; for a compressed trace also the frame holding it) and how
many steps came before it; for every 64 complete leaves it keeps their Merkle
subtree hash, so a proof or a root needs no pass over the trace.  It also keeps
what the chain check found (status, lines, head, root), so a consumer can say
what ``verify`` said without a pass.

An index commits to the trace (its identity -- device, inode, size,
modification and status change times: :mod:`blocktrace.format.identity` --
its kind, and the head: the last indexed line is re-read and its hash
compared on every load)
and to its own bytes (a SHA-256 over them): a stale, truncated or hand-edited
index is detected and rebuilt, never trusted.  It is a cache, not an anchor:
a proof made from it verifies against the root the chain check computed when
it was built, and only a checkpoint or an anchored head establishes trust.

A **step** is the 0-based ordinal of an op line, as ``blocktrace diff`` numbers
steps: an exception line at the same ``pc``, ``depth``, ``code`` and
``thread`` as the op line before it belongs to that op.
"""

from __future__ import annotations

import hashlib
import os
import stat
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import msgspec

from blocktrace._native import extension
from blocktrace.format.compressed import FrameStream, Kind, Position
from blocktrace.format.identity import FileIdentity, identity_of
from blocktrace.format.rules import NODE_PREFIX, split_hash
from blocktrace.format.versions import LINES_PER_LEAF

__all__ = [
    "EVERY",
    "INDEX_FORMAT",
    "INDEX_LAYOUT",
    "LEAVES_PER_CHUNK",
    "ChunkTree",
    "IndexBuilder",
    "StepCounter",
    "TraceIndex",
    "cache_home",
    "cache_path",
    "index_paths",
    "keep_index",
    "load_index",
    "mth",
    "range_hash",
    "store_index",
]

INDEX_LAYOUT: Final = 2
INDEX_FORMAT: Final = b"blocktrace-index/%d\n" % INDEX_LAYOUT
"""Layout 2 stamps the trace's whole identity; a layout 1 index (size and
change time only, blocktrace before 7915e52) is not read, nor overwritten: it
is another version's (:func:`store_kept`)."""
_INDEX_FAMILY: Final = b"blocktrace-index/"
LEAVES_PER_CHUNK: Final = 64
EVERY: Final = LEAVES_PER_CHUNK * LINES_PER_LEAF
"""Lines between two checkpoints of the index (a chunk of 64 leaves)."""
_OP: Final = b'{"pc":'
_PLAIN_OP: Final = b'"gasCost":"0x1"'
_HEAD_SCAN: Final = 160
_decode_dict = msgspec.json.Decoder(dict[str, Any]).decode


class Stamp(msgspec.Struct, array_like=True, frozen=True):
    """What the index knows of the file it was built from: its identity (any
    write, rename over it, copy, or ``os.utime`` putting the modification time
    back gives another) and its kind."""

    file: FileIdentity
    kind: str


class TraceIndex(msgspec.Struct, array_like=True, dict=True):
    """A loaded (or just built) index.  Line numbers are 1-based; ``checkpoint
    k`` is line ``k * every + 1``."""

    stamp: Stamp
    every: int
    lines: int
    """Lines indexed: every line the chain check accepted."""
    steps: int
    """Steps among them."""
    status: str
    reason: str
    line: int | None
    head: str
    version: int
    leaves: int
    """Complete leaves (their hashes were fed to the tree)."""
    root: str
    """The Merkle root the chain check computed (sealed traces), hex; or ''."""
    tree_size: int
    last: tuple[int, int, int]
    """Position of the last indexed line (its hash is ``head``)."""
    offsets: bytes
    """array('Q'): the uncompressed offset of each checkpoint line."""
    steps_at: bytes
    """array('Q'): steps before each checkpoint line."""
    first_steps: bytes
    """array('Q'): the line of the first step at or after each checkpoint line
    (0: none); the lines before it belong to a step begun before the checkpoint."""
    frames: bytes
    """array('Q'): pairs (file offset, uncompressed offset) of the frame holding
    each checkpoint line; empty for a plain trace."""
    chunks: bytes
    """32-byte Merkle subtree hashes of leaves [64k, 64k + 64), complete chunks only."""

    def __post_init__(self) -> None:
        self._offsets = array("Q", self.offsets)
        self._steps = array("Q", self.steps_at)
        self._first_steps = array("Q", self.first_steps)
        self._frames = array("Q", self.frames)

    @property
    def checkpoints(self) -> int:
        return len(self._offsets)

    def position(self, k: int) -> Position:
        """Where checkpoint ``k``'s line starts."""
        u = self._offsets[k]
        if self._frames:
            return (self._frames[2 * k], self._frames[2 * k + 1], u)
        return (u, u, u)

    def checkpoint_for_line(self, lineno: int) -> int:
        """The last checkpoint at or before line ``lineno``."""
        return min((lineno - 1) // self.every, len(self._offsets) - 1)

    def checkpoint_for_step(self, step: int) -> int:
        """The last checkpoint with no more than ``step`` steps before it."""
        return max(bisect_right(self._steps, step) - 1, 0)

    def steps_before(self, k: int) -> int:
        return self._steps[k]

    def first_step(self, k: int) -> int:
        return self._first_steps[k]

    def chunk(self, i: int) -> bytes | None:
        """The subtree hash of leaves [64 i, 64 i + 64), when complete and kept."""
        if i >= 0 and (i + 1) * 32 <= len(self.chunks):
            return self.chunks[i * 32 : (i + 1) * 32]
        return None


class StepCounter:
    """Tells which lines are steps, as ``blocktrace diff`` merges lines: a
    ``{"pc":`` line at the ``pc``, ``depth``, ``code`` and ``thread`` of the step
    before it, with its ``gas`` (or an ``event``: an exception line), belongs to
    that step.  An op line after an op line never does (each costs gas), so
    only lines next to an exception line are decoded."""

    __slots__ = ("_last", "_last_plain")

    def __init__(self) -> None:
        self._last: bytes | None = None
        self._last_plain = True

    def is_step(self, raw: bytes) -> bool:
        """Whether ``raw`` (the next line) starts a step."""
        if not raw.startswith(_OP):
            return False
        plain = _PLAIN_OP in raw[:_HEAD_SCAN]
        if not (plain and self._last_plain) and merges(raw, self._last):
            return False
        self._last = raw
        self._last_plain = plain
        return True

    def start(self, raw: bytes) -> None:
        """``raw`` is known to start a step (the first after an index checkpoint)."""
        self._last = raw
        self._last_plain = _PLAIN_OP in raw[:_HEAD_SCAN]

    def steps(self, lines: Iterator[tuple[int, bytes]], first: int) -> Iterator[tuple[int, bool]]:
        """``(number, starts a step)`` for lines read from an index checkpoint
        whose first step is line ``first`` (0: none)."""
        is_step = self.is_step
        for number, raw in lines:
            if first == 0 or number < first:
                yield number, False
            elif number == first:
                self.start(raw)
                yield number, True
            else:
                yield number, is_step(raw)


def merges(raw: bytes, step: bytes | None) -> bool:
    """Whether line ``raw`` belongs to the step whose line is ``step``."""
    if step is None:
        return False
    try:
        line, op = _decode_dict(raw), _decode_dict(step)
    except (msgspec.DecodeError, RecursionError):
        return False
    if line.get("gas") != op.get("gas") and line.get("event") is None:
        return False
    return all(line.get(k) == op.get(k) for k in ("pc", "depth", "code", "thread"))


class IndexBuilder:
    """Fed by the chain check (``check_chain(..., index=builder)``): each
    accepted line (:meth:`line`) and, as its tree, each complete leaf's hash."""

    def __init__(self, stamp: Stamp, frames: FrameStream | None) -> None:
        self.stamp = stamp
        self._frames = frames
        self.lines = 0
        self.steps = 0
        self.offset = 0
        self._last_raw = b""
        self._counter = StepCounter()
        self._is_step = self._counter.is_step
        self._offsets = array("Q")
        self._steps_at = array("Q")
        self._first_steps = array("Q")
        self._waiting = False
        self._frame_pos = array("Q")
        self._chunks = bytearray()
        self._pending = bytearray()
        self._leaves = 0
        self._last_u = 0
        self._head = ""
        self.absorbed = False
        """The lines so far were counted by the native scanner (:meth:`absorb`)."""

    # -- the Tree protocol (leaf hashes) -----------------------------------------

    @property
    def size(self) -> int:
        return self._leaves

    def append_leaf_hash(self, digest: bytes) -> None:
        self.append_leaves(digest)

    def append_leaves(self, digests: bytes) -> None:
        """Leaf hashes in bulk (32 bytes each)."""
        self._leaves += len(digests) // 32
        pending = self._pending
        pending += digests
        full = len(pending) // _CHUNK_BYTES * _CHUNK_BYTES
        if full:
            self._chunks += perfect_roots(bytes(pending[:full]))
            del pending[:full]

    def root(self) -> bytes:
        chunks, tail = bytes(self._chunks), self._pending
        pending = [bytes(tail[i : i + 32]) for i in range(0, len(tail), 32)]
        first = len(chunks) // 32 * LEAVES_PER_CHUNK

        tree = ChunkTree(chunks)
        return range_hash(
            0, self._leaves, tree.subtree, lambda lo, hi: pending[lo - first : hi - first]
        )

    # -- lines ---------------------------------------------------------------------

    def line(self, raw: bytes) -> None:
        """One accepted line (with its newline)."""
        if self.lines % EVERY == 0:
            self._checkpoint()
        self._one(raw)

    def _one(self, raw: bytes) -> None:
        n = self.lines
        self.lines = n + 1
        self.offset += len(raw)
        self._last_raw = raw
        if raw[:6] == _OP and self._is_step(raw):
            self.steps += 1
            if self._waiting:
                self._first_steps[-1] = n + 1
                self._waiting = False

    # -- from the native scanner (blocktrace.format.fastcheck) -------------------------

    def follow(self, scan: Any) -> None:
        """After each of the scanner's passes (``ChainScan(..., every=EVERY)``, which
        keeps the lines' bookkeeping itself): the frames of its new checkpoints."""
        frames = self._frames
        if frames is None:
            return
        known = len(self._frame_pos) // 2
        for k in range(known, scan.checkpoints):
            self._frame_pos.extend(frames.frame_before(scan.checkpoint_offset(k)))

    def absorb(self, scan: Any) -> None:
        """Take the scanner's bookkeeping of the lines it accepted (before a line
        Python reads itself: the summary)."""
        self.absorbed = True
        self.follow(scan)
        steps, offset, last_offset, waiting, checkpoints = scan.index_state()
        table = array("Q", checkpoints)
        self._offsets = table[0::3]
        self._steps_at = table[1::3]
        self._first_steps = table[2::3]
        self.lines = scan.lines
        self.steps = steps
        self.offset = offset
        self._waiting = bool(waiting)
        self._last_u = last_offset
        self._head = scan.head
        self._last_raw = b""
        last = scan.last_step
        if last is not None:
            self._counter.start(last)

    def _checkpoint(self) -> None:
        self._offsets.append(self.offset)
        self._steps_at.append(self.steps)
        self._first_steps.append(0)
        self._waiting = True
        if self._frames is not None:
            self._frame_pos.extend(self._frames.frame_before(self.offset))

    def finish(self, result: Any) -> TraceIndex:
        """The index, given the chain check's ``Verification``."""
        if self._last_raw:
            last_u, head = self.offset - len(self._last_raw), _hash_of(self._last_raw)
        else:
            last_u, head = self._last_u, self._head
        if self._frames is not None and self.lines:
            last: Position = (*self._frames.frame_before(last_u), last_u)
        else:
            last = (last_u, last_u, last_u)
        return TraceIndex(
            stamp=self.stamp,
            every=EVERY,
            lines=self.lines,
            steps=self.steps,
            status=result.status,
            reason=result.reason,
            line=result.line,
            head=head if self.lines else "",
            version=result.version,
            leaves=self._leaves,
            root=result.root,
            tree_size=result.tree_size,
            last=last,
            offsets=self._offsets.tobytes(),
            steps_at=self._steps_at.tobytes(),
            first_steps=self._first_steps.tobytes(),
            frames=self._frame_pos.tobytes(),
            chunks=bytes(self._chunks),
        )


_CHUNK_BYTES: Final = 32 * LEAVES_PER_CHUNK
_native = extension("blocktrace.format._cscan")


def perfect_roots(hashes: bytes) -> bytes:
    """The root of each whole chunk (64 leaf hashes) in ``hashes``, concatenated."""
    if _native is not None:
        return bytes(_native.perfect_roots(hashes, LEAVES_PER_CHUNK))
    return b"".join(
        perfect_root([hashes[i + j : i + j + 32] for j in range(0, _CHUNK_BYTES, 32)])
        for i in range(0, len(hashes) - _CHUNK_BYTES + 1, _CHUNK_BYTES)
    )


def perfect_root(hashes: list[bytes]) -> bytes:
    """The Merkle root of a power-of-two number of leaf hashes."""
    level = hashes
    sha = hashlib.sha256
    while len(level) > 1:
        level = [
            sha(NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)
        ]
    return level[0]


def range_hash(
    lo: int,
    hi: int,
    subtree: Callable[[int, int], bytes | None],
    leaf_hashes: Callable[[int, int], list[bytes]],
) -> bytes:
    """The Merkle tree hash (RFC 9162 MTH) of leaves [lo, hi): perfect aligned
    subtrees of whole chunks from ``subtree(lo, size)`` when it has them (size a
    power of two, at least a chunk), the rest from ``leaf_hashes(lo, hi)``
    (asked once per stretch inside one chunk)."""
    if hi <= lo:
        return hashlib.sha256(b"").digest()
    size = hi - lo
    if size >= LEAVES_PER_CHUNK and not size & (size - 1) and not lo % size:
        known = subtree(lo, size)
        if known is not None:
            return known
    if size <= LEAVES_PER_CHUNK and lo // LEAVES_PER_CHUNK == (hi - 1) // LEAVES_PER_CHUNK:
        return mth(leaf_hashes(lo, hi))
    k = 1 << ((size - 1).bit_length() - 1)
    left = range_hash(lo, lo + k, subtree, leaf_hashes)
    right = range_hash(lo + k, hi, subtree, leaf_hashes)
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


class ChunkTree:
    """Every perfect aligned subtree above the chunks, level by level (chunks,
    pairs of chunks, ...), built once from the chunk hashes: a range hash is
    then O(log n) node hashes (as C2SP tiles keep them, computed on load)."""

    def __init__(self, chunks: bytes) -> None:
        # each level as the concatenation of its 32-byte hashes: the pairs of
        # one level hashed in C (``_cscan.perfect_roots``, groups of 2), once per
        # level rather than once per node in Python (13,056 chunks: 9 ms -> 1.5 ms)
        level = chunks[: len(chunks) // 32 * 32]
        self.levels = [level]
        while len(level) > 32:
            level = _pair_roots(level)
            self.levels.append(level)

    def subtree(self, lo: int, size: int) -> bytes | None:
        """The hash of leaves [lo, lo + size) when it is kept."""
        j = (size // LEAVES_PER_CHUNK).bit_length() - 1
        if j >= len(self.levels):
            return None
        level = self.levels[j]
        at = 32 * (lo // size)
        return level[at : at + 32] if at < len(level) else None


def _pair_roots(level: bytes) -> bytes:
    """The next level up: the node hash of each whole pair of ``level``'s hashes
    (an odd last one has no parent at this level)."""
    if _native is not None:
        return bytes(_native.perfect_roots(level, 2))
    sha = hashlib.sha256
    return b"".join(
        sha(NODE_PREFIX + level[i : i + 64]).digest() for i in range(0, len(level) - 63, 64)
    )


def mth(hashes: list[bytes]) -> bytes:
    """The Merkle tree hash of a list of leaf hashes (RFC 9162)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return hashlib.sha256(NODE_PREFIX + mth(hashes[:k]) + mth(hashes[k:])).digest()


def _hash_of(raw: bytes) -> str:
    parts = split_hash(raw.rstrip(b"\n"))
    return parts[1] if parts is not None else ""


# -- where an index lives --------------------------------------------------------------


def stamp_of(path: str, kind: Kind) -> Stamp:
    """The stamp of the trace at ``path`` now (``OSError``: cannot stat it)."""
    return Stamp(identity_of(path), kind)


def cache_home(*parts: str) -> str:
    """``$XDG_CACHE_HOME/blocktrace/<parts>``, else ``~/.cache/blocktrace/<parts>``:
    where the index, ``query``'s datasets and the viewer's tables are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "blocktrace", *parts)


def cache_path(path: str, layout: bool = False) -> str:
    """The index's place in the cache directory (for a trace in a directory
    this user cannot write); with ``layout``, the name that carries this
    version's index layout (``KEY.2.idx``: where the index goes when the other
    places hold another version's)."""
    key = hashlib.sha256(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()
    return cache_home(key[:32] + (f".{INDEX_LAYOUT}.idx" if layout else ".idx"))


def index_paths(path: str) -> tuple[str, str, str]:
    """Where an index may be kept, in the order it is stored: beside the trace,
    in the cache, and in the cache under a name carrying this layout.  Another
    blocktrace version (another layout) uses the first two too: a place that
    holds its index is passed over (:func:`store_kept`), so two versions used on
    one trace each keep their own index instead of rebuilding each other's."""
    return path + ".idx", cache_path(path), cache_path(path, layout=True)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TraceIndex)


def sealed(magic: bytes, body: bytes) -> bytes:
    """A kept file's bytes (the index, and files kept beside it): ``magic``, the
    SHA-256 of ``body``, then ``body``; :func:`unsealed` gives ``body`` back."""
    return magic + hashlib.sha256(body).digest() + body


def unsealed(magic: bytes, data: bytes) -> bytes | None:
    """The body of ``data`` made by :func:`sealed` with ``magic``, or None when
    ``data`` is not that (another kind or version, cut short, edited)."""
    start = len(magic) + 32
    if not data.startswith(magic) or len(data) < start:
        return None
    body = data[start:]
    if hashlib.sha256(body).digest() != data[len(magic) : start]:
        return None
    return body


def another_versions(data: bytes, family: bytes, ours: Callable[[bytes], object | None]) -> bool:
    """Whether ``data`` is an intact kept file of ``family`` (``blocktrace-index/``:
    its magic line, then the SHA-256 of the rest, which checks) that this version
    does not read (``ours(data)`` is None): another blocktrace version's -- left
    as it is, never replaced.  A file cut short, edited or of something else is
    not anyone's: it is replaced."""
    if not data.startswith(family):
        return False
    end = data.find(b"\n", len(family), len(family) + 16)
    if end < 0 or unsealed(data[: end + 1], data) is None:
        return False
    return ours(data) is None


def store_kept(candidates: Iterable[str], data: bytes,
               theirs: Callable[[bytes], bool] | None = None) -> str | None:
    """Write ``data`` at the first of ``candidates`` that takes it, whole or not
    at all (a temporary file renamed over it); that path, or None.  A candidate
    holding a file for which ``theirs`` (given the file's bytes) says True --
    another version's -- is passed over."""
    import tempfile  # (only to keep an index: not on every reader's start)

    for candidate in candidates:
        if theirs is not None and _held(candidate, theirs):
            continue
        directory = os.path.dirname(candidate) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".blocktrace-idx-", dir=directory)
        except OSError:
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600: readers of the trace read it too
                f.write(data)
            os.replace(tmp, candidate)
            return candidate
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return None


def _held(candidate: str, theirs: Callable[[bytes], bool]) -> bool:
    try:
        with open(candidate, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return theirs(data)


def another_versions_index(data: bytes) -> bool:
    """Whether ``data`` is an intact index of another layout (another version's)."""
    return another_versions(data, _INDEX_FAMILY, decode_index)


def encode_index(index: TraceIndex) -> bytes:
    return sealed(INDEX_FORMAT, _encoder.encode(index))


def decode_index(data: bytes) -> TraceIndex | None:
    """The index in ``data``, or None when it is not an intact index."""
    body = unsealed(INDEX_FORMAT, data)
    if body is None:
        return None
    try:
        index = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError):
        return None
    n = len(index._offsets)
    if (
        index.every != EVERY
        or len(index._steps) != n
        or len(index._first_steps) != n
        or len(index._frames) not in (0, 2 * n)
        or len(index.chunks) % 32
        or n != -(-index.lines // EVERY)
    ):
        return None
    return index


def load_index(path: str, stamp: Stamp) -> TraceIndex | None:
    """The intact index of the trace at ``path`` whose stamp is ``stamp``, or None.
    (The head is checked by the reader, which can read the last line.)

    Both places are looked at, the most recently written first: an index built
    again (``TraceReader.index(fresh=True)``: the kept one's lines were not the
    trace's, whatever its stamp said) goes to the cache when the trace's
    directory does not take it, and the stale copy it could not replace beside
    the trace must not be found first next time."""
    for candidate in _newest_first(index_paths(path)):
        try:
            with open(candidate, "rb") as f:
                if f.read(len(INDEX_FORMAT)) != INDEX_FORMAT:
                    continue  # (another layout's, or no index: not read on)
                data = INDEX_FORMAT + f.read()
        except OSError:
            continue
        index = decode_index(data)
        if index is not None and index.stamp == stamp:
            return index
    return None


def _newest_first(candidates: Iterable[str]) -> list[str]:
    """The files among ``candidates`` that exist, the last modified first (the
    order given where they tie)."""
    found: list[tuple[int, int, str]] = []
    for order, candidate in enumerate(candidates):
        try:
            found.append((-os.stat(candidate).st_mtime_ns, order, candidate))
        except OSError:
            continue
    return [candidate for _, _, candidate in sorted(found)]


def keep_index(path: str, index: TraceIndex) -> str | None:
    """Store an index just built by the chain check (:func:`store_index`) when
    the trace is a regular file that did not change while it was read (a trace
    still being written is indexed again next time); its path, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    if Stamp(FileIdentity.of_stat(st), index.stamp.kind) != index.stamp:
        return None
    return store_index(path, index)


def store_index(path: str, index: TraceIndex) -> str | None:
    """Write the index beside the trace, or in the cache; its path, or None
    when no place takes it (the index is then only kept in memory).  A place
    holding another version's index is passed over: that index is left as it
    is, for the version that reads it."""
    return store_kept(index_paths(path), encode_index(index), another_versions_index)
