"""Encoding a program's values as Python Tutor-style stack variables and heap.

Nothing here may run the traced program's code: a ``list`` subclass can
override ``__iter__``, a class can define ``__getattr__`` or a ``__dict__``
property, a metaclass can define ``__qualname__``.  So containers are read
through the base type's own C methods (``list.copy``, ``dict.items``), instance
attributes through the builtin ``__dict__`` and slot descriptors only, and
names through ``type``'s own descriptors.  ``repr`` is only called on exact
builtin types whose ``repr`` is known to be plain.

Heap ids are small numbers keyed by ``id()``.  Objects are not kept alive (that
would change when the program's finalizers run), so an id is remembered with
the object's type: a dead object's address reused by an object of another type
gets a new id; one reused by the same type keeps the old id, as in Python Tutor.
"""

from __future__ import annotations

import contextlib
import math
import types
from collections import deque
from typing import Any

from blocktrace.snapshot.model import HeapObject

__all__ = ["HeapEncoder", "clean_text", "type_name"]

_TYPE_QUALNAME = type.__dict__["__qualname__"]
_TYPE_NAME = type.__dict__["__name__"]
_TYPE_MRO = type.__dict__["__mro__"]
_TYPE_DICT = type.__dict__["__dict__"]
_TYPE_BASES = type.__dict__["__bases__"]

_SHOWN_WHOLE = (bytes, bytearray, complex, range, slice, type(Ellipsis), type(NotImplemented))
"""Exact builtin types whose ``repr`` is plain and bounded by our cut."""


def type_name(tp: type) -> str:
    """``tp.__qualname__`` without consulting a metaclass."""
    try:
        name = _TYPE_QUALNAME.__get__(tp)
        return clean_text(name) if isinstance(name, str) else "?"
    except Exception:  # never raise while encoding
        return "?"


