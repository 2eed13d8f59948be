"""An op line's bytes from plain values: the format's one Python spelling of its layout.

An op line is ``{"pc":N,"op":N,"gas":"0x<gas hex>","gasCost":"0x1","depth":N,
"opName":"NAME","line":N,"code":N`` and what follows (a thread, values), then its
hash member.  A site (one instruction of one code object) fixes everything but
the gas and the depth, so a writer keeps two pieces per site (:func:`op_site`)
and makes each line with :func:`op_body`.  The C writer's spelling is
``format/csrc/opline.h`` (one function over the same plain values), checked
byte for byte against this one by tests/chain/test_cwriter.py; chain/ only seals
the bytes these make.
"""

from __future__ import annotations

from typing import Final

import msgspec

from blocktrace.format.rules import OP_MID

__all__ = ["GAS_MEMBER", "VALUES_MARK", "op_body", "op_site"]

GAS_MEMBER: Final = b'"gas":"'
"""The bytes before an op line's gas (``0x`` and its hex digits, then ``"``): the lines
of one site differ only there, in the depth and in their values and hash members."""
VALUES_MARK: Final = b'ls":'
"""Bytes an op line with values holds (the end of its ``locals`` or ``globals`` member's
name) and one without does not: no other member's name ends so, and a string holding
them would hold an escaped quote."""

_encode = msgspec.json.encode


def op_site(pc: int, op: int, op_name: str, line: int, code: int) -> tuple[bytes, bytes]:
    """The two pieces of a site's op lines: before the gas digits, after the depth."""
    return (
        b'{"pc":%d,"op":%d,"gas":"0x' % (pc, op),
        b',"opName":%b,"line":%d,"code":%d' % (_encode(op_name), line, code),
    )


def op_body(prefix: bytes, gas: int, depth: int, suffix: bytes) -> bytes:
    """An op line's body (up to its hash member): a site's pieces with this gas and depth."""
    return b"%b%x%b%d%b" % (prefix, gas, OP_MID, depth, suffix)
