"""A trace file as a Merkle tree, and proof bundles for one of its lines.

The tree of a trace (docs/FORMAT.md, "Merkle tree") is built over its lines
(versions 1 and 2: those before the summary line), header included, grouped in
order into leaves of ``LINES_PER_LEAF`` lines; a leaf's data is the exact bytes
of its lines, each with its ``\\n`` (version 4: the hash of the line before the
leaf, then each line's body -- the line up to its hash member -- and a
``\\n``).  :class:`TraceFile` answers roots and proofs from the trace's index
(``TraceFile(path, index=...)``: the index keeps the subtree hash of every 64
leaves, so only the one chunk of 1,024 lines a proof needs is read, and checked
against the index), or without one in two streaming passes (count, then hash)
in O(log n) memory.

A *proof bundle* shows that one line is in a trace with a given root without
the rest of the trace: it carries the line's whole leaf (so it reveals the up
to 15 lines grouped with it), the line's place in the leaf, the tree size, the
root and the audit path; for a version 4 trace also ``"version":4`` (the rules
it is proven under: a bundle without it is proven under versions 1-3's) and
``prevHash``, the hash of the line before the leaf, with which every line's own
hash is checked too.
Bundles are JSON written with msgspec in one canonical form; :func:`check_bundle`
accepts only that exact form, so any change to a bundle's bytes is either a
different proof that fails or a non-canonical encoding that is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from blocktrace.chain.merkle import (
    MerkleAccumulator,
    ProofError,
    RangeHasher,
    inclusion_ranges,
    leaf_hash,
    verify_inclusion,
)
from blocktrace.format.errors import TraceError
from blocktrace.format.rules import DOMAIN_V4, LEAF_PREFIX, split_hash
from blocktrace.format.versions import KNOWN_VERSIONS, LINES_PER_LEAF, SUMMARY_IN_TREE
from blocktrace.limits import LineTooLongError

if TYPE_CHECKING:
    from pathlib import Path

    from blocktrace.format.index import ChunkTree, TraceIndex

# A trace's reading modules (compressed files, the index, the line Structs) are
# imported by TraceFile where it reads: check-proof, which checks a bundle
# without the trace, never loads them.

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSIONED",
    "BundleError",
    "NotABundleError",
    "ProofBundle",
    "StaleIndexError",
    "TraceError",
    "TraceFile",
    "check_bundle",
    "encode_bundle",
    "make_bundle",
]

BUNDLE_FORMAT = "blocktrace-proof/1"
BUNDLE_VERSIONED = 4
"""The first format version whose bundles name it (``"version":4``): its leaf
rule differs from versions 1-3's, which share one and name none."""
_HEX64 = frozenset("0123456789abcdef")
_H0_V4 = hashlib.sha256(DOMAIN_V4).digest()
_check_json = msgspec.json.Decoder(dict[str, object]).decode


class BundleError(ValueError):
    """A proof bundle is malformed or does not prove what it claims."""


class NotABundleError(BundleError):
    """The input is not a proof bundle at all (empty, not JSON, not the bundle's
    shape): unusable input rather than a proof that fails."""


