"""Which file, and which bytes: the one answer to "has this trace changed?".

Every reader that keeps something about a trace -- the index beside it, the
viewer's check before each answer (HTTP 409), ``query``'s dataset cache, the
viewer's table cache -- compares the :class:`FileIdentity` it saw then with the
file's now.  Each field catches a way a trace changes under a reader:

- ``device`` and ``inode``: another file at the same path (replaced by ``mv``,
  written anew and renamed over it; the same path on another file system);
- ``size``: a trace that grew or was cut;
- ``mtime_ns``: an edit in place;
- ``ctime_ns``: the status change time, set to now by any write, rename or
  ``chmod`` and also by putting the modification time back (``touch -d``,
  ``os.utime``), which no process can set to a chosen value.

Equal identities then mean the bytes are the ones seen, except for a change
within the same tick of the file system's clock (timestamps come from a
coarse clock): so whoever keeps something also checks what it can of the
bytes (the index re-reads its last line).  A copy is another file: a trace
copied elsewhere (``cp -a``, another file system) is seen as new, and what
was kept for the original is built again, never trusted.
"""

from __future__ import annotations

import hashlib
import os

import msgspec

__all__ = ["FileIdentity", "cache_key", "code_stamp", "identity_of", "identity_or_none"]


class FileIdentity(msgspec.Struct, array_like=True, frozen=True):
    """What ``os.stat`` says of a file that tells it from any other file or
    version of it (see the module docstring); compare with ``==``."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of_stat(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def identity_of(path: str | os.PathLike[str]) -> FileIdentity:
    """The identity of the file at ``path`` now (``OSError``: cannot stat it)."""
    return FileIdentity.of_stat(os.stat(path))


def identity_or_none(path: str | os.PathLike[str]) -> FileIdentity | None:
    """:func:`identity_of`, or None when the file is gone or cannot be stat'ed."""
    try:
        return FileIdentity.of_stat(os.stat(path))
    except (OSError, ValueError):
        return None


def cache_key(path: str, *more: str) -> str:
    """The name of a cache entry for the file at ``path`` as it is now: 32 hex
    digits of a SHA-256 over its real path, its identity, ``more`` (what else
    the entry depends on: a schema version) and :func:`code_stamp` (which
    blocktrace made it).  A changed file gets another name, so a stale entry is
    never found (``OSError``: cannot stat it)."""
    ident = identity_of(path)
    text = "\0".join([
        os.path.realpath(path), *(str(v) for v in msgspec.structs.astuple(ident)), *more,
        code_stamp(),
    ])
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


_READING_CODE = ("format", "eip3155", "query", "view")
"""The packages whose code decides what a cache entry holds (how a trace is
read, checked and turned into tables)."""
_code_stamp: str | None = None


def code_stamp() -> str:
    """Which blocktrace is running: its version, the real path it is installed
    at, and the identity (inode, modification time) of the directories of its
    reading code -- which change when a file in them is added, removed or
    replaced (a reinstall, a ``git checkout`` of a development tree).  Two
    installs side by side (a project's venv and pipx) or a checkout updated in
    place each make their own cache entries: an entry made by code that may
    answer differently is never read.  (An edit in place that keeps the
    directories as they are is not seen.)  Computed once per process."""
    global _code_stamp
    if _code_stamp is None:
        from blocktrace import __version__

        root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
        parts = [__version__, root]
        for package in _READING_CODE:
            try:
                st = os.stat(os.path.join(root, package))
            except OSError:
                continue
            parts += [package, str(st.st_ino), str(st.st_mtime_ns)]
        _code_stamp = "\0".join(parts)
    return _code_stamp
