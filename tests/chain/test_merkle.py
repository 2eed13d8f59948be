"""RFC 9162 Merkle trees: reference vectors, an independent model, tampering, scale."""

from __future__ import annotations

import functools
import json
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocktrace.chain.merkle import (
    EMPTY_ROOT,
    LINES_PER_LEAF,
    MerkleAccumulator,
    ProofError,
    RangeHasher,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    root,
    root_from_hashes,
    verify_consistency,
    verify_inclusion,
)

REFDATA = Path(__file__).resolve().parents[3] / "shared" / "refdata" / "merkle"


def _load(name: str) -> Any:
    path = REFDATA / name
    if not path.exists():
        pytest.skip(f"reference data {path} is absent")
    return json.loads(path.read_text())


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


# -- an independent model, straight from the RFC 9162 recursive definitions -----


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def model_mth(d: list[bytes]) -> bytes:
    if not d:
        return sha256(b"").digest()
    if len(d) == 1:
        return sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return sha256(b"\x01" + model_mth(d[:k]) + model_mth(d[k:])).digest()


def model_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*model_path(m, d[:k]), model_mth(d[k:])]
    return [*model_path(m - k, d[k:]), model_mth(d[:k])]


def model_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [model_mth(d)]
    k = _k(n)
    if m <= k:
        return [*model_subproof(m, d[:k], b), model_mth(d[k:])]
    return [*model_subproof(m - k, d[k:], False), model_mth(d[:k])]


LEAVES = [bytes([i]) * (i % 7 + 1) for i in range(40)]
"""Distinct leaf data of varied lengths."""


# -- reference vectors ---------------------------------------------------------------


def test_hasher_known_answers() -> None:
    data = _load("rfc6962_hasher_basic.json")
    for case in data["cases"]:
        expected = _h(case["expected_hex"])
        if "leaf_input_hex" in case:
            assert leaf_hash(_h(case["leaf_input_hex"])) == expected, case["name"]
        elif "left_hex" in case:
            assert node_hash(_h(case["left_hex"]), _h(case["right_hex"])) == expected
        else:
            assert EMPTY_ROOT == expected == root([])


def test_reference_tree_roots_and_nodes() -> None:
    data = _load("rfc6962_reference_tree.json")
    leaves = [_h(x) for x in data["leaf_inputs_hex"]]
    for n, expected in enumerate(data["roots_by_tree_size_hex"]):
        assert root(leaves[:n]).hex() == expected, n
        acc = MerkleAccumulator()
        for leaf in leaves[:n]:
            acc.append_leaf_data(leaf)
        assert acc.size == n and acc.root().hex() == expected
    for level, hashes in enumerate(data["node_hashes_by_level_hex"]):
        width = 1 << level
        for i, expected in enumerate(hashes):
            assert root(leaves[i * width : (i + 1) * width]).hex() == expected


def test_reference_inclusion_proofs() -> None:
    tree = _load("rfc6962_reference_tree.json")
    leaves = [_h(x) for x in tree["leaf_inputs_hex"]]
    for case in _load("rfc6962_inclusion_proofs.json")["cases"]:
        index, size = case["leaf_index"], case["tree_size"]
        expected = [_h(x) for x in case["inclusion_path_hex"]]
        assert leaf_hash(_h(case["leaf_input_hex"])) == _h(case["leaf_hash_hex"])
        assert inclusion_proof(leaves[:size], index) == expected
        verify_inclusion(index, size, _h(case["leaf_hash_hex"]), expected, _h(case["root_hex"]))


def test_reference_consistency_proofs() -> None:
    tree = _load("rfc6962_reference_tree.json")
    leaves = [_h(x) for x in tree["leaf_inputs_hex"]]
    for case in _load("rfc6962_consistency_proofs.json")["cases"]:
        first, second = case["first"], case["second"]
        expected = [_h(x) for x in case["consistency_path_hex"]]
        assert consistency_proof(leaves[:second], first) == expected
        verify_consistency(
            first, second, expected, _h(case["first_root_hex"]), _h(case["second_root_hex"])
        )


# -- agreement with the model, every index and size up to 40 ------------------------


def test_every_proof_up_to_40_leaves_matches_the_rfc_model() -> None:
    for n in range(1, len(LEAVES) + 1):
        d = LEAVES[:n]
        r = model_mth(d)
        assert root(d) == r
        for m in range(n):
            path = inclusion_proof(d, m)
            assert path == model_path(m, d)
            assert len(inclusion_ranges(m, n)) == len(path)
            verify_inclusion(m, n, leaf_hash(d[m]), path, r)
        for m in range(1, n + 1):
            proof = consistency_proof(d, m)
            assert proof == ([] if m == n else model_subproof(m, d, True))
            verify_consistency(m, n, proof, model_mth(d[:m]), r)


