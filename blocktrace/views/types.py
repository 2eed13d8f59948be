"""Runtime type tracing (PyTypes-style): the types values really had.

:class:`TypeTracer` records, per (file, class, function, line), the types of
parameters (at each call), return and yield values, locals (at each line start),
the globals a code object names, and instance members of methods' ``self``,
merged into unions across calls.  The :class:`TypeTable` is written as JSON
Lines or CSV and read back (tables from several runs merge), and turned into
annotations by :mod:`blocktrace.views.stubs`.

A type is its module and qualified name (module ``None`` for builtins); exact
``list``/``set``/``frozenset``/``dict``/``tuple`` values also carry their element
types from a bounded sample, as MonkeyType users expect (``list[int]``).
Nothing here calls the program's code: values are only looked at through
``type()`` and by iterating exact builtin containers.

The loop optimisation (``loop_limit=K``, on by default): once the types seen at
a line start have not changed for K visits, that instruction site answers
``sys.monitoring.DISABLE`` and costs nothing more; the next call of a function
with switched-off sites calls ``vm.restart_events()`` so new types in later
calls are still seen.  A restart is global (CPython re-arms every site), so when
restarts of a function keep finding nothing new, the calls between them double,
up to :data:`MAX_INTERVAL`; a new type resets that.  ``loop_limit=None`` turns
the optimisation off.  Instructions that do not start a line are switched off
at once: this tracer never needs them.
"""

from __future__ import annotations

import csv
import inspect
import io
import os
import sys
from collections.abc import Iterable
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, ModuleType
from typing import Any, Literal

import msgspec

from blocktrace.events import CallStart, OpStart, Return, TraceEvent
from blocktrace.limits import MAX_TABLE_BYTES, read_small_file
from blocktrace.tracers import VMState

__all__ = [
    "RowKind",
    "TypeRef",
    "TypeRow",
    "TypeTable",
    "TypeTracer",
    "format_type",
    "format_union",
    "read_tables",
    "type_of",
]

RowKind = Literal["param", "return", "yield", "local", "global", "member"]

_DISABLE: Any = sys.monitoring.DISABLE
_SAMPLE = 8
MAX_INTERVAL = 64
"""Most calls between two restarts of a function whose restarts keep finding nothing."""
_GENERIC = (list, set, frozenset, dict, tuple)
_CO_GENERATOR = inspect.CO_GENERATOR
_CO_COROUTINE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
_CO_VARARGS = inspect.CO_VARARGS
_CO_VARKEYWORDS = inspect.CO_VARKEYWORDS
_SKIPPED_GLOBALS = frozenset({ModuleType, FunctionType, BuiltinFunctionType})


class TypeRef(msgspec.Struct, frozen=True, omit_defaults=True):
    """A type as recorded: ``module`` (``None`` for builtins), qualified ``name``,
    and for builtin containers the element types (``args``)."""

    module: str | None
    name: str
    args: tuple[TypeRef, ...] = ()
    variadic: bool = False
    """``tuple[X, ...]`` rather than a fixed-length tuple."""


class TypeRow(msgspec.Struct, rename={"cls": "class"}):
    """One table row: every type seen for one name at one place."""

    file: str
    cls: str | None
    function: str
    line: int
    kind: RowKind
    name: str
    types: list[TypeRef]
    counts: list[int]
    """How often each of ``types`` was seen."""


_RowKey = tuple[str, str | None, str, int, str, str]


def _type_attr(t: type, attr: str) -> object:
    try:
        return type.__getattribute__(t, attr)
    except BaseException:  # a metaclass may do anything
        return None


_ref_cache: dict[type, TypeRef] = {}


def _plain_ref(t: type) -> TypeRef:
    ref = _ref_cache.get(t)
    if ref is None:
        module = _type_attr(t, "__module__")
        name = _type_attr(t, "__qualname__")
        ref = TypeRef(
            module if isinstance(module, str) and module != "builtins" else None,
            name if isinstance(name, str) else "object",
        )
        _ref_cache[t] = ref
    return ref


