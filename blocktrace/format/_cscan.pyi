"""Stubs of ``blocktrace.format._cscan`` (csrc/scan.c): the chain check at hashing speed."""

from collections.abc import Buffer
from typing import Any, Final, final

IMPLEMENTATION: Final[str]
"""The SHA-256 compression in use: ``"sha-ni"``, ``"openssl"`` or ``"portable"``."""
END: Final[int]
TOO_LONG: Final[int]
CR: Final[int]
NO_HASH: Final[int]
UNSURE: Final[int]
MISMATCH: Final[int]
MALFORMED: Final[int]
SUMMARY: Final[int]
STEP: Final[int]
DIGESTS: Final[int]
_scan_api: Final[object]
"""A capsule of the scanner's C entry points for other extensions (csrc/scanapi.h)."""

def perfect_roots(hashes: Buffer, per: int, /) -> bytes:
    """The Merkle root (RFC 9162) of each complete group of ``per`` (a power of two)
    32-byte leaf hashes."""

def leaf_cut(buffer: Buffer, lines_before: int, per_leaf: int, /) -> tuple[int, int]:
    """(cut, lines): where a frame of whole leaves can end in buffer; (0, 0): nowhere."""

def strip(full: Buffer, /) -> tuple[bytes, bytes, int]:
    """(compact lines, the last line's hash as hex bytes, lines): the hash members
    taken out of whole lines; ValueError for a line without one."""

@final
class Expander:
    """Puts the hash members back into compact lines (``blocktrace.format.compact``)."""

    def __init__(
        self, prev: Buffer, carry: Buffer, lines: int, per_leaf: int, leaves: bool = False,
        version: int = 3, start: Buffer = b"",
    ) -> None:
        """``version`` 3 or 4: the chain's rules; ``start`` (version 4 with a
        ``carry``): the hash of the line before the carry's first."""
    def expand(self, compact: Buffer, /) -> bytes: ...
    def hash(self, compact: Buffer, /) -> bytes:
        """What ``expand`` computes, without the lines: each line's hash (32 bytes);
        stops at a line that is no compact line (``broken`` from there on)."""
    def take_leaves(self, upto: int, /) -> bytes: ...
    @property
    def head(self) -> bytes: ...
    @property
    def lines(self) -> int: ...
    @property
    def broken(self) -> bool:
        """A line that is no compact line was met."""
    @property
    def start(self) -> bytes:
        """Version 4: the hash before the open leaf's first line (the head when no
        leaf is open); version 3: ``b""``."""
    @property
    def version(self) -> int: ...

def plain_json_object(line: Buffer, /) -> bool:
    """For tests: True when the C check settles that ``line`` is a JSON object
    msgspec accepts, False when it leaves the answer to Python."""

@final
class ChainScan:
    """The chain check of one trace (see :mod:`blocktrace.format.fastcheck`), by
    format ``version`` 1-4's rules (:mod:`blocktrace.format.rules`)."""

    def __init__(
        self, version: int, per_leaf: int, max_line: int, leaves: bool, every: int = 0,
        hashed: bool = False, compact: bool = False,
    ) -> None:
        """``every`` > 0: also keep the index's bookkeeping (steps, a checkpoint
        every ``every`` lines) of the lines that check.  ``hashed``: the lines'
        hashes were put in by an :class:`Expander` from compact frames (version
        3 or 4, no leaves here: the expander has them), so they are not recomputed.
        ``compact``: the lines are compact lines, their hashes given by ``digests``."""
    def scan(self, buffer: Buffer, pos: int, number: int, trust: int, /) -> tuple[int, int, int]:
        """Check the complete lines of ``buffer`` from byte ``pos`` (line ``number``);
        returns (stop code, pos, number) of the line it stopped at.  ``trust``: 0, or
        1/2 when Python found the first line a JSON object / not one."""
    def take_leaves(self) -> bytes:
        """The leaf hashes completed since the last call, 32 bytes each."""
    def decide(self, starts_step: bool, /) -> None:
        """After STEP: whether the line the scan stopped at starts a step."""
    def known(self, first: int, bits: Buffer, /) -> None:
        """Lines ``first + k`` whose bit ``k`` (``bits[k >> 3] >> (k & 7) & 1``) is set
        are JSON objects msgspec accepts (the caller's own parser read them whole):
        ``scan`` skips its JSON test for them.  Each call replaces the map."""
    def digests(self, first: int, hashes: Buffer, /) -> None:
        """Compact: the hashes (32 bytes each) of lines ``first``, ``first + 1``, ...;
        ``scan`` stops with DIGESTS at a line past them."""
    def full(self) -> None:
        """Compact: the lines from here on are full lines (hashes put in by the
        Expander), for good."""
    def hash_of(self, number: int, /) -> str:
        """Compact: the hash of line ``number`` (hex), given with ``digests``."""
    def checkpoint_offset(self, k: int, /) -> int:
        """The uncompressed offset of checkpoint ``k``'s line."""
    def index_state(self) -> tuple[int, int, int, int, bytes]:
        """(steps, offset, last line's offset, waiting, checkpoints as native
        uint64 triples (offset, steps before, first step's line))."""
    @property
    def last_step(self) -> bytes | None:
        """The last step's line (with its newline), or None."""
    @property
    def checkpoints(self) -> int:
        """Checkpoints so far."""
    @property
    def lines(self) -> int:
        """Number of the last line that checked (0: none)."""
    @property
    def head(self) -> str:
        """Hash of the last line that checked ('' if none)."""