def test_size_zero_policy() -> None:
    """Empty tree: root SHA-256(''), no inclusion possible, consistent with all."""
    assert root([]) == EMPTY_ROOT == sha256(b"").digest()
    assert MerkleAccumulator().root() == EMPTY_ROOT and MerkleAccumulator().size == 0
    with pytest.raises(ProofError, match="not in a tree of 0"):
        verify_inclusion(0, 0, leaf_hash(b""), [], EMPTY_ROOT)
    with pytest.raises(ValueError):
        inclusion_proof([], 0)
    assert consistency_proof(LEAVES[:5], 0) == []
    verify_consistency(0, 5, [], EMPTY_ROOT, root(LEAVES[:5]))
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 5, [], root(LEAVES[:1]), root(LEAVES[:5]))
    with pytest.raises(ProofError, match="expected 0"):
        verify_consistency(0, 5, [EMPTY_ROOT], EMPTY_ROOT, root(LEAVES[:5]))


def test_accumulator_accepts_buffers_and_hashes() -> None:
    acc = MerkleAccumulator()
    acc.append_leaf_data(bytearray(b"ab"))
    acc.append_leaf_data(memoryview(b"xxcdxx")[2:4])
    acc.append_leaf_hash(leaf_hash(b"ef"))
    assert acc.root() == root([b"ab", b"cd", b"ef"]) == root_from_hashes(
        [leaf_hash(x) for x in (b"ab", b"cd", b"ef")]
    )
    assert LINES_PER_LEAF == 16


def test_range_hasher_refuses_an_incomplete_stream() -> None:
    hasher = RangeHasher(inclusion_ranges(3, 8))
    for leaf in LEAVES[:5]:
        hasher.add_leaf_data(leaf)
    with pytest.raises(ValueError, match="incomplete"):
        hasher.hashes()


# -- every corruption is rejected ------------------------------------------------------


def _inclusion_corruptions(
    index: int, size: int, leaf: bytes, proof: list[bytes], r: bytes
) -> list[tuple[str, tuple[int, int, bytes, list[bytes], bytes]]]:
    out: list[tuple[str, tuple[int, int, bytes, list[bytes], bytes]]] = [
        ("index+1", (index + 1, size, leaf, proof, r)),
        ("index-1", (index - 1, size, leaf, proof, r)),
        ("size*2", (index, size * 2, leaf, proof, r)),
        ("size/2", (index, size // 2, leaf, proof, r)),
        ("wrong leaf", (index, size, leaf_hash(b"not the leaf"), proof, r)),
        ("wrong root", (index, size, leaf, proof, sha256(r).digest())),
        ("empty root", (index, size, leaf, proof, b"")),
        ("added", (index, size, leaf, [*proof, r], r)),
        ("prepended", (index, size, leaf, [leaf, *proof], r)),
    ]
    if proof:
        out.append(("removed last", (index, size, leaf, proof[:-1], r)))
        out.append(("removed first", (index, size, leaf, proof[1:], r)))
        out.append(("truncated hash", (index, size, leaf, [proof[0][:31], *proof[1:]], r)))
    if len(proof) > 1 and proof[0] != proof[1]:
        out.append(("swapped", (index, size, leaf, [proof[1], proof[0], *proof[2:]], r)))
        out.append(("reversed", (index, size, leaf, proof[::-1], r)))
    for i, p in enumerate(proof):
        for bit in (0, 7, 255):
            flipped = bytearray(p)
            flipped[bit // 8] ^= 1 << (bit % 8)
            path = [*proof[:i], bytes(flipped), *proof[i + 1 :]]
            out.append((f"bit {bit} of {i}", (index, size, leaf, path, r)))
    return out


def test_every_inclusion_corruption_is_rejected() -> None:
    """Index off by one, size doubled or halved, wrong leaf or root, path hashes
    added, removed, reordered or bit-flipped.  (A size off by one can share the
    proof's shape -- leaf 0 of 3 and of 4 -- so a proof is only as good as the
    (size, root) pair it is checked against: both come from the checkpoint.)"""
    for size in range(1, 20):
        d = LEAVES[:size]
        r = root(d)
        for index in range(size):
            proof = inclusion_proof(d, index)
            leaf = leaf_hash(d[index])
            for name, args in _inclusion_corruptions(index, size, leaf, proof, r):
                with pytest.raises(ProofError):
                    verify_inclusion(*args)
                    pytest.fail(f"accepted {name} for index {index} size {size}")


def test_every_consistency_corruption_is_rejected() -> None:
    for size2 in range(1, 20):
        r2 = root(LEAVES[:size2])
        for size1 in range(1, size2 + 1):
            r1 = root(LEAVES[:size1])
            proof = consistency_proof(LEAVES[:size2], size1)
            bad: list[tuple[int, int, list[bytes], bytes, bytes]] = [
                (size1 + 1, size2, proof, r1, r2),
                (size1, size2 * 2, proof, r1, r2),
                (size1 * 2, size2, proof, r1, r2),
                (size1, size2, proof, sha256(r1).digest(), r2),
                (size1, size2, proof, r1, sha256(r2).digest()),
                (size1, size2, proof, b"", r2),
                (size1, size2, proof, r1, b""),
                (size1, size2, proof, r2, r1) if r1 != r2 else (size1, size2, [r1], r1, r2),
                (size1, size2, [*proof, r1], r1, r2),
                (size1, size2, [r1, *proof], r1, r2),
            ]
            if size1 < size2:
                bad.append((size1, size1, proof, r1, r2))  # same size, two roots
                bad.append((size2, size2, [], r1, r2))
            if proof:
                bad.append((size1, size2, proof[:-1], r1, r2))
                bad.append((size1, size2, proof[1:], r1, r2))
            if len(proof) > 1 and proof[0] != proof[1]:
                bad.append((size1, size2, [proof[1], proof[0], *proof[2:]], r1, r2))
            for i, h in enumerate(proof):
                flipped = bytes([h[0] ^ 1]) + h[1:]
                bad.append((size1, size2, [*proof[:i], flipped, *proof[i + 1 :]], r1, r2))
            for s1, s2, path, a, b in bad:
                if s1 == 0 and not path and a == root([]):
                    continue  # the empty tree is consistent with every tree
                with pytest.raises(ProofError):
                    verify_consistency(s1, s2, path, a, b)
                    pytest.fail(f"accepted {s1}->{s2} corrupted from {size1}->{size2}")


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 300),
    data=st.data(),
)
def test_property_inclusion_proofs_verify_and_flips_fail(size: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(size)]
    index = data.draw(st.integers(0, size - 1))
    r = root(leaves)
    proof = inclusion_proof(leaves, index)
    verify_inclusion(index, size, leaf_hash(leaves[index]), proof, r)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        flipped = bytearray(proof[i])
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProofError):
            verify_inclusion(
                index, size, leaf_hash(leaves[index]),
                [*proof[:i], bytes(flipped), *proof[i + 1 :]], r,
            )
    other = data.draw(st.integers(0, 2 * size))
    if other != index:
        with pytest.raises(ProofError):
            verify_inclusion(other, size, leaf_hash(leaves[index]), proof, r)


