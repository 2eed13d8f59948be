"""Re-chaining a trace after editing it: what a forger who knows the format does.

The tamper tests and fuzzers need it to reach past the hash check (a chain
alone proves nothing against whoever rewrites the whole file: that is why
anchors exist), and it converts a trace to another format version to test old
versions' verification.  It writes by :mod:`blocktrace.format.rules`, so it is
also a second writer the reference is checked against.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from blocktrace.chain.merkle import MerkleAccumulator
from blocktrace.format.rules import ChainHasher, LeafChain, split_hash
from blocktrace.format.versions import LINES_PER_LEAF, SUMMARY_IN_TREE, SUMMARY_PREFIX

__all__ = ["rechain_trace"]

_decode = msgspec.json.Decoder(dict[str, object]).decode
_encode = msgspec.json.Encoder().encode


def _set_version(body: bytes, version: int) -> bytes:
    header = _decode(body + b"}")
    header["blocktrace"] = version
    if version in SUMMARY_IN_TREE:
        header.setdefault("level", "op")
    else:
        header.pop("level", None)
    return _encode(header)[:-1]


def rechain_trace(
    data: bytes,
    edit: Callable[[int, bytes], bytes] | None = None,
    *,
    version: int | None = None,
    fix_summary: bool = True,
) -> bytes:
    """The trace ``data`` with each line's body (0-based line index, bytes before
    its hash member) replaced by ``edit(index, body)`` and every hash
    recomputed by ``version``'s rules (default: the header's).  With
    ``fix_summary`` the summary's ``lines`` is recounted and, for versions 1
    and 2, its ``head``, ``root`` and ``treeSize`` recomputed (added for a
    version 3 trace made version 2, dropped the other way)."""
    lines = data.splitlines()
    bodies: list[bytes] = []
    for index, raw in enumerate(lines):
        parts = split_hash(raw)
        if parts is None:
            raise ValueError(f"line {index + 1} has no hash member")
        body = parts[0] if edit is None else edit(index, parts[0])
        bodies.append(body)
    if version is not None:
        bodies[0] = _set_version(bodies[0], version)
    else:
        version = int(_decode(bodies[0] + b"}")["blocktrace"])  # type: ignore[call-overload]
    merkle = MerkleAccumulator()
    v1 = ChainHasher()
    group: list[bytes] = []  # version 1 hashes its leaves apart from the chain
    chain = LeafChain(LINES_PER_LEAF, merkle.append_leaf_hash, version)
    out: list[bytes] = []
    for index, body in enumerate(bodies):
        is_summary = body.startswith(SUMMARY_PREFIX)
        if is_summary and fix_summary:
            summary = _decode(body + b"}")
            for key in ("head", "root", "treeSize"):
                summary.pop(key, None)
            summary["lines"] = index
            if version not in SUMMARY_IN_TREE:
                if version == 1:
                    if group:
                        merkle.append_leaf_data(b"".join(group))
                        group = []
                    summary["head"] = v1.head()
                else:
                    chain.close_leaf()
                    summary["head"] = chain.head()
                summary["root"] = merkle.root().hex()
                summary["treeSize"] = merkle.size
            body = _encode(summary)[:-1]
        if version == 1:
            line = v1.seal(body)
            if not is_summary:
                group.append(line)
                if len(group) == LINES_PER_LEAF:
                    merkle.append_leaf_data(b"".join(group))
                    group = []
        elif version == 2 and is_summary:
            line = chain.seal_summary(body)
        else:
            line = chain.seal(body)
        out.append(line)
    return b"".join(out)