@final
class OpColumns:
    """The ``ops``, ``calls`` and ``exceptions`` tables' columns, filled from a
    trace's lines (see ``blocktrace.query.columns``, whose ``PyColumns`` is the
    reference)."""

    def __init__(self, ops_only: bool = False, /) -> None:
        """``ops_only``: ``feed`` takes the plain op lines only (a skim)."""
    def feed(
        self, buffer: Buffer, pos: int, line_no: int, max_rows: int, /
    ) -> tuple[int, int, int]:
        """Add the op, exception, call and return lines of ``buffer`` from byte
        ``pos`` (line ``line_no``) in the writer's forms; returns (stop, pos,
        line_no): 0 no complete line left, 1 the line at pos is for Python, 2 a
        table holds ``max_rows``."""
    def op(
        self, line_no: int, thread: int, depth: int, pc: int, op: int, opName: str, gas: int,
        line: int, code: int, /,
    ) -> None:
        """An op line read by Python."""
    def call(
        self, line_no: int, thread: int, depth: int, code: int, kind: str, name: str, file: str,
        first_line: int, clock: int | None, /,
    ) -> None:
        """A call line read by Python."""
    def ret(self, line_no: int, thread: int, kind: str, value: str, clock: int | None, /) -> None:
        """A return line read by Python (``value``: its JSON text again)."""
    def exception(
        self, line_no: int, thread: int, depth: int, pc: int, op: int, opName: str, line: int,
        code: int, event: str, error: str, clock: int | None, /,
    ) -> None:
        """An exception line read by Python."""
    def finish(self) -> None:
        """The calls rows of the frames that never stopped."""
    def take(self) -> tuple[int, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes,
                            bytes, bytes]:
        """(rows, step, line_no, thread, depth, pc, op, opName offsets, opName data, gas,
        line, code) of ops as Arrow buffers; empties them."""
    def take_calls(self) -> tuple[Any, ...]:
        """(rows, 8 plain columns, 9 (data, validity) columns, ((offsets, validity),
        data) of ``value``) of the calls rows held; empties them."""
    def take_exceptions(self) -> tuple[Any, ...]:
        """(rows, 11 plain columns, 2 (data, validity) columns, the ``message``
        column) of the exceptions rows held; empties them."""
    def strings(self, start: int, /) -> list[str]:
        """The interned strings from number ``start`` on."""
    def function(self, code: int, /) -> str | None:
        """The function name code number ``code`` has now."""
    def entries(self) -> bytes:
        """(name, file, first line) of every entry, int32 each (entry 0: none)."""
    def code_entries(self) -> bytes:
        """The entry of each code number now, int32 each."""
    def gather(self, ids: Buffer, how: int, /) -> tuple[Any, ...]:
        """A column from int32 ``ids`` as Arrow buffers: ``how`` 0 the interned
        strings, 1/2 the function/file of entries, 3 the first line of entries,
        4/5 the function/file code numbers have now (a negative id, entry 0 or a
        code without an entry: NULL).  Strings: (validity or None, int32 offsets,
        data); first lines: (validity or None, int32 data)."""
    def take_known(self, next_line: int, /) -> tuple[int, bytes]:
        """``(first, bits)``: the lines ``feed`` read whole since the last call (none
        before the first call), bit ``k`` for line ``first + k``; the next map starts
        at line ``next_line``.  Each such line is a JSON object msgspec accepts
        (``ChainScan.known`` takes the map)."""
    @property
    def rows(self) -> int:
        """Ops rows held."""
    @property
    def steps(self) -> int:
        """Ops rows ever."""
    @property
    def calls(self) -> int:
        """Calls entered."""
    @property
    def max_depth(self) -> int:
        """The deepest call line's depth."""
    @property
    def call_rows(self) -> int:
        """Calls rows held."""
    @property
    def exception_rows(self) -> int:
        """Exceptions rows held."""
