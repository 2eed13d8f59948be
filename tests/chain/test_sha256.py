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