def _union_args(items: Iterable[object], depth: int) -> tuple[TypeRef, ...]:
    seen: list[TypeRef] = []
    for i, item in enumerate(items):
        if i >= _SAMPLE:
            break
        ref = type_of(item, depth)
        if ref not in seen:
            seen.append(ref)
    return tuple(sorted(seen, key=_sort_key))


def type_of(value: object, depth: int = 2) -> TypeRef:
    """The recorded type of ``value``; exact builtin containers get element types
    from their first few items (iterating them runs no program code)."""
    t = type(value)
    if t not in _GENERIC or depth <= 0 or not value:
        return _plain_ref(t)
    base = _plain_ref(t)
    if t is dict:
        keys = _union_args(dict.keys(value), depth - 1)  # type: ignore[arg-type]
        values = _union_args(dict.values(value), depth - 1)  # type: ignore[arg-type]
        return TypeRef(None, "dict", (_one(keys), _one(values)))
    if t is tuple:
        if len(value) <= 4:  # type: ignore[arg-type]
            return TypeRef(None, "tuple", tuple(type_of(v, depth - 1) for v in value))  # type: ignore[attr-defined]
        return TypeRef(None, "tuple", (_one(_union_args(value, depth - 1)),), variadic=True)  # type: ignore[arg-type]
    return TypeRef(None, base.name, (_one(_union_args(value, depth - 1)),))  # type: ignore[arg-type]


_UNION = "|"


def _one(refs: tuple[TypeRef, ...]) -> TypeRef:
    """Several element types as one ``TypeRef``: a union is spelled with name ``|``."""
    if len(refs) == 1:
        return refs[0]
    return TypeRef(None, _UNION, refs)


def _sort_key(ref: TypeRef) -> tuple[int, str, str, str]:
    none_last = 1 if ref.module is None and ref.name == "NoneType" else 0
    return (none_last, ref.module or "", ref.name, format_type(ref) if ref.args else "")


def format_type(ref: TypeRef, local_module: str | None = None) -> str:
    """Annotation text for one type: builtins bare, ``NoneType`` as ``None``,
    other modules qualified (types of ``local_module`` bare)."""
    if ref.name == _UNION:
        return " | ".join(format_type(a, local_module) for a in ref.args)
    if ref.module is None:
        name = "None" if ref.name == "NoneType" else ref.name
    elif ref.module == local_module:
        name = ref.name
    else:
        name = f"{ref.module}.{ref.name}"
    if ref.args:
        inner = ", ".join(format_type(a, local_module) for a in ref.args)
        if ref.variadic:
            inner += ", ..."
        return f"{name}[{inner}]"
    return name


def format_union(refs: Iterable[TypeRef], local_module: str | None = None) -> str:
    """Annotation text for a union of recorded types; a bare container is dropped
    when a parameterised one of the same type is present (an empty list next to
    ``list[int]``)."""
    refs = sorted(set(refs), key=_sort_key)
    with_args = {(r.module, r.name) for r in refs if r.args}
    kept = [r for r in refs if r.args or (r.module, r.name) not in with_args]
    parts: list[str] = []
    for r in kept:
        text = format_type(r, local_module)
        if text not in parts:
            parts.append(text)
    return " | ".join(parts) if parts else "object"


