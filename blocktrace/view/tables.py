"""The viewer's per-trace tables, built in one streaming pass and cached.

A trace of millions of lines cannot be held in memory, and the questions the
page asks -- the call stack at step N, the value ``total`` had at step N, the
next hit of line 12, the calls between steps A and B -- cannot be answered by
reading from the start each time.  :func:`build_tables` reads a blocktrace
trace once, through :class:`blocktrace.format.TraceReader`, and writes:

- ``steps.bin``: one fixed-size record per step (the trace line it is on, its
  code number, source line, depth and thread), read back by ``pread``: the
  server never holds it;
- the call table (start step, end step, depth, code, thread, parent) as
  compact arrays held in memory (about 20 bytes a call);
- ``values.bin``: per scope (a call's locals, a module's globals) the steps
  where each name's recorded value changed, sorted by (name, step), so "the
  value of ``x`` at step N, and where it last changed" is a binary search;
- the small parts (code names, hit counts per source line, source lines'
  positions, exception steps, names) in ``tables.msgpack``.

The cache entry is keyed by the trace's real path, size, modification time,
inode and last line (its hash: the head), so a changed trace is read again.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import shutil
import struct
import tempfile
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from blocktrace._native import extension
from blocktrace.format import (
    CallLine,
    ExceptionLine,
    OpLine,
    ReturnLine,
    SourceLine,
    Summary,
    TraceError,
    TraceReader,
)
from blocktrace.format.identity import cache_key as file_cache_key
from blocktrace.format.index import cache_home
from blocktrace.format.lines import EVENT_MEMBER, OP_PREFIX
from blocktrace.format.opline import GAS_MEMBER, VALUES_MARK
from blocktrace.format.rules import HASH_FIELD, HASH_HEX_LEN
from blocktrace.format.wholelines import complete_lines
from blocktrace.limits import MAX_LINE_BYTES, LineTooLongError, size_text

__all__ = [
    "STEP",
    "CallTable",
    "StepRecord",
    "Tables",
    "build_tables",
    "cache_root",
    "load_cached",
    "load_or_build",
]

SCHEMA = 6
"""Bumped when the cached files change shape (old entries are then rebuilt)."""

STEP = struct.Struct("<IIIHH")
"""A step record: trace line, code number, source line, depth, thread index."""

NAME_SHIFT = 40
"""A value change is packed as ``name_id << 40 | step`` (steps below 2**40)."""
STEP_MASK = (1 << NAME_SHIFT) - 1

_U32 = 0xFFFFFFFF
_SITES = 1 << 16
"""Op sites (a plain op line's bytes less gas and hash) whose step record is kept."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step as the step table keeps it."""

    step: int
    line: int
    """The trace file's line (1-based, header = 1)."""
    code: int
    lineno: int
    """The source line."""
    depth: int
    thread: int
    """Index into :attr:`Tables.threads`."""


class CallTable:
    """Every frame the trace entered, in the order the calls started.

    ``end`` is the last step inside the frame (``start - 1`` for a frame with
    no step of its own); ``parent`` the index of the caller's entry or -1."""

    def __init__(self) -> None:
        self.start = array("q")
        self.end = array("q")
        self.depth = array("I")
        self.code = array("I")
        self.thread = array("I")
        self.parent = array("q")
        self.values_at = array("q")
        """Offset (in entries) of the call's block in ``values.bin``, or -1."""
        self.values_count = array("I")
        self.by_thread: dict[int, array[int]] = {}
        """Per thread index: its calls' indices (in start order)."""

    def __len__(self) -> int:
        return len(self.start)

    def add(self, start: int, depth: int, code: int, thread: int, parent: int) -> int:
        index = len(self.start)
        self.start.append(start)
        self.end.append(start)
        self.depth.append(depth)
        self.code.append(code)
        self.thread.append(thread)
        self.parent.append(parent)
        self.values_at.append(-1)
        self.values_count.append(0)
        self.by_thread.setdefault(thread, array("Q")).append(index)
        return index

    _ARRAYS = ("start", "end", "depth", "code", "thread", "parent", "values_at", "values_count")

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, "calls.bin"), "wb") as out:
            for name in self._ARRAYS:
                getattr(self, name).tofile(out)

    @classmethod
    def load(cls, directory: str, count: int) -> CallTable:
        table = cls()
        with open(os.path.join(directory, "calls.bin"), "rb") as stream:
            for name in cls._ARRAYS:
                getattr(table, name).fromfile(stream, count)
        for index, thread in enumerate(table.thread):
            table.by_thread.setdefault(thread, array("Q")).append(index)
        return table

    def levels(self) -> list[tuple[array[int], array[int]]]:
        """The calls by length class: level L holds (starts, indices) of the
        calls whose length in steps has ``bit_length() == L``, in start order
        (a timeline of a wide window reads only the long calls' levels)."""
        levels: list[tuple[array[int], array[int]]] = []
        for index, (start, end) in enumerate(zip(self.start, self.end, strict=True)):
            level = max(0, end - start + 1).bit_length()
            while len(levels) <= level:
                levels.append((array("q"), array("q")))
            levels[level][0].append(start)
            levels[level][1].append(index)
        return levels

    def innermost(self, thread: int, step: int) -> int:
        """The index of the innermost call on ``thread`` whose frame holds
        ``step``, or -1."""
        mine = self.by_thread.get(thread)
        if not mine:
            return -1
        starts = self.start
        lo, hi = 0, len(mine)
        while lo < hi:  # the last call on the thread started at or before step
            mid = (lo + hi) // 2
            if starts[mine[mid]] <= step:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return -1
        index = mine[lo - 1]
        while index >= 0 and self.end[index] < step:
            index = self.parent[index]
        return index

    def calls_of(self, index: int) -> list[int]:
        """The chain from call ``index`` out to the outermost (innermost first)."""
        chain = []
        while index >= 0:
            chain.append(index)
            index = self.parent[index]
        return chain


