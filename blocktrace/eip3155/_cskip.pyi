"""Stubs of ``blocktrace.eip3155._cskip`` (csrc/skip.c): the diff's pass over what two
blocktrace traces have in common."""

from collections.abc import Buffer, Callable, Set
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

@overload
def align(
    a: Buffer, pa: int, b: Buffer, pb: int, mask_gas: bool, calls_a: Set[bytes],
    calls_b: Set[bytes], max_line: int, judge: Callable[[bytes, bytes], bool], since: int,
    fields: int, /,
) -> tuple[int, ...]:
    """``skip`` with a judge that also passes over divergent regions as the differ's
    look-ahead aligns them (``fields``: the mask of the compared fields, bit i for
    ``dialects.FIELDS[i]``): ``(steps, lines, ignored_a, ignored_b, ra, rb, reason,
    hunks, since, steps_b, lines_b, differing_a, differing_b)`` (steps and lines: a's)."""
@overload
def align(
    a: Buffer, pa: int, b: Buffer, pb: int, mask_gas: bool, calls_a: Set[bytes],
    calls_b: Set[bytes], max_line: int, scan: ChainScan, pos: int, number: int,
    judge: Callable[[bytes, bytes], bool], since: int, fields: int, /,
) -> tuple[int, ...]:
    """The same with ``a``'s chain checked as ``skip`` checks it: ``(pos, number, code)``
    after ``reason``."""

def look(
    a: Buffer, pa: int, b: Buffer, pb: int, calls_a: Set[bytes], calls_b: Set[bytes],
    max_line: int, fields: int, /,
) -> tuple[int, int] | None:
    """The size on each side of the divergent region starting at the op lines at
    ``a[pa:]`` and ``b[pb:]`` (two steps that differ), as the differ's look-ahead finds
    it, or None where it is not found on the bytes."""

@overload
def lines(
    a: Buffer, pa: int, b: Buffer, pb: int, calls_a: Set[bytes], calls_b: Set[bytes],
    max_line: int, fields: int, key_a: tuple[int, int, int, int] | None,
    key_b: tuple[int, int, int, int] | None, /,
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Pass over the groups of steps by source line (``lines.by_line``) two traces have
    in common, from inside groups that agree (keys: each group's depth, code, line and
    thread, absent as 1, -1, 0, -1) or from two groups' first op lines (None):
    ``(groups, reason, pa, steps_a, lines_a, ignored_a, pb, steps_b, lines_b,
    ignored_b)``."""
@overload
def lines(
    a: Buffer, pa: int, b: Buffer, pb: int, calls_a: Set[bytes], calls_b: Set[bytes],
    max_line: int, fields: int, key_a: tuple[int, int, int, int] | None,
    key_b: tuple[int, int, int, int] | None, since: int, /,
) -> tuple[int, ...]:
    """The same, also passing over divergent regions as the differ's look-ahead aligns
    them (``since``: the groups in common since the differ's last hunk): five more,
    ``(groups_b, hunks, since, differing_a, differing_b)`` (groups: a's)."""

@overload
def project(
    a: Buffer, pa: int, b: Buffer, pb: int, mask_gas: bool, calls_a: Set[bytes],
    calls_b: Set[bytes], max_line: int, keep_a: Set[int] | None, keep_b: Set[int] | None, /,
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Pass over what an op-level trace and a line-level one have in common at level
    line (keep: the op-level trace's op lines kept, as ``code << 32 | pc``):
    ``(kept, reason, pa, steps_a, lines_a, ignored_a, pb, steps_b, lines_b,
    ignored_b)``."""
@overload
def project(
    a: Buffer, pa: int, b: Buffer, pb: int, mask_gas: bool, calls_a: Set[bytes],
    calls_b: Set[bytes], max_line: int, keep_a: Set[int] | None, keep_b: Set[int] | None,
    fields: int, since: int, /,
) -> tuple[int, ...]:
    """The same, steps judged on the compared ``fields`` too and divergent regions
    passed as ``lines`` passes them: five more, ``(kept_b, hunks, since, differing_a,
    differing_b)`` (kept: a's)."""

def steps_look(
    a: Buffer, pa: int, b: Buffer, pb: int, calls_a: Set[bytes], calls_b: Set[bytes],
    max_line: int, fields: int, grouped: bool, keep_a: Set[int] | None,
    keep_b: Set[int] | None, /,
) -> tuple[int, int] | None:
    """``look`` for the steps of ``lines`` (grouped: two groups' first op lines) or of
    ``project`` (keep_a/keep_b as its): the divergent region's size on each side, or
    None where it is not found on the bytes."""

def calls(
    a: Buffer, pa: int, b: Buffer, pb: int, masks: int, calls_a: Set[bytes],
    calls_b: Set[bytes], max_line: int, gas_a: int | None, gas_b: int | None,
    earlier_a: int, earlier_b: int, /,
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Pass over what two traces have in common at level call (their call and return
    lines; op lines passed unread; masks: 1 gas not compared, 2 file not compared;
    gas: the gas of the op step the reference holds on each side, or None; earlier:
    the op lines the walks before passed since): ``(calls, reason, pa, steps_a,
    lines_a, ignored_a, pb, steps_b, lines_b, ignored_b)``."""

def call_key(line: bytes, /) -> bytes | None:
    """What a call line does to the code table (its code, name and file values as
    bytes), or None when the pass does not read it."""
