"""Which fields are compared, and how two values of a field are judged equal.

Steps are compared on their raw values first (the common case: both traces
spell a number the same way) and only when those differ on canonical values,
so ``"0x0a"`` and ``"0xa"`` and ``10`` are the same word without paying for a
parse on every line.  Canonical keys are hashable: the differ indexes them when
it resynchronises after a divergence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter
from typing import Any

import msgspec

from blocktrace.eip3155.dialects import FIELDS
from blocktrace.eip3155.numbers import canonical_word, parse_int, signed64
from blocktrace.eip3155.records import Step

__all__ = ["Comparer", "canonical_stack", "canonical_value", "resolve_fields"]

_RAW_NAMES = {"stack": "stack_raw", "locals": "locals_raw", "globals": "globals_raw"}
_ADDRESS = re.compile(rb" at 0x[0-9a-fA-F]+")
_ADDRESS_TEXT = re.compile(r" at 0x[0-9a-fA-F]+")
_ENCODE = msgspec.json.Encoder(order="sorted").encode


def _canon_number(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_int(value)
    except ValueError:
        return None


def canonical_value(name: str, value: Any, stack_top: int | None = None) -> Hashable:
    """The value of field ``name`` in the one form every dialect shares."""
    if value is None:
        return None
    if name == "stack":
        return canonical_stack(value, stack_top)
    if name in ("gasCost", "memSize"):
        return _canon_number(value)
    if name == "refund":
        number = _canon_number(value)
        return None if number is None else signed64(number)
    if name in ("locals", "globals"):
        # Object addresses (``<... at 0x7f...>``) change from run to run.
        return _ADDRESS.sub(b" at 0x?", _ENCODE(value))
    if name == "error" and isinstance(value, str):
        return _ADDRESS_TEXT.sub(" at 0x?", value)
    if name == "returnData" and isinstance(value, str):
        return value.lower()
    if isinstance(value, list | dict):
        return _ENCODE(value)
    return value  # type: ignore[no-any-return]


def canonical_stack(words: Any, top: int | None = None) -> tuple[str, ...]:
    """Stack words (bottom first, as written) canonicalised; only the top N if given."""
    if not isinstance(words, list):
        return (f"<stack is not a list: {words!r}>",)
    if top is not None:
        words = words[len(words) - top:] if top < len(words) else words
    try:
        return tuple(canonical_word(word) for word in words)
    except ValueError:
        return tuple(str(word) for word in words)


def resolve_fields(
    defaults: Sequence[str],
    fields: Sequence[str] | None,
    ignore: Sequence[str] | None,
) -> tuple[str, ...]:
    """The compared fields: ``fields`` (or the dialect's defaults) minus ``ignore``.

    Raises ``ValueError`` naming an unknown field.
    """
    for name in (*(fields or ()), *(ignore or ())):
        if name not in FIELDS:
            raise ValueError(f"unknown field {name!r} (known: {', '.join(FIELDS)})")
    chosen = tuple(fields) if fields else tuple(defaults)
    dropped = set(ignore or ())
    result = tuple(dict.fromkeys(name for name in chosen if name not in dropped))
    if not result:
        raise ValueError("no fields left to compare")
    return result


class Comparer:
    """Equality of two steps on a fixed set of fields."""

    def __init__(self, fields: Sequence[str], stack_top: int | None = None) -> None:
        self.fields = tuple(fields)
        self.stack_top = stack_top
        # Raw comparisons read stack/locals/globals as their undecoded JSON bytes.
        getter = attrgetter(*(_RAW_NAMES.get(name, name) for name in self.fields))
        self._raw: Callable[[Step], Any] = getter if len(self.fields) > 1 else (
            lambda step: (getter(step),))
        positional = True
        """``_raw`` gives one value per compared field, in order."""
        if stack_top is not None and "stack" in self.fields:
            # Raw stacks of different depth may still agree on the top N.
            self._raw = self._raw_without_stack()
            positional = False

        raw = self._raw
        key = self.key
        names = self.fields
        top = stack_top
        canonical = canonical_value

        def same(a: Step, b: Step) -> bool:
            ra, rb = raw(a), raw(b)
            if ra == rb:
                return True
            if not positional:
                return key(a) == key(b)
            # Equal raw values are equal canonical ones: only the others are made.
            for name, x, y in zip(names, ra, rb, strict=True):
                if x != y and (canonical(name, getattr(a, name), top)
                               != canonical(name, getattr(b, name), top)):
                    return False
            return True

        self.same: Callable[[Step, Step], bool] = same
        """Whether two steps agree on every compared field."""

    def _raw_without_stack(self) -> Callable[[Step], Any]:
        others = [_RAW_NAMES.get(name, name) for name in self.fields if name != "stack"]
        top = self.stack_top or 0
        getter = attrgetter(*others) if others else (lambda step: ())

        def raw(step: Step) -> Any:
            stack = step.stack
            if isinstance(stack, list):
                stack = stack[-top:] if top else []
            return (getter(step), stack)

        return raw

    def key(self, step: Step) -> tuple[Hashable, ...]:
        top = self.stack_top
        return tuple(
            canonical_value(name, getattr(step, name), top) for name in self.fields
        )

    def differing(self, a: Step, b: Step, names: Sequence[str] | None = None) -> list[str]:
        """The fields (of ``names``, default the compared ones) on which a and b differ."""
        top = self.stack_top
        return [
            name
            for name in (names or self.fields)
            if canonical_value(name, getattr(a, name), top)
            != canonical_value(name, getattr(b, name), top)
        ]