class _Meta(msgspec.Struct):
    """The small tables, kept as one msgpack object."""

    schema: int
    steps: int
    lines: int
    calls: int
    codes: dict[int, tuple[str, str]]
    hits: dict[int, dict[int, int]]
    """code -> source line -> times the line was entered."""
    sources: dict[str, int]
    """file -> trace line of its source line."""
    exceptions: list[int]
    names: list[str]
    globals_blocks: dict[str, tuple[int, int]]
    """file -> (offset, count) of its module globals' block in values.bin."""
    threads: list[int]
    """The thread numbers, in order of appearance (lines without one are thread 1's:
    a trace names threads once a second one ran)."""
    has_values: bool
    summary_line: int | None
    postings: list[tuple[int, int]] = msgspec.field(default_factory=list)
    """name id -> (offset, count) in postings.bin: the steps where that name's
    value changed in some scope, in step order (for search)."""
    code_calls: dict[int, bytes] = msgspec.field(default_factory=dict)
    """code -> the start steps of its calls (for next/prev call), an
    ``array("q")``'s bytes."""
    summary: dict[str, Any] | None = None
    """The summary line as the viewer's meta shows it (read once here: it is the
    last line, which a large trace reaches only through its index)."""


class _RawValues(msgspec.Struct):
    """An op line's recorded values, each as its JSON text (``msgspec.Raw``)."""

    locals: dict[str, msgspec.Raw] | None = None
    globals: dict[str, msgspec.Raw] | None = None


_raw_values = msgspec.json.Decoder(_RawValues)

_NO_THREAD = -(1 << 63)
"""The native pass's spelling of a line without a thread member."""


@dataclass
class _Scope:
    """A scope's recorded values (each name's JSON text) while the pass is inside it."""

    last: dict[str, bytes] = field(default_factory=dict)
    changes: array[int] = field(default_factory=lambda: array("q"))


