"""Stubs of ``blocktrace.eip3155._cclients`` (csrc/clients.c): the diff's walk over what
two EVM clients' traces have in common."""

from collections.abc import Buffer

def walk(
    a: Buffer, pa: int, b: Buffer, pb: int, mask: int, max_line: int, /,
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """From the steps at ``a[pa:]`` and ``b[pb:]``: ``(units, ra, rb, lines_a, lines_b,
    stops_a, stops_b, exits_a, exits_b, reason)``: the units passed, where the last unit
    taken starts on each side, the lines, STOP lines and frame exits passed on each side,
    and ``reason`` (0 stopped, 1 a line of ``a`` ran past its end, 2 one of ``b``)."""
