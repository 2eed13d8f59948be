"""The members a writer appends after a line's own, spelled once for Python.

A line's own members come first (``format/opline.py``, ``format/callline.py``), then
``[,"thread":N][,"clock":N]``, an op line's ``[,"locals":{...}][,"globals":{...}]`` and on
every line the hash member (``format/rules.py``'s ``HASH_FIELD``).  The Python writers
(``chain/writer.py``, ``tracers/chain.py``) take these spellings from here; the C spelling is
``format/csrc/members.h``, and tests/format/test_members.py checks the two agree.
"""

from __future__ import annotations

from typing import Final

from blocktrace.format.rules import HASH_FIELD

__all__ = [
    "CLOCK_MEMBER", "GLOBALS_MEMBER", "HASH_MEMBER", "LOCALS_MEMBER", "THREAD_MEMBER",
]

THREAD_MEMBER: Final = b',"thread":'
"""Before the thread's number, on lines of a trace that names threads."""
CLOCK_MEMBER: Final = b',"clock":'
"""Before the wall clock (ns since the run started), on lines of a ``--clock`` trace."""
LOCALS_MEMBER: Final = b',"locals":'
"""Before an op line's object of local values."""
GLOBALS_MEMBER: Final = b',"globals":'
"""Before an op line's object of global values."""
HASH_MEMBER: Final = HASH_FIELD
"""Before a line's 64 hex digits of hash (then ``"}`` and the newline)."""
