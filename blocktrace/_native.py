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
import sys
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
            module: ModuleType | None = importlib.import_module(name)
        except ImportError:
            module = None
        built = getattr(module, "__file__", None)
        if module is not None and built is not None and older_than_sources(built, _PACKAGE):
            _say(f"the C extension {name} is older than its C sources (rebuild it: "
                 "pip install -e .); using the pure-Python paths")
            module = None
        _loaded[name] = module
    return _loaded[name]


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def older_than_sources(built: str, package: str) -> bool:
    """In a source checkout (an editable install: ``setup.py`` beside the
    package), whether some C source of the package is newer than the built
    extension ``built``: the extension was built from other sources and may
    lack what the Python code now asks of it, so it is not used.  An
    installed wheel has no ``setup.py`` there and is never second-guessed."""
    if not os.path.exists(os.path.join(os.path.dirname(package), "setup.py")):
        return False
    try:
        built_at = os.stat(built).st_mtime_ns
    except OSError:
        return False
    if package not in _newest:
        _newest[package] = _newest_source(package)
    return _newest[package] > built_at


_newest: dict[str, int] = {}


def _newest_source(package: str) -> int:
    """The newest modification time of the package's C sources (``*.c`` and
    ``*.h`` anywhere below it; read once per process, ~0.3 ms)."""
    newest = 0
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = [d for d in subfolders if d not in ("__pycache__", "static")]
        for name in files:
            if name.endswith((".c", ".h")):
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return newest


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"blocktrace: {message}\n")
    except Exception:  # no stderr: the pure paths run all the same
        pass
