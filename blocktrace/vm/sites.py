"""Site tables: per code object, once, offset -> the prebuilt ``OpStart``.

The per-instruction path is one dict lookup keyed by ``id(code)`` and one list
index into the table built here; an ``OpStart`` depends only on the code object
and its per-run index, so tables are kept (weakly) across runs.
"""

from __future__ import annotations

import bisect
import dis
import weakref
from types import CodeType
from typing import Any

from blocktrace.events import CallKind, CallStart, OpStart

__all__ = ["RESUME", "SITE_CACHE", "SKIP", "CodeInfo", "build_sites", "code_info", "level_table",
           "site_from_bytes", "sites_for"]

RESUME = dis.opmap["RESUME"]


class _Skip:
    """The type of :data:`SKIP`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SKIP"


SKIP: Any = _Skip()
"""A site table entry for an instruction the trace level does not report: the
hook charges its gas and emits nothing."""


class CodeInfo:
    """What the stepper knows of one in-scope code object: its per-run index,
    its site table and its ``CallStart`` events, built once."""

    __slots__ = ("calls", "code", "index", "offsets", "sites", "tables")

    def __init__(self, code: CodeType, index: int, sites: list[OpStart | None]) -> None:
        self.code = code  # kept alive so that id(code) is never reused while known
        self.index = index
        self.sites = sites
        self.calls: dict[str, CallStart] = {}
        self.offsets: list[int] | None = None
        self.tables: dict[str, list[Any]] = {}

    def table(self, level: str) -> list[Any]:
        """The site table of a trace level, built once: ``sites`` itself at
        ``op``; at ``line`` the same with :data:`SKIP` for every instruction that
        does not start a source-line range; at ``call`` :data:`SKIP` for every
        instruction.  (``None`` stays ``None``: never reported, not charged.)"""
        if level == "op":
            return self.sites
        table = self.tables.get(level)
        if table is None:
            table = self.tables[level] = level_table(self.sites, level)
        return table

    def set_site(self, offset: int, site: OpStart) -> None:
        """A site found late (see ``site_from_bytes``), in every table built."""
        self.sites[offset] = site
        for level, table in self.tables.items():
            table[offset] = level_table([site], level)[0]

    def site_at(self, offset: int) -> OpStart:
        """The instruction containing ``offset`` (exception events may report an
        offset inside an instruction's inline cache)."""
        if self.offsets is None:
            self.offsets = [i for i, s in enumerate(self.sites) if s is not None]
        at = bisect.bisect_right(self.offsets, offset) - 1
        site = self.sites[self.offsets[at]] if at >= 0 else None
        return site if site is not None else site_from_bytes(self.code, offset, self.index)

    def call(self, kind: CallKind) -> CallStart:
        ev = self.calls.get(kind)
        if ev is None:
            c = self.code
            ev = self.calls[kind] = CallStart(
                kind, self.index, c.co_qualname, c.co_filename, c.co_firstlineno
            )
        return ev


def level_table(sites: list[OpStart | None], level: str) -> list[Any]:
    """``sites`` as ``level`` reports them (see ``CodeInfo.table``)."""
    lines = level == "line"
    return [s if s is None or (lines and s.line_start) else SKIP for s in sites]


_Cached = tuple[
    weakref.ref[CodeType], int, list[OpStart | None], dict[str, list[Any]], dict[str, CallStart]
]
SITE_CACHE: dict[int, _Cached] = {}
"""id(code) -> (the code, its index, its sites, its level tables, its ``CallStart``
events) from an earlier run: a program traced again (a test suite, a view started
per call) learns its code objects in the same order, and an ``OpStart`` or a
``CallStart`` depends only on the code and that index."""


def _cached(code: CodeType, index: int) -> _Cached | None:
    """The cache's entry for ``code`` at ``index``, made if need be (None: the code
    object cannot be referred to weakly, so it is not cached)."""
    key = id(code)
    cached = SITE_CACHE.get(key)
    if cached is not None and cached[0]() is code and cached[1] == index:
        return cached
    sites = build_sites(code, index)

    def forget(_: object) -> None:
        SITE_CACHE.pop(key, None)

    try:
        ref = weakref.ref(code, forget)
    except TypeError:
        return None
    made = SITE_CACHE[key] = (ref, index, sites, {}, {})
    return made


def sites_for(code: CodeType, index: int) -> list[OpStart | None]:
    """``build_sites``, or the same list from an earlier run with the same index."""
    cached = _cached(code, index)
    return build_sites(code, index) if cached is None else cached[2]


def code_info(code: CodeType, index: int) -> CodeInfo:
    """A ``CodeInfo`` of ``code`` at ``index`` that shares its sites, level tables
    and ``CallStart`` events with earlier runs' of the same code at that index."""
    cached = _cached(code, index)
    if cached is None:
        return CodeInfo(code, index, build_sites(code, index))
    info = CodeInfo(code, index, cached[2])
    info.tables = cached[3]
    info.calls = cached[4]
    return info


def build_sites(code: CodeType, index: int) -> list[OpStart | None]:
    """offset -> the reusable ``OpStart`` of the instruction there."""
    line_at: dict[int, int] = {}
    starts: set[int] = set()
    previous: int | None = -1
    for start, end, line in code.co_lines():
        if line != previous and line is not None:
            starts.add(start)
        previous = line
        for off in range(start, end, 2):
            line_at[off] = line or 0
    sites: list[OpStart | None] = [None] * (len(code.co_code) + 2)
    for ins in dis.get_instructions(code):
        off = ins.offset
        if ins.opcode == RESUME:
            continue  # left None: the stepper answers DISABLE there (see _missing_site)
        sites[off] = OpStart(off, ins.opcode, ins.opname, line_at.get(off, 0), index, off in starts)
    return sites


def site_from_bytes(code: CodeType, offset: int, index: int) -> OpStart:
    """An instruction ``dis`` did not list (should not happen): read co_code."""
    raw = code.co_code
    op = raw[offset] if 0 <= offset < len(raw) else 0
    name = dis.opname[op] if op < len(dis.opname) else f"<{op}>"
    line = 0
    for start, end, ln in code.co_lines():
        if start <= offset < end:
            line = ln or 0
    return OpStart(offset, op, name, line, index, False)
