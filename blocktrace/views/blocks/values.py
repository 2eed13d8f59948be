"""Values as blocks show them, and as the standard trace renders them.

A block shows JSON values as they are and everything else rendered; the standard
trace (``save``) renders everything.  :class:`ValueViews` makes both in one pass
and keeps what lets unchanged values cost little: a module's globals are shown
again without being looked at while the module's dict has not changed, which a
dict watcher tells (``_cvalues.watch``; where it is not built, the names,
identities and types of the values are compared instead).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, cast

import msgspec

from blocktrace._native import extension

__all__ = ["ValueViews", "plain_values"]

_encode = msgspec.json.Encoder().encode

_c = extension("blocktrace.views.blocks._cvalues")
plain_values: Callable[[Any], dict[str, Any] | None] | None = (
    None if _c is None else _c.plain_values
)
"""A frame's locals as a new dict when every one shows the same in a block and
in the standard trace (numbers, None, bools), in C; else None (then
``ValueViews.values`` does it, one value at a time)."""
_watch: Callable[[dict[str, Any]], int | None] | None = (
    _c.watch if _c is not None and _c.WATCHING else None
)
"""Watch a dict for changes: the epoch now (see ``_cvalues.c``); None if not available."""
epoch: Callable[[], int] = _c.epoch if _c is not None else lambda: 0
"""The epoch every change to a watched dict moves on."""


class _Seen:
    """A module's globals as last shown, and what says they are unchanged: the
    dict watcher's epoch when they were read (``version``), or without a
    watcher (``version`` None) the names, identities and types of the values."""

    __slots__ = ("encoded", "hidden", "ids", "keep", "keys", "shown", "type_ids", "version",
                 "volatile")

    def __init__(
        self, shown: dict[str, Any], encoded: bytes, hidden: int, volatile: list[str],
        version: int | None,
    ) -> None:
        self.shown = shown
        self.encoded = encoded
        self.hidden = hidden
        self.volatile = volatile
        self.version = version
        self.keys: list[str] = []
        self.ids: list[int] = []
        self.type_ids: list[int] = []
        self.keep: list[object] = []


_MAX_TEXT = 200
_UNSET: Any = object()
_SCALARS = frozenset({int, float, bool, str, type(None)})
_MAX_INT = 2**63
_MIN_INT = -_MAX_INT
_LOOKED_INTO = frozenset(
    {int, float, complex, bool, str, bytes, bytearray, list, tuple, set, frozenset, dict, range,
     type(None)}
)
"""Types the renderer shows by value; everything else is ``<Type #n>``."""
_MAX_ITEMS = 20


def _plain(
    value: object, render: Callable[[object], object], depth: int, rendered: object = _UNSET,
) -> object:
    """A value as 0.0.16 stored it when JSON could encode it (strings, numbers,
    lists and string-keyed dicts, bounded), otherwise its rendering
    (``rendered`` when the caller has it already)."""
    t = type(value)
    if t is str:
        s = cast(str, value)
        return s if len(s) <= _MAX_TEXT else s[:_MAX_TEXT] + "…"
    if value is None or t is bool or t is int or t is float:
        return render(value) if rendered is _UNSET else rendered
    if depth > 0 and (t is list or t is tuple) and len(value) <= _MAX_ITEMS:  # type: ignore[arg-type]
        return [_plain(v, render, depth - 1) for v in cast(list[object], value)]
    if depth > 0 and t is dict and len(value) <= _MAX_ITEMS:  # type: ignore[arg-type]
        items = dict.items(cast(dict[object, object], value))
        if all(type(k) is str for k, _ in items):
            return {cast(str, k): _plain(v, render, depth - 1) for k, v in items}
    return render(value) if rendered is _UNSET else rendered


