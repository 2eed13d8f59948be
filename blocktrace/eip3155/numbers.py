"""Numbers as EIP-3155 clients really write them.

EIP-7756 lets any numeric field be a JSON number, a ``0x`` hex string or a
decimal string, and clients use all three (revm writes ``memSize`` and
``refund`` as hex, revm's summary ``gasUsed`` as a decimal number, evmone and
nimbus write negative refunds).  Every reader goes through :func:`parse_int`,
so there is one place that decides what a number is.
"""

from __future__ import annotations

__all__ = ["canonical_word", "parse_int", "signed64"]

_TWO_64 = 1 << 64
_TWO_63 = 1 << 63


def parse_int(value: int | str) -> int:
    """The integer a numeric field means; ``ValueError`` when it is not one."""
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return int(value)
    text = value.strip()
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    if text[:2] in ("0x", "0X"):
        digits, base = text[2:], 16
    else:
        digits, base = text, 10
    if not digits or not digits.isalnum():
        raise ValueError(f"not a number: {value!r}")
    number = int(digits, base)
    return -number if negative else number


def signed64(value: int) -> int:
    """A refund written as an unsigned 64-bit wrap (revm) as the signed value."""
    if _TWO_63 <= value < _TWO_64:
        return value - _TWO_64
    return value


def canonical_word(value: int | str) -> str:
    """A stack word in the one spelling every client agrees on: ``0x`` + minimal hex."""
    number = parse_int(value)
    if number < 0:
        return "-" + hex(-number)
    return hex(number)
