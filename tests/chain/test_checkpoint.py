"""Checkpoints of real traces: format, signatures, and every way they can fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blocktrace.chain.checkpoint import (
    Checkpoint,
    Checkpointer,
    CheckpointError,
    check_against_trace,
    check_extends,
    checkpoint_of_trace,
    load_signer,
    origin_for,
    read_checkpoint,
    verify_anchors,
)
from blocktrace.chain.merkle import LINES_PER_LEAF, MerkleAccumulator, verify_consistency
from blocktrace.chain.note import (
    NoteError,
    Signer,
    Verifier,
    generate_key,
    parse_note,
    sign_note,
)
from blocktrace.chain.proof import TraceFile
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.cli.verify import ANCHOR_EXIT_STATUS
from tests.chain.recording import record

REFDATA = Path(__file__).resolve().parents[3] / "shared" / "refdata" / "merkle"
def rewrite(src: Path, dst: Path, line: int) -> None:
    """What a writer who lies does: change line ``line`` (1-based) and
    recompute every hash (and the summary, by the trace's version's rules)."""

    def edit(index: int, body: bytes) -> bytes:
        if index + 1 != line:
            return body
        changed = body.replace(b'"depth":', b'"depth":1', 1)
        assert changed != body
        return changed

    dst.write_bytes(rechain_trace(src.read_bytes(), edit))


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cp")
    a = record(d, "a.jsonl")
    b = record(d, "b.jsonl")
    forked = d / "forked.jsonl"
    rewrite(a, forked, 200)
    return {"a": a, "b": b, "forked": forked, "dir": d}


@pytest.fixture(scope="module")
def key() -> Signer:
    return generate_key("example.com/ci")


def signed(cp: Checkpoint, *signers: Signer) -> bytes:
    return sign_note(cp.text(), list(signers))


# -- format ----------------------------------------------------------------------


def test_published_checkpoint_examples_parse_and_round_trip() -> None:
    path = REFDATA / "checkpoint_format_examples.json"
    if not path.exists():
        pytest.skip(f"reference data {path} is absent")
    examples = [e for e in json.loads(path.read_text())["examples"] if "text" in e]
    assert len(examples) >= 5
    for example in examples:
        data = example["text"].encode()
        read = read_checkpoint(data)
        cp = read.checkpoint
        text = parse_note(data).text if read.signed else example["text"]
        assert cp.text() == text
        assert cp.size > 0 and len(cp.root) == 32 and cp.trace_id is None
    rekor = read_checkpoint(examples[-2]["text"].encode()).checkpoint
    assert rekor.extensions == ("Timestamp: 1682468469199678948",)


@pytest.mark.parametrize(
    "text",
    [
        "o\n1\n",
        "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n1 \nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n\u0661\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2=\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
    ],
)
def test_malformed_checkpoint_bodies(text: str) -> None:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(text.encode())
    assert info.value.kind == "malformed"


def test_checkpoint_names_its_trace(traces: dict[str, Path]) -> None:
    trace = TraceFile(traces["a"])
    cp = checkpoint_of_trace(trace)
    assert cp.origin == origin_for(trace.trace_id) == f"blocktrace/trace/{trace.trace_id}"
    assert cp.trace_id == trace.trace_id and cp.size == trace.tree_size
    assert Checkpoint.parse(cp.text()) == cp


# -- against the trace -------------------------------------------------------------


def test_a_signed_checkpoint_matches_its_trace(traces: dict[str, Path], key: Signer) -> None:
    trace = TraceFile(traces["a"])
    data = signed(checkpoint_of_trace(trace), key)
    read = read_checkpoint(data, [key.verifier()])
    assert read.verified_by == ("example.com/ci",)
    match = check_against_trace(read.checkpoint, trace)
    assert match.whole and match.lines_covered == trace.tree_lines


def test_every_single_byte_change_of_a_checkpoint_is_rejected(
    traces: dict[str, Path], key: Signer
) -> None:
    trace = TraceFile(traces["a"])
    data = signed(checkpoint_of_trace(trace), key)
    verifiers = [key.verifier()]
    kinds = set()
    for i in range(len(data)):
        for delta in (0x01, 0x20, 0x80):
            changed = bytearray(data)
            changed[i] ^= delta
            with pytest.raises(CheckpointError) as info:
                check_against_trace(read_checkpoint(bytes(changed), verifiers).checkpoint, trace)
                pytest.fail(f"accepted a change of byte {i} (xor {delta:#x})")
            kinds.add(info.value.kind)
    assert {"malformed", "signature-invalid", "unknown-key"} <= kinds


def test_unknown_key_unsigned_and_extra_signatures(traces: dict[str, Path], key: Signer) -> None:
    trace = TraceFile(traces["a"])
    cp = checkpoint_of_trace(trace)
    stranger = generate_key("example.com/ci")  # same name, another key
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(signed(cp, stranger), [key.verifier()])
    assert info.value.kind == "unknown-key"
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(cp.text().encode(), [key.verifier()])
    assert info.value.kind == "unsigned"
    unsigned = read_checkpoint(cp.text().encode())
    assert not unsigned.signed and unsigned.signature_state == "unsigned"
    unchecked = read_checkpoint(signed(cp, key))
    assert unchecked.signed and "not checked" in unchecked.signature_state
    witness = generate_key("witness.example/w1")
    both = read_checkpoint(signed(cp, key, witness), [key.verifier()])
    assert both.verified_by == ("example.com/ci",) and len(both.ignored) == 1


def test_signature_invalid_for_an_edited_body(traces: dict[str, Path], key: Signer) -> None:
    trace = TraceFile(traces["a"])
    cp = checkpoint_of_trace(trace)
    note = signed(cp, key)
    smaller = note.replace(f"\n{cp.size}\n".encode(), f"\n{cp.size - 1}\n".encode())
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(smaller, [key.verifier()])
    assert info.value.kind == "signature-invalid"


def test_checkpoint_of_another_trace(traces: dict[str, Path], key: Signer) -> None:
    other = checkpoint_of_trace(TraceFile(traces["b"]))
    with pytest.raises(CheckpointError) as info:
        check_against_trace(other, TraceFile(traces["a"]))
    assert info.value.kind == "other-trace"


def test_rewritten_trace_does_not_match_and_is_a_fork(traces: dict[str, Path]) -> None:
    original = TraceFile(traces["a"])
    forked = TraceFile(traces["forked"])
    assert forked.trace_id == original.trace_id  # same header, lines rewritten from 200
    cp = checkpoint_of_trace(original)
    with pytest.raises(CheckpointError) as info:
        check_against_trace(cp, forked)
    assert info.value.kind == "mismatch"
    early = Checkpoint(cp.origin, 5, original.root(5))  # before line 200: still matches
    check_against_trace(early, forked)
    check_extends(early, forked)
    late = Checkpoint(cp.origin, 14, original.root(14))  # covers line 200
    with pytest.raises(CheckpointError) as info:
        check_extends(late, forked)
    assert info.value.kind == "fork"
    with pytest.raises(CheckpointError) as info:
        check_extends(cp, forked, checkpoint_of_trace(forked))
    assert info.value.kind == "fork" and "same size" in str(info.value)


def test_rolled_back(traces: dict[str, Path], tmp_path: Path) -> None:
    original = TraceFile(traces["a"])
    cp = checkpoint_of_trace(original)
    lines = traces["a"].read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[: 10 * LINES_PER_LEAF + 3]))
    with pytest.raises(CheckpointError) as info:
        check_against_trace(cp, TraceFile(cut))
    assert info.value.kind == "rolled-back"
    older = Checkpoint(cp.origin, 12, original.root(12))
    newer = Checkpoint(cp.origin, 10, original.root(10))
    with pytest.raises(CheckpointError) as info:
        check_extends(older, TraceFile(cut))
    assert info.value.kind == "rolled-back"
    with pytest.raises(CheckpointError) as info:
        check_extends(older, original, newer)
    assert info.value.kind == "rolled-back"


def test_consistency_proof_from_the_trace_verifies_on_its_own(traces: dict[str, Path]) -> None:
    trace = TraceFile(traces["a"])
    for size1 in (1, 2, 7, 16, trace.tree_size - 1, trace.tree_size):
        old = Checkpoint(origin_for(trace.trace_id), size1, trace.root(size1))
        s1, s2, proof = check_extends(old, trace)
        verify_consistency(s1, s2, proof, old.root, trace.root())


# -- periodic checkpoints while writing ------------------------------------------------


def _replay(trace: TraceFile, cp: Checkpointer) -> None:
    """Feed the checkpointer exactly as the writer does: once per completed leaf."""
    acc = MerkleAccumulator()
    for digest, _ in trace.hashed_leaves(trace.full_leaves):  # by the trace's version
        acc.append_leaf_hash(digest)
        cp.maybe_write(acc.size, acc.root)


def test_checkpointer_every_n_lines(traces: dict[str, Path], key: Signer, tmp_path: Path) -> None:
    target = tmp_path / "a.jsonl"
    target.write_bytes(traces["a"].read_bytes())
    trace = TraceFile(target)
    flushed: list[int] = []
    cp = Checkpointer(target, trace.trace_id, every_lines=100, signer=key,
                      flush=lambda: flushed.append(1))
    _replay(trace, cp)
    sizes = [int(p.name.rsplit(".", 1)[1]) for p in cp.written]
    assert sizes == list(range(7, trace.full_leaves + 1, 7))  # 100 lines -> 7 leaves
    assert len(flushed) == len(sizes)
    assert not list(tmp_path.glob("*.tmp"))
    previous = None
    for path in cp.written:
        assert path.name == f"a.jsonl.cp.{path.name.rsplit('.', 1)[1]}"
        read = read_checkpoint(path.read_bytes(), [key.verifier()])
        check_against_trace(read.checkpoint, trace)
        if previous is not None:
            check_extends(previous, trace, read.checkpoint)
        previous = read.checkpoint
    assert verify_anchors(target, checkpoint=str(cp.written[0]), since=None).status == "ok"


def test_checkpointer_every_t_seconds_unsigned(traces: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "a.jsonl"
    target.write_bytes(traces["a"].read_bytes())
    trace = TraceFile(target)
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # one second per leaf
        return now[0]

    cp = Checkpointer(target, trace.trace_id, every_seconds=5, clock=clock)
    _replay(trace, cp)
    assert len(cp.written) >= 3
    first = read_checkpoint(cp.written[0].read_bytes())
    assert not first.signed
    check_against_trace(first.checkpoint, trace)
    final = cp.write(trace.tree_size, trace.root())
    check_against_trace(read_checkpoint(final.read_bytes()).checkpoint, trace)
    with pytest.raises(ValueError):
        Checkpointer(target, trace.trace_id, every_lines=0)


def test_verify_anchors_reports(traces: dict[str, Path], key: Signer, tmp_path: Path) -> None:
    trace = TraceFile(traces["a"])
    pub = tmp_path / "k.pub"
    pub.write_text("# trusted\n" + key.verifier().vkey + "\n")
    good = tmp_path / "good.cp"
    good.write_bytes(signed(checkpoint_of_trace(trace), key))
    old = tmp_path / "old.cp"
    old.write_bytes(signed(Checkpoint(origin_for(trace.trace_id), 9, trace.root(9)), key))
    report = verify_anchors(traces["a"], checkpoint=str(good), pubkey=str(pub), since=str(old))
    assert report.status == "ok" and ANCHOR_EXIT_STATUS[report.status] == 0
    assert report.data["since"]["size1"] == 9 and report.data["checkpoint"]["whole"]
    forked = verify_anchors(traces["forked"], checkpoint=str(good), pubkey=str(pub))
    assert (forked.status, forked.kind) == ("rejected", "mismatch")
    assert ANCHOR_EXIT_STATUS[forked.status] == 4
    assert "DOES NOT MATCH" in forked.messages[0]
    missing = verify_anchors(traces["a"], checkpoint=str(tmp_path / "nope"))
    assert (missing.status, ANCHOR_EXIT_STATUS[missing.status]) == ("unusable", 2)
    badkey = tmp_path / "bad.pub"
    badkey.write_text("not a key\n")
    assert verify_anchors(traces["a"], checkpoint=str(good), pubkey=str(badkey)).status == (
        "unusable"
    )
    assert Verifier.from_vkey(pub.read_text().splitlines()[1]) == key.verifier()


def test_load_signer_names_the_file(tmp_path: Path, key: Signer) -> None:
    path = tmp_path / "k.key"
    path.write_text(key.skey + "\n")
    assert load_signer(path) == key
    with pytest.raises(NoteError, match="cannot read the private key"):
        load_signer(tmp_path / "missing.key")
    path.write_text(key.verifier().vkey + "\n")
    with pytest.raises(NoteError, match="not a private key"):
        load_signer(path)


def test_merkle_modules_never_import_the_stepper() -> None:
    """chain/ works on bytes and files: a verifier never needs the traced program."""
    import ast

    import blocktrace.chain

    root_dir = Path(blocktrace.chain.__file__).parent
    for name in ("merkle.py", "note.py", "proof.py", "checkpoint.py"):
        tree = ast.parse((root_dir / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert not module.startswith(("blocktrace.vm", "blocktrace.tracers")), name
