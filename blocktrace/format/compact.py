"""Compact zstd frames: the lines stored without their hash members.

A line's ``hash`` is a function of the line's bytes without it and of the hash
before it (docs/FORMAT.md, "The hash chain"), so a compressed trace need not
store it: 32 bytes of entropy per line are what kept full-line ``.zst`` traces
near 5x.  A *compact* ``.jsonl.zst`` holds, in each data frame, every line as
the bytes its hash commits to -- the line less ``,"hash":"<64 hex>"``, so
``{...}`` and its newline -- and after each data frame a small zstd skippable
frame (the *head frame*) with the number of the frame's first and last lines,
the last line's hash, and the full lines of the Merkle leaf still open at the
frame's end (empty when the frame ends a leaf, as all but flushed frames do).
A skippable frame at the very start (the *marker*) says the frames are
compact, and by which version's chain.  Readers put the hashes back
(:class:`Expander`) and check each frame's stored head, so every reader hands
out exactly the ``.jsonl`` lines.

Version 4's leaf stream starts with the hash before the leaf (H_{f-1}), which
a reader starting at a head frame cannot know from the carry alone: a version
4 head frame stores it too (``start``), and its marker says version 4
(docs/FORMAT.md, "Compressed traces").  Version 3's layout is unchanged.

This module holds the layout (:func:`marker`, :func:`head_frame`,
:func:`parse`) and the two byte transforms, each in C
(``blocktrace.format._cscan``) with a pure-Python reference here.
"""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

import msgspec

from blocktrace._native import extension
from blocktrace.format.rules import DOMAIN, DOMAIN_V4, LEAF_PREFIX, LINK_PREFIX
from blocktrace.format.versions import SUMMARY_PREFIX

__all__ = [
    "COMPACT_EXTRA",
    "COMPACT_MAGIC",
    "Expander",
    "HeadFrame",
    "NotCompact",
    "head_frame",
    "leaf_cut",
    "make_expander",
    "marker",
    "marker_version",
    "open_leaf",
    "parse",
    "rebuild",
    "start_of_last",
    "strip",
]

COMPACT_MAGIC: Final = 0x184D2A5B
"""The skippable-frame magic of blocktrace's marker and head frames (the seek
table uses ``0x184D2A5E``)."""
_MARKER: Final = b"blocktrace-compact/1"
"""The marker of version 3 traces' compact frames."""
_MARKER_V4: Final = b"blocktrace-compact/2"
"""The marker of version 4 traces' compact frames (layout 2: head frames ``4``)."""
_HEAD: Final = b"H"
_HEAD_V4: Final = b"4"
_HASH_FIELD: Final = b',"hash":"'
_TAIL: Final = len(_HASH_FIELD) + 64 + 2
COMPACT_EXTRA: Final = _TAIL - 1
"""The bytes a full line has more than its compact line (``,"hash":"<64 hex>"``)."""
_HEX: Final = frozenset(b"0123456789abcdef")


class NotCompact(Exception):
    """Raised by the chain check's compact scan (``fastcheck.walk``) before it has
    fed anything: the compact lines it was handed belong to a trace whose
    version's chain is not the compact frames' (their marker's); the trace is
    read again with full lines."""


class HeadFrame(msgspec.Struct, frozen=True):
    """What a head frame stores after its data frame.  (A Struct: a ``NamedTuple``
    costs every command that imports the format its making, ~0.5 ms.)"""

    first: int
    """Number of the data frame's first line (1-based, header = 1)."""
    last: int
    """Number of its last line."""
    head: bytes
    """The last line's hash (32 bytes)."""
    carry: bytes
    """The full lines (hashes in) of the leaf open after line ``last``."""
    version: int = 3
    """The chain's format version (3 or 4)."""
    start: bytes = b""
    """Version 4: the hash of line ``last - last % per_leaf`` (H_0 for line 0),
    where the open leaf's stream starts (``head`` when no leaf is open)."""


def _skippable(payload: bytes) -> bytes:
    return COMPACT_MAGIC.to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


def marker(version: int = 3) -> bytes:
    """The skippable frame that starts a compact trace of ``version``'s chain."""
    return _skippable(_MARKER_V4 if version == 4 else _MARKER)


def marker_version(payload: bytes) -> int | None:
    """The chain version a marker's payload says (3 or 4), or None: no marker."""
    return 3 if payload == _MARKER else 4 if payload == _MARKER_V4 else None


def head_frame(
    first: int, last: int, head: bytes, carry: bytes, version: int = 3, start: bytes = b""
) -> bytes:
    """The skippable frame written after a data frame holding lines ``first`` .. ``last``
    (version 4: ``start``, the hash before the open leaf, after ``head``)."""
    numbers = first.to_bytes(8, "little") + last.to_bytes(8, "little")
    if version == 4:
        if len(start) != 32:
            raise ValueError("a version 4 head frame stores the hash before the open leaf")
        return _skippable(_HEAD_V4 + numbers + head + start + carry)
    return _skippable(_HEAD + numbers + head + carry)


