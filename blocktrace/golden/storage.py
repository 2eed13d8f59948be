"""Where goldens live: ``__traces__/<test_module>/<test_name>.jsonl`` beside the test module.

A test's name is its node id after the module (``TestCase::test_x[param]``),
with ``::`` written ``.``; characters that do not belong in a file name are
replaced and a short hash of the original name added, so two parameter ids
never share a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable

__all__ = ["TRACES_DIR", "golden_path", "partial_path", "safe_name", "unused_goldens",
           "write_golden"]

TRACES_DIR = "__traces__"
SUFFIX = ".jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+\-\[\]]")
_MAX_NAME = 120


def safe_name(name: str) -> str:
    """``name`` as a file name (without suffix) that no other name maps to."""
    plain = name.replace("::", ".")
    safe = _UNSAFE.sub("_", plain)
    if safe.startswith("."):
        safe = "_" + safe[1:]
    if safe != plain or len(safe) > _MAX_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        safe = f"{safe[:_MAX_NAME]}-{digest}"
    return safe


def golden_path(module_path: str, test_name: str) -> str:
    """The golden of test ``test_name`` (node id after the module) of ``module_path``."""
    folder, module = os.path.split(module_path)
    stem = os.path.splitext(module)[0]
    return os.path.join(folder, TRACES_DIR, stem, safe_name(test_name) + SUFFIX)


def partial_path(target: str) -> str:
    """Where this process writes a golden before it becomes ``target`` (in its folder,
    so that ``write_golden`` renames it; not a name ``unused_goldens`` lists)."""
    return f"{target}.{os.getpid()}.tmp"


def write_golden(source: str, target: str) -> None:
    """Move ``source`` to ``target`` in one step (a reader never sees half a golden):
    renamed when it is ``partial_path(target)`` or on the same file system, else copied."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.replace(source, target)
        return
    except OSError:
        pass
    partial = partial_path(target)
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def unused_goldens(modules: Iterable[str], expected: set[str]) -> list[str]:
    """Golden files beside ``modules`` (collected whole) that no collected test owns,
    and folders of ``__traces__`` whose test module no longer exists."""
    found: set[str] = set()
    for module in sorted(set(modules)):
        folder, name = os.path.split(module)
        traces = os.path.join(folder, TRACES_DIR)
        mine = os.path.join(traces, os.path.splitext(name)[0])
        if os.path.isdir(mine):
            for entry in os.listdir(mine):
                path = os.path.join(mine, entry)
                if entry.endswith(SUFFIX) and path not in expected:
                    found.add(path)
        if os.path.isdir(traces):
            for entry in os.listdir(traces):
                sub = os.path.join(traces, entry)
                if os.path.isdir(sub) and not os.path.exists(os.path.join(folder, entry + ".py")):
                    found.update(os.path.join(sub, f) for f in os.listdir(sub)
                                 if f.endswith(SUFFIX))
    return sorted(found)


def prune(paths: Iterable[str]) -> None:
    """Remove ``paths`` and the folders they leave empty."""
    folders = set()
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        folders.add(os.path.dirname(path))
    for folder in sorted(folders, key=len, reverse=True):
        for candidate in (folder, os.path.dirname(folder)):
            try:
                os.rmdir(candidate)  # only when empty
            except OSError:
                pass