@settings(max_examples=150, deadline=None)
@given(size2=st.integers(1, 300), data=st.data())
def test_property_consistency_proofs_verify(size2: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(size2)]
    size1 = data.draw(st.integers(1, size2))
    proof = consistency_proof(leaves, size1)
    assert len(proof) == len(consistency_ranges(size1, size2))
    verify_consistency(size1, size2, proof, root(leaves[:size1]), root(leaves))
    forked = [*leaves[: size1 - 1], b"fork", *leaves[size1:]]
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, root(forked[:size1]), root(leaves))


# -- scale: trees of billions of leaves are never built --------------------------------


@functools.cache
def _uniform_mth(n: int) -> bytes:
    """MTH of n identical leaves (b"x"): depends only on n, O(log^2 n) to compute."""
    if n == 1:
        return leaf_hash(b"x")
    k = _k(n)
    return node_hash(_uniform_mth(k), _uniform_mth(n - k))


@pytest.mark.parametrize("size", [2**32 + 1, 2**40 + 12345, 2**63 - 1])
def test_proofs_in_trees_of_billions_of_leaves(size: int) -> None:
    r = _uniform_mth(size)
    for index in (0, 1, size // 3, size - 2, size - 1):
        proof = [_uniform_mth(b - a) for a, b in inclusion_ranges(index, size)]
        verify_inclusion(index, size, leaf_hash(b"x"), proof, r)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf_hash(b"y"), proof, r)
        with pytest.raises(ProofError):
            verify_inclusion(index, size * 2, leaf_hash(b"x"), proof, r)
    for size1 in (1, 2**31, size // 2 + 7, size - 1):
        proof = [_uniform_mth(b - a) for a, b in consistency_ranges(size1, size)]
        verify_consistency(size1, size, proof, _uniform_mth(size1), r)
        with pytest.raises(ProofError):
            verify_consistency(size1, size, proof[:-1], _uniform_mth(size1), r)


def test_append_is_all_or_nothing_under_signals() -> None:
    """A signal handler raising (Ctrl-C) at any moment leaves the accumulator
    with or without the leaf, never half-merged: real SIGALRMs, every 50 µs."""
    import signal
    import time

    if not hasattr(signal, "setitimer"):
        pytest.skip("no setitimer on this platform")

    class Tick(Exception):
        pass

    armed = [False]

    def handler(signum: int, frame: object) -> None:
        if armed[0]:  # raise only around the append, and once per arming
            armed[0] = False
            raise Tick

    acc = MerkleAccumulator()
    leaves: list[bytes] = []
    interrupted = 0
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.00005, 0.00005)
    try:
        # Half a second of appends, and on until enough of them were interrupted
        # however few alarms a loaded machine lets land inside one (a minute at most).
        start = time.monotonic()
        while time.monotonic() < start + 0.5 or (interrupted < 20 and
                                                  time.monotonic() < start + 60):
            data = len(leaves).to_bytes(4, "big") * 8
            before = acc.size
            try:
                armed[0] = True
                acc.append_leaf_data(data)
                armed[0] = False
            except Tick:
                interrupted += 1
            if acc.size > before:
                leaves.append(data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert interrupted >= 20
    assert acc.size == len(leaves) and acc.root() == root(leaves)
