"""The format's numbers: versions, levels, the leaf size, what marks the summary.

docs/FORMAT.md is the prose definition; these are its constants, the one place
code reads them from.
"""

from __future__ import annotations

from typing import Final, Literal

from blocktrace.limits import MAX_LINE_BYTES

__all__ = [
    "FORMAT_VERSION",
    "HASH_ALG",
    "KNOWN_LEVELS",
    "KNOWN_VERSIONS",
    "LINES_PER_LEAF",
    "MAX_LINE_BYTES",
    "SUMMARY_IN_TREE",
    "SUMMARY_PREFIX",
    "Level",
]

FORMAT_VERSION: Final = 4
"""The version blocktrace writes."""
KNOWN_VERSIONS: Final = (1, 2, 3, 4)
"""Every version readers accept (old ones keep verifying)."""
SUMMARY_IN_TREE: Final = frozenset({3, 4})
"""Versions whose summary line is an ordinary line, in the Merkle tree (so a
checkpoint of the whole tree covers the run's outcome)."""
HASH_ALG: Final = "sha256"
Level = Literal["op", "line", "call"]
KNOWN_LEVELS: Final = ("op", "line", "call")
"""Header ``level`` values readers accept (version 3; absent means ``op``)."""
LINES_PER_LEAF: Final = 16
"""Lines per Merkle leaf (and per chain stream, versions 2 to 4)."""
SUMMARY_PREFIX: Final = b'{"output":'
"""The summary line starts with these bytes (and no other line does)."""