@dataclass
class Tables:
    """The built tables of one trace (see the module docstring)."""

    directory: str
    meta: _Meta
    calls: CallTable

    @property
    def steps(self) -> int:
        return self.meta.steps

    def step(self, step: int) -> StepRecord:
        """The record of ``step`` (0-based); IndexError past the end."""
        if not 0 <= step < self.meta.steps:
            raise IndexError(step)
        with open(os.path.join(self.directory, "steps.bin"), "rb") as stream:
            data = os.pread(stream.fileno(), STEP.size, step * STEP.size)
        return StepRecord(step, *STEP.unpack(data))

    def records(self, start: int, count: int) -> list[StepRecord]:
        """The records of steps ``start`` .. ``start + count - 1`` (clipped)."""
        start = max(0, start)
        count = max(0, min(count, self.meta.steps - start))
        if not count:
            return []
        with open(os.path.join(self.directory, "steps.bin"), "rb") as stream:
            data = os.pread(stream.fileno(), STEP.size * count, start * STEP.size)
        return [StepRecord(start + i, *fields) for i, fields in enumerate(STEP.iter_unpack(data))]

    def step_of_line(self, line: int) -> int | None:
        """The step on trace line ``line``, or None (not an op line)."""
        lo, hi = 0, self.meta.steps
        with open(os.path.join(self.directory, "steps.bin"), "rb") as stream:
            fd = stream.fileno()
            while lo < hi:
                mid = (lo + hi) // 2
                (at,) = struct.unpack_from("<I", os.pread(fd, 4, mid * STEP.size))
                if at < line:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < self.meta.steps:
                (at,) = struct.unpack_from("<I", os.pread(fd, 4, lo * STEP.size))
                if at == line:
                    return lo
        return None

    def find(self, code: int, lineno: int, start: int, forward: bool) -> int | None:
        """The first step from ``start`` (forwards or backwards, inclusive) at
        source line ``lineno`` of code ``code``, by a byte search of the table."""
        needle = struct.pack("<II", code, lineno)
        size = STEP.size
        chunk = 1 << 16
        with open(os.path.join(self.directory, "steps.bin"), "rb") as stream:
            fd = stream.fileno()
            if forward:
                at = max(0, start)
                while at < self.meta.steps:
                    count = min(chunk, self.meta.steps - at)
                    data = os.pread(fd, size * count, at * size)
                    pos = data.find(needle)
                    while pos >= 0:
                        if pos % size == 4:
                            return at + pos // size
                        pos = data.find(needle, pos + 1)
                    at += count
            else:
                at = min(start, self.meta.steps - 1)
                while at >= 0:
                    first = max(0, at - chunk + 1)
                    data = os.pread(fd, size * (at - first + 1), first * size)
                    pos = data.rfind(needle)
                    while pos >= 0:
                        if pos % size == 4:
                            return first + pos // size
                        pos = data.rfind(needle, 0, pos + len(needle) - 1)
                    at = first - 1
        return None

    def changes_of(self, name: str, start: int, chunk: int = 4096) -> Iterator[int]:
        """The steps from ``start`` on where ``name``'s recorded value changed."""
        index = self._name_ids.get(name)
        if index is None:
            return
        offset, count = self.meta.postings[index]
        with open(os.path.join(self.directory, "postings.bin"), "rb") as stream:
            fd = stream.fileno()

            def at(i: int) -> int:
                value: int = struct.unpack("<q", os.pread(fd, 8, 8 * (offset + i)))[0]
                return value

            lo, hi = 0, count
            while lo < hi:
                mid = (lo + hi) // 2
                if at(mid) < start:
                    lo = mid + 1
                else:
                    hi = mid
            while lo < count:
                block = array("q")
                block.frombytes(os.pread(fd, 8 * min(chunk, count - lo), 8 * (offset + lo)))
                yield from block
                lo += len(block)

    @functools.cached_property
    def _name_ids(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.meta.names)}

    @functools.cached_property
    def call_levels(self) -> list[tuple[array[int], array[int]]]:
        """:meth:`CallTable.levels`, computed once."""
        return self.calls.levels()

    def call_starts(self, code: int) -> array[int]:
        """The first steps of the calls of ``code``, in order."""
        starts = array("q")
        starts.frombytes(self.meta.code_calls.get(code, b""))
        return starts

    def value_block(self, offset: int, count: int) -> array[int]:
        block = array("q")
        if count:
            with open(os.path.join(self.directory, "values.bin"), "rb") as stream:
                block.frombytes(os.pread(stream.fileno(), 8 * count, 8 * offset))
        return block

    def changes_at(self, offset: int, count: int, step: int) -> dict[str, int]:
        """For a scope's block: each name recorded at or before ``step`` -> the
        step where its value last changed."""
        block = self.value_block(offset, count)
        out: dict[str, int] = {}
        i = 0
        names = self.meta.names
        while i < len(block):
            name = block[i] >> NAME_SHIFT
            group_end = bisect_left(block, (name + 1) << NAME_SHIFT, i)
            j = bisect_right(block, (name << NAME_SHIFT) | step, i, group_end) - 1
            if j >= i:
                out[names[name]] = block[j] & STEP_MASK
            i = group_end
        return out


