"""The hash chains of docs/FORMAT.md: their one definition is
:mod:`blocktrace.format.rules`; this module keeps the names chain/ code and
callers have always imported from here."""

from __future__ import annotations

from blocktrace.format.rules import (
    DOMAIN,
    DOMAIN_V1,
    DOMAIN_V4,
    HASH_FIELD,
    HASH_HEX_LEN,
    LINK_PREFIX,
    ChainHasher,
    LeafChain,
    split_hash,
)
from blocktrace.format.versions import FORMAT_VERSION, KNOWN_VERSIONS

__all__ = [
    "DOMAIN",
    "DOMAIN_V1",
    "DOMAIN_V4",
    "FORMAT_VERSION",
    "HASH_FIELD",
    "HASH_HEX_LEN",
    "KNOWN_VERSIONS",
    "LINK_PREFIX",
    "ChainHasher",
    "LeafChain",
    "split_hash",
]
