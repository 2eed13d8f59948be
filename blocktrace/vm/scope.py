"""Which code is traced.

Decided once per code object (the stepper asks at its first ``PY_START`` and
answers ``DISABLE`` for the rest), and cached per file name, so the cost is paid
once per file, never per instruction.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Iterable
from types import CodeType

__all__ = ["Scope", "ScopeError"]

_BLOCKTRACE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ScopeError(ValueError):
    """An include, exclude or target that cannot be resolved."""


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """The standard library and site-packages directories (sysconfig is slow:
    computed once per process)."""
    dirs: set[str] = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            path = sysconfig.get_path(name)
        except KeyError:
            continue
        if path:
            dirs.add(os.path.realpath(path))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        dirs.add(os.path.realpath(os.path.join(prefix, "lib")))
        dirs.add(os.path.realpath(os.path.join(prefix, "lib64")))
    return tuple(sorted(dirs))


@functools.lru_cache(maxsize=4096)
def _code_file(filename: str) -> str:
    """The real path of a code object's file name, kept for the process (each
    run decides its scope afresh; resolving the same names again cost every
    run a few ``lstat`` calls per file)."""
    return os.path.realpath(filename)


_DECIDED: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, bool]] = {}
"""(include, exclude) -> file name -> in scope: the decisions of every scope of
this process with those rules (a decision depends on nothing else: the rules,
the library directories and the file's real path, all kept for the process).
A program traced again (a test suite, a view started per call) decides each
file once, not once per run."""
_DECIDED_RULES = 16
"""At most this many rule sets are kept (the oldest goes first)."""


def _decisions(include: list[str], exclude: list[str]) -> dict[str, bool]:
    key = (tuple(include), tuple(exclude))
    decided = _DECIDED.get(key)
    if decided is None:
        if len(_DECIDED) >= _DECIDED_RULES:
            del _DECIDED[next(iter(_DECIDED))]
        decided = _DECIDED[key] = {}
    return decided


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def _resolve(spec: str) -> str:
    """A path (file or directory) or an importable module name -> a real path;
    a pseudo file name such as ``<string>`` stays as it is."""
    if spec.startswith("<"):
        return spec
    if os.path.exists(spec):
        return os.path.realpath(spec)
    if spec.replace(".", "").replace("_", "").isalnum():
        try:
            found = importlib.util.find_spec(spec)
        except (ImportError, ValueError):
            found = None
        if found is not None:
            if found.submodule_search_locations:
                return os.path.realpath(next(iter(found.submodule_search_locations)))
            if found.origin and os.path.exists(found.origin):
                return os.path.realpath(found.origin)
    raise ScopeError(f"{spec!r} is neither an existing path nor an importable module")


class Scope:
    """The user's own code by default: not the standard library, not
    site-packages, not blocktrace, not frozen modules.

    ``include``: only these paths, directories or modules (and pseudo-files such
    as ``<string>``, unless excluded).  ``exclude``: never these.  ``target``:
    ``module:function`` -- the stepper traces only while that function runs.
    """

    def __init__(
        self,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        target: str | None = None,
    ) -> None:
        self.include = [_resolve(s) for s in include or ()]
        self.exclude = [_resolve(s) for s in exclude or ()]
        self._library = _library_dirs()
        self._by_file = _decisions(self.include, self.exclude)
        self.target_name: str | None = None
        self.target_file: str | None = None
        self.target_module: str | None = None
        if target is not None:
            module, sep, function = target.partition(":")
            if not sep or not module or not function:
                raise ScopeError(f"target {target!r} is not of the form module:function")
            self.target_name = function
            self.target_module = module
            try:
                # ``__main__`` is the traced program, matched by name: resolving it
                # here would find the running ``python -m blocktrace`` instead.
                self.target_file = None if module == "__main__" else _resolve(module)
            except ScopeError:
                self.target_file = None  # matched by module name

    def contains(self, code: CodeType) -> bool | None:
        """True or False by file; ``None`` for exec'd code under a pseudo file name
        (``<string>``) that was neither included nor excluded by name: its scope
        is its first caller's, which only the stepper knows."""
        filename = code.co_filename
        decided = self._by_file.get(filename)
        if decided is None:
            if filename.startswith("<"):
                return self._pseudo(filename)
            decided = self._by_file[filename] = self._decide(filename)
        return decided

    def _pseudo(self, filename: str) -> bool | None:
        if filename in self.exclude or filename.startswith("<frozen"):
            return False
        if filename in self.include:
            return True
        return None

    def is_target(self, code: CodeType) -> bool:
        if code.co_qualname != self.target_name:
            return False
        if self.target_file is not None:
            return _code_file(code.co_filename) == self.target_file
        stem = os.path.splitext(os.path.basename(code.co_filename))[0]
        return stem == self.target_module or self.target_module == "__main__"

    def _decide(self, filename: str) -> bool:
        path = _code_file(filename)
        if _under(path, self.exclude) or _under(path, [_BLOCKTRACE_DIR]):
            return False
        if self.include:
            return _under(path, self.include)
        return not _under(path, self._library)
