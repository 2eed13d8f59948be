"""The hash chains of docs/FORMAT.md, in one place for the writers and the verifier.

Each line is ``BODY,"hash":"<64 hex>"}\\n``.

Version 2 (:class:`LeafChain`, what blocktrace writes): lines are grouped into
leaves of ``LINES_PER_LEAF``; one SHA-256 stream per leaf, started with 0x00 and
fed the leaf's lines exactly as written, is the leaf's RFC 9162 leaf hash once
complete; a line's hash is the stream's digest just before its hash member, and
the first line of each leaf (and the summary) links to the line before it as
``SHA-256(0x02 || previous hash || BODY)``.

Version 1 (:class:`ChainHasher`, still verified): the committed bytes of a line
are ``BODY + "}"``; one running SHA-256, seeded with :data:`DOMAIN_V1`, is fed
each line's committed bytes and a newline, and each line carries the digest so far.
"""

from __future__ import annotations

import hashlib
import re
from binascii import hexlify
from collections.abc import Callable

__all__ = [
    "DOMAIN",
    "DOMAIN_V1",
    "FORMAT_VERSION",
    "HASH_FIELD",
    "HASH_HEX_LEN",
    "KNOWN_VERSIONS",
    "LINK_PREFIX",
    "ChainHasher",
    "LeafChain",
    "split_hash",
]

FORMAT_VERSION = 2
KNOWN_VERSIONS = (1, 2)
DOMAIN = b"blocktrace-chain/2\n"
"""Version 2's H_0 is ``SHA-256(DOMAIN)``."""
DOMAIN_V1 = b"blocktrace-chain/1\n"
LINK_PREFIX = b"\x02"
"""First byte of a chain link (0x00 starts a leaf stream, 0x01 a Merkle node)."""
_LEAF_PREFIX = b"\x00"
HASH_FIELD = b',"hash":"'
HASH_HEX_LEN = 64
_TAIL_LEN = len(HASH_FIELD) + HASH_HEX_LEN + 2  # ,"hash":"<hex>"}
_HEX = re.compile(rb"[0-9a-f]{64}\Z")


class ChainHasher:
    """Version 1's running chain state.  ``seal(body)`` returns the full line to write."""

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.running = hashlib.sha256(DOMAIN_V1)

    def head(self) -> str:
        """The hash of the last line fed (the chain head so far)."""
        return self.running.copy().hexdigest()

    def seal(self, body: bytes) -> bytes:
        """``body`` is a line without its closing ``}``; returns the sealed line."""
        h = self.running
        h.update(body + b"}\n")
        return b'%b,"hash":"%b"}\n' % (body, hexlify(h.copy().digest()))

    def check(self, body: bytes) -> str:
        """Feed a line's body (as read) and return the hash it must carry."""
        h = self.running
        h.update(body + b"}\n")
        return h.copy().hexdigest()


class LeafChain:
    """Version 2's chain and leaf hashes, for reading (and re-chaining) a trace.

    ``check(body, raw)`` returns the hash line ``raw`` (its exact bytes, newline
    included; ``body`` is the part before its hash member) must carry, and feeds
    it; ``check_summary(body)`` the same for the summary line, which is not in
    the tree.  Completed leaves' hashes are handed to ``on_leaf``.  ``seal`` and
    ``seal_summary`` build lines instead (for tests and tools that write traces
    without the tracer)."""

    __slots__ = ("_in_leaf", "_on_leaf", "_per_leaf", "_stream", "prev")

    def __init__(self, per_leaf: int, on_leaf: Callable[[bytes], object] | None = None) -> None:
        self.prev = hashlib.sha256(DOMAIN).digest()
        self._stream = hashlib.sha256(_LEAF_PREFIX)
        self._in_leaf = 0
        self._per_leaf = per_leaf
        self._on_leaf = on_leaf

    def head(self) -> str:
        return self.prev.hex()

    def check(self, body: bytes, raw: bytes) -> str:
        stream = self._stream
        stream.update(body)
        if self._in_leaf == 0:
            digest = hashlib.sha256(LINK_PREFIX + self.prev + body).digest()
        else:
            digest = stream.digest()
        stream.update(raw[len(body):])
        self.prev = digest
        self._in_leaf += 1
        if self._in_leaf == self._per_leaf:
            self.close_leaf()
        return digest.hex()

    def close_leaf(self) -> None:
        """End a partial leaf (before the summary)."""
        if self._in_leaf and self._per_leaf:
            if self._on_leaf is not None:
                self._on_leaf(self._stream.digest())
            self._stream = hashlib.sha256(_LEAF_PREFIX)
            self._in_leaf = 0

    def check_summary(self, body: bytes) -> str:
        self.close_leaf()
        self.prev = hashlib.sha256(LINK_PREFIX + self.prev + body).digest()
        return self.prev.hex()

    def seal(self, body: bytes) -> bytes:
        stream = self._stream.copy()
        stream.update(body)
        digest = (
            hashlib.sha256(LINK_PREFIX + self.prev + body).digest()
            if self._in_leaf == 0 else stream.digest()
        )
        raw = b'%b,"hash":"%b"}\n' % (body, hexlify(digest))
        self.check(body, raw)
        return raw

    def seal_summary(self, body: bytes) -> bytes:
        return b'%b,"hash":"%b"}\n' % (body, self.check_summary(body).encode())


def split_hash(line: bytes) -> tuple[bytes, str] | None:
    """Split a line (without its newline) into (body, hash hex), or None when it
    does not end with a well-formed hash member."""
    if len(line) < _TAIL_LEN or not line.endswith(b'"}'):
        return None
    cut = len(line) - _TAIL_LEN
    if line[cut : cut + len(HASH_FIELD)] != HASH_FIELD:
        return None
    digest = line[cut + len(HASH_FIELD) : -2]
    if not _HEX.match(digest):
        return None
    return line[:cut], digest.decode()
