"""Bounded, side-effect-free rendering of the traced program's values.

Tracing must not change the program, so rendering never calls code of the
program: only exact builtin types are looked into (a ``list`` subclass may
override ``__iter__``; an exact ``list`` cannot), everything else is shown as
``<TypeName #n>`` with a per-trace number for the object (``<TypeName>`` when it
cannot be weakly referenced: see ``Renderer``).  ``use_repr=True``
opts in to calling ``repr`` -- bounded and guarded, but then the program's
``__repr__`` does run.  ``render`` never raises.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from blocktrace import no_raise

__all__ = ["Renderer"]

JSONValue = None | bool | int | float | str | list[Any] | dict[str, Any]

_MAX_INT = 2**63


class Renderer:
    """Renders values for one trace; object numbers are stable within it.

    An object is numbered when first shown, in order (``<Type #n>``), and keeps
    its number while it lives.  Objects are not kept alive (that would change the
    program: ``__del__`` timing, weak references), so the table is keyed by
    ``id()`` and each numbered object gets one weak reference whose callback
    forgets its entry when it dies: an object that later takes the dead one's
    address gets the next fresh number.  The numbers are then a function of what
    the program did (which distinct objects were shown, in which order), not of
    where the allocator put them.

    An object that cannot be weakly referenced (its type has no weak reference
    slot: ``__slots__`` without ``__weakref__``, named tuples, subclasses of
    ``int``/``str``/``tuple`` such as ``IntEnum`` members, builtin iterators,
    ``object()``) is shown as ``<Type>``, without a number: whether one at a known
    address is still the object that was numbered cannot be told without keeping
    it alive, and a number that may be a dead object's would make traces of the
    same behaviour differ from run to run.

    To keep memory bounded the table is forgotten after ``max_numbers`` live
    numbered objects; numbering goes on from where it was, so an object seen
    again after that gets a new, still unique, number.
    """

    max_numbers = 1_000_000

    # Slots (and a dict for the rest, such as an instance's own max_numbers): the
    # C renderer (tracers/csrc/values.c) reads ``_shared`` at its slot's offset
    # at every line start, without a lookup.
    __slots__ = ("__dict__", "_deaths", "_forget", "_next", "_numbers", "_shared", "_watches")

    def __init__(
        self,
        *,
        max_str: int = 200,
        max_items: int = 20,
        max_depth: int = 3,
        use_repr: bool = False,
    ) -> None:
        self._numbers: dict[int, int] = {}
        """id -> number of the live numbered objects (the C renderer reads it)."""
        self._watches: dict[int, _Watch] = {}
        """id -> the weak reference whose callback forgets that id's number."""
        self._next = 1
        self._deaths = [0]
        """How many numbered objects died (and table clears): while it stays, an
        object at a known address is the one numbered there (the C renderer keeps
        a list's text by its items' identities only while it stays)."""
        self._limits = (max_str, max_items, max_depth, use_repr)
        numbers, watches, deaths = self._numbers, self._watches, self._deaths

        def forget(watch: _Watch) -> None:
            # Called as the object dies (on whatever thread, before its memory can
            # be reused), so never for a newer object at the same address.
            # Nothing here may raise: it would be printed as the program's.
            key = watch.key
            if watches.get(key) is watch:
                del watches[key]
                numbers.pop(key, None)
                deaths[0] += 1

        no_raise.CODE.add(forget.__code__)  # a program's handler never raises in it
        self._forget = forget

    @property
    def _limits(self) -> tuple[int, int, int, bool]:
        """The bounds in one tuple: max_str, max_items, max_depth, use_repr."""
        return self._shared[0]

    @_limits.setter
    def _limits(self, value: tuple[int, int, int, bool]) -> None:
        # what the C renderer (tracers/csrc/values.c) reads in one go: the bounds,
        # the number table and the deaths' list (the last two are never rebound)
        self._shared = (value, self._numbers, self._deaths)

    @property
    def max_str(self) -> int:
        """Characters of a string shown (then ``…``); a text is cut at 4x this."""
        return self._shared[0][0]

    @max_str.setter
    def max_str(self, value: int) -> None:
        self._limits = (value, *self._limits[1:])

    @property
    def max_items(self) -> int:
        """Items of a container shown (then ``…N more``)."""
        return self._shared[0][1]

    @max_items.setter
    def max_items(self, value: int) -> None:
        self._limits = (self._limits[0], value, *self._limits[2:])

    @property
    def max_depth(self) -> int:
        """Containers nested this deep are looked into (deeper: ``[…]``)."""
        return self._shared[0][2]

    @max_depth.setter
    def max_depth(self, value: int) -> None:
        self._limits = (*self._limits[:2], value, self._limits[3])

    @property
    def use_repr(self) -> bool:
        """Other objects are shown by their (guarded, bounded) ``repr``."""
        return self._shared[0][3]

    @use_repr.setter
    def use_repr(self, value: bool) -> None:
        self._limits = (*self._limits[:3], value)

    def object_number(self, obj: object) -> int | None:
        """The per-trace number of ``obj`` (assigned on first sight), or None for
        an object that cannot be weakly referenced (see the class)."""
        key = id(obj)
        n = self._numbers.get(key)
        if n is None:
            if not _weakref_offset(type(obj)):
                return None
            watch = _Watch(obj, self._forget)  # never the object itself: it may die
            watch.key = key
            if len(self._numbers) >= self.max_numbers:
                self._numbers.clear()
                self._watches.clear()  # (dropped weak references call nobody)
                self._deaths[0] += 1
            self._watches[key] = watch
            n = self._numbers[key] = self._next
            self._next += 1
        return n

    def render(self, value: object) -> JSONValue:
        """A JSON-able rendering of ``value``: scalars natively, the rest as text."""
        try:
            t = type(value)
            if value is None or t is bool:
                return value  # type: ignore[return-value]
            if t is int:
                return value if -_MAX_INT < value < _MAX_INT else self.text(value)  # type: ignore[operator,return-value]
            if t is float:
                return value if math.isfinite(value) else self.text(value)  # type: ignore[arg-type,return-value]
            return self.text(value)
        except BaseException as exc:
            if not isinstance(exc, RecursionError) and _belongs_to_program(exc):
                raise
            return "<unrenderable>"

    def text(self, value: object) -> str:
        """``repr``-like text of ``value``, bounded; never runs program code
        unless ``use_repr`` is set."""
        try:
            out: list[str] = []
            self._text(value, out, self.max_depth)
            s = "".join(out)
        except BaseException as exc:
            if not isinstance(exc, RecursionError) and _belongs_to_program(exc):
                raise
            return f"<{_type_name(value)} unrenderable>"
        if len(s) > self.max_str * 4:
            s = s[: self.max_str * 4] + "…"
        return s

    def _text(self, v: object, out: list[str], depth: int) -> None:
        t = type(v)
        if v is None or t is bool or t is float or t is complex:
            out.append(repr(v))
        elif t is int:
            if v.bit_length() <= 128:  # type: ignore[attr-defined]
                out.append(repr(v))
            else:
                out.append(f"<int {v.bit_length()} bits>")  # type: ignore[attr-defined]
        elif t is str or t is bytes or t is bytearray:
            s = v[: self.max_str]  # type: ignore[index]
            out.append(repr(s))
            if len(v) > self.max_str:  # type: ignore[arg-type]
                out.append("…")
        elif t is list or t is tuple or t is set or t is frozenset:
            self._seq(v, t, out, depth)
        elif t is dict:
            self._dict(v, out, depth)  # type: ignore[arg-type]
        elif t is range:
            out.append(repr(v))
        elif self.use_repr:
            self._repr(v, out)
        else:
            out.append(_numbered(v, self.object_number(v), ">"))

    def _seq(self, v: Any, t: type, out: list[str], depth: int) -> None:
        if t is list:
            opener, closer = "[", "]"
        elif t is tuple:
            opener, closer = "(", ",)" if len(v) == 1 else ")"
        elif not v:
            out.append("set()" if t is set else "frozenset()")
            return
        else:
            opener, closer = ("{", "}") if t is set else ("frozenset({", "})")
        if depth <= 0:
            out.append(f"{opener}…{closer}")
            return
        out.append(opener)
        # Iterating an exact builtin container runs no program code.
        for i, item in enumerate(t.__iter__(v)):  # type: ignore[attr-defined]
            if i:
                out.append(", ")
            if i >= self.max_items:
                out.append(f"…{len(v) - i} more")
                break
            self._text(item, out, depth - 1)
        out.append(closer)

    def _dict(self, v: dict[Any, Any], out: list[str], depth: int) -> None:
        if depth <= 0:
            out.append("{…}")
            return
        out.append("{")
        for i, (k, item) in enumerate(dict.items(v)):
            if i:
                out.append(", ")
            if i >= self.max_items:
                out.append(f"…{len(v) - i} more")
                break
            self._text(k, out, depth - 1)
            out.append(": ")
            self._text(item, out, depth - 1)
        out.append("}")

    def _repr(self, v: object, out: list[str]) -> None:
        try:
            s = repr(v)
            if type(s) is not str:
                raise TypeError
        except BaseException as exc:
            if not isinstance(exc, RecursionError) and _belongs_to_program(exc):
                raise
            out.append(_numbered(v, self.object_number(v), " repr failed>"))
            return
        if len(s) > self.max_str:
            s = s[: self.max_str] + "…"
        out.append(s)


_weakref_offset = type.__dict__["__weakrefoffset__"].__get__
"""A type's weak reference slot offset, 0 when it has none (read from the slot:
``type(obj).__weakrefoffset__`` could reach a metaclass's code); the C renderer
asks the same of ``tp_weaklistoffset``."""


class _Watch(weakref.ref):  # type: ignore[type-arg]
    """A weak reference that knows the id it numbers (its object's, once dead, is gone)."""

    __slots__ = ("key",)
    key: int


def _numbered(v: object, n: int | None, end: str) -> str:
    """``<Type #n`` + end, or ``<Type`` + end for an object without a number."""
    return f"<{_type_name(v)}{end}" if n is None else f"<{_type_name(v)} #{n}{end}"


def _belongs_to_program(exc: BaseException) -> bool:
    """Ctrl-C or the program's signal handler, not a value that will not render.
    (Callers leave RecursionError out before calling: at the recursion limit
    the call itself would fail, and the value is just unrenderable.)"""
    from blocktrace.tracers import belongs_to_program

    return belongs_to_program(exc)


def _type_name(v: object) -> str:
    t = type(v)
    try:
        name = type.__getattribute__(t, "__qualname__")
        return name if type(name) is str else "object"
    except BaseException:
        return "object"
