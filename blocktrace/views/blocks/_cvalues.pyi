"""Stubs of ``blocktrace.views.blocks._cvalues``: the BlockTrace view's C helpers."""

from collections.abc import Mapping
from typing import Any, Final

WATCHING: Final[int]
"""1 when this interpreter's dict watcher was had (``watch`` can answer), else 0."""

def plain_values(mapping: Mapping[Any, Any], /) -> dict[str, Any] | None:
    """A new dict of the items when every key is a str (not ``__builtins__``) and
    every value an int in (-2**63, 2**63), a finite float, None or a bool; else None."""

def watch(d: object, /) -> int | None:
    """Watch the exact dict ``d``: the epoch now, or None when it cannot be watched."""

def epoch() -> int:
    """The epoch: it moves on with every change to any watched dict."""