def _is_hex64(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX64


class TraceFile:
    """A trace on disk, read through the format's reader: its lines, its summary,
    its Merkle tree.

    Construction opens a :class:`~blocktrace.format.TraceReader` (line 1 judged
    as ``verify`` judges it) and asks it for the trace's extent (from the index,
    or one fast pass: the lines counted, the last one read); :meth:`leaves`
    streams the leaves from the reader's lines.  Chain hashes are *not* checked
    here (that is ``blocktrace verify``); what is checked is what the tree needs:
    a blocktrace header with a hash, and that a summary's ``lines``, ``treeSize``
    and ``root`` agree with the file (:meth:`root`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        index: TraceIndex | None = None,
    ) -> None:
        from blocktrace.format.lines import Summary, line_type
        from blocktrace.format.reader import TraceReader

        name = self._name = os.fspath(path)
        self._index = index
        self._tree: ChunkTree | None = None
        # leaf hashes already read during one proof (inclusion): a proof asks for
        # its leaf's chunk once per level of the path below the chunk's hash
        self._read: dict[tuple[int, int], list[bytes]] | None = None
        try:
            reader = self._reader = TraceReader(name, index)
            extent = reader.extent()
        except OSError as exc:
            raise TraceError(name, None, f"cannot read: {exc.strerror or exc}") from None
        newlines, last = extent.lines, extent.last
        header = reader.header
        if not _is_hex64(header.hash):
            raise TraceError(name, 1, "the header has no valid hash")
        self.version = reader.version
        self.trace_id = header.hash
        """The header line's ``hash``: it names this trace in checkpoint origins."""
        self.complete_lines = newlines
        self.summary: Summary | None = None
        if newlines > 1:
            try:
                if line_type(last) is Summary:
                    self.summary = msgspec.json.decode(last, type=Summary)
            except (msgspec.DecodeError, RecursionError):
                self.summary = None
        self.sealed = self.summary is not None and not extent.trailing
        """A summary line ends the file (and nothing is torn after it)."""
        self.outcome_in_tree = self.version in SUMMARY_IN_TREE
        """The summary is in the tree (versions 3 and 4): a checkpoint of the whole tree
        covers the run's outcome."""
        in_tree = self.summary is None or self.outcome_in_tree
        self.tree_lines = newlines - (0 if in_tree else 1)
        """Lines in the Merkle tree: every complete line (versions 1 and 2: but the
        summary)."""
        self.tree_size = -(-self.tree_lines // LINES_PER_LEAF)
        """Leaves in the tree of the whole trace."""
        self.full_leaves = self.tree_lines // LINES_PER_LEAF
        """Leaves holding a full ``LINES_PER_LEAF`` lines (what a periodic
        checkpoint of an unfinished run can cover)."""
        if self.summary is not None and self.summary.lines != newlines - 1:
            raise TraceError(
                name, newlines,
                f"summary says {self.summary.lines} lines came before it, the file has "
                f"{newlines - 1}",
            )
        self._root: bytes | None = None

    @property
    def path(self) -> Path:
        """The trace's path (pathlib is imported only when asked for: a command's
        start is mostly its imports)."""
        from pathlib import Path

        return Path(self._name)

    def _raw_lines(self, start: int, count: int) -> Iterator[tuple[int, bytes]]:
        """``(number, bytes)`` of lines ``start`` .. ``start + count - 1``, all of
        them (fewer: the file changed since it was counted, a :class:`TraceError`)."""
        number = start - 1
        for number, raw in self._reader.raw_lines(start, count):
            yield number, raw
        if number != start + count - 1:
            raise self._fewer(number)

    def _fewer(self, number: int) -> TraceError:
        return TraceError(self._name, number + 1,
                          "the trace changed while it was read: it has fewer lines")

    def lines(self, limit: int | None = None) -> Iterator[bytes]:
        """The tree's lines (each without its ``\\n``), at most ``limit`` of them."""
        n = self.tree_size if limit is None else -(-limit // LINES_PER_LEAF)
        left = self.tree_lines if limit is None else min(limit, self.tree_lines)
        for group in self.leaves(n):
            yield from group[:left]
            left -= len(group)
            if left <= 0:
                return

    def leaves(self, limit: int | None = None) -> Iterator[list[bytes]]:
        """The tree's leaves as lists of lines (each without its ``\\n``), at most
        ``limit`` leaves: read through the format's whole-line buffers as lists
        of lines (:func:`blocktrace.format.wholelines.line_lists`, as ``query``
        and the viewer read a trace in bulk), grouped by list slices -- no Python
        step per line."""
        from blocktrace.format.wholelines import line_lists

        n = self.tree_size if limit is None else min(limit, self.tree_size)
        count = min(n * LINES_PER_LEAF, self.tree_lines)
        if count <= 0:
            return
        got = 0
        carry: list[bytes] = []
        try:
            for lines in line_lists(self._reader):
                if carry:
                    lines[:0] = carry
                take = min(len(lines), count - got)
                whole = take - take % LINES_PER_LEAF
                for at in range(0, whole, LINES_PER_LEAF):
                    yield lines[at : at + LINES_PER_LEAF]
                got += whole
                carry = lines[whole:take]
                if got + len(carry) == count:
                    break
        except LineTooLongError as exc:
            raise TraceError(self._name, None, f"{exc}: the trace changed while it was read"
                             ) from None
        if carry:
            yield carry
            got += len(carry)
        if got != count:
            raise self._fewer(got)

    def hashed_leaves(self, limit: int | None = None) -> Iterator[tuple[bytes, list[bytes]]]:
        """(leaf hash, lines without their newlines) of the tree's leaves, at most
        ``limit`` of them."""
        prev: bytes | None = _H0_V4 if self.version >= 4 else None
        for k, group in enumerate(self.leaves(limit)):
            yield self._leaf_hash(k, group, prev), group
            if prev is not None:
                prev = self._hash_of(k * LINES_PER_LEAF + len(group), group[-1])

    def _leaf_hash(self, leaf: int, group: list[bytes], prev: bytes | None) -> bytes:
        """The leaf hash of leaf ``leaf``'s lines (without their newlines); version
        4: ``prev`` is the hash of the line before it (the one it carries; the
        chain is verify's business)."""
        if prev is None:
            return leaf_hash(b"\n".join(group) + b"\n")
        bodies: list[bytes] = []
        for offset, line in enumerate(group):
            parts = split_hash(line)
            if parts is None:
                raise self._no_hash(leaf * LINES_PER_LEAF + offset + 1)
            bodies.append(parts[0])
        bodies.append(b"")  # (each body with its newline: one update for the leaf)
        return hashlib.sha256(LEAF_PREFIX + prev + b"\n".join(bodies)).digest()

    def _hash_of(self, number: int, line: bytes) -> bytes:
        """The hash line ``number`` (its bytes ``line``, without the newline) carries."""
        parts = split_hash(line)
        if parts is None:
            raise self._no_hash(number)
        return bytes.fromhex(parts[1])

    def _no_hash(self, number: int) -> TraceError:
        return TraceError(self._name, number, "line has no hash member: verify the trace")

    def _prev_of(self, leaf: int) -> bytes | None:
        """Version 4: the hash of the line before leaf ``leaf`` (H_0 before the first)."""
        if self.version < 4:
            return None
        if leaf == 0:
            return _H0_V4
        number = leaf * LINES_PER_LEAF
        return self._hash_of(number, b"".join(raw[:-1] for _, raw in self._raw_lines(number, 1)))

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first ``size`` leaves (all by default).

        For the whole tree, checks the summary's ``treeSize`` and ``root``
        when the summary carries them.
        """
        whole = size is None or size == self.tree_size
        if whole and self._root is not None:
            return self._root
        n = self.tree_size if size is None else size
        self._check_size(n)
        if self._index is not None:
            r = self._range_hash(0, n)
            if whole and self._index.root and r.hex() != self._index.root:
                raise self._changed()
        else:
            acc = MerkleAccumulator()
            for digest, _ in self.hashed_leaves(n):
                acc.append_leaf_hash(digest)
            r = acc.root()
        if whole:
            self._check_summary(r)
            self._root = r
        return r

    def check_lines(self, first: int, count: int) -> None:
        """Raise :class:`StaleIndexError` unless lines ``first`` .. ``first +
        count - 1`` are the ones the index was built from: each whole chunk (64
        leaves) they are in is read and must hash to the subtree hash the index
        kept, and lines after the last whole chunk must give the root it kept (a
        sealed trace's; an unsealed trace's index keeps none).  An index beside a
        trace edited in place (its size and modification time put back) is so
        never taken for the trace's."""
        index = self._index
        if index is None or count < 1:
            return
        from blocktrace.format.index import LEAVES_PER_CHUNK

        lo = (first - 1) // LINES_PER_LEAF
        hi = min((first + count - 2) // LINES_PER_LEAF + 1, self.tree_size)
        for chunk in range(lo // LEAVES_PER_CHUNK, -(-hi // LEAVES_PER_CHUNK)):
            if index.chunk(chunk) is not None:
                self._leaf_hashes(chunk * LEAVES_PER_CHUNK, chunk * LEAVES_PER_CHUNK + 1)
            elif index.root:
                self.root()

    def _check_size(self, n: int) -> None:
        if not 0 <= n <= self.tree_size:
            raise TraceError(
                self._name, None, f"the trace's tree has {self.tree_size} leaves, not {n}"
            )

    def _check_summary(self, r: bytes) -> None:
        s = self.summary
        if s is None or self.outcome_in_tree:
            return
        if s.treeSize is not None and s.treeSize != self.tree_size:
            raise TraceError(
                self._name, self.complete_lines,
                f"summary says treeSize {s.treeSize}, the file has {self.tree_size} leaves",
            )
        if s.root is not None and s.root != r.hex():
            raise TraceError(
                self._name, self.complete_lines,
                f"summary root {s.root} does not match the lines before it "
                f"(computed {r.hex()}): the trace was changed",
            )

    def range_hashes(self, ranges: list[tuple[int, int]], size: int) -> list[bytes]:
        """Tree hashes of leaf ranges (a proof), streaming the first ``size`` leaves."""
        self._check_size(size)
        if self._index is not None:
            return [self._range_hash(lo, hi) for lo, hi in ranges]
        hasher = RangeHasher(ranges)
        end = max((e for _, e in ranges), default=0)
        for digest, _ in self.hashed_leaves(end):
            hasher.add_leaf_hash(digest)
        return hasher.hashes()

    def inclusion(
        self, index: int, size: int
    ) -> tuple[bytes, list[bytes], list[bytes], bytes | None]:
        """Root of the first ``size`` leaves, audit path of leaf ``index``, that
        leaf's lines and (version 4) the hash of the line before it, in one
        streaming pass."""
        self._check_size(size)
        if self._index is not None:
            self._read = {}
            try:
                leaf = self._leaf_lines(index)
                path = self.range_hashes(inclusion_ranges(index, size), size)
                return self.root(size), path, leaf, self._prev_of(index)
            finally:
                self._read = None
        acc = MerkleAccumulator()
        hasher = RangeHasher(inclusion_ranges(index, size))
        lines: list[bytes] = []
        prev = self._prev_of(0)
        for i, (digest, group) in enumerate(self.hashed_leaves(size)):
            acc.append_leaf_hash(digest)
            hasher.add_leaf_hash(digest)
            if i == index:
                lines = group
            elif i + 1 == index and prev is not None:
                prev = self._hash_of(index * LINES_PER_LEAF, group[-1])
        r = acc.root()
        if size == self.tree_size:
            self._check_summary(r)
        return r, hasher.hashes(), lines, prev


    # -- through the index ---------------------------------------------------------

    def _range_hash(self, lo: int, hi: int) -> bytes:
        from blocktrace.format.index import ChunkTree, range_hash

        index = self._index
        assert index is not None
        if self._tree is None:
            self._tree = ChunkTree(index.chunks)
        return range_hash(lo, hi, self._tree.subtree, self._leaf_hashes)

    def _leaf_lines(self, leaf: int) -> list[bytes]:
        start = leaf * LINES_PER_LEAF
        count = min(LINES_PER_LEAF, self.tree_lines - start)
        self._leaf_hashes(leaf, leaf + 1)  # the chunk it is in is the one indexed
        return [raw[:-1] for _, raw in self._raw_lines(start + 1, count)]

    def _leaf_hashes(self, lo: int, hi: int) -> list[bytes]:
        """Leaf hashes of leaves [lo, hi), read from the trace; a complete chunk
        is read whole and must hash to what the index kept."""
        from blocktrace.format.index import LEAVES_PER_CHUNK, perfect_root

        index = self._index
        assert index is not None
        chunk = lo // LEAVES_PER_CHUNK
        stored = index.chunk(chunk)
        first = chunk * LEAVES_PER_CHUNK if stored is not None else lo
        last = first + LEAVES_PER_CHUNK if stored is not None else hi
        if self._read is not None and (first, last) in self._read:
            return self._read[first, last][lo - first : hi - first]
        start = first * LINES_PER_LEAF
        count = min((last - first) * LINES_PER_LEAF, self.tree_lines - start)
        hashes: list[bytes] = []
        group: list[bytes] = []
        prev = self._prev_of(first)
        leaf = first
        for number, raw in self._raw_lines(start + 1, count):
            line = raw[:-1]
            group.append(line)
            if len(group) == LINES_PER_LEAF:
                hashes.append(self._leaf_hash(leaf, group, prev))
                if prev is not None:
                    prev = self._hash_of(number, line)
                leaf += 1
                group = []
        if group:
            hashes.append(self._leaf_hash(leaf, group, prev))
        if stored is not None and (
            len(hashes) != LEAVES_PER_CHUNK or perfect_root(hashes) != stored
        ):
            raise self._changed()
        if self._read is not None:
            self._read[first, last] = hashes
        return hashes[lo - first : hi - first]

    def _changed(self) -> StaleIndexError:
        return StaleIndexError(
            self._name, None,
            "the trace's lines are not the ones its index was built from (the file was "
            "changed after it was indexed)",
        )


class StaleIndexError(TraceError):
    """The trace no longer matches its index (found while reading the chunk a
    proof needs): the index must be built again, which checks the chain."""


class ProofBundle(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What ``blocktrace prove`` prints: one line, its leaf, and the audit path.

    ``line`` is the 1-based line number in the trace (the header is line 1);
    ``text`` the line's exact text without its newline; ``leafLines`` every
    line of its leaf (``text`` is ``leafLines[indexInLeaf]``); ``auditPath``
    the hashes from the leaf up to ``root``, lowercase hex.
    """

    format: str
    version: int | None = None
    """The trace format version whose leaf rule the bundle is proven under: 4,
    or absent for versions 1-3 (whose leaf is its lines' bytes; their bundles
    keep the bytes they always had).  ``check-proof`` hashes the leaf by it and
    nothing else, so a bundle cannot pass under the other version's rule."""
    line: int
    text: str
    treeSize: int
    root: str
    leafIndex: int
    indexInLeaf: int
    auditPath: list[str]
    leafLines: list[str]
    prevHash: str | None = None
    """Version 4 only (absent before): the hash of the line before the leaf (H_0
    for leaf 0), lowercase hex; the leaf's data starts with it."""


_encoder = msgspec.json.Encoder()


def encode_bundle(bundle: ProofBundle) -> bytes:
    """The canonical bytes of a bundle: compact JSON and one ``\\n``."""
    return _encoder.encode(bundle) + b"\n"


def make_bundle(trace: TraceFile, line: int, size: int | None = None) -> ProofBundle:
    """A proof that line ``line`` (1-based) is in the tree of the first
    ``size`` leaves of ``trace`` (the whole tree by default)."""
    n = trace.tree_size if size is None else size
    trace._check_size(n)
    where = trace._name
    if not 1 <= line <= trace.complete_lines:
        raise TraceError(where, None, f"no line {line} (the trace has {trace.complete_lines})")
    if line > trace.tree_lines:
        raise TraceError(
            where, None,
            f"line {line} is the summary line, which format version {trace.version} keeps "
            f"out of the Merkle tree (it carries the root)",
        )
    index = (line - 1) // LINES_PER_LEAF
    if index >= n:
        raise TraceError(
            where, None, f"line {line} is in leaf {index}, after the {n} leaves of the tree"
        )
    root, path, lines, prev = trace.inclusion(index, n)
    try:
        texts = [line.decode("utf-8") for line in lines]
    except UnicodeDecodeError as exc:
        raise TraceError(where, None, f"leaf {index} is not valid UTF-8") from exc
    offset = (line - 1) % LINES_PER_LEAF
    bundle = ProofBundle(
        format=BUNDLE_FORMAT,
        version=trace.version if trace.version >= BUNDLE_VERSIONED else None,
        line=line,
        text=texts[offset],
        treeSize=n,
        root=root.hex(),
        leafIndex=index,
        indexInLeaf=offset,
        auditPath=[h.hex() for h in path],
        leafLines=texts,
        prevHash=None if prev is None else prev.hex(),
    )
    check_bundle(encode_bundle(bundle))  # never hand out a proof that does not verify
    return bundle


@dataclass(frozen=True, slots=True)
class CheckedBundle:
    """A bundle that verified: ``line`` of the tree (``tree_size``, ``root``)."""

    bundle: ProofBundle
    root: bytes
    tree_size: int


def check_bundle(data: bytes) -> CheckedBundle:
    """Verify a bundle on its own: its form, and that its audit path leads from
    its leaf to its root.  Raises :class:`BundleError`.

    The root is the bundle's own claim; compare it with a trusted checkpoint
    or summary to learn anything (``blocktrace check-proof --checkpoint``).
    """
    if not data.strip():
        raise NotABundleError("empty file: not a proof bundle")
    try:
        bundle = msgspec.json.decode(data, type=ProofBundle)
    except msgspec.ValidationError as exc:
        raise NotABundleError(f"not a proof bundle from blocktrace prove: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise NotABundleError("not a proof bundle: not JSON") from exc
    if encode_bundle(bundle) != data:
        raise BundleError("bundle is not in canonical form (it was edited or re-encoded)")
    if bundle.format != BUNDLE_FORMAT:
        raise BundleError(f"unknown bundle format {bundle.format!r}, expected {BUNDLE_FORMAT!r}")
    lines = bundle.leafLines
    if not 1 <= len(lines) <= LINES_PER_LEAF:
        raise BundleError(f"a leaf holds 1 to {LINES_PER_LEAF} lines, the bundle has {len(lines)}")
    if any("\n" in t for t in lines):
        raise BundleError("a leaf line contains a newline")
    if not 0 <= bundle.indexInLeaf < len(lines):
        raise BundleError(f"indexInLeaf {bundle.indexInLeaf} is outside the leaf")
    if lines[bundle.indexInLeaf] != bundle.text:
        raise BundleError("text is not the line at indexInLeaf of the leaf")
    if bundle.leafIndex < 0 or bundle.treeSize <= bundle.leafIndex:
        raise BundleError(f"leaf {bundle.leafIndex} is not in a tree of {bundle.treeSize}")
    if bundle.line != bundle.leafIndex * LINES_PER_LEAF + bundle.indexInLeaf + 1:
        raise BundleError(
            f"line {bundle.line} is not line {bundle.indexInLeaf} of leaf {bundle.leafIndex}"
        )
    if len(lines) < LINES_PER_LEAF and bundle.leafIndex != bundle.treeSize - 1:
        raise BundleError("only the last leaf of a tree may hold fewer than 16 lines")
    if not _is_hex64(bundle.root) or not all(_is_hex64(h) for h in bundle.auditPath):
        raise BundleError("root and audit path must be 64 lowercase hex digits each")
    _check_version(bundle)
    if bundle.version is None:
        digest = leaf_hash("".join(t + "\n" for t in lines).encode("utf-8"))
    else:
        digest = _v4_leaf(bundle)
    root = bytes.fromhex(bundle.root)
    try:
        verify_inclusion(
            bundle.leafIndex,
            bundle.treeSize,
            digest,
            [bytes.fromhex(h) for h in bundle.auditPath],
            root,
        )
    except ProofError as exc:
        raise BundleError(f"audit path does not verify: {exc}") from exc
    return CheckedBundle(bundle, root, bundle.treeSize)


def _check_version(bundle: ProofBundle) -> None:
    """The bundle's ``version`` and ``prevHash`` agree with each other and, for
    leaf 0, with the trace header's version: a bundle names the rule it is
    proven under, and a mislabelled one is refused before any hashing."""
    version = bundle.version
    if version is not None and version != BUNDLE_VERSIONED:
        if version in KNOWN_VERSIONS:
            raise BundleError(
                f"version {version} is not written in a bundle: a bundle of format "
                "versions 1-3 names no version"
            )
        raise BundleError(
            f"unknown format version {version!r} (this blocktrace proves 1-{max(KNOWN_VERSIONS)})"
        )
    if version is None and bundle.prevHash is not None:
        raise BundleError(
            'prevHash without "version":4: a bundle of format versions 1-3 carries no prevHash'
        )
    if version is not None and bundle.prevHash is None:
        raise BundleError(
            f'"version":{version} without prevHash: a version {version} bundle carries the '
            "hash before its leaf"
        )
    if bundle.leafIndex == 0:
        header = _header_version(bundle.leafLines[0])
        if header is None:
            raise BundleError("leaf 0's first line is not a blocktrace header")
        if (header != version) if version is not None else (header >= BUNDLE_VERSIONED):
            said = "versions 1-3" if version is None else f"version {version}"
            raise BundleError(
                f"the header in leaf 0 is format version {header}, the bundle is proven "
                f"under {said}'s rules"
            )


_HEADER_VERSION = re.compile(r'\{"blocktrace":([0-9]{1,9}),')


def _header_version(text: str) -> int | None:
    """The format version a header line names (``{"blocktrace":N,...``: the key
    is always first), or None when the line is no header."""
    found = _HEADER_VERSION.match(text)
    return None if found is None else int(found.group(1))


def _v4_leaf(bundle: ProofBundle) -> bytes:
    """A version 4 bundle's leaf hash: ``SHA-256(0x00 || prevHash || body\\n ...)``,
    each line's own hash checked on the way (it is the stream's digest after its
    body and newline), every line a JSON object as ``verify`` requires."""
    prev = bundle.prevHash or ""
    if not _is_hex64(prev):
        raise BundleError("prevHash must be 64 lowercase hex digits")
    if bundle.leafIndex == 0 and prev != _H0_V4.hex():
        raise BundleError("the first leaf's prevHash must be version 4's H_0")
    stream = hashlib.sha256(LEAF_PREFIX + bytes.fromhex(prev))
    first = bundle.leafIndex * LINES_PER_LEAF + 1
    for offset, text in enumerate(bundle.leafLines):
        raw = text.encode("utf-8")
        parts = split_hash(raw)
        if parts is None:
            raise BundleError(f"line {first + offset} of the leaf has no hash member")
        try:
            _check_json(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            raise BundleError(f"line {first + offset} of the leaf is not a JSON object") from None
        stream.update(parts[0])
        stream.update(b"\n")
        if stream.digest().hex() != parts[1]:
            raise BundleError(
                f"line {first + offset}'s hash does not match its bytes and the leaf's "
                "lines before it (version 4)"
            )
    return stream.digest()
