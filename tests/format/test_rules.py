"""The format's chain and leaf rules are one definition: both line writers and
the C sources are checked against ``blocktrace.format.rules``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocktrace.chain import merkle, writer
from blocktrace.format import rules
from blocktrace.format.versions import LINES_PER_LEAF

_C_SOURCES = sorted(
    p for ext in ("*.c", "*.h") for p in Path(rules.__file__).parents[1].rglob(ext)
)


def _c_literal(data: bytes) -> str:
    """``data`` as it is spelled inside a C string literal."""
    out = []
    for byte in data:
        ch = chr(byte)
        if ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def test_the_c_writer_spells_the_format_constants_of_the_reference() -> None:
    if not _C_SOURCES:
        pytest.skip("no C sources in this checkout")
    text = "\n".join(p.read_text() for p in _C_SOURCES)
    for constant in (rules.OP_MID, rules.HASH_FIELD):
        assert _c_literal(constant) in text, constant
    # H_0: the domain string, or its SHA-256 precomputed as a byte array.
    arrays = {
        bytes(int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{2})\b", body))
        for body in re.findall(r"\{([0-9a-fA-Fx,\s]+)\}", text)
    }
    assert _c_literal(rules.DOMAIN) in text or hashlib.sha256(rules.DOMAIN).digest() in arrays
    # The Python writer's op-line piece, when it keeps its own copy.
    assert getattr(writer, "_MID", rules.OP_MID) == rules.OP_MID
    # The tail: ,"hash":"<64 hex>"}\n
    assert rules.LINE_TAIL_LEN == len(rules.HASH_FIELD) + 64 + 3 == 76


def _bodies() -> st.SearchStrategy[list[bytes]]:
    body = st.binary(max_size=200).map(
        lambda b: b'{"x":"' + b.replace(b"\n", b"").hex().encode() + b'"'
    )
    return st.lists(body, min_size=1, max_size=70)


def _written(cls: type, bodies: list[bytes], version: int = 3) -> tuple[bytes, bytes]:
    out: list[bytes] = []
    w = cls(out.append, buffer_size=1 << 12, lines_per_leaf=LINES_PER_LEAF, version=version)
    for body in bodies:
        w.line(body)
    w.close_leaf()
    w.flush()
    return b"".join(out), w.root()


def _writers(version: int = 3) -> list[type]:
    """The writers that write ``version`` (the C one once it takes ``version``)."""
    found = [writer.PyLineWriter]
    try:
        from blocktrace.chain._cwriter import LineWriter  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        try:
            LineWriter(list().append, version=version)
        except TypeError:  # a C writer without ``version``: it writes the default only
            pass
        else:
            found.append(LineWriter)
    return found


@pytest.mark.parametrize("version", [3, 4])
@settings(max_examples=60, deadline=None)
@given(bodies=_bodies(), summary=st.booleans())
def test_both_writers_write_exactly_the_reference_bytes(
    version: int, bodies: list[bytes], summary: bool
) -> None:
    """Every line, the summary too, by the ordinary rule of ``version``; the tree
    is the leaves of every line.  Version 3's leaf hash is the leaf's lines'
    RFC 9162 hash, version 4's its last line's hash."""
    if summary:
        bodies = [*bodies, b'{"output":"0","gasUsed":"0x1","pass":true,"time":1,"lines":%d'
                  % len(bodies)]
    leaves: list[bytes] = []
    expected = rules.rechain(bodies, version, leaves.append)
    lines = expected.splitlines(keepends=True)
    groups = [lines[i : i + 16] for i in range(0, len(lines), 16)]
    if version == 3:
        assert leaves == [hashlib.sha256(b"\x00" + b"".join(g)).digest() for g in groups]
    else:
        assert leaves == [bytes.fromhex(g[-1][-67:-3].decode()) for g in groups]
    for cls in _writers(version):
        data, root = _written(cls, bodies, version)
        assert data == expected, cls
        assert root == merkle.root_from_hashes(leaves), cls


def test_rechain_of_the_three_versions_verifies(tmp_path: Path) -> None:
    from blocktrace.chain.verify import verify_file

    header = b'{"blocktrace":%d,"hashAlg":"sha256","genesis":"g"'
    for version in (1, 2, 3):
        bodies = [header % version] + [b'{"event":"x","n":%d' % i for i in range(40)]
        count = len(bodies)
        summary = b'{"output":"0","gasUsed":"0x0","pass":true,"time":1,"lines":%d' % count
        path = tmp_path / f"v{version}.jsonl"
        if version == 3:
            path.write_bytes(rules.rechain([*bodies, summary], 3))
        else:
            from blocktrace.chain.rewrite import rechain_trace

            path.write_bytes(rechain_trace(rules.rechain([*bodies, summary], 3), version=version))
        result = verify_file(path)
        assert result.status == "sealed", (version, result.reason)
        assert result.version == version
        assert result.outcome_in_tree == (version == 3)


def _v4_by_the_formula(bodies: list[bytes]) -> list[bytes]:
    """Version 4's lines computed straight from docs/FORMAT.md's formula, with no
    state shared with :class:`rules.LeafChain`: the hash of line i is
    SHA-256(0x00 || H_{f-1} || B_f || 0x0A || ... || B_i || 0x0A), f the first line
    of i's leaf of 16, H_0 = SHA-256("blocktrace-chain/4\\n")."""
    out: list[bytes] = []
    prev = hashlib.sha256(b"blocktrace-chain/4\n").digest()
    for start in range(0, len(bodies), LINES_PER_LEAF):
        data = b"\x00" + prev
        for body in bodies[start : start + LINES_PER_LEAF]:
            data += body + b"\n"
            prev = hashlib.sha256(data).digest()
            out.append(body + b',"hash":"' + prev.hex().encode() + b'"}\n')
    return out


@given(st.lists(st.binary(max_size=140).map(lambda b: b"{" + b.replace(b"\n", b"")), max_size=40))
@settings(max_examples=60, deadline=None)
def test_version_4_is_the_formula_and_its_leaf_hash_is_the_leafs_last_line(
    bodies: list[bytes],
) -> None:
    leaves: list[bytes] = []
    got = rules.rechain(bodies, 4, leaves.append)
    want = _v4_by_the_formula(bodies)
    assert got == b"".join(want)
    # each leaf hash is the RFC 9162 leaf hash of (previous hash || bodies with
    # newlines), which is its last line's hash
    lasts = [want[min(i + LINES_PER_LEAF, len(want)) - 1] for i in range(0, len(want), 16)]
    assert [leaf.hex() for leaf in leaves] == [line[-67:-3].decode() for line in lasts]
    # reading checks what writing sealed
    reader = rules.LeafChain(LINES_PER_LEAF, version=4)
    for line, body in zip(want, bodies, strict=True):
        assert reader.check(body, line) == line[-67:-3].decode()