class ValueViews:
    """The two views of a run's values, with what they keep between blocks (per
    run: renderings by id are the run's renderer's)."""

    __slots__ = ("globals_seen", "opaque", "seqs", "watch")

    def __init__(self) -> None:
        self.opaque: dict[int, tuple[int, int | None, object]] = {}
        """id -> (id of its type, its number then, its rendering) of values shown by number."""
        self.seqs: dict[int, tuple[int, tuple[object, ...], object, object, type]] = {}
        self.globals_seen: dict[int, _Seen] = {}
        self.watch = _watch
        """The dict watcher (None: globals are compared by identity)."""

    def forget(self) -> None:
        """Drop everything kept (a run starts)."""
        self.opaque.clear()
        self.seqs.clear()
        self.globals_seen.clear()

    def module_values(
        self, values: dict[str, Any], render: Callable[[object], object], hidden: list[str],
    ) -> tuple[dict[str, Any], bytes]:
        """``values`` of a module's globals, which seldom change, and its JSON.

        While the dict is unchanged -- no watched dict changed since it was read
        (the watcher's epoch is the same), or without a watcher the same names
        hold the same objects -- every value but the containers (rendered again
        each time) shows as before: scalars are immutable and everything else
        is shown by type and identity alone (``<Type #n>``)."""
        seen = self.globals_seen.get(id(values))
        if seen is not None and seen.hidden == len(hidden):
            if seen.version is not None:
                # a dict at this address that changed or died moved the epoch on
                unchanged = epoch() == seen.version
            else:
                objects = list(values.values())
                unchanged = (seen.ids == list(map(id, objects)) and seen.keys == list(values)
                             and seen.type_ids == list(map(id, map(type, objects))))
            if unchanged:
                if not seen.volatile:
                    return seen.shown, seen.encoded
                shown = dict(seen.shown)
                shown.update(
                    self.values({k: values[k] for k in seen.volatile}, render, hidden)[0]
                )
                encoded = _encode(shown)
                if encoded != seen.encoded:
                    seen.shown = shown
                    seen.encoded = encoded
                return seen.shown, seen.encoded
        version = self._watch(values)  # before reading: a change while rendering shows next time
        shown = self.values(values, render, hidden)[0]
        keys = list(values)
        objects = list(values.values())
        volatile = [k for k, v in zip(keys, objects, strict=True)
                    if type(v) in _LOOKED_INTO and type(v) not in _SCALARS
                    and k != "__builtins__"]
        encoded = _encode(shown)
        seen = _Seen(shown, encoded, len(hidden), volatile, version)
        if version is None:
            # without a watcher, the objects' identities: scalars are kept (so
            # their ids stay theirs), other objects only by id and type, so
            # nothing of the program is kept alive
            seen.keys = keys
            seen.ids = list(map(id, objects))
            seen.type_ids = list(map(id, map(type, objects)))
            seen.keep = [v for v in objects if type(v) in _SCALARS]
        self.globals_seen[id(values)] = seen
        return shown, encoded

    def _watch(self, values: dict[str, Any]) -> int | None:
        """Watch a module's dict: the epoch now, or None.  The dict stays
        watched (holding it to unwatch it later would keep it alive longer
        than the program does); a change to it then costs one C call that
        moves the epoch on."""
        if self.watch is None or type(values) is not dict:
            return None
        return self.watch(values)

    def values(
        self, values: Any, render: Callable[[object], object], hidden: list[str],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The block's view of ``values`` (JSON values as they are, the rest
        rendered) and the standard trace's (everything rendered), in one pass;
        hidden names are hidden in both.  The two are one dict while every
        value shows the same in both (numbers, ``None``, ``<Type #n>``)."""
        out: dict[str, Any] = {}
        differ: list[tuple[str, object]] | None = None
        """(name, the trace's view) where it is not the block's"""
        lo = _MIN_INT
        hi = _MAX_INT
        opaque = self.opaque
        # the renderer's number table: a rendering kept by id is good while the
        # object there holds the same number (one that died was forgotten)
        numbers = getattr(getattr(render, "__self__", None), "_numbers", None)
        if type(numbers) is not dict:
            numbers = {}
        shown: object
        rendered: object
        for k, v in values.items():
            if type(k) is not str:
                continue
            t = type(v)
            # numbers and None, the common case: as they are, in both views
            if t is int:
                if lo < v < hi and not hidden:
                    out[k] = v
                    continue
            elif t is float:
                if v - v == 0.0 and not hidden:  # finite
                    out[k] = v
                    continue
            elif (v is None or t is bool) and not hidden:
                out[k] = v
                continue
            if k == "__builtins__":  # builtins have their own group
                continue
            if hidden and k in hidden:
                shown = rendered = "[OBFUSCATED]"
            elif t is int or t is float:  # out of range, or not finite
                shown = rendered = render(v)
            elif v is None or t is bool:
                shown = rendered = v
            elif t is str:
                shown = v if len(v) <= _MAX_TEXT else v[:_MAX_TEXT] + "…"
                rendered = render(v)
            elif t is list or t is tuple:
                # a sequence of scalars that did not change since it was last
                # shown (same length, same first items) is shown the same
                n = len(v)
                head = tuple(v[:_MAX_ITEMS])  # exact list/tuple: no program code runs
                seen = self.seqs.get(id(v))
                if (seen is None or seen[0] != n or seen[4] is not t
                        or not all(map(operator.is_, seen[1], head))):
                    rendered = render(v)
                    seen = (n, head, rendered, _plain(v, render, 3, rendered), t)
                    if all(type(x) in _SCALARS for x in head):
                        self.seqs[id(v)] = seen
                shown = seen[3]
                rendered = seen[2]
            elif t in _LOOKED_INTO:
                rendered = render(v)
                shown = _plain(v, render, 3, rendered)
            else:
                # shown as <Type #n>: a function of type and number only, so keep it
                hit = opaque.get(id(v))
                if hit is None or hit[0] != id(t) or hit[1] != numbers.get(id(v)):
                    rendered = render(v)
                    hit = opaque[id(v)] = (id(t), numbers.get(id(v)), rendered)
                shown = rendered = hit[2]
            out[k] = shown
            if rendered is not shown:
                if differ is None:
                    differ = []
                differ.append((k, rendered))
        out.pop("__builtins__", None)  # a number under that name took the fast path
        if differ is None:
            return out, out
        chain = out.copy()
        chain.update(differ)
        return out, chain


