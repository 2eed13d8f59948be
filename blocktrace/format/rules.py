"""The chain and leaf rules of docs/FORMAT.md: the one Python reference.

Each line is ``BODY,"hash":"<64 hex>"}\\n``.

Versions 2 and 3 (:class:`LeafChain`): lines are grouped into leaves of
``LINES_PER_LEAF``; one SHA-256 stream per leaf, started with 0x00 and fed the
leaf's lines exactly as written, is the leaf's RFC 9162 leaf hash once
complete; a line's hash is the stream's digest just before its hash member, and
the first line of each leaf links to the line before it as
``SHA-256(0x02 || previous hash || BODY)``.  Version 2's summary line is outside
the leaves and always links (:meth:`LeafChain.check_summary`); version 3's is an
ordinary line (:meth:`LeafChain.check`), the last of the last leaf.

Version 4 (:class:`LeafChain` with ``version=4``): the same leaves, but a
leaf's stream is ``0x00 || previous hash || BODY || "\\n" || BODY || "\\n" ...``:
it starts with the hash of the line before the leaf and is fed each line's
body and a newline, never the hash digits; a line's hash is the stream's
digest right after its own body and newline, so the last line's hash is the
leaf hash.  No link hash: the previous hash is the stream's first bytes.  The
digits are off the serial chain (a line's digest can be taken while the next
body is fed), and a line costs ~1.2 SHA-256 blocks fewer.

Version 1 (:class:`ChainHasher`, still verified): the committed bytes of a line
are ``BODY + "}"``; one running SHA-256, seeded with :data:`DOMAIN_V1`, is fed
each line's committed bytes and a newline, and each line carries the digest so far.

Both writers (``blocktrace.chain.writer.PyLineWriter`` and the C one) must
produce exactly the bytes :func:`rechain` produces from the same bodies;
``tests/format/test_rules.py`` checks it.
"""

from __future__ import annotations

import hashlib
import re
from binascii import hexlify
from collections.abc import Callable, Iterable

from blocktrace.format.versions import FORMAT_VERSION, LINES_PER_LEAF, SUMMARY_PREFIX

__all__ = [
    "DOMAIN",
    "DOMAIN_V1",
    "DOMAIN_V4",
    "HASH_FIELD",
    "HASH_HEX_LEN",
    "LEAF_PREFIX",
    "LINE_TAIL_LEN",
    "LINK_PREFIX",
    "NODE_PREFIX",
    "OP_MID",
    "ChainHasher",
    "LeafChain",
    "leaf_hash",
    "rechain",
    "split_hash",
]