_HASH_KEY = HASH_FIELD[1:]  # (the last line's hash member without its comma)


def cache_root() -> str:
    """``$BLOCKTRACE_VIEW_CACHE``, else ``$XDG_CACHE_HOME/blocktrace/view``, else
    ``~/.cache/blocktrace/view``."""
    return os.environ.get("BLOCKTRACE_VIEW_CACHE") or cache_home("view")


def _last_line_hash(path: str) -> str:
    """The hash member of an uncompressed trace's last line (its head), or ''."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - 4096))
            tail = stream.read()
    except OSError:
        return ""
    at = tail.rfind(_HASH_KEY)
    return tail[at + 8: at + 8 + HASH_HEX_LEN].decode("ascii", "replace") if at >= 0 else ""


def cache_key(path: str) -> str:
    """The trace's entry in the cache: its real path and identity
    (:mod:`blocktrace.format.identity`), its head, the tables' schema."""
    return file_cache_key(path, _last_line_hash(path), str(SCHEMA))


def load_cached(reader: TraceReader) -> Tables | None:
    """The trace's tables from the cache, or None (none there, or a broken entry)."""
    entry = os.path.join(cache_root(), cache_key(reader.path))
    meta_file = os.path.join(entry, "tables.msgpack")
    if not os.path.exists(meta_file):
        return None
    try:
        with open(meta_file, "rb") as f:
            meta = msgspec.msgpack.decode(f.read(), type=_Meta)
        if meta.schema == SCHEMA:
            return Tables(entry, meta, CallTable.load(entry, meta.calls))
    except (OSError, msgspec.DecodeError, msgspec.ValidationError, EOFError, ValueError):
        pass  # a broken entry: build it again
    return None


def load_or_build(
    reader: TraceReader, progress: Callable[[int], None] | None = None
) -> Tables:
    """The trace's tables from the cache, or built now (and cached)."""
    cached = load_cached(reader)
    if cached is not None:
        return cached
    key = cache_key(reader.path)
    root = cache_root()
    entry = os.path.join(root, key)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        building = tempfile.mkdtemp(prefix=f".{key}-", dir=root)
    except OSError:  # no cache to write: this process keeps its own, removed at exit
        root = tempfile.mkdtemp(prefix="blocktrace-view-")
        atexit.register(shutil.rmtree, root, True)
        entry = os.path.join(root, key)
        building = tempfile.mkdtemp(prefix=f".{key}-", dir=root)
    try:
        meta, calls = build_tables(reader, building, progress)
        if os.path.exists(entry):
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.rename(building, entry)
        except OSError:  # another viewer built it first
            shutil.rmtree(building, ignore_errors=True)
        return Tables(entry, meta, calls)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def summary_object(line: Summary) -> dict[str, Any]:
    """A summary line as the viewer's ``meta`` gives it: its members (``pass``
    spelled so), without its hash."""
    out = msgspec.structs.asdict(line)
    out.pop("hash", None)
    out["pass"] = out.pop("passed", None)
    return out


def counts_events(reader: TraceReader) -> bool:
    """Whether the viewer counts a call and a return as a step of ``reader``'s
    trace: in a call-level trace, whose only op-like lines are exceptions
    (``blocktrace diff`` and ``show`` count only those)."""
    return reader.level == "call"


