"""DeepDiff-style changes between two renderings, as 0.0.16's ``"changes"`` mode
showed them (computed here: no DeepDiff)."""

from __future__ import annotations

from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


def _dict_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """DeepDiff-style changes between two rendered dicts (values included)."""
    out: dict[str, Any] = {}
    if old is new:
        return out
    added = {f"root[{k!r}]": v for k, v in new.items() if k not in old}
    removed = {f"root[{k!r}]": v for k, v in old.items() if k not in new}
    changed = {
        f"root[{k!r}]": {"new_value": v, "old_value": old[k]}
        for k, v in new.items()
        if k in old and _differs(old[k], v)
    }
    if added:
        out["dictionary_item_added"] = added
    if removed:
        out["dictionary_item_removed"] = removed
    if changed:
        out["values_changed"] = changed
    return out


def _differs(old: object, new: object) -> bool:
    """Whether two renderings differ, ``1``, ``1.0`` and ``True`` included
    (equal in Python, not in JSON)."""
    if old is new:
        return False
    if type(old) is not type(new) or old != new:
        return True
    return type(new) in (list, dict) and _encode(old) != _encode(new)


def _list_changes(old: list[str], new: list[str]) -> dict[str, Any]:
    if old == new:
        return {}
    old_set, new_set = set(old), set(new)
    out: dict[str, Any] = {}
    added = {f"root[{i}]": n for i, n in enumerate(new) if n not in old_set}
    removed = {f"root[{i}]": n for i, n in enumerate(old) if n not in new_set}
    if added:
        out["iterable_item_added"] = added
    if removed:
        out["iterable_item_removed"] = removed
    return out
