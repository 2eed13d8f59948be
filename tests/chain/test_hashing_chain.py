"""The hash chain is exactly the one docs/FORMAT.md defines: checked by an
independent computation with hashlib, from the document's words."""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

import blocktrace
from blocktrace.chain.hashing import DOMAIN, ChainHasher, split_hash

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _independent_heads(data: bytes) -> list[str]:
    """H_i = SHA-256("blocktrace-chain/1\\n" || C_1 || "\\n" || ... || C_i || "\\n"),
    C_i = the bytes before ',"hash":"' followed by '}'."""
    running = hashlib.sha256(b"blocktrace-chain/1\n")
    heads = []
    for line in data.split(b"\n")[:-1]:
        committed = line[: line.rindex(b',"hash":"')] + b"}"
        running.update(committed + b"\n")
        heads.append(running.hexdigest())
    return heads


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_a_real_trace_follows_the_documented_definition() -> None:
    out = io.BytesIO()
    tracer = blocktrace.ChainTracer(out, genesis="doc-check", argv=["x"])
    with blocktrace.trace(tracer):
        _work(5)
    data = out.getvalue()
    assert data.endswith(b"\n") and b"\r" not in data
    lines = data.split(b"\n")[:-1]
    stored = [_decode(line)["hash"] for line in lines]
    assert stored == _independent_heads(data)
    for line in lines:
        assert re.fullmatch(rb'\{.*,"hash":"[0-9a-f]{64}"\}', line)
        committed = _decode(line[: line.rindex(b',"hash":"')] + b"}")  # C_i is JSON itself
        assert "hash" not in committed
    header = _decode(lines[0])
    assert header["blocktrace"] == 1 and header["hashAlg"] == "sha256"
    assert header["genesis"] == "doc-check" and header["argv"] == ["x"]
    summary = _decode(lines[-1])
    assert summary["lines"] == len(lines) - 1
    assert summary["head"] == stored[-2]
    assert tracer.head == stored[-1]
    assert tracer.sealed


def test_domain_string() -> None:
    assert DOMAIN == b"blocktrace-chain/1\n" and len(DOMAIN) == 19


_BODIES = st.binary(max_size=40).map(lambda b: b'{"x":' + msgspec.json.encode(b.hex()))


@given(st.lists(_BODIES, max_size=8))
def test_seal_and_check_agree(bodies: list[bytes]) -> None:
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
