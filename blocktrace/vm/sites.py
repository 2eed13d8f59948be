"""Site tables: per code object, once, offset -> the prebuilt ``OpStart``.

The per-instruction path is one dict lookup keyed by ``id(code)`` and one list
index into the table built here; an ``OpStart`` depends only on the code object
and its per-run index, so tables are kept (weakly) across runs.
"""

from __future__ import annotations

import array
import bisect
import dis
import weakref
from types import CodeType
from typing import Any

from blocktrace import no_raise
from blocktrace.events import CallKind, CallStart, OpStart

__all__ = ["RESUME", "SITE_CACHE", "SKIP", "CodeInfo", "block_counts", "build_sites", "code_info",
           "level_table", "site_from_bytes", "sites_for"]

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
    its site table and its ``CallStart`` events, built once (the sites when
    first asked for: a ``call``-level run never needs them unless an exception
    asks where it happened)."""

    __slots__ = ("_shared", "_sites", "calls", "code", "index", "offsets", "tables")

    def __init__(self, code: CodeType, index: int,
                 sites: list[OpStart | None] | None = None) -> None:
        self.code = code  # kept alive so that id(code) is never reused while known
        self.index = index
        self._sites = sites
        self._shared: _Shared | None = None
        self.calls: dict[str, CallStart] = {}
        self.offsets: list[int] | None = None
        self.tables: dict[str, list[Any]] = {}

    def _built(self) -> list[OpStart | None] | None:
        """The sites if made already (by this run, or an earlier one at the same index)."""
        sites = self._sites
        if sites is None and self._shared is not None:
            sites = self._sites = self._shared.sites
        return sites

    @property
    def sites(self) -> list[OpStart | None]:
        """offset -> the ``OpStart`` of the instruction there (``build_sites``)."""
        sites = self._built()
        if sites is None:
            sites = self._sites = build_sites(self.code, self.index)
            if self._shared is not None:
                self._shared.sites = sites
        return sites

    def table(self, level: str) -> list[Any]:
        """The site table of a trace level, built once: ``sites`` itself at
        ``op``; at ``line`` the same with :data:`SKIP` for every instruction that
        does not start a source-line range; at ``call`` :data:`SKIP` for every
        instruction.  (``None`` stays ``None``: never reported, not charged.)
        Below ``op`` the table is made from the code's instructions without the
        sites (``level_table`` of them, the same list)."""
        if level == "op":
            return self.sites
        table = self.tables.get(level)
        if table is None:
            sites = self._built()
            if sites is not None:
                table = level_table(sites, level)
            else:
                table = _level_table(self.code, self.index, level)
            self.tables[level] = table
        return table

    def set_site(self, offset: int, site: OpStart) -> None:
        """A site found late (see ``site_from_bytes``), in every table built."""
        self.sites[offset] = site
        for level, table in self.tables.items():
            table[offset] = level_table([site], level)[0]

    def site_at(self, offset: int) -> OpStart:
        """The instruction containing ``offset`` (exception events may report an
        offset inside an instruction's inline cache).  Without the sites (an
        exception in a ``call``-level run) only that instruction's ``OpStart`` is made."""
        sites = self._built()
        if sites is None:
            instructions = _instructions(self.code)[0]
            if self.offsets is None:
                self.offsets = [ins[0] for ins in instructions]
            at = bisect.bisect_right(self.offsets, offset) - 1
            if at < 0:
                return site_from_bytes(self.code, offset, self.index)
            off, op, name, line, start = instructions[at]
            return OpStart(off, op, name, line, self.index, start)
        if self.offsets is None:
            self.offsets = [i for i, s in enumerate(sites) if s is not None]
        at = bisect.bisect_right(self.offsets, offset) - 1
        site = sites[self.offsets[at]] if at >= 0 else None
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


_Instruction = tuple[int, int, str, int, bool]
"""(offset, opcode, name, line, line start): an ``OpStart`` without its index."""


class _Shared:
    """What the runs that learn a code object at the same index share."""

    __slots__ = ("calls", "index", "sites", "tables")

    def __init__(self, index: int) -> None:
        self.index = index
        self.sites: list[OpStart | None] | None = None
        self.tables: dict[str, list[Any]] = {}
        self.calls: dict[str, CallStart] = {}


