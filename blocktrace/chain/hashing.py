"""The hash chain of docs/FORMAT.md, in one place for the writer and the verifier.

Each line is ``BODY,"hash":"<64 hex>"}\\n``.  The committed bytes of the line are
``BODY + "}"`` (the line without its hash member); one running SHA-256, seeded
with :data:`DOMAIN`, is fed each line's committed bytes and a newline, and each
line carries the digest so far.
"""

from __future__ import annotations

import hashlib
import re
from binascii import hexlify

__all__ = [
    "DOMAIN",
    "FORMAT_VERSION",
    "HASH_FIELD",
    "HASH_HEX_LEN",
    "ChainHasher",
    "split_hash",
]

FORMAT_VERSION = 1
DOMAIN = b"blocktrace-chain/1\n"
HASH_FIELD = b',"hash":"'
HASH_HEX_LEN = 64
_TAIL_LEN = len(HASH_FIELD) + HASH_HEX_LEN + 2  # ,"hash":"<hex>"}
_HEX = re.compile(rb"[0-9a-f]{64}\Z")


class ChainHasher:
    """The running chain state.  ``seal(body)`` returns the full line to write."""

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.running = hashlib.sha256(DOMAIN)

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
