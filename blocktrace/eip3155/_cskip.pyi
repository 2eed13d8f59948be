"""Stubs of ``blocktrace.eip3155._cskip`` (csrc/skip.c): the diff's pass over what two
blocktrace traces have in common."""

from collections.abc import Buffer, Set
from typing import overload

from blocktrace.format._cscan import ChainScan

@overload
def skip(
    a: Buffer, pa: int, b: Buffer, pb: int, mask_gas: bool, calls_a: Set[bytes],
    calls_b: Set[bytes], max_line: int, /,
) -> tuple[int, int, int, int, int, int, int]:
    """From the op lines at ``a[pa:]`` and ``b[pb:]``: ``(steps, lines, ignored_a,
    ignored_b, ra, rb, reason)``, what lies before the second-to-last op line passed
    over (at ``ra``/``rb``); ``reason`` 1 when a line ran past a buffer's end."""
@overload
def skip(
    a: Buffer, pa: int, b: Buffer, pb: int, mask_gas: bool, calls_a: Set[bytes],
    calls_b: Set[bytes], max_line: int, scan: ChainScan, pos: int, number: int, /,
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """The same, ``scan`` (a ChainScan of plain lines that has checked ``a``'s lines
    before ``a[pos:]``, line ``number``) checking ``a``'s lines as they are passed:
    three more, ``(pos, number, code)``, where the check stands (code 0: it follows,
    else the scanner's stop code of the line at ``pos``)."""

def call_key(line: bytes, /) -> bytes | None:
    """What a call line does to the code table (its code, name and file values as
    bytes), or None when the pass does not read it."""