def build_tables(
    reader: TraceReader, directory: str, progress: Callable[[int], None] | None = None
) -> tuple[_Meta, CallTable]:
    """Read the trace once and write its tables into ``directory``: in C
    (``blocktrace.view._ctables``) when it is built, else by the reference."""
    native = extension("blocktrace.view._ctables")
    if native is not None:
        try:
            return _build_native(native, reader, directory, progress)
        except OverflowError:
            pass  # a number beyond the native pass's 64-bit fields: the reference decides
    return build_tables_reference(reader, directory, progress)


def build_tables_reference(
    reader: TraceReader, directory: str, progress: Callable[[int], None] | None = None
) -> tuple[_Meta, CallTable]:
    """The tables' reference pass, in Python (the native one must match its
    files byte for byte).  A step: an op line, or an exception line, that is not
    the instruction of the step before again (same pc, depth, code and thread,
    and for an op line the same gas); such a line belongs to the step before,
    as ``blocktrace diff`` merges them.  In a call-level trace (no op lines)
    each call line and each return line is a step too (:func:`counts_events`).
    A recorded value changed when its JSON text did."""
    events = counts_events(reader)
    calls = CallTable()
    codes: dict[int, tuple[str, str]] = {}
    hits: dict[int, dict[int, int]] = {}
    sources: dict[str, int] = {}
    exceptions: list[int] = []
    names: dict[str, int] = {}
    threads: dict[int, int] = {}
    stacks: dict[int, list[tuple[int, _Scope]]] = {}
    module_scopes: dict[str, _Scope] = {}
    last_line: dict[tuple[int, int], tuple[int, int]] = {}
    code_calls: dict[int, array[int]] = {}
    has_values = False
    summary_line = None
    summary = None
    steps = 0
    number = 0
    pack_line = struct.Struct("<I").pack
    pack_tail = struct.Struct("<IIHH").pack
    fast_sites: dict[bytes, tuple[Any, tuple[int, int, int, int], bytes]] = {}
    last_frame_line: tuple[int, int, int, int] | None = None
    postings: dict[int, array[int]] = {}
    last_step: tuple[int, int, int, int | None] | None = None
    last_gas = b""
    buffer: list[bytes] = []
    values_out = open(os.path.join(directory, "values.bin"), "wb")  # noqa: SIM115
    values_written = 0

    def count_hit(frame_line: tuple[int, int, int, int]) -> None:
        """A step on a line of a frame: a hit when the frame was on another line."""
        tid, depth, code, lineno = frame_line
        key = (tid, depth)
        here = (code, lineno)
        if last_line.get(key) != here and lineno > 0:
            last_line[key] = here
            per_code = hits.get(code)
            if per_code is None:
                per_code = hits[code] = {}
            per_code[lineno] = per_code.get(lineno, 0) + 1

    def record(scope: _Scope, members: dict[str, msgspec.Raw], step: int) -> None:
        last = scope.last
        for name, raw_value in members.items():
            value = bytes(raw_value)
            if last.get(name) == value:
                continue
            last[name] = value
            nid = names.get(name)
            if nid is None:
                nid = names[name] = len(names)
            scope.changes.append((nid << NAME_SHIFT) | step)
            steps_of = postings.get(nid)
            if steps_of is None:
                steps_of = postings[nid] = array("q")
            if not steps_of or steps_of[-1] != step:
                steps_of.append(step)

    def flush_scope(scope: _Scope) -> tuple[int, int]:
        nonlocal values_written
        block = sorted(scope.changes)
        offset = values_written
        array("q", block).tofile(values_out)
        values_written += len(block)
        return offset, len(block)

    def close_call(thread: int) -> None:
        index, scope = stacks[thread].pop()
        calls.end[index] = steps - 1  # start - 1 for a frame without a step of its own
        if scope.changes:
            offset, count = flush_scope(scope)
            calls.values_at[index] = offset
            calls.values_count[index] = count

    with open(os.path.join(directory, "steps.bin"), "wb") as steps_out, values_out:
        numbered = reader.raw_lines()
        op_prefix, event_member = OP_PREFIX, EVENT_MEMBER  # (format.lines.is_plain_op, inline)
        values_mark, gas_member, hash_field = VALUES_MARK, GAS_MEMBER, HASH_FIELD
        for batch in iter(lambda: list(itertools.islice(numbered, 8192)), []):
            for number, raw in batch:
                if number == 1:
                    continue
                site = None
                if (raw.startswith(op_prefix) and event_member not in raw  # is_plain_op
                        and values_mark not in raw and b"\\" not in raw):
                    # A plain op line (no event) without values (no locals or globals):
                    # the lines of one site differ only in gas and hash, so what the
                    # tables need of it is known once the site was decoded once.
                    gas = raw.find(gas_member)
                    end = raw.find(b'"', gas + 7)
                    tail = raw.rfind(hash_field)
                    if 0 < gas < end < tail:
                        site = raw[:gas] + raw[end:tail]
                        fast = fast_sites.get(site)
                        if fast is not None:
                            where, frame_line, rec_tail = fast
                            gas_text = raw[gas + 7:end]
                            if not (where == last_step and gas_text == last_gas):
                                last_step, last_gas = where, gas_text
                                if frame_line != last_frame_line:
                                    last_frame_line = frame_line
                                    count_hit(frame_line)
                                buffer.append(pack_line(number & _U32))
                                buffer.append(rec_tail)
                                steps += 1
                            continue  # (a merged plain op line adds nothing)
                line = reader.decode(number, raw)
                kind = type(line)
                if kind is OpLine or kind is ExceptionLine:
                    assert isinstance(line, OpLine | ExceptionLine)
                    where = (line.pc, line.depth, line.code, line.thread)
                    thread = 1 if line.thread is None else line.thread  # before a 2nd: 1
                    tid = threads.get(thread)
                    if tid is None:
                        tid = threads[thread] = len(threads)
                    frame_line = (tid, line.depth, line.code, line.line)
                    rec_tail = pack_tail(line.code & _U32, line.line & _U32,
                                         min(line.depth, 0xFFFF), min(tid, 0xFFFF))
                    if site is not None and len(fast_sites) < _SITES:
                        fast_sites[site] = (where, frame_line, rec_tail)
                    gas_text = line.gas.encode("utf-8", "surrogatepass")
                    if where == last_step and (kind is ExceptionLine or gas_text == last_gas):
                        at = steps - 1  # it belongs to the step before, as diff merges lines
                    else:
                        at = steps
                        steps += 1
                        last_step, last_gas = where, gas_text
                        if frame_line != last_frame_line:
                            last_frame_line = frame_line
                            count_hit(frame_line)
                        buffer.append(pack_line(number & _U32))
                        buffer.append(rec_tail)
                    if kind is ExceptionLine:
                        if not exceptions or exceptions[-1] != at:
                            exceptions.append(at)
                        continue
                    assert isinstance(line, OpLine)
                    if line.locals is None and line.globals is None:
                        continue
                    has_values = True
                    values = _raw_values.decode(raw)
                    if values.locals is not None:
                        stack = stacks.get(tid)
                        if stack:
                            record(stack[-1][1], values.locals, at)
                    if values.globals is not None:
                        file = codes.get(line.code, ("", ""))[1]
                        scope = module_scopes.get(file)
                        if scope is None:
                            scope = module_scopes[file] = _Scope()
                        record(scope, values.globals, at)
                    continue
                last_frame_line = None  # a call or return: the next step is counted afresh
                if kind is CallLine:
                    assert isinstance(line, CallLine)
                    thread = 1 if line.thread is None else line.thread  # before a 2nd: 1
                    tid = threads.get(thread)
                    if tid is None:
                        tid = threads[thread] = len(threads)
                    codes.setdefault(line.code, (line.name, line.file))
                    stack = stacks.setdefault(tid, [])
                    parent = stack[-1][0] if stack else -1
                    index = calls.add(steps, line.depth, line.code, tid, parent)
                    starts_of = code_calls.get(line.code)
                    if starts_of is None:
                        starts_of = code_calls[line.code] = array("q")
                    starts_of.append(steps)
                    stack.append((index, _Scope()))
                    last_line.pop((tid, line.depth), None)
                    if events:  # the call is a step, on the function's first line
                        last_step = None
                        count_hit((tid, line.depth, line.code, line.firstLine))
                        buffer.append(pack_line(number & _U32))
                        buffer.append(pack_tail(line.code & _U32, line.firstLine & _U32,
                                                min(line.depth, 0xFFFF), min(tid, 0xFFFF)))
                        steps += 1
                elif kind is ReturnLine:
                    assert isinstance(line, ReturnLine)
                    tid = threads.get(1 if line.thread is None else line.thread, 0)
                    if events:  # the return is a step, the last of its frame
                        last_step = None
                        buffer.append(pack_line(number & _U32))
                        buffer.append(pack_tail(line.code & _U32, 0, min(line.depth, 0xFFFF),
                                                min(tid, 0xFFFF)))
                        steps += 1
                    if stacks.get(tid):
                        close_call(tid)
                elif kind is SourceLine:
                    assert isinstance(line, SourceLine)
                    sources.setdefault(line.file, number)
                elif kind is Summary:
                    assert isinstance(line, Summary)
                    summary_line, summary = number, summary_object(line)
            if buffer:
                steps_out.write(b"".join(buffer))
                buffer.clear()
            if progress is not None:
                progress(number)
        for tid in list(stacks):
            while stacks[tid]:
                close_call(tid)
        globals_blocks = {}
        for file, scope in module_scopes.items():
            if scope.changes:
                globals_blocks[file] = flush_scope(scope)
    posting_lists = [postings.pop(nid, array("q")) for nid in range(len(names))]
    return _finish(
        directory, calls, posting_lists,
        steps=steps, lines=number, codes=codes, hits=hits, sources=sources,
        exceptions=exceptions, names=list(names), globals_blocks=globals_blocks,
        threads=[t for t, _ in sorted(threads.items(), key=lambda item: item[1])],
        has_values=has_values, summary_line=summary_line, summary=summary,
        code_calls={code: starts.tobytes() for code, starts in code_calls.items()},
    )