class _Cached:
    """``SITE_CACHE``'s entry for one code object: its instructions (whatever
    the index) and what the runs at the latest index share."""

    __slots__ = ("blocks", "instructions", "offsets", "ref", "shared")

    def __init__(self, ref: weakref.ref[CodeType], index: int) -> None:
        self.ref = ref
        self.blocks: bytes | bool | None = False  # False: not made yet
        self.instructions: tuple[tuple[_Instruction, ...], int] | None = None
        self.offsets: tuple[list[int], int] | None = None
        self.shared = _Shared(index)


SITE_CACHE: dict[int, _Cached] = {}
"""id(code) -> the code's instructions (``dis``, once per code object) and the
sites, level tables and ``CallStart`` events of an earlier run at the same
index: a program traced again (a test suite, a view started per call) learns
its code objects in the same order, and an ``OpStart`` or a ``CallStart``
depends only on the code and that index.  (A test suite's tests learn them in
other orders: then only the instructions are reused, and the tables below
``op`` are made from them without ``OpStart`` objects.)"""


def _entry(code: CodeType) -> _Cached | None:
    """The cache's entry for ``code``, made if need be (at index 0, which no run
    uses; None: the code object cannot be referred to weakly)."""
    key = id(code)
    cached = SITE_CACHE.get(key)
    if cached is not None and cached.ref() is code:
        return cached

    def forget(_: object) -> None:
        SITE_CACHE.pop(key, None)

    no_raise.CODE.add(forget.__code__)  # a program's handler never raises in it
    try:
        ref = weakref.ref(code, forget)
    except TypeError:
        return None
    made = SITE_CACHE[key] = _Cached(ref, 0)
    return made


def _cached(code: CodeType, index: int) -> _Shared | None:
    """What runs of ``code`` at ``index`` share (None: not cached)."""
    cached = _entry(code)
    if cached is None:
        return None
    if cached.shared.index != index:
        cached.shared = _Shared(index)
    return cached.shared


def _cache_units() -> list[int]:
    """opcode -> the inline cache entries (2 bytes each) that follow it in ``co_code``."""
    entries: Any = dis._inline_cache_entries  # type: ignore[attr-defined]  # (by name on 3.13)
    if isinstance(entries, dict):
        return [int(entries.get(dis.opname[op], 0)) for op in range(256)]
    return [int(n) for n in entries]


_CACHE_UNITS = _cache_units()


def _offsets(code: CodeType) -> tuple[list[int], int]:
    """The offsets of the code's instructions but its ``RESUME`` (once per code
    object while it lives), and the length of its site tables: ``co_code`` read
    as ``dis`` reads it (an instruction, then its inline cache entries;
    ``EXTENDED_ARG`` is one of its own), without ``dis``'s objects (tests compare)."""
    cached = _entry(code)
    if cached is not None and cached.offsets is not None:
        return cached.offsets
    raw = code.co_code
    units = _CACHE_UNITS
    found: list[int] = []
    off, size = 0, len(raw)
    while off < size:
        op = raw[off]
        if op != RESUME:  # left None: the stepper answers DISABLE there (see _missing_site)
            found.append(off)
        off += 2 + 2 * units[op]
    made = found, size + 2
    if cached is not None:
        cached.offsets = made
    return made


_BLOCK_JUMPS = frozenset(dis.opmap[name] for name in (
    "FOR_ITER", "JUMP_FORWARD", "JUMP_BACKWARD", "POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE",
    "POP_JUMP_IF_NONE", "POP_JUMP_IF_NOT_NONE",
))
"""The jumps that send a ``BRANCH`` or ``JUMP`` event with where they go."""
_ANY_JUMP = frozenset(dis.hasjrel) | frozenset(dis.hasjabs) | frozenset(getattr(dis, "hasjump", ()))
_NOT_PLAIN = 0x20 | 0x80 | 0x100 | 0x200
"""CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR."""