class TypeTable:
    """The merged observations: row key -> {type: count}."""

    def __init__(self) -> None:
        self._rows: dict[_RowKey, dict[TypeRef, int]] = {}

    def slot(
        self, file: str, cls: str | None, function: str, line: int, kind: str, name: str
    ) -> dict[TypeRef, int]:
        """The (live) type counts of one row, created empty when new."""
        key = (file, cls, function, line, kind, name)
        slot = self._rows.get(key)
        if slot is None:
            slot = self._rows[key] = {}
        return slot

    def add(
        self,
        file: str,
        cls: str | None,
        function: str,
        line: int,
        kind: str,
        name: str,
        ref: TypeRef,
        count: int = 1,
    ) -> None:
        slot = self.slot(file, cls, function, line, kind, name)
        slot[ref] = slot.get(ref, 0) + count

    def merge(self, other: TypeTable) -> None:
        """Add ``other``'s observations to this table."""
        for key, slot in other._rows.items():
            mine = self._rows.setdefault(key, {})
            for ref, n in slot.items():
                mine[ref] = mine.get(ref, 0) + n

    def rows(self) -> list[TypeRow]:
        out = []
        def order(item: tuple[_RowKey, dict[TypeRef, int]]) -> tuple[str, int, str, str, str]:
            file, _, function, line, kind, name = item[0]
            return (file, line, function, kind, name)

        for (file, cls, function, line, kind, name), slot in sorted(self._rows.items(), key=order):
            if not slot:
                continue
            refs = sorted(slot, key=_sort_key)
            out.append(
                TypeRow(
                    file, cls, function, line, kind,  # type: ignore[arg-type]
                    name, refs, [slot[r] for r in refs],
                )
            )
        return out

    def __len__(self) -> int:
        return sum(1 for slot in self._rows.values() if slot)

    # -- files ----------------------------------------------------------------

    def to_jsonl(self) -> bytes:
        encoder = msgspec.json.Encoder()
        buf = bytearray()
        for row in self.rows():
            encoder.encode_into(row, buf, len(buf))
            buf += b"\n"
        return bytes(buf)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["file", "class", "function", "line", "kind", "name", "types", "counts"])
        for row in self.rows():
            writer.writerow(
                [
                    row.file, row.cls or "", row.function, row.line, row.kind, row.name,
                    " | ".join(_qualified(r) for r in row.types),
                    " ".join(str(n) for n in row.counts),
                ]
            )
        return out.getvalue()

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write as CSV when ``path`` ends in ``.csv``, else as JSON Lines."""
        p = os.fspath(path)
        if p.endswith(".csv"):
            with open(p, "w", encoding="utf-8", newline="") as f:
                f.write(self.to_csv())
        else:
            with open(p, "wb") as f:
                f.write(self.to_jsonl())

    @classmethod
    def read_jsonl(cls, data: bytes, source: str = "<table>") -> TypeTable:
        """A table from JSON Lines bytes; a bad line raises ``ValueError`` naming it."""
        table = cls()
        decoder = msgspec.json.Decoder(TypeRow)
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = decoder.decode(line)
            except msgspec.ValidationError as exc:
                raise ValueError(f"{source}:{number}: not a type table row: {exc}") from None
            except msgspec.DecodeError as exc:
                raise ValueError(f"{source}:{number}: not JSON: {exc}") from None
            except RecursionError:
                raise ValueError(f"{source}:{number}: nested too deeply") from None
            if len(row.counts) != len(row.types):
                raise ValueError(f"{source}:{number}: types and counts differ in length")
            if any(_nesting(ref) > MAX_TYPE_NESTING for ref in row.types):
                raise ValueError(
                    f"{source}:{number}: a type nested more than {MAX_TYPE_NESTING} deep "
                    "(the recorder never writes one)"
                )
            slot = table.slot(row.file, row.cls, row.function, row.line, row.kind, row.name)
            for ref, n in zip(row.types, row.counts, strict=True):
                slot[ref] = slot.get(ref, 0) + n
        return table

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> TypeTable:
        """The table in a ``.jsonl`` file; ``OSError``, or ``ValueError`` naming
        the problem (a bad row, a file over ``MAX_TABLE_BYTES``)."""
        data = read_small_file(path, MAX_TABLE_BYTES, "a type table")
        return cls.read_jsonl(data, os.fspath(path))


MAX_TYPE_NESTING = 16
"""How deep a type read from a table may nest (``type_of`` records two levels of
element types); deeper ones would only exhaust the stack of what formats them."""


def _nesting(ref: TypeRef) -> int:
    """How deep ``ref``'s element types nest (1: no elements), without recursion."""
    deepest, todo = 0, [(ref, 1)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((arg, depth + 1) for arg in item.args)
    return deepest


def _qualified(ref: TypeRef) -> str:
    return format_type(ref, None)


# -- the tracer -----------------------------------------------------------------


def _class_of(qualname: str) -> str | None:
    """``A.f`` -> ``A``; ``f`` and ``outer.<locals>.f`` -> ``None``."""
    head, _, _ = qualname.rpartition(".")
    if not head or head.endswith("<locals>"):
        return None
    return head


class _CodeInfo:
    """Per code object, computed once."""

    __slots__ = (
        "calls_waiting", "cls", "code", "disabled", "file", "found_new", "function", "globals",
        "interval", "is_async", "is_gen", "is_module", "line_of", "params", "self_name", "stable",
    )

    def __init__(self, code: CodeType) -> None:
        self.code = code
        self.file = code.co_filename
        self.function = code.co_qualname
        self.cls = _class_of(code.co_qualname)
        self.is_module = code.co_name == "<module>"
        flags = code.co_flags
        self.is_async = bool(flags & _CO_COROUTINE)
        self.is_gen = bool(flags & _CO_GENERATOR)
        n = code.co_argcount + code.co_kwonlyargcount
        n += bool(flags & _CO_VARARGS) + bool(flags & _CO_VARKEYWORDS)
        self.params = code.co_varnames[:n]
        self.self_name = (
            self.params[0] if self.cls is not None and code.co_argcount and self.params else None
        )
        self.globals = tuple(n for n in dict.fromkeys(code.co_names) if not n.startswith("__"))
        self.line_of: dict[int, int] = {}
        for start, end, line in code.co_lines():
            for off in range(start, end, 2):
                self.line_of[off] = line or code.co_firstlineno
        self.stable: dict[int, int] = {}
        """line-start offset -> visits without a new type"""
        self.disabled = False
        self.found_new = False
        """A new type was seen in this code since its last restart."""
        self.interval = 1
        """Restart after this many calls (doubles while restarts find nothing new)."""
        self.calls_waiting = 0


def _skip_global(value: object) -> bool:
    """Modules, functions and classes named as globals say nothing about types."""
    t = type(value)
    return t in _SKIPPED_GLOBALS or issubclass(t, type)


class TypeTracer:
    """Collects a :class:`TypeTable` from a traced run (see the module docstring).

    ``loop_limit``: visits of a line start without a new type before the site is
    switched off until the next call (``None``: never).  ``locals``/``globals``/
    ``members``: which kinds to record besides parameters and return values.
    """

    may_disable = True

    def __init__(
        self,
        *,
        loop_limit: int | None = 8,
        locals: bool = True,
        globals: bool = True,
        members: bool = True,
        table: TypeTable | None = None,
    ) -> None:
        self.table = table if table is not None else TypeTable()
        self.loop_limit = loop_limit
        self.record_locals = locals
        self.record_globals = globals
        self.record_members = members
        self._infos: dict[int, _CodeInfo] = {}
        self._disabled_since_restart = False
        self.restarts = 0
        self.line_visits = 0

    def _info(self, code: CodeType) -> _CodeInfo:
        info = self._infos.get(id(code))
        if info is None:
            info = self._infos[id(code)] = _CodeInfo(code)
        return info

    def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
        if type(event) is OpStart:
            if not event.line_start:
                return _DISABLE
            code = vm.code
            if code is None:
                return None
            info = self._infos.get(id(code)) or self._info(code)
            return self._line(vm, info, event.pc)
        if type(event) is CallStart:
            code = vm.code
            if code is not None:
                self._call(vm, self._info(code), event)
        elif type(event) is Return:
            code = vm.code
            if code is not None:
                self._return(vm, self._info(code), event)
        return None

    def _observe(
        self, info: _CodeInfo, line: int, kind: str, name: str, value: object, count: bool = True
    ) -> bool:
        """Record one value; True when its type was new for that row (without
        ``count``, a type already there is not counted again)."""
        ref = type_of(value)
        slot = self.table.slot(info.file, info.cls, info.function, line, kind, name)
        n = slot.get(ref)
        if n is None:
            slot[ref] = 1
            info.found_new = True
            return True
        if count:
            slot[ref] = n + 1
        return False

    def _line(self, vm: VMState, info: _CodeInfo, pc: int) -> object:
        self.line_visits += 1
        limit = self.loop_limit
        if limit is not None and info.stable.get(pc, 0) >= limit:
            info.disabled = True
            self._disabled_since_restart = True
            return _DISABLE
        frame = vm.frame
        if frame is None:
            return None
        changed = self._sample(info, frame, info.line_of.get(pc, 0))
        if limit is None:
            return None
        if changed:
            info.stable[pc] = 0
            return None
        n = info.stable[pc] = info.stable.get(pc, 0) + 1
        if n >= limit:
            info.disabled = True
            self._disabled_since_restart = True
            return _DISABLE
        return None

    def _sample(self, info: _CodeInfo, frame: FrameType, line: int, count: bool = True) -> bool:
        """Record the frame's locals and the globals its code names, as they are
        when ``line`` starts (after the statement before it); True if a type was
        new."""
        changed = False
        if self.record_locals and not info.is_module:
            for name, value in frame.f_locals.items():
                if self._observe(info, line, "local", name, value, count):
                    changed = True
        if self.record_globals and info.globals:
            f_globals = frame.f_globals
            for name in info.globals:
                if name in f_globals:
                    value = f_globals[name]
                    if not _skip_global(value) and self._observe(
                        info, line, "global", name, value, count
                    ):
                        changed = True
        return changed

    def _call(self, vm: VMState, info: _CodeInfo, event: CallStart) -> None:
        if info.disabled and self._disabled_since_restart:
            info.calls_waiting += 1
            if info.calls_waiting >= info.interval:
                # a restart that found nothing new in this code: wait longer next time
                info.interval = 1 if info.found_new else min(info.interval * 2, MAX_INTERVAL)
                info.found_new = False
                info.calls_waiting = 0
                for other in self._infos.values():
                    other.disabled = False
                info.stable.clear()
                self._disabled_since_restart = False
                self.restarts += 1
                vm.restart_events()
        elif info.stable:
            info.stable.clear()
        if event.kind != "call" or not info.params:
            return
        frame = vm.frame
        if frame is None:
            return
        f_locals = frame.f_locals
        line = info.code.co_firstlineno
        for name in info.params:
            if name in f_locals:
                self._observe(info, line, "param", name, f_locals[name])

    def _return(self, vm: VMState, info: _CodeInfo, event: Return) -> None:
        if event.kind == "unwind":
            return
        line = info.line_of.get(event.pc, info.code.co_firstlineno)
        if event.kind == "return" and not info.disabled:
            # the state after the last statement, which no line start shows (a
            # module's last assignment, a function's before an implicit return):
            # new types only, so the counts stay those of the line starts; not
            # while the code's lines are switched off as stable
            frame = vm.frame
            if frame is not None:
                self._sample(info, frame, line, count=False)
        if info.is_module:
            return
        if event.kind == "yield":
            if not info.is_async:
                self._observe(info, line, "yield", "", event.value)
            return
        self._observe(info, line, "return", "", event.value)
        if self.record_members and info.self_name is not None:
            frame = vm.frame
            if frame is not None:
                self._members(info, frame)

    def _members(self, info: _CodeInfo, frame: FrameType) -> None:
        obj = frame.f_locals.get(info.self_name)  # type: ignore[arg-type]
        if obj is None or issubclass(type(obj), type):
            return
        try:
            attrs = object.__getattribute__(obj, "__dict__")
        except BaseException:  # no __dict__ (slots) or a strange object
            return
        if type(attrs) is not dict:
            return
        line = info.code.co_firstlineno
        for name, value in dict.items(attrs):
            if type(name) is str:
                self._observe(info, line, "member", name, value)


def read_tables(paths: Iterable[str | os.PathLike[str]]) -> TypeTable:
    """Several JSONL tables merged into one."""
    table = TypeTable()
    for p in paths:
        table.merge(TypeTable.read(p))
    return table