def parse(payload: bytes) -> HeadFrame | None:
    """A blocktrace skippable frame's payload: a marker (None: its version is
    :func:`marker_version`'s) or a head frame; ValueError for anything else."""
    if marker_version(payload) is not None:
        return None
    kind = payload[:1]
    size = 81 if kind == _HEAD_V4 else 49
    if len(payload) < size or kind not in (_HEAD, _HEAD_V4):
        raise ValueError("a blocktrace skippable frame that is neither marker nor head")
    first = int.from_bytes(payload[1:9], "little")
    last = int.from_bytes(payload[9:17], "little")
    if not 1 <= first <= last + 1:
        raise ValueError("a head frame's line numbers are out of order")
    if kind == _HEAD_V4:
        return HeadFrame(first, last, payload[17:49], payload[81:], 4, payload[49:81])
    return HeadFrame(first, last, payload[17:49], payload[49:])


def open_leaf(before: bytes, lines: bytes | bytearray, count: int, end: int = -1) -> bytes:
    """The last ``count`` lines of ``before + lines[:end]`` (both whole lines; end
    -1: all of ``lines``): the lines of the leaf open after them, when ``count``
    is how many it holds.  Looks at those lines only, not at all of ``lines``."""
    if not count:
        return b""
    cut = len(lines) if end < 0 else end
    stop = cut
    for k in range(1, count + 1):
        if not cut:  # lines holds k - 1 lines: the rest are before it
            return before[start_of_last(before, count - k + 1) :] + bytes(lines[:stop])
        cut = lines.rfind(b"\n", 0, cut - 1) + 1
    return bytes(lines[cut:stop])


def start_of_last(data: bytes, count: int) -> int:
    """Where the last ``count`` lines of ``data`` (whole lines) start."""
    cut = len(data)
    for _ in range(count):
        cut = data.rfind(b"\n", 0, cut - 1) + 1
    return cut


def leaf_cut(data: bytes | bytearray, before: int, per_leaf: int) -> tuple[int, int]:
    """``(cut, lines)``: the end of the last whole line of ``data`` after which
    ``before + lines`` lines make whole leaves of ``per_leaf``; (0, 0) when no
    line of ``data`` ends a leaf."""
    native = extension("blocktrace.format._cscan")
    if native is not None:
        found: tuple[int, int] = native.leaf_cut(data, before, per_leaf)
        return found
    return _leaf_cut_py(data, before, per_leaf)


def _leaf_cut_py(data: bytes | bytearray, before: int, per_leaf: int) -> tuple[int, int]:
    count = data.count(b"\n")
    whole = count - (before + count) % per_leaf
    if whole <= 0:
        return 0, 0
    cut = len(data)
    for _ in range(count - whole + 1):
        cut = data.rfind(b"\n", 0, cut)
    return cut + 1, whole


def _strip_py(data: bytes) -> tuple[bytes, bytes, int]:
    out: list[bytes] = []
    last = b""
    lines = data.split(b"\n")
    if lines[-1]:
        raise ValueError(f"line {len(lines)} of the buffer has no hash member")
    for n, line in enumerate(lines[:-1], 1):
        body = line[:-_TAIL]
        tail = line[-_TAIL:]
        stored = tail[len(_HASH_FIELD) : -2]
        if (
            len(line) < _TAIL + 1
            or not tail.startswith(_HASH_FIELD)
            or not tail.endswith(b'"}')
            or not _HEX.issuperset(stored)
        ):
            raise ValueError(f"line {n} of the buffer has no hash member")
        out.append(body + b"}\n")
        last = stored
    return b"".join(out), last, len(lines) - 1


def strip(data: bytes | memoryview) -> tuple[bytes, bytes, int]:
    """``(compact lines, the last line's hash as 64 hex bytes, lines)`` of whole
    trace lines ``data``; ValueError when a line has no hash member."""
    native = extension("blocktrace.format._cscan")
    if native is not None:
        result: tuple[bytes, bytes, int] = native.strip(data)
        return result
    return _strip_py(bytes(data))


class Expander(Protocol):
    """Puts the hash members back into compact lines, by version 3's or 4's chain."""

    @property
    def head(self) -> bytes: ...

    @property
    def start(self) -> bytes: ...

    @property
    def version(self) -> int: ...

    @property
    def lines(self) -> int: ...

    @property
    def broken(self) -> bool: ...

    def expand(self, compact: bytes, /) -> bytes: ...

    def hash(self, compact: bytes, /) -> bytes: ...

    def take_leaves(self, upto: int, /) -> bytes: ...