def block_counts(code: CodeType) -> bytes | None:
    """Gas by basic blocks (``call`` level, see ``vm.hook.PyBlocks``): for each
    2-byte unit u of ``co_code``, the number of charged instructions (those at
    ``_offsets`` from the first ``RESUME`` on -- CPython instruments nothing
    before it -- but ``RESUME``) that start before byte 2u, as native
    uint32 (units + 2 of them), so that the instructions run from offset a
    through offset b are ``n[b // 2 + 1] - n[a // 2]``.  None when the code's
    path cannot be followed by its ``BRANCH``/``JUMP`` events alone: a generator
    or coroutine (suspends and resumes), an exception table (handlers are
    entered without a jump event), a jump that sends none (``SEND``,
    ``JUMP_BACKWARD_NO_INTERRUPT``).  Once per code object while it lives."""
    cached = _entry(code)
    if cached is not None and cached.blocks is not False:
        return cached.blocks  # type: ignore[return-value]
    made: bytes | None = None
    raw = code.co_code
    if not code.co_flags & _NOT_PLAIN and not code.co_exceptiontable:
        units = _CACHE_UNITS
        counts = array.array("I", bytes(4 * (len(raw) // 2 + 2)))
        n = off = 0
        size = len(raw)
        traced = False  # CPython sends no INSTRUCTION event before the first RESUME
        while off < size:
            op = raw[off]
            if op in _ANY_JUMP and op not in _BLOCK_JUMPS:
                break
            step = 2 + 2 * units[op]
            counts[off // 2] = n
            if op == RESUME:
                traced = True
            elif traced:
                n += 1
            for unit in range(off // 2 + 1, (off + step) // 2):
                counts[unit] = n
            off += step
        else:
            counts[size // 2] = counts[size // 2 + 1] = n
            made = counts.tobytes()
    if cached is not None:
        cached.blocks = made
    return made


def _lines(code: CodeType) -> tuple[dict[int, int], set[int]]:
    """offset -> its source line (0: none), and the offsets that start a line range."""
    line_at: dict[int, int] = {}
    starts: set[int] = set()
    previous: int | None = -1
    for start, end, line in code.co_lines():
        if line != previous and line is not None:
            starts.add(start)
        previous = line
        for off in range(start, end, 2):
            line_at[off] = line or 0
    return line_at, starts


def _instructions(code: CodeType) -> tuple[tuple[_Instruction, ...], int]:
    """The instructions at ``_offsets`` (once per code object while it lives)."""
    cached = _entry(code)
    if cached is not None and cached.instructions is not None:
        return cached.instructions
    line_at, starts = _lines(code)
    raw, names = code.co_code, dis.opname
    offsets, size = _offsets(code)
    made = tuple(
        (off, raw[off], names[raw[off]], line_at.get(off, 0), off in starts) for off in offsets
    ), size
    if cached is not None:
        cached.instructions = made
    return made


def _dis_instructions(code: CodeType) -> tuple[_Instruction, ...]:
    """``_instructions`` by ``dis.get_instructions`` (the reference the tests compare)."""
    line_at, starts = _lines(code)
    return tuple(
        (ins.offset, ins.opcode, ins.opname, line_at.get(ins.offset, 0), ins.offset in starts)
        for ins in dis.get_instructions(code)
        if ins.opcode != RESUME
    )


def _level_table(code: CodeType, index: int, level: str) -> list[Any]:
    """``level_table(build_sites(code, index), level)`` for ``line`` and ``call``,
    without an ``OpStart`` for an instruction the level does not report."""
    if level != "line":
        offsets, size = _offsets(code)
        table: list[Any] = [None] * size
        for off in offsets:
            table[off] = SKIP
        return table
    instructions, size = _instructions(code)
    table = [None] * size
    for off, op, name, line, start in instructions:
        table[off] = OpStart(off, op, name, line, index, True) if start else SKIP
    return table


def sites_for(code: CodeType, index: int) -> list[OpStart | None]:
    """``build_sites``, or the same list from an earlier run with the same index."""
    shared = _cached(code, index)
    if shared is None:
        return build_sites(code, index)
    if shared.sites is None:
        shared.sites = build_sites(code, index)
    return shared.sites


def code_info(code: CodeType, index: int) -> CodeInfo:
    """A ``CodeInfo`` of ``code`` at ``index`` that shares its sites, level tables
    and ``CallStart`` events with earlier runs' of the same code at that index."""
    shared = _cached(code, index)
    info = CodeInfo(code, index)
    if shared is not None:
        info._shared = shared
        info.tables = shared.tables
        info.calls = shared.calls
    return info


def build_sites(code: CodeType, index: int) -> list[OpStart | None]:
    """offset -> the reusable ``OpStart`` of the instruction there."""
    instructions, size = _instructions(code)
    sites: list[OpStart | None] = [None] * size
    for off, op, name, line, start in instructions:
        sites[off] = OpStart(off, op, name, line, index, start)
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
