"""Verifying a trace file against docs/FORMAT.md, streaming, in constant memory.

The walk over the lines is the format's reader's (:func:`blocktrace.format.check_chain`);
this module adds the Merkle tree and the anchors (``head``, ``genesis``).  The
answer is one of four statuses (``sealed``, ``tampered``, ``unusable``,
``unsealed``); the command line numbers them (``blocktrace.cli.verify``).
"""

from __future__ import annotations

import os
from typing import Any

from blocktrace.chain.merkle import MerkleAccumulator
from blocktrace.format import index
from blocktrace.format.reader import Status, Verification, check_chain
from blocktrace.format.versions import MAX_LINE_BYTES

__all__ = ["MAX_LINE_BYTES", "Status", "Verification", "verify_file"]


def verify_file(
    path: str | os.PathLike[str],
    *,
    head: str | None = None,
    genesis: str | None = None,
    progress: Any = None,
    keep_index: bool = False,
) -> Verification:
    """Verify the trace at ``path``.  ``head``: the anchored head to compare the
    file's final hash with; ``genesis``: the genesis token the trace must carry;
    ``progress``: told the bytes read (``blocktrace.progress.Progress``);
    ``keep_index``: build the trace's index in the same pass and keep it (beside
    the trace or in the cache, as ``TraceReader.index()`` does), so readers
    after this verify need no pass of their own."""
    if keep_index:
        result = check_chain(path, build_index=True, progress=progress)
        if result.index is not None:
            index.keep_index(os.fspath(path), result.index)
    else:
        result = check_chain(path, tree=MerkleAccumulator(), progress=progress)
    if result.status in ("sealed", "unsealed"):
        _check_anchors(result, head, genesis)
    return result


def _check_anchors(result: Verification, head: str | None, genesis: str | None) -> None:
    if genesis is not None and result.genesis != genesis:
        result.status = "tampered"
        result.line = 1
        result.reason = f"genesis is {result.genesis!r}, not the expected {genesis!r}"
        return
    if head is None:
        return
    anchored = head.strip().lower()
    if result.head == anchored:
        return
    summary = result.summary or {}
    if summary.get("head") == anchored and result.status == "sealed":
        # Version 1/2: the summary's ``head`` member is the chain *before* the
        # summary; the sealed head is the summary line's own hash.
        result.status = "unusable"
        result.line = None
        result.reason = (
            f"{anchored} is the summary's `head` member (the hash of the line before the "
            f"summary, format version {result.version}), not the trace's head: anchor the "
            f"sealed head {result.head} (the summary line's own `hash`, which `verify` "
            f"reports) instead"
        )
        return
    result.status = "tampered"
    result.line = None
    result.reason = (
        f"head {result.head} does not match the anchored head {anchored}: "
        "the file was rewritten, extended or cut, or is another trace"
    )
