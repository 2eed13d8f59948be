"""SHA-256 in C (``blocktrace/chain/csrc/sha256.c``), both compressions, against the
published vectors and against ``hashlib``.

The in-process module uses the SHA extensions when the CPU has them; a child process
with ``BLOCKTRACE_SHA_PORTABLE=1`` runs the portable C.  Each answers the same list of
messages, so every vector is checked on both paths.
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


@pytest.fixture(scope="module", params=["default", "portable"])
def digests(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    """(implementation, the digest of every message) from each path."""
    messages = _messages()
    if request.param == "default":
        return _cwriter.IMPLEMENTATION, [_cwriter.sha256(m).hex() for m in messages]
    env = {**os.environ, "BLOCKTRACE_SHA_PORTABLE": "1"}
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=msgspec.json.encode(messages),
                          env=env, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    out: dict[str, Any] = msgspec.json.decode(proc.stdout)
    assert out["impl"] == "portable"
    return out["impl"], out["digests"]


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

