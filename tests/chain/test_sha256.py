"""SHA-256 in C (``blocktrace/chain/csrc/sha256.c``), both compressions, against the
published vectors and against ``hashlib``.

The in-process module uses the SHA extensions when the CPU has them, else OpenSSL's
compression (found at run time in the libcrypto hashlib uses), else the portable C; child
processes with ``BLOCKTRACE_SHA256=portable`` / ``openssl`` force the others.  Each answers
the same list of messages, so every vector is checked on every path.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from typing import Any

import msgspec
import pytest

_cwriter: Any = pytest.importorskip(
    "blocktrace.chain._cwriter",
    reason="the C extension is not built (python setup.py build_ext --inplace)",
)

# FIPS 180-2, appendix B (B.1 "abc", B.2 the 448-bit message, B.3 one million 'a'), the
# empty message, and the 896-bit message of the NIST examples (two padding blocks).
VECTORS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("abc", b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("448-bit", b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ("896-bit", b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
     b"klmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ("million-a", b"a" * 1_000_000,
     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]

# Long messages: every length around the block and padding boundaries up to 4 blocks,
# then lengths of the size of trace lines and leaves, then MiB-sized.
_SEED = bytes(range(251)) * 4200
LONG_LENGTHS = [*range(0, 260), 447, 448, 449, 511, 512, 513, 1000, 2848, 4096, 65_536,
                65_599, 1 << 20, (1 << 20) + 55]

_CHILD = textwrap.dedent(
    """
    import sys, msgspec
    from blocktrace.chain import _cwriter
    messages = msgspec.json.decode(sys.stdin.buffer.read(), type=list[bytes])
    sys.stdout.buffer.write(msgspec.json.encode({
        "impl": _cwriter.IMPLEMENTATION,
        "digests": [_cwriter.sha256(m).hex() for m in messages],
    }))
    """
)


def _messages() -> list[bytes]:
    return [m for _, m, _ in VECTORS] + [_SEED[:n] for n in LONG_LENGTHS]


def _expected() -> list[str]:
    return [d for _, _, d in VECTORS] + [hashlib.sha256(_SEED[:n]).hexdigest()
                                         for n in LONG_LENGTHS]


def _available(name: str) -> bool:
    try:
        _cwriter.sha256_with(name, b"")
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module", params=["default", "portable", "openssl", "openssl-no-sha-ni"])
def digests(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    """(implementation, the digest of every message) from each path: the one this
    process chose, and in child processes each one forced (OpenSSL's also with its own
    use of the SHA extensions masked, as on a CPU without them)."""
    messages = _messages()
    if request.param == "default":
        return _cwriter.IMPLEMENTATION, [_cwriter.sha256(m).hex() for m in messages]
    name = request.param.removesuffix("-no-sha-ni")
    if not _available(name):
        pytest.skip(f"no {name} SHA-256 compression in this process (libcrypto not found)")
    env = {**os.environ, "BLOCKTRACE_SHA256": name}
    if request.param.endswith("-no-sha-ni"):
        env["OPENSSL_ia32cap"] = ":~0x20000000"  # CPUID.7 EBX bit 29: the SHA extensions
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=msgspec.json.encode(messages),
                          env=env, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    out: dict[str, Any] = msgspec.json.decode(proc.stdout)
    assert out["impl"] == name
    return out["impl"], out["digests"]


@pytest.mark.parametrize("name", ["portable", "openssl", "sha-ni"])
def test_each_compression_in_process(name: str) -> None:
    """Every compression this process can use answers the vectors and long messages."""
    if not _available(name):
        pytest.skip(f"no {name} SHA-256 compression on this machine")
    for message, want in zip(_messages(), _expected(), strict=True):
        assert _cwriter.sha256_with(name, message).hex() == want, (name, len(message))


def test_an_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="no SHA-256 compression"):
        _cwriter.sha256_with("md5", b"")


def test_the_nist_vectors(digests: tuple[str, list[str]]) -> None:
    impl, got = digests
    for (name, _, expected), digest in zip(VECTORS, got, strict=False):
        assert digest == expected, (impl, name)


def test_long_messages_match_hashlib(digests: tuple[str, list[str]]) -> None:
    impl, got = digests
    expected = _expected()
    assert len(got) == len(expected)
    for n, (digest, want) in enumerate(zip(got[len(VECTORS):], expected[len(VECTORS):],
                                           strict=True)):
        assert digest == want, (impl, LONG_LENGTHS[n])



# -- a line of format version 4 ------------------------------------------------------


def _v4_lines(prev: bytes, bodies: list[bytes]) -> bytes:
    """Version 4's lines of one leaf after ``prev``, by the formula (docs/FORMAT.md):
    line i's hash is SHA-256(0x00 || prev || B_1 0x0A ... B_i 0x0A)."""
    stream = hashlib.sha256(b"\x00" + prev)
    out = bytearray()
    for body in bodies:
        stream.update(body + b"\n")
        out += body + b',"hash":"' + stream.hexdigest().encode() + b'"}\n'
    return bytes(out)


@pytest.mark.parametrize(("name", "how"), [
    *((name, how) for name in ("portable", "openssl", "sha-ni")
      for how in ("composed", "deferred")),
    ("sha-ni", "fused"), ("sha-ni", "deferred-fused"),
])
def test_version_4_line_functions_are_the_formula(name: str, how: str) -> None:
    """Each compression through the streaming calls' composition, and the SHA extensions'
    own line functions (the body and its newline fed with the state in registers, the
    digest padded there, the stream's pending bytes kept; deferred: each line's digest
    taken with the next line's first blocks, two chains interleaved, the last one
    settled): every body length from 0 to 260 (so every block boundary of the body and
    its newline), each after lines that left the stream at another offset in its block,
    then bodies of 1-3 KiB."""
    if not _available(name):
        pytest.skip(f"no {name} SHA-256 compression on this machine")
    prev = hashlib.sha256(b"blocktrace-chain/4\n").digest()
    bodies = [bytes(97 + (i * 7 + n) % 26 for i in range(n)) for n in range(261)]
    bodies += [bytes(range(32, 127)) * (n // 95) + b"x" * (n % 95) for n in (1000, 2047, 3001)]
    for start in range(0, 64, 7):  # other offsets for each length
        got = _cwriter.lines4_with(name, how, prev, bodies[start:] + bodies[:start])
        assert got == _v4_lines(prev, bodies[start:] + bodies[:start]), start


def test_no_fused_version_4_line_function_but_the_sha_extensions() -> None:
    for how in ("fused", "deferred-fused"):
        with pytest.raises(ValueError, match="no fused line function"):
            _cwriter.lines4_with("portable", how, bytes(32), [b"{"])
    with pytest.raises(ValueError, match="no SHA-256 compression"):
        _cwriter.lines4_with("md5", "composed", bytes(32), [b"{"])
    with pytest.raises(ValueError, match="no way"):
        _cwriter.lines4_with("portable", "sideways", bytes(32), [b"{"])
