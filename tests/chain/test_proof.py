"""A real trace as a Merkle tree, and proof bundles for its lines."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.chain.checkpoint import checkpoint_of_trace
from blocktrace.chain.merkle import LINES_PER_LEAF, MerkleAccumulator, root, root_from_hashes
from blocktrace.chain.proof import (
    BundleError,
    ProofBundle,
    TraceError,
    TraceFile,
    check_bundle,
    encode_bundle,
    make_bundle,
)
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.chain.verify import Verification, verify_file
from blocktrace.format import reader
from blocktrace.format.index import IndexBuilder, TraceIndex, stamp_of
from tests.chain.recording import record


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recorded run in format version 3 (re-chained when blocktrace writes another):
    the tests below state version 3's tree; version 4's are at the end."""
    path = record(tmp_path_factory.mktemp("proof"))
    data = path.read_bytes()
    if not data.startswith(b'{"blocktrace":3,'):
        path.write_bytes(rechain_trace(data, version=3))
    return path


@pytest.fixture(scope="module")
def v2_trace_path(trace_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run as format version 2 (the summary outside the tree)."""
    path = tmp_path_factory.mktemp("proof-v2") / "v2.jsonl"
    path.write_bytes(rechain_trace(trace_path.read_bytes(), version=2))
    return path


def test_tree_of_a_real_trace_covers_every_line(trace_path: Path) -> None:
    """Version 3: the summary is the last line of the tree."""
    raw = trace_path.read_bytes().splitlines(keepends=True)
    summary = msgspec.json.decode(raw[-1])
    leaves = [b"".join(raw[i : i + LINES_PER_LEAF]) for i in range(0, len(raw), LINES_PER_LEAF)]
    trace = TraceFile(trace_path)
    assert trace.sealed and trace.outcome_in_tree
    assert trace.tree_lines == len(raw) == summary["lines"] + 1
    assert trace.tree_size == len(leaves)
    result = verify_file(trace_path)
    assert trace.root() == root(leaves) == bytes.fromhex(result.root)
    assert result.tree_size == trace.tree_size
    assert [b"".join(line + b"\n" for line in g) for g in trace.leaves()] == leaves


def test_tree_of_a_version_2_trace_matches_its_summary(v2_trace_path: Path) -> None:
    trace_path = v2_trace_path
    raw = trace_path.read_bytes().splitlines(keepends=True)
    summary = msgspec.json.decode(raw[-1])
    tree_lines = raw[:-1]
    leaves = [
        b"".join(tree_lines[i : i + LINES_PER_LEAF])
        for i in range(0, len(tree_lines), LINES_PER_LEAF)
    ]
    trace = TraceFile(trace_path)
    assert trace.sealed and trace.tree_lines == len(tree_lines) == summary["lines"]
    assert trace.tree_size == len(leaves) == summary["treeSize"]
    assert trace.root() == root(leaves) == bytes.fromhex(summary["root"])
    assert trace.trace_id == msgspec.json.decode(raw[0])["hash"]
    assert [b"".join(line + b"\n" for line in g) for g in trace.leaves()] == leaves
    assert trace.root(3) == root(leaves[:3])


def test_every_line_has_a_bundle_that_verifies(trace_path: Path) -> None:
    raw = trace_path.read_bytes().splitlines()  # version 3: the summary too
    trace = TraceFile(trace_path)
    r = trace.root()
    for line in range(1, trace.tree_lines + 1, 7):
        bundle = make_bundle(trace, line)
        assert bundle.text.encode() == raw[line - 1]
        checked = check_bundle(encode_bundle(bundle))
        assert checked.root == r and checked.tree_size == trace.tree_size
        first = (line - 1) // LINES_PER_LEAF * LINES_PER_LEAF
        leaf = b"".join(x + b"\n" for x in raw[first : first + LINES_PER_LEAF])
        assert leaf == "".join(t + "\n" for t in bundle.leafLines).encode()
    last = make_bundle(trace, trace.tree_lines)  # the summary, in the last (partial) leaf
    assert last.text.startswith('{"output":')
    assert check_bundle(encode_bundle(last)).root == r


def test_bundles_for_an_earlier_tree_size(trace_path: Path) -> None:
    trace = TraceFile(trace_path)
    bundle = make_bundle(trace, 20, size=5)
    assert bundle.treeSize == 5 and bundle.root == trace.root(5).hex()
    with pytest.raises(TraceError, match="after the 5 leaves"):
        make_bundle(trace, 5 * LINES_PER_LEAF + 1, size=5)


def test_lines_outside_the_tree_cannot_be_proven(trace_path: Path, v2_trace_path: Path) -> None:
    with pytest.raises(TraceError, match="summary line"):  # version 2 only
        make_bundle(TraceFile(v2_trace_path), TraceFile(v2_trace_path).complete_lines)
    trace = TraceFile(trace_path)
    make_bundle(trace, trace.complete_lines)  # version 3: the summary is in the tree
    with pytest.raises(TraceError, match="no line"):
        make_bundle(trace, trace.complete_lines + 1)
    with pytest.raises(TraceError, match="no line"):
        make_bundle(trace, 0)


def test_every_single_byte_change_of_a_bundle_is_rejected(trace_path: Path) -> None:
    """Rejected by the bundle check, or -- when a changed size happens to share
    the proof's shape -- by the checkpoint the bundle is checked against."""
    trace = TraceFile(trace_path)
    cp = checkpoint_of_trace(trace)
    data = encode_bundle(make_bundle(trace, 38))
    for i in range(len(data)):
        for delta in (0x01, 0x20):
            changed = bytearray(data)
            changed[i] ^= delta
            try:
                checked = check_bundle(bytes(changed))
            except BundleError:
                continue
            assert (checked.tree_size, checked.root) != (cp.size, cp.root), (i, delta)


def test_leaf_lines_cannot_be_regrouped(trace_path: Path) -> None:
    """Joining two lines with an embedded newline keeps the leaf bytes but
    would claim a line that never existed: refused."""
    trace = TraceFile(trace_path)
    b = make_bundle(trace, 18)
    merged = [b.leafLines[0] + "\n" + b.leafLines[1], *b.leafLines[2:]]
    forged = ProofBundle(
        format=b.format, line=17, text=merged[0], treeSize=b.treeSize, root=b.root,
        leafIndex=b.leafIndex, indexInLeaf=0, auditPath=b.auditPath, leafLines=merged,
    )
    with pytest.raises(BundleError, match="newline"):
        check_bundle(encode_bundle(forged))
    with pytest.raises(BundleError, match="canonical"):
        check_bundle(msgspec.json.format(encode_bundle(b), indent=1))
    with pytest.raises(BundleError, match="not a proof bundle"):
        check_bundle(b"{}")


def test_an_edited_summary_root_is_refused(tmp_path: Path, v2_trace_path: Path) -> None:
    trace_path = v2_trace_path  # only versions 1 and 2 carry a root in the summary
    data = trace_path.read_bytes()
    summary = TraceFile(trace_path).summary
    assert summary is not None and summary.root is not None
    wrong = data.replace(summary.root.encode(), bytes(64 * b"0"))
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(wrong)
    with pytest.raises(TraceError, match="summary root"):
        TraceFile(edited).root()


def test_unsealed_traces_cover_their_complete_leaves(tmp_path: Path, trace_path: Path) -> None:
    raw = trace_path.read_bytes()
    cut = tmp_path / "cut.jsonl"
    lines = raw.splitlines(keepends=True)
    cut.write_bytes(b"".join(lines[:50]) + lines[50][:30])  # a torn line 51
    trace = TraceFile(cut)
    assert not trace.sealed and trace.tree_lines == 50
    assert trace.full_leaves == 3 and trace.tree_size == 4
    assert trace.root(3) == TraceFile(trace_path).root(3)
    check_bundle(encode_bundle(make_bundle(trace, 40, size=3)))


def test_not_a_trace(tmp_path: Path) -> None:
    for content in (b"", b"hello\n", b'{"a":1}\n', b'{"blocktrace":1,"hash":"xyz"}\n'):
        path = tmp_path / "bad.jsonl"
        path.write_bytes(content)
        with pytest.raises(TraceError):
            TraceFile(path)
    with pytest.raises(TraceError, match="cannot read"):
        TraceFile(tmp_path / "missing.jsonl")


# -- version 4


@pytest.fixture(scope="module")
def v4_trace_path(trace_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run as format version 4 (a leaf's data starts with the hash before it)."""
    path = tmp_path_factory.mktemp("proof-v4") / "v4.jsonl"
    path.write_bytes(rechain_trace(trace_path.read_bytes(), version=4))
    return path


def _pure(path: Path, tree: Any) -> Verification:
    result = Verification(str(path), "unusable")
    with path.open("rb") as stream:
        reader._walk(stream, result, tree, tree if isinstance(tree, IndexBuilder) else None)
    return result


def _v4_index(path: Path) -> TraceIndex:
    builder = IndexBuilder(stamp_of(str(path), "plain"), None)
    result = _pure(path, builder)
    assert result.status == "sealed", result.reason
    return builder.finish(result)


def test_version_4_tree_leaf_hashes_are_the_leaves_last_lines(v4_trace_path: Path) -> None:
    raw = v4_trace_path.read_bytes().splitlines()
    hashes = [bytes.fromhex(msgspec.json.decode(line)["hash"]) for line in raw]
    lasts = [hashes[min(i + LINES_PER_LEAF, len(raw)) - 1] for i in range(0, len(raw), 16)]
    trace = TraceFile(v4_trace_path)
    assert trace.version == 4 and trace.sealed and trace.outcome_in_tree
    assert [digest for digest, _ in trace.hashed_leaves()] == lasts
    tree = MerkleAccumulator()
    result = _pure(v4_trace_path, tree)
    assert result.status == "sealed" and trace.root() == root_from_hashes(lasts) == tree.root()
    indexed = TraceFile(v4_trace_path, _v4_index(v4_trace_path))
    assert indexed.root() == trace.root() and indexed.root(3) == trace.root(3)


def test_a_version_this_blocktrace_does_not_know_is_refused(
    v4_trace_path: Path, tmp_path: Path
) -> None:
    """Every reader knows versions 1 to 4 (KNOWN_VERSIONS) and refuses the next, in
    the one reader's words (TraceFile reads the header through it: it said "unknown
    format version 5" of its own before)."""
    data = v4_trace_path.read_bytes()
    assert data.startswith(b'{"blocktrace":4,')
    v5 = tmp_path / "v5.jsonl"
    v5.write_bytes(b'{"blocktrace":5,' + data.removeprefix(b'{"blocktrace":4,'))
    for read in (TraceFile, reader.TraceReader):
        with pytest.raises(TraceError, match="format version 5 with hash 'sha256' is not one"):
            read(v5)
    for result in (_pure(v5, MerkleAccumulator()), verify_file(v5)):
        assert result.status == "unusable" and "format version 5" in (result.reason or "")


@pytest.mark.parametrize("indexed", [False, True], ids=["streamed", "indexed"])
def test_version_4_every_line_has_a_bundle_with_the_hash_before_its_leaf(
    v4_trace_path: Path, indexed: bool
) -> None:
    raw = v4_trace_path.read_bytes().splitlines()
    index = _v4_index(v4_trace_path) if indexed else None
    trace = TraceFile(v4_trace_path, index)
    r = trace.root()
    genesis = hashlib.sha256(b"blocktrace-chain/4\n").hexdigest()
    for line in [*range(1, trace.tree_lines + 1, 7), 16, 17, 33, trace.tree_lines]:
        bundle = make_bundle(trace, line)
        first = (line - 1) // LINES_PER_LEAF * LINES_PER_LEAF
        before = genesis if first == 0 else msgspec.json.decode(raw[first - 1])["hash"]
        assert bundle.prevHash == before
        assert bundle.text.encode() == raw[line - 1]
        checked = check_bundle(encode_bundle(bundle))
        assert checked.root == r and checked.tree_size == trace.tree_size
    early = make_bundle(trace, 40, size=5)
    assert check_bundle(encode_bundle(early)).root == trace.root(5)


def _forged(bundle: ProofBundle, **changes: Any) -> bytes:
    return encode_bundle(msgspec.structs.replace(bundle, **changes))


def test_version_4_tampered_bundles_are_rejected(v4_trace_path: Path) -> None:
    trace = TraceFile(v4_trace_path)
    b = make_bundle(trace, 37)
    assert b.version == 4 and b.prevHash is not None and b.indexInLeaf == 4
    lines = list(b.leafLines)
    edited = lines[4].replace('"pc":', '"pc":1', 1)
    assert edited != lines[4]
    digits = lines[6][:-3] + ("0" if lines[6][-3] != "0" else "1") + lines[6][-2:]
    forgeries = {
        "a line's body": dict(leafLines=[*lines[:4], edited, *lines[5:]], text=edited),
        "a line's hash digits": dict(leafLines=[*lines[:6], digits, *lines[7:]]),
        "the previous hash": dict(prevHash="0" * 64),
        "no previous hash": dict(prevHash=None),
        "two lines swapped": dict(leafLines=[*lines[:2], lines[3], lines[2], *lines[4:]]),
        "a line dropped": dict(leafLines=lines[:-1]),
        "the leaf's last line moved first": dict(leafLines=[lines[-1], *lines[:-1]]),
        "a hash member gone": dict(
            leafLines=[*lines[:5], lines[5][: lines[5].rindex(',"hash"')] + "}", *lines[6:]]
        ),
        "another leaf's place": dict(leafIndex=b.leafIndex + 1, line=b.line + 16),
        "the root": dict(root="1" * 64),
        "the audit path": dict(auditPath=[*b.auditPath[:-1], "2" * 64]),
        "uppercase prevHash": dict(prevHash=(b.prevHash or "").upper()),
    }
    for what, changes in forgeries.items():
        with pytest.raises(BundleError):
            check_bundle(_forged(b, **changes))
            pytest.fail(what)
    # prevHash is the leaf data's first bytes: a bundle cannot pass as version 3's
    with pytest.raises(BundleError, match="canonical"):
        check_bundle(encode_bundle(b).replace(b'"prevHash"', b' "prevHash"'))
    # the first leaf starts from H_0 and nothing else
    first = make_bundle(trace, 3)
    with pytest.raises(BundleError, match="H_0"):
        check_bundle(_forged(first, prevHash=b.prevHash))
    with pytest.raises(BundleError, match="prevHash"):
        check_bundle(_forged(first, prevHash=None))
    # and a version 3 bundle names neither (its bytes are those it always had)
    v3 = encode_bundle(make_bundle(TraceFile(trace_path_of(v4_trace_path)), 37))
    assert b"prevHash" not in v3 and b'"version"' not in v3


def trace_path_of(v4_path: Path) -> Path:
    """The version 3 recording the version 4 fixture was re-chained from."""
    path = v4_path.with_name("v3.jsonl")
    if not path.exists():
        path.write_bytes(rechain_trace(v4_path.read_bytes(), version=3))
    return path


def test_version_4_every_single_byte_change_of_a_bundle_is_rejected(v4_trace_path: Path) -> None:
    trace = TraceFile(v4_trace_path)
    size, r = trace.tree_size, trace.root()
    data = encode_bundle(make_bundle(trace, 21))
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] ^= 0x01
        try:
            checked = check_bundle(bytes(changed))
        except BundleError:
            continue
        assert (checked.tree_size, checked.root) != (size, r), i