def _finish(
    directory: str, calls: CallTable, posting_lists: list[array[int]], **fields: Any
) -> tuple[_Meta, CallTable]:
    """Write the call table, the postings and the small tables into ``directory``."""
    calls.save(directory)
    posting_blocks = []
    with open(os.path.join(directory, "postings.bin"), "wb") as out:
        at = 0
        for steps_of in posting_lists:
            steps_of.tofile(out)
            posting_blocks.append((at, len(steps_of)))
            at += len(steps_of)
    meta = _Meta(schema=SCHEMA, calls=len(calls), postings=posting_blocks, **fields)
    with open(os.path.join(directory, "tables.msgpack"), "wb") as f:
        f.write(msgspec.msgpack.encode(meta))
    with contextlib.suppress(OSError):
        os.chmod(directory, 0o700)
    return meta, calls


def _build_native(
    native: Any, reader: TraceReader, directory: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[_Meta, CallTable]:
    """The tables by ``_ctables.TablesPass``: it reads the lines of the writer's
    usual shapes itself and leaves every other line here, where the format's
    Structs decode it and the pass is told what it says."""
    tables = native.TablesPass(MAX_LINE_BYTES, counts_events(reader))
    codes: dict[int, tuple[str, str]] = {}
    files: dict[str, int] = {}
    sources: dict[str, int] = {}
    summary_line = None
    summary = None
    number = 0  # the last line read

    def file_id(file: str) -> int:
        return files.setdefault(file, len(files))

    def members(values: dict[str, msgspec.Raw] | None) -> list[tuple[bytes, bytes]] | None:
        if values is None:
            return None
        return [(name.encode("utf-8", "surrogatepass"), bytes(text))
                for name, text in values.items()]

    with (open(os.path.join(directory, "steps.bin"), "wb") as steps_out,
          open(os.path.join(directory, "values.bin"), "wb") as values_out):
        try:
            for buf in complete_lines(reader):
                pos = 0
                while True:
                    stop, pos, following = tables.feed(buf, pos, number + 1)
                    number = following - 1
                    if not stop:
                        break
                    end = buf.index(b"\n", pos) + 1
                    raw = buf[pos:end]
                    pos = end
                    number += 1
                    if len(raw) > MAX_LINE_BYTES:
                        raise LineTooLongError(number, MAX_LINE_BYTES)
                    if number == 1:
                        continue
                    line = reader.decode(number, raw)
                    kind = type(line)
                    if kind is OpLine or kind is ExceptionLine:
                        assert isinstance(line, OpLine | ExceptionLine)
                        locals_ = globals_ = None
                        module = 0
                        if kind is OpLine and (line.locals is not None  # type: ignore[union-attr]
                                               or line.globals is not None):  # type: ignore[union-attr]
                            values = _raw_values.decode(raw)
                            locals_, globals_ = members(values.locals), members(values.globals)
                            if globals_ is not None:
                                module = file_id(codes.get(line.code, ("", ""))[1])
                        tables.op(number, line.pc, line.depth, line.code, line.line,
                                  _NO_THREAD if line.thread is None else line.thread,
                                  line.gas.encode("utf-8", "surrogatepass"),
                                  kind is ExceptionLine, locals_, globals_, module)
                    elif kind is CallLine:
                        assert isinstance(line, CallLine)
                        if line.code not in codes:
                            codes[line.code] = (line.name, line.file)
                            tables.code(line.code, file_id(line.file))
                        tables.call(number, _NO_THREAD if line.thread is None else line.thread,
                                    line.depth, line.code, line.firstLine)
                    elif kind is ReturnLine:
                        assert isinstance(line, ReturnLine)
                        tables.ret(number, _NO_THREAD if line.thread is None else line.thread,
                                   line.depth, line.code)
                    else:
                        tables.other()
                        if kind is SourceLine:
                            assert isinstance(line, SourceLine)
                            sources.setdefault(line.file, number)
                        elif kind is Summary:
                            assert isinstance(line, Summary)
                            summary_line, summary = number, summary_object(line)
                step_bytes, value_bytes = tables.take()
                steps_out.write(step_bytes)
                values_out.write(value_bytes)
                if progress is not None:
                    progress(number)
        except LineTooLongError:
            number += 1
            raise TraceError(reader.path, number,
                             f"line {number} is longer than {size_text(MAX_LINE_BYTES)}") from None
        module_blocks = tables.finish()
        step_bytes, value_bytes = tables.take()
        steps_out.write(step_bytes)
        values_out.write(value_bytes)
    (steps, columns, hit_list, name_list, posting_bytes, code_call_list, exception_bytes,
     thread_list, has_values) = tables.result()
    calls = CallTable()
    for name in CallTable._ARRAYS:
        wide = array("q")
        wide.frombytes(columns[name])
        column = getattr(calls, name)
        column.extend(wide) if column.typecode == "q" else column.fromlist(wide.tolist())
    for index, thread in enumerate(calls.thread):
        calls.by_thread.setdefault(thread, array("Q")).append(index)
    hits: dict[int, dict[int, int]] = {}
    for code, lineno, count in hit_list:
        hits.setdefault(code, {})[lineno] = count
    file_of = {fid: file for file, fid in files.items()}
    exceptions = array("q")
    exceptions.frombytes(exception_bytes)
    posting_lists = []
    for data in posting_bytes:
        steps_of = array("q")
        steps_of.frombytes(data)
        posting_lists.append(steps_of)
    return _finish(
        directory, calls, posting_lists,
        steps=steps, lines=number, codes=codes, hits=hits, sources=sources,
        exceptions=exceptions.tolist(),
        names=[name.decode("utf-8", "surrogatepass") for name in name_list],
        globals_blocks={file_of[fid]: (offset, count) for fid, offset, count in module_blocks},
        threads=thread_list, has_values=bool(has_values), summary_line=summary_line,
        summary=summary,
        code_calls=dict(code_call_list),
    )