def clean_text(text: str) -> str:
    """``text`` made encodable as UTF-8: a lone surrogate (``"\\udcff"``, from
    ``os.fsdecode`` or a ``\\u`` escape) becomes its backslash escape."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _short(text: str, limit: int) -> str:
    return clean_text(text if len(text) <= limit else text[:limit] + "…")


def _instance_dict(obj: object) -> dict[str, Any] | None:
    """The instance ``__dict__`` through the builtin descriptor only."""
    try:
        for klass in _TYPE_MRO.__get__(type(obj)):
            descr = _TYPE_DICT.__get__(klass).get("__dict__")
            if descr is None:
                continue
            if type(descr) is types.GetSetDescriptorType:
                d = descr.__get__(obj)
                return d if type(d) is dict else None
            return None
    except Exception:
        return None
    return None


def _slot_values(obj: object, limit: int) -> list[tuple[str, object]]:
    """Values of ``__slots__`` members, through member descriptors only."""
    out: list[tuple[str, object]] = []
    try:
        for klass in _TYPE_MRO.__get__(type(obj)):
            for name, descr in _TYPE_DICT.__get__(klass).items():
                if type(descr) is types.MemberDescriptorType and len(out) < limit:
                    with contextlib.suppress(AttributeError):  # an unset slot
                        out.append((name, descr.__get__(obj)))
    except Exception:
        pass
    return out


class HeapEncoder:
    """Encodes values for one response; heap ids are stable across its steps.

    Call :meth:`value` for each variable of a step, then :meth:`heap` once to get
    the objects those values reach (breadth first, bounded).
    """

    def __init__(
        self, *, max_objects: int = 200, max_members: int = 50, max_str: int = 1000
    ) -> None:
        self.max_objects = max_objects
        self.max_members = max_members
        self.max_str = max_str
        self._ids: dict[int, tuple[int, type]] = {}
        self._pending: deque[object] = deque()
        self._queued: set[int] = set()

    def ref_id(self, obj: object) -> int:
        """The heap id of ``obj`` (assigned on first sight)."""
        key = id(obj)
        known = self._ids.get(key)
        tp = type(obj)
        if known is not None and known[1] is tp:
            return known[0]
        n = len(self._ids) + 1
        self._ids[key] = (n, tp)
        return n

    def value(self, obj: object) -> Any:
        """Encode ``obj``: native JSON for scalars, ``["REF", n]`` otherwise."""
        tp = type(obj)
        if obj is None or tp is bool or tp is int:
            return obj
        if tp is float:
            f: float = obj  # type: ignore[assignment]
            return f if math.isfinite(f) else ["SPECIAL_FLOAT", repr(f)]
        if tp is str:
            return _short(obj, self.max_str)  # type: ignore[arg-type]
        n = self.ref_id(obj)
        if n not in self._queued:
            self._queued.add(n)
            self._pending.append(obj)
        return ["REF", n]

    def heap(self) -> dict[str, HeapObject]:
        """The objects reached since the last call, keyed by id (as text)."""
        out: dict[str, HeapObject] = {}
        while self._pending:
            obj = self._pending.popleft()
            n = self.ref_id(obj)
            if len(out) >= self.max_objects:
                out[str(n)] = HeapObject(type=type_name(type(obj)), category="other", truncated=-1)
                continue
            try:
                out[str(n)] = self._encode(obj)
            except Exception as exc:  # never raise while encoding
                out[str(n)] = HeapObject(
                    type=type_name(type(obj)), category="other", value=f"<unreadable: {exc!r}>"
                )
        self._queued.clear()
        return out

    def _members(self, pairs: list[tuple[Any, object]], total: int) -> tuple[list[Any], int]:
        return [(k, self.value(v)) for k, v in pairs], max(0, total - len(pairs))

    def _encode(self, obj: Any) -> HeapObject:
        # issubclass(type(obj), X), not isinstance: isinstance falls back to
        # obj.__class__, which a metaclass or __getattribute__ can intercept.
        tp = type(obj)
        name = type_name(tp)
        cap = self.max_members
        if issubclass(tp, list):
            total = list.__len__(obj)
            first = list.__getitem__(obj, slice(0, cap))  # no copy of a huge list per step
            members, cut = self._members(list(enumerate(first)), total)
            return HeapObject(type=name, category="list", members=members, truncated=cut)
        if issubclass(tp, tuple):
            total = tuple.__len__(obj)
            head = tuple.__getitem__(obj, slice(0, cap))
            members, cut = self._members(list(enumerate(head)), total)
            return HeapObject(type=name, category="tuple", members=members, truncated=cut)
        if issubclass(tp, set | frozenset):
            base: Any = set if issubclass(tp, set) else frozenset
            total = base.__len__(obj)
            elements: list[object] = []
            for item in base.__iter__(obj):
                if len(elements) >= cap:
                    break
                elements.append(item)
            members, cut = self._members(list(enumerate(elements)), total)
            return HeapObject(type=name, category="set", members=members, truncated=cut)
        if issubclass(tp, dict):
            total = dict.__len__(obj)
            pairs: list[tuple[Any, object]] = []
            for k, v in dict.items(obj):
                if len(pairs) >= cap:
                    break
                pairs.append((self.value(k), v))
            members, cut = self._members(pairs, total)
            return HeapObject(type=name, category="dict", members=members, truncated=cut)
        if issubclass(tp, type):
            return self._encode_class(obj)
        if issubclass(tp, types.FunctionType):
            return HeapObject(type=name, category="function", name=_signature(obj.__code__))
        if issubclass(tp, types.MethodType):
            func = obj.__func__
            fname = _signature(func.__code__) if type(func) is types.FunctionType else None
            bound = [("self", self.value(obj.__self__))]
            return HeapObject(type=name, category="function", name=fname, members=bound)
        if issubclass(tp, types.BuiltinFunctionType):
            return HeapObject(type=name, category="function", name=clean_text(obj.__qualname__))
        if issubclass(tp, types.ModuleType):
            d = _instance_dict(obj)
            mname = d.get("__name__") if d is not None else None
            return HeapObject(
                type=name, category="module", name=clean_text(mname) if type(mname) is str else None
            )
        if tp in _SHOWN_WHOLE:
            return HeapObject(type=name, category="other", value=_short(repr(obj), self.max_str))
        attrs = _instance_dict(obj)
        slots = _slot_values(obj, cap)
        if attrs is None and not slots:
            return HeapObject(type=name, category="other")
        pairs2: list[tuple[Any, object]] = []
        total = len(slots)
        if attrs is not None:
            total += dict.__len__(attrs)
            for k, v in dict.items(attrs):
                if len(pairs2) >= cap:
                    break
                pairs2.append((clean_text(k) if type(k) is str else self.value(k), v))
        pairs2.extend(slots[: max(0, cap - len(pairs2))])
        members, cut = self._members(pairs2, total)
        return HeapObject(type=name, category="object", members=members, truncated=cut)

    def _encode_class(self, cls: type) -> HeapObject:
        pairs: list[tuple[Any, object]] = []
        total = 0
        for k, v in _TYPE_DICT.__get__(cls).items():
            dunder = type(k) is str and k.startswith("__") and k.endswith("__")
            if dunder and type(v) is not types.FunctionType:
                continue  # __module__, __doc__, __dict__ ...; __init__ is shown
            if type(v) in (types.GetSetDescriptorType, types.MemberDescriptorType):
                continue
            total += 1
            if len(pairs) < self.max_members:
                pairs.append((clean_text(k) if type(k) is str else self.value(k), v))
        members, cut = self._members(pairs, total)
        bases = ", ".join(type_name(b) for b in _TYPE_BASES.__get__(cls) if b is not object)
        own = clean_text(_TYPE_NAME.__get__(cls))
        label = f"{own}({bases})" if bases else own
        return HeapObject(
            type=type_name(type(cls)), category="class", name=label, members=members, truncated=cut
        )


def _signature(code: types.CodeType) -> str:
    """``name(a, b, *args, c, **kw)`` from the code object alone."""
    n_pos = code.co_argcount
    n_kw = code.co_kwonlyargcount
    names = list(code.co_varnames)
    params = names[:n_pos]
    i = n_pos + n_kw
    if code.co_flags & 0x04:  # CO_VARARGS
        params.append("*" + names[i])
        i += 1
    elif n_kw:
        params.append("*")
    params.extend(names[n_pos : n_pos + n_kw])
    if code.co_flags & 0x08:  # CO_VARKEYWORDS
        params.append("**" + names[i])
    return clean_text(f"{code.co_qualname}({', '.join(params)})")
