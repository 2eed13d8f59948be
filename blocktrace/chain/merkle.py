"""RFC 9162 (RFC 6962) Merkle trees over SHA-256: hashing, roots, proofs.

The shape follows transparency-dev/merkle: the hashing rules live in two
functions (:func:`leaf_hash`, :func:`node_hash`), proofs are plain lists of
32-byte hashes ordered from the leaf upward, and the two verifiers either
return ``None`` or raise one :class:`ProofError` that says what did not match.

Verification is O(log n) arithmetic on the index and sizes and never builds a
tree, so it works the same for a tree of eight leaves and one of 2^40.
Building proofs is done over *ranges*: a proof is the list of Merkle tree hashes
of a few disjoint ranges of leaves (:func:`inclusion_ranges`,
:func:`consistency_ranges`), which :class:`RangeHasher` computes while the
leaves stream past, in O(log n) memory.  :class:`MerkleAccumulator` does the
same for the root alone; the trace writer feeds it one leaf per
``LINES_PER_LEAF`` lines.

Size-0 trees: the root of the empty tree is SHA-256 of the empty string, as
RFC 9162 section 2.1.1 defines.  No leaf is included in it; the empty tree is a
prefix of every tree, so a consistency proof from size 0 is the empty list and
only checks that ``root1`` is the empty root (it says nothing about ``root2``).
A blocktrace trace always has a header line, so its tree is never empty.
"""

from __future__ import annotations

from collections.abc import Buffer, Iterable, Sequence
from hashlib import sha256

from blocktrace.format.rules import LEAF_PREFIX, NODE_PREFIX
from blocktrace.format.versions import LINES_PER_LEAF

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LINES_PER_LEAF",
    "MerkleAccumulator",
    "ProofError",
    "RangeHasher",
    "consistency_proof",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_hashes",
    "verify_consistency",
    "verify_inclusion",
]


HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()
"""Root of the tree with no leaves (RFC 9162: the hash of the empty string)."""

_LEAF_PREFIX = LEAF_PREFIX
_NODE_PREFIX = NODE_PREFIX


class ProofError(ValueError):
    """A Merkle proof did not verify; the message says what did not match."""


def leaf_hash(data: Buffer) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf's data."""
    h = sha256(_LEAF_PREFIX)
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of a list of *leaf hashes* (RFC 9162 MTH)."""
    acc = MerkleAccumulator()
    for h in hashes:
        acc.append_leaf_hash(h)
    return acc.root()


def root(leaves: Iterable[Buffer]) -> bytes:
    """The Merkle tree hash (root) of a list of leaf *data*."""
    acc = MerkleAccumulator()
    for data in leaves:
        acc.append_leaf_data(data)
    return acc.root()


# --------------------------------------------------------------------------
# Streaming: the root and arbitrary range hashes in O(log n) memory


class MerkleAccumulator:
    """The root of a growing tree, kept as the hashes of its perfect subtrees.

    A tree of ``n`` leaves is, left to right, one perfect subtree per set bit of
    ``n`` (largest first); appending a leaf merges the equal-sized subtrees at
    the right end, like a binary counter carrying.  Memory is one hash per set
    bit: O(log n).  Each append costs one leaf hash plus, on average, one node
    hash.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append_leaf_data(self, data: Buffer) -> None:
        """Append one leaf given its data (hashed as ``SHA-256(0x00 || data)``).

        All or nothing: the new state is computed first and committed by
        statements that make no call, so an exception from a signal handler
        (Ctrl-C) leaves the accumulator either unchanged or with the leaf.
        """
        h = sha256(_LEAF_PREFIX)
        h.update(data)
        digest = h.digest()
        stack = self._stack
        n = self._size
        i = len(stack)
        while n & 1:  # inlined append_leaf_hash: this runs once per 16 trace lines
            i -= 1
            digest = sha256(_NODE_PREFIX + stack[i] + digest).digest()
            n >>= 1
        stack[i:] = (digest,)
        self._size += 1

    def append_leaf_hash(self, digest: bytes) -> None:
        """Append one leaf given its leaf hash (all or nothing, as above)."""
        stack = self._stack
        n = self._size
        i = len(stack)
        while n & 1:
            i -= 1
            digest = sha256(_NODE_PREFIX + stack[i] + digest).digest()
            n >>= 1
        stack[i:] = (digest,)
        self._size += 1

    def root(self) -> bytes:
        """The root of the tree of all leaves so far (``EMPTY_ROOT`` if none)."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        r = stack[-1]
        for h in reversed(stack[:-1]):
            r = sha256(_NODE_PREFIX + h + r).digest()
        return r


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose tree hashes form the audit path
    of leaf ``index`` in a tree of ``size`` leaves, ordered from the leaf upward
    (RFC 9162 section 2.1.3.1, PATH)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of {size} leaves")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose tree hashes form the consistency proof from a tree
    of ``size1`` leaves to one of ``size2``, ordered from the leaves upward
    (RFC 9162 section 2.1.4.1, SUBPROOF).  Empty when ``size1`` is 0 or equal
    to ``size2``."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    if size1 in (0, size2):
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            m -= k
            lo += k
            whole = False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


class RangeHasher:
    """Tree hashes of several disjoint leaf ranges, computed as leaves stream by.

    Give it the ranges of a proof (from :func:`inclusion_ranges` or
    :func:`consistency_ranges`), then feed every leaf from 0 upward with
    :meth:`add_leaf_data`; :meth:`hashes` returns the range hashes in the order
    the ranges were given: the proof.  Memory is O(log n) per range.
    """

    __slots__ = ("_accs", "_order", "_pos", "_ranges", "_seen")

    def __init__(self, ranges: Sequence[tuple[int, int]]) -> None:
        self._order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
        self._ranges = list(ranges)
        self._accs = [MerkleAccumulator() for _ in ranges]
        self._pos = 0
        self._seen = 0

    def add_leaf_data(self, data: Buffer) -> None:
        self.add_leaf_hash(leaf_hash(data))

    def add_leaf_hash(self, digest: bytes) -> None:
        i = self._seen
        self._seen += 1
        order, ranges = self._order, self._ranges
        while self._pos < len(order) and ranges[order[self._pos]][1] <= i:
            self._pos += 1
        if self._pos < len(order):
            r = order[self._pos]
            if ranges[r][0] <= i:
                self._accs[r].append_leaf_hash(digest)

    @property
    def leaves_seen(self) -> int:
        return self._seen

    def hashes(self) -> list[bytes]:
        """The tree hash of each range, in the order given."""
        out = []
        for (start, end), acc in zip(self._ranges, self._accs, strict=True):
            if acc.size != end - start:
                raise ValueError(
                    f"range [{start}, {end}) is incomplete: saw {self._seen} leaves"
                )
            out.append(acc.root())
        return out


def _range_proof(leaves: Sequence[Buffer], ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    hasher = RangeHasher(ranges)
    end = max((e for _, e in ranges), default=0)
    for data in leaves[:end]:
        hasher.add_leaf_data(data)
    return hasher.hashes()


def inclusion_proof(leaves: Sequence[Buffer], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (leaf data),
    ordered from the leaf upward."""
    return _range_proof(leaves, inclusion_ranges(index, len(leaves)))


