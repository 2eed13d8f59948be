"""The hash chain is exactly the one docs/FORMAT.md defines: checked by an
independent computation with hashlib, from the document's words."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import blocktrace
from blocktrace.chain import merkle
from blocktrace.chain.hashing import (
    DOMAIN,
    DOMAIN_V1,
    DOMAIN_V4,
    ChainHasher,
    LeafChain,
    split_hash,
)
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.chain.verify import verify_file

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _independent_heads(data: bytes, version: int = 3) -> list[str]:
    """Versions 2 and 3, from docs/FORMAT.md's words: lines (version 2: before the
    summary) in leaves of 16; H_0 = SHA-256("blocktrace-chain/2\\n"); the first
    line of a leaf (and version 2's summary): SHA-256(0x02 || H_{i-1} || B_i); any
    other line:
    SHA-256(0x00 || L_f || ... || L_{i-1} || B_i), L = exact line bytes, B = the
    bytes before ',"hash":"'.  Version 4: H_0 = SHA-256("blocktrace-chain/4\\n"),
    H_i = SHA-256(0x00 || H_{f-1} || B_f || "\\n" || ... || B_i || "\\n")."""
    lines = [line + b"\n" for line in data.split(b"\n")[:-1]]
    if version == 4:
        bodies = [line[: line.rindex(b',"hash":"')] for line in lines]
        before = hashlib.sha256(b"blocktrace-chain/4\n").digest()
        heads4: list[str] = []
        for i in range(len(bodies)):
            first = i - i % 16
            if i == first and i:
                before = bytes.fromhex(heads4[-1])
            data4 = b"\x00" + before + b"".join(b + b"\n" for b in bodies[first : i + 1])
            heads4.append(hashlib.sha256(data4).hexdigest())
        return heads4
    prev = hashlib.sha256(b"blocktrace-chain/2\n").digest()
    heads = []
    for i, line in enumerate(lines):
        body = line[: line.rindex(b',"hash":"')]
        first = i - i % 16
        if i % 16 == 0 or (version == 2 and body.startswith(b'{"output":')):
            prev = hashlib.sha256(b"\x02" + prev + body).digest()
        else:
            prev = hashlib.sha256(b"\x00" + b"".join(lines[first:i]) + body).digest()
        heads.append(prev.hex())
    return heads


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


@pytest.mark.parametrize("version", [3, 4])
def test_a_real_trace_follows_the_documented_definition(tmp_path: Path, version: int) -> None:
    out = io.BytesIO()
    tracer = blocktrace.ChainTracer(out, genesis="doc-check", argv=["x"], format_version=version)
    with blocktrace.trace(tracer):
        _work(12)
    data = out.getvalue()
    assert data.endswith(b"\n") and b"\r" not in data
    lines = data.split(b"\n")[:-1]
    assert len(lines) > 3 * 16 + 1  # several leaves and a partial one
    stored = [_decode(line)["hash"] for line in lines]
    assert stored == _independent_heads(data, version)
    for line in lines:
        assert re.fullmatch(rb'\{.*,"hash":"[0-9a-f]{64}"\}', line)
        committed = _decode(line[: line.rindex(b',"hash":"')] + b"}")  # B_i + "}" is JSON
        assert "hash" not in committed
    header = _decode(lines[0])
    assert header["blocktrace"] == version and header["hashAlg"] == "sha256"
    assert header["genesis"] == "doc-check" and header["argv"] == ["x"]
    assert header["level"] == "op"
    summary = _decode(lines[-1])
    assert summary["lines"] == len(lines) - 1
    assert not {"head", "root", "treeSize"} & summary.keys()  # versions 3 and 4
    assert tracer.head == stored[-1]
    assert tracer.sealed
    # The tree: leaves of 16 lines, RFC 9162 hashing, over every line, the summary
    # included.  Version 3: the leaf data is the exact lines (with their newlines);
    # version 4: H_{f-1} and the bodies, whose leaf hash is the last line's hash.
    tree_lines = [line + b"\n" for line in lines]
    leaves = [b"".join(tree_lines[k : k + 16]) for k in range(0, len(tree_lines), 16)]
    if version == 3:
        tree_root = merkle.root(leaves)
    else:
        lasts = [stored[min(k + 16, len(stored)) - 1] for k in range(0, len(stored), 16)]
        tree_root = merkle.root_from_hashes([bytes.fromhex(h) for h in lasts])
    result = verify_file(_write_tmp(data, tmp_path))
    assert result.status == "sealed"
    assert result.tree_size == len(leaves)
    assert result.root == tree_root.hex()


def test_version_2_follows_its_documented_definition(tmp_path: Path) -> None:
    """The version 2 summary (a link, outside the tree, with head/root/treeSize)."""
    out = io.BytesIO()
    with blocktrace.trace(blocktrace.ChainTracer(out, genesis="doc-check", argv=["x"])):
        _work(12)
    data = rechain_trace(out.getvalue(), version=2)
    lines = data.split(b"\n")[:-1]
    stored = [_decode(line)["hash"] for line in lines]
    assert stored == _independent_heads(data, version=2)
    summary = _decode(lines[-1])
    assert _decode(lines[0])["blocktrace"] == 2
    assert summary["head"] == stored[-2]
    tree_lines = [line + b"\n" for line in lines[:-1]]
    leaves = [b"".join(tree_lines[k : k + 16]) for k in range(0, len(tree_lines), 16)]
    assert summary["treeSize"] == len(leaves)
    assert summary["root"] == merkle.root(leaves).hex()
    assert verify_file(_write_tmp(data, tmp_path)).status == "sealed"


def _write_tmp(data: bytes, where: Path) -> Path:
    path = where / "t.jsonl"
    path.write_bytes(data)
    return path


def test_domain_strings() -> None:
    assert DOMAIN == b"blocktrace-chain/2\n" and len(DOMAIN) == 19
    assert DOMAIN_V1 == b"blocktrace-chain/1\n" and len(DOMAIN_V1) == 19
    assert DOMAIN_V4 == b"blocktrace-chain/4\n" and len(DOMAIN_V4) == 19


def _v1_heads(data: bytes) -> list[str]:
    """Version 1: H_i = SHA-256("blocktrace-chain/1\\n" || C_1 || "\\n" || ... || C_i || "\\n"),
    C_i = the bytes before ',"hash":"' followed by '}'."""
    running = hashlib.sha256(b"blocktrace-chain/1\n")
    heads = []
    for line in data.split(b"\n")[:-1]:
        running.update(line[: line.rindex(b',"hash":"')] + b"}\n")
        heads.append(running.hexdigest())
    return heads


def test_version_1_traces_still_verify(tmp_path: Any) -> None:
    """A trace written by blocktrace 0.1 (format 1) keeps verifying, tree included."""
    chain = ChainHasher()
    header = b'{"blocktrace":1,"hashAlg":"sha256","genesis":"g","argv":[]'
    lines = [chain.seal(header)]
    lines += [chain.seal(b'{"pc":%d,"op":1,"gas":"0x1","gasCost":"0x1","depth":1' % i)
              for i in range(40)]
    leaves = [b"".join(lines[k : k + 16]) for k in range(0, len(lines), 16)]
    summary = b'{"output":"0","gasUsed":"0x28","pass":true,"time":1,"lines":41,"head":"%s",' \
        b'"root":"%s","treeSize":3' % (chain.head().encode(), merkle.root(leaves).hex().encode())
    lines.append(chain.seal(summary))
    data = b"".join(lines)
    assert [_decode(line)["hash"] for line in lines] == _v1_heads(data)
    path = tmp_path / "v1.jsonl"
    path.write_bytes(data)
    result = verify_file(path)
    assert result.status == "sealed", result.reason
    assert result.tree_size == 3 and result.root == merkle.root(leaves).hex()
    path.write_bytes(data.replace(b'"pc":7,', b'"pc":8,'))
    assert verify_file(path).status == "tampered"


_BODIES = st.binary(max_size=40).map(lambda b: b'{"x":' + msgspec.json.encode(b.hex()))


@given(st.lists(_BODIES, max_size=8))
def test_v1_seal_and_check_agree(bodies: list[bytes]) -> None:
    writer, reader = ChainHasher(), ChainHasher()
    for body in bodies:
        line = writer.seal(body)
        assert line.endswith(b'"}\n')
        parts = split_hash(line[:-1])
        assert parts is not None and parts[0] == body
        assert reader.check(parts[0]) == parts[1]
    assert writer.head() == reader.head()


def test_split_hash_refuses_malformed_tails() -> None:
    good = b'{"a":1,"hash":"' + b"ab" * 32 + b'"}'
    assert split_hash(good) == (b'{"a":1', "ab" * 32)
    for bad in (
        good[:-1],
        good.replace(b"ab", b"AB"),  # uppercase hex is not the format
        good.replace(b',"hash":', b',"hashx":'),
        b'{"a":1,"hash":"' + b"ab" * 31 + b'"}',  # too short
        b'{"a":1,"hash":"' + b"ab" * 32 + b'g"}',
        b'{"a":1,"hash": "' + b"ab" * 32 + b'"}',
        b"",
        b"}",
    ):
        assert split_hash(bad) is None, bad


@given(st.lists(_BODIES, max_size=40), st.sampled_from([0, 1, 2, 3, 16]))
def test_v2_seal_and_check_agree_with_the_reference(bodies: list[bytes], per_leaf: int) -> None:
    leaves: list[bytes] = []
    writer, reader = LeafChain(per_leaf, leaves.append), LeafChain(per_leaf)
    lines = [writer.seal(body) for body in bodies]
    data = b"".join(lines)
    for line, body in zip(lines, bodies, strict=True):
        parts = split_hash(line[:-1])
        assert parts is not None and parts[0] == body
        assert reader.check(body, line) == parts[1]
    assert writer.head() == reader.head()
    writer.close_leaf()
    if per_leaf == 16:
        assert [_decode(line)["hash"] for line in lines] == _independent_heads(data)
    if per_leaf:
        expected = [merkle.leaf_hash(b"".join(lines[k : k + per_leaf]))
                    for k in range(0, len(lines), per_leaf)]
        assert leaves == expected
    else:
        assert leaves == []
