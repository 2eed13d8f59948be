"""Reading a source file a trace names: only what the trace committed to.

A trace is input from whoever handed it over; the files it names are not ours
to read blindly (a forged trace naming ``/etc/shadow`` must not get its lines
quoted into a CI log, nor one naming ``/dev/zero`` or a FIFO hang or exhaust a
reader).  :func:`read_source` is the one way consumers (the differ's source
quoting, ``lines``, the viewer) read a named file.
"""

from __future__ import annotations

import hashlib
import os
import stat

import msgspec

from blocktrace.format.lines import SourceLine
from blocktrace.limits import MAX_SOURCE_BYTES

__all__ = ["MAX_SOURCE_BYTES", "SourceText", "fingerprint", "read_local_text", "read_source"]


class SourceText(msgspec.Struct, frozen=True):
    """The text of a named source, or ``None`` with the reason it is not given."""

    text: str | None
    reason: str = ""


def _read_regular(path: str, limit: int) -> bytes | str:
    """The bytes of ``path`` when it is a regular file of at most ``limit``
    bytes, else why not.  Opened without following into a FIFO's wait
    (``O_NONBLOCK``) and checked on the open descriptor, so a file swapped for
    a device after a ``stat`` is still refused."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > limit:
            return f"larger than {limit} bytes"
        chunks: list[bytes] = []
        got = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - got)):
            chunks.append(chunk)
            got += len(chunk)
            if got > limit:
                return f"larger than {limit} bytes"
        return b"".join(chunks)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    finally:
        os.close(fd)


def fingerprint(path: str, limit: int = MAX_SOURCE_BYTES) -> tuple[str, int] | None:
    """``(sha256 hex, size)`` of a regular file of at most ``limit`` bytes (what
    a source line records), or None."""
    data = _read_regular(path, limit)
    if isinstance(data, str):
        return None
    return hashlib.sha256(data).hexdigest(), len(data)


def read_local_text(path: str, *, limit: int = MAX_SOURCE_BYTES) -> SourceText:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, with no hash
    to match: only for a file the caller vouches for (one it checked itself,
    or the program being run), never for a name taken from a trace."""
    data = _read_regular(path, limit)
    if isinstance(data, str):
        return SourceText(None, f"{path}: {data}")
    try:
        return SourceText(data.decode("utf-8"))
    except UnicodeDecodeError:
        return SourceText(None, f"{path} is not UTF-8")


def read_source(entry: SourceLine | None, *, limit: int = MAX_SOURCE_BYTES) -> SourceText:
    """The text of the source file a trace's source line names.

    Embedded ``text`` wins when present.  Otherwise the named file is read only
    when it is a regular file of at most ``limit`` bytes whose SHA-256 and size
    are what the trace recorded, and it is valid UTF-8.  Without a source line
    (a version 1 or 2 trace, or a file the trace never committed to) nothing is
    read: the answer says "source missing or changed" and why.
    """
    if entry is None:
        return SourceText(None, "source missing or changed: the trace records no hash of it")
    if entry.text is not None:
        return SourceText(entry.text)
    data = _read_regular(entry.file, limit)
    if isinstance(data, str):
        return SourceText(None, f"source missing or changed: {entry.file}: {data}")
    if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
        return SourceText(
            None, f"source missing or changed: {entry.file} is not the file the trace recorded"
        )
    try:
        return SourceText(data.decode("utf-8"))
    except UnicodeDecodeError:
        return SourceText(None, f"source missing or changed: {entry.file} is not UTF-8")
