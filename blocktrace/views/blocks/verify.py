"""Checking a run's blocks: every hash recomputed from block 0 on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["ChainFailure", "verify_chain"]

_encode = msgspec.json.Encoder().encode

class ChainFailure:
    """Why :meth:`BlockTrace.verifychain` failed: falsy, with the block number."""

    def __init__(self, block: int | None, reason: str) -> None:
        self.block = block
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        where = "the chain" if self.block is None else f"block {self.block}"
        return f"{where}: {self.reason}"

    def __repr__(self) -> str:
        return f"ChainFailure(block={self.block!r}, reason={self.reason!r})"


def verify_chain(
    blocks: dict[int, dict[str, Any]], new: Callable[[], Any], hex: Callable[[Any], str],
    new_hash: bool,
) -> bool | ChainFailure:
    """Recompute every hash from block 0 on (``new()`` makes a hash object,
    ``hex(h)`` its hex digest; ``new_hash``: a fresh one per block, else one
    running hash): ``True``, or a falsy :class:`ChainFailure` saying which
    block failed and why."""
    if not blocks:
        return ChainFailure(None, "no blocks")
    numbers = sorted(blocks)
    if numbers != list(range(len(numbers))):
        missing = next(i for i, n in enumerate(numbers) if i != n)
        return ChainFailure(missing, "block missing (numbers are not 0, 1, 2, ...)")
    running = None
    previous = ""
    for n in numbers:
        b = blocks[n]
        if not isinstance(b, dict) or "Hash" not in b:
            return ChainFailure(n, "not a block (no Hash)")
        copy = dict(b)
        stored = copy.pop("Hash")
        if n:
            copy["Hash"] = previous
        try:
            data = _encode(copy)
        except (TypeError, msgspec.EncodeError) as exc:
            return ChainFailure(n, f"cannot be encoded: {exc}")
        if n == 0 or new_hash:
            running = new()
        assert running is not None
        running.update(data)
        computed = hex(running)
        if computed != stored:
            return ChainFailure(n, f"hash mismatch: stored {stored}, content hashes to {computed}")
        previous = stored
    return True
