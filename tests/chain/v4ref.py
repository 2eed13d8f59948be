"""A version 4 writer for tests, made of the format's reference alone
(:class:`blocktrace.format.rules.LeafChain` with ``version=4``, the op layout of
:func:`blocktrace.format.opline.op_body`, :func:`blocktrace.chain.merkle.root_from_hashes`):
the C writer's version 4 output is compared with it, independently of
``PyLineWriter``.  It has the writer's interface that tests use; its ``write`` is
called once per flush."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blocktrace.chain.merkle import root_from_hashes
from blocktrace.format import rules
from blocktrace.format.opline import op_body

SUMMARY = b'{"output":""'


class V4Reference:
    def __init__(self, write: Callable[[bytes], Any], *, buffer_size: int = 1 << 16,
                 lines_per_leaf: int = 16) -> None:
        self._write = write
        self.leaves: list[bytes] = []
        self._chain = rules.LeafChain(lines_per_leaf, self.leaves.append, version=4)
        self._buf = bytearray()
        self._sites: dict[int, tuple[bytes, bytes]] = {}
        self.lines = 0

    @property
    def head(self) -> str:
        return self._chain.head()

    @property
    def tree_size(self) -> int:
        return len(self.leaves)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def root(self) -> bytes:
        return root_from_hashes(self.leaves)

    def add_site(self, key: int, prefix: bytes, suffix: bytes, keep: object) -> None:
        self._sites[key] = (prefix, suffix)

    def op(self, event: object, gas: int, depth: int) -> bool:
        site = self._sites.get(id(event))
        if site is None:
            return False
        self.line(op_body(site[0], gas, depth, site[1]))
        return True

    def line(self, body: bytes) -> None:
        self._buf += self._chain.seal(bytes(body))
        self.lines += 1

    def close_leaf(self) -> None:
        self._chain.close_leaf()

    def seal(self, body: bytes = SUMMARY) -> None:
        """Version 4's summary: an ordinary line, the last of the last leaf."""
        self.line(body)
        self.close_leaf()

    def flush(self) -> None:
        if self._buf:
            self._write(bytes(self._buf))
            self._buf.clear()