class PyExpander:
    """The reference :class:`Expander` (the C one is ``_cscan.Expander``)."""

    def __init__(
        self, prev: bytes, carry: bytes, lines: int, per_leaf: int, leaves: bool = False,
        version: int = 3, start: bytes = b"",
    ) -> None:
        if version not in (3, 4) or (
            len(start) not in ((32,) if carry else (0, 32)) if version == 4 else start
        ):
            raise ValueError("version 3 or 4; start: version 4 (with a carry), 32 bytes")
        self.version = version
        self._v4 = version == 4
        self.head = prev or hashlib.sha256(DOMAIN_V4 if self._v4 else DOMAIN).digest()
        self._start = start or self.head
        self.lines = lines
        self._per_leaf = per_leaf
        self._stream = hashlib.sha256(LEAF_PREFIX + start)
        self._in_leaf = 0
        for line in _lines(carry):
            if self._v4:  # the stream was fed its body and newline
                if line[-_TAIL - 1 : -_TAIL - 1 + len(_HASH_FIELD)] != _HASH_FIELD:
                    raise ValueError("carry: full lines")
                self._stream.update(line[: -_TAIL - 1] + b"\n")
            else:
                self._stream.update(line)
            self._in_leaf += 1
        if self._in_leaf >= per_leaf:
            raise ValueError("carry: fewer lines than per_leaf")
        self._leaves: list[bytes] | None = [] if leaves else None
        self._base = lines // per_leaf
        """The number of the first leaf kept (from the trace's start)."""
        self.broken = False

    def hash(self, compact: bytes) -> bytes:
        """What :meth:`expand` computes, without the lines: each line's hash (32
        bytes); stops at a line that is no compact line (broken from there on)."""
        if self.broken:
            return b""
        before = self.lines
        full = _lines(self.expand(compact))[: self.lines - before]
        return b"".join(bytes.fromhex(line[-67:-3].decode()) for line in full)

    def expand(self, compact: bytes) -> bytes:
        out: list[bytes] = []
        pos = 0
        size = len(compact)
        while pos < size:
            end = compact.find(b"\n", pos)
            if self.broken or end < 0 or end == pos or compact[end - 1] != 0x7D:  # "}"
                self.broken = True
                out.append(compact[pos:])
                break
            body = compact[pos : end - 1]
            if self._v4:
                if self._in_leaf == 0:
                    self._stream = hashlib.sha256(LEAF_PREFIX + self.head)
                stream = self._stream
                stream.update(body + b"\n")
                digest = stream.digest()
            else:
                stream = self._stream
                stream.update(body)
                if self._in_leaf == 0:
                    digest = hashlib.sha256(LINK_PREFIX + self.head + body).digest()
                else:
                    digest = stream.digest()
            tail = b'%b%b"}\n' % (_HASH_FIELD, digest.hex().encode())
            if not self._v4:
                stream.update(tail)
            out.append(body + tail)
            self.head = digest
            self.lines += 1
            if self.lines % self._per_leaf == 0:
                self._start = digest
            self._in_leaf += 1
            if self._in_leaf == self._per_leaf or body.startswith(SUMMARY_PREFIX):
                if self._leaves is not None:
                    self._leaves.append(digest if self._v4 else stream.digest())
                self._stream = hashlib.sha256(LEAF_PREFIX)
                self._in_leaf = 0
            pos = end + 1
        return b"".join(out)

    @property
    def start(self) -> bytes:
        """Version 4: the hash of line ``lines - lines % per_leaf`` (H_0 for none),
        where the leaf open by the lines' numbers starts, as a head frame stores it
        (a summary closes its leaf early: nothing follows it); version 3: ``b""``."""
        return self._start if self._v4 else b""

    def take_leaves(self, upto: int) -> bytes:
        leaves = self._leaves or []
        k = len(leaves) if upto < 0 else max(0, min(upto - self._base, len(leaves)))
        out = b"".join(leaves[:k])
        del leaves[:k]
        self._base += k
        return out


def _lines(data: bytes) -> list[bytes]:
    """``data``'s lines, each with its newline (a last one without); only a
    newline ends a line (``splitlines`` would cut at a carriage return too)."""
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def rebuild(compact: bytes, digests: bytes) -> bytes:
    """The full lines of compact lines whose hashes are ``digests`` (32 bytes each,
    one per line of ``compact``)."""
    lines = _lines(compact)
    return b"".join(
        b'%b%b%b"}\n' % (line[:-2], _HASH_FIELD, digests[32 * k : 32 * k + 32].hex().encode())
        for k, line in enumerate(lines)
    )


def make_expander(
    prev: bytes = b"", carry: bytes = b"", lines: int = 0, per_leaf: int = 16,
    leaves: bool = False, version: int = 3, start: bytes = b"",
) -> Expander:
    """An :class:`Expander` by ``version``'s chain (3 or 4) starting after line
    ``lines`` whose hash is ``prev`` (none: the genesis state), ``carry`` the full
    lines of the leaf open there (version 4: ``start`` the hash before them)."""
    native = extension("blocktrace.format._cscan")
    if native is not None:
        expander: Expander = native.Expander(prev, carry, lines, per_leaf, leaves, version,
                                             start)
        return expander
    return PyExpander(prev, carry, lines, per_leaf, leaves, version, start)