def consistency_proof(leaves: Sequence[Buffer], size1: int) -> list[bytes]:
    """The consistency proof from the tree of the first ``size1`` leaves to the
    tree of all ``leaves``."""
    return _range_proof(leaves, consistency_ranges(size1, len(leaves)))


# --------------------------------------------------------------------------
# Verification: O(log n), never builds a tree


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def _check_path(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{what} has {len(proof)} hashes, expected {expected}")
    for i, p in enumerate(proof):
        _check_hash(f"proof hash {i}", p)


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves
    with root ``root`` (RFC 9162 section 2.1.3.2).  Raises :class:`ProofError`."""
    if index < 0 or size < 0:
        raise ProofError(f"negative index {index} or size {size}")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of {size} leaves")
    _check_hash("root", root)
    _check_hash("leaf hash", leaf_hash)
    # The path climbs from the leaf until the leaf's and the last leaf's paths
    # meet ("inner"), then joins the left border of right-hand subtrees.
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    _check_path(proof, inner + border, f"inclusion proof for leaf {index} of {size}")
    r = leaf_hash
    for i, p in enumerate(proof):
        # Below "inner" the index bit says which side the leaf's subtree is on;
        # above it, every proof hash is a left sibling on the right border.
        r = node_hash(r, p) if i < inner and not (index >> i) & 1 else node_hash(p, r)
    if r != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} leads to root {r.hex()}, "
            f"not {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size1`` leaves with root ``root1`` is a prefix of
    the tree of ``size2`` leaves with root ``root2`` (RFC 9162 section 2.1.4.2).
    Raises :class:`ProofError`."""
    if size1 < 0 or size2 < 0:
        raise ProofError(f"negative size {size1} or {size2}")
    if size2 < size1:
        raise ProofError(f"tree shrank: size {size2} is smaller than {size1}")
    _check_hash("first root", root1)
    _check_hash("second root", root2)
    if size1 == size2:
        _check_path(proof, 0, f"consistency proof for equal sizes {size1}")
        if root1 != root2:
            raise ProofError(
                f"two different roots for the same size {size1}: "
                f"{root1.hex()} and {root2.hex()}"
            )
        return
    if size1 == 0:
        _check_path(proof, 0, "consistency proof from the empty tree")
        if root1 != EMPTY_ROOT:
            raise ProofError(f"root {root1.hex()} is not the root of the empty tree")
        return
    # When size1 is a power of two its tree is a complete subtree of the second
    # tree, which the verifier already holds as root1: the proof leaves it out.
    seed_from_root1 = size1 & (size1 - 1) == 0
    expected = _consistency_length(size1, size2)
    _check_path(proof, expected, f"consistency proof from {size1} to {size2}")
    path = list(proof)
    if seed_from_root1:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from {size1} to {size2} is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof from {size1} to {size2} is too short")
    if fr != root1:
        raise ProofError(
            f"consistency proof leads to first root {fr.hex()}, not {root1.hex()} "
            f"(size {size1})"
        )
    if sr != root2:
        raise ProofError(
            f"consistency proof leads to second root {sr.hex()}, not {root2.hex()} "
            f"(size {size2})"
        )


def _consistency_length(size1: int, size2: int) -> int:
    """How many hashes the consistency proof from ``size1`` to ``size2`` holds
    (``0 < size1 < size2``): one per range of :func:`consistency_ranges`,
    counted without building anything."""
    n = 0
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        n += 1
        if m <= k:
            hi = lo + k
        else:
            m -= k
            lo += k
            whole = False
    return n + (0 if whole else 1)