DOMAIN = b"blocktrace-chain/2\n"
"""Versions 2 and 3: H_0 is ``SHA-256(DOMAIN)`` (version 3 keeps version 2's chain)."""
DOMAIN_V1 = b"blocktrace-chain/1\n"
DOMAIN_V4 = b"blocktrace-chain/4\n"
"""Version 4: H_0 is ``SHA-256(DOMAIN_V4)``."""
LEAF_PREFIX = b"\x00"
"""First byte of a leaf stream (an RFC 9162 leaf hash)."""
NODE_PREFIX = b"\x01"
"""First byte of a Merkle interior node hash."""
LINK_PREFIX = b"\x02"
"""First byte of a chain link."""
HASH_FIELD = b',"hash":"'
HASH_HEX_LEN = 64
LINE_TAIL_LEN = len(HASH_FIELD) + HASH_HEX_LEN + 3
"""Bytes after a line's body: ``,"hash":"<64 hex>"}\\n`` (76)."""
OP_MID = b'","gasCost":"0x1","depth":'
"""The bytes of an op line between its ``gas`` digits and its ``depth`` (the
writers format ``prefix + gas hex + OP_MID + depth + suffix``)."""
_TAIL_LEN = LINE_TAIL_LEN - 1  # without the newline
_HEX = re.compile(rb"[0-9a-f]{64}\Z")


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash of a leaf's data (its lines, each with its newline)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


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
    """The chain and leaf hashes of versions 2, 3 and 4, for reading and writing.

    ``check(body, raw)`` returns the hash line ``raw`` (its exact bytes, newline
    included; ``body`` is the part before its hash member) must carry, and feeds
    it; ``check_summary(body)`` the same for a version 2 summary line, which is
    not in the tree.  Completed leaves' hashes are handed to ``on_leaf``.
    ``seal`` and ``seal_summary`` build lines instead (for tests and tools that
    write traces without the tracer).  ``version`` picks the rules: 2 and 3
    share them (they differ only in where the summary goes); 4 is
    docs/FORMAT.md's version 4 (see the module's docstring)."""

    __slots__ = ("_in_leaf", "_on_leaf", "_per_leaf", "_stream", "_v4", "prev")

    def __init__(
        self,
        per_leaf: int = LINES_PER_LEAF,
        on_leaf: Callable[[bytes], object] | None = None,
        version: int = 3,
    ) -> None:
        self._v4 = version >= 4
        self.prev = hashlib.sha256(DOMAIN_V4 if self._v4 else DOMAIN).digest()
        self._stream = hashlib.sha256(LEAF_PREFIX)
        self._in_leaf = 0
        self._per_leaf = per_leaf
        self._on_leaf = on_leaf

    def head(self) -> str:
        return self.prev.hex()

    def _digest(self, body: bytes) -> bytes:
        """Feed ``body`` (version 4: and its newline) and return the line's hash;
        versions 2 and 3 still owe the stream the line's tail."""
        if self._v4:
            if self._in_leaf == 0:
                self._stream = hashlib.sha256(LEAF_PREFIX + self.prev)
            stream = self._stream
            stream.update(body)
            stream.update(b"\n")
            return stream.digest()
        stream = self._stream
        stream.update(body)
        if self._in_leaf == 0:
            return hashlib.sha256(LINK_PREFIX + self.prev + body).digest()
        return stream.digest()

    def check(self, body: bytes, raw: bytes) -> str:
        digest = self._digest(body)
        if not self._v4:
            self._stream.update(raw[len(body):])
        self.prev = digest
        self._in_leaf += 1
        if self._in_leaf == self._per_leaf:
            self.close_leaf()
        return digest.hex()

    def close_leaf(self) -> None:
        """End a partial leaf (before a version 2 summary, after a version 3 or 4 one)."""
        if self._in_leaf and self._per_leaf:
            if self._on_leaf is not None:
                # version 4: the leaf's stream ended with its last line's newline,
                # so its digest is that line's hash
                self._on_leaf(self.prev if self._v4 else self._stream.digest())
            self._stream = hashlib.sha256(LEAF_PREFIX)
            self._in_leaf = 0

    def check_summary(self, body: bytes) -> str:
        """Version 2's summary rule: close the leaf, link, stay out of the tree."""
        if self._v4:
            raise ValueError("version 4 has no summary rule of its own")
        self.close_leaf()
        self.prev = hashlib.sha256(LINK_PREFIX + self.prev + body).digest()
        return self.prev.hex()

    def seal(self, body: bytes) -> bytes:
        digest = self._digest(body)
        raw = b'%b,"hash":"%b"}\n' % (body, hexlify(digest))
        if not self._v4:  # _digest fed the body; versions 2 and 3 feed the tail too
            self._stream.update(raw[len(body):])
        self.prev = digest
        self._in_leaf += 1
        if self._in_leaf == self._per_leaf:
            self.close_leaf()
        return raw

    def seal_summary(self, body: bytes) -> bytes:
        """A version 2 summary line."""
        return b'%b,"hash":"%b"}\n' % (body, self.check_summary(body).encode())


def rechain(
    bodies: Iterable[bytes],
    version: int = FORMAT_VERSION,
    on_leaf: Callable[[bytes], object] | None = None,
) -> bytes:
    """The trace whose line bodies (each without its hash member and ``}``) are
    ``bodies``, hashed by ``version``'s rules: what a writer writes for them.

    A body starting with ``{"output":`` is a summary and is hashed by its
    version's summary rule; nothing else is checked (a forger's tool, and the
    tests': a summary's ``lines``/``head``/``root`` are the caller's business).
    """
    out: list[bytes] = []
    if version == 1:
        v1 = ChainHasher()
        out.extend(v1.seal(body) for body in bodies)
        return b"".join(out)
    chain = LeafChain(LINES_PER_LEAF, on_leaf, version)
    for body in bodies:
        if version == 2 and body.startswith(SUMMARY_PREFIX):
            out.append(chain.seal_summary(body))
        else:
            out.append(chain.seal(body))
    if version != 2:
        chain.close_leaf()
    return b"".join(out)


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
