"""The one place that decides whether blocktrace's C extensions are used.

blocktrace has two optional C extensions, built at install when a compiler and
the Python headers are there (setup.py): ``blocktrace.chain._cwriter`` (the
line writer and its SHA-256) and ``blocktrace.vm._chook`` (the stepper's
per-instruction callback).  Each has a pure-Python reference with the same
behaviour and the same bytes, which runs where the extension was not built or
when ``BLOCKTRACE_PURE`` is set (to any non-empty value) in the environment at
import time.  Code that has a C path asks :func:`extension` for the module and
takes its Python path when the answer is None; nothing else reads the variable.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["PURE", "extension"]

PURE = bool(os.environ.get("BLOCKTRACE_PURE"))
"""``BLOCKTRACE_PURE`` was set: every C path is ignored, the references run."""

_loaded: dict[str, ModuleType | None] = {}


def extension(name: str) -> ModuleType | None:
    """The C extension module ``name`` (``"blocktrace.chain._cwriter"``), or
    None when ``BLOCKTRACE_PURE`` is set or it was not built (or cannot be
    loaded: an ``ImportError``); the caller then uses its Python reference."""
    if PURE:
        return None
    if name not in _loaded:
        try:
            _loaded[name] = importlib.import_module(name)
        except ImportError:
            _loaded[name] = None
    return _loaded[name]
