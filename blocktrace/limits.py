"""How much of any input blocktrace reads, and the bounded reads that hold to it.

Every reader takes its input through :func:`read_small_file` (a whole file:
keys, checkpoints, proof bundles, source files; :func:`read_named_file` for one
the user named, with one error) or :func:`bounded_lines` (a
trace, line by line), so no input -- ``/dev/zero``, a 2 GB line, a forged
file -- makes a command use memory beyond these bounds.  The bounds are
documented in docs/SECURITY.md ("Input bounds") and in the commands' ``--help``.
Nothing here imports the rest of blocktrace: every layer may use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_KEY_FILE_BYTES",
    "MAX_LINE_BYTES",
    "MAX_SNAPSHOT_INPUT_BYTES",
    "MAX_SOURCE_BYTES",
    "MAX_TABLE_BYTES",
    "FileInputError",
    "InputTooLargeError",
    "LineTooLongError",
    "bounded_lines",
    "read_named_file",
    "read_small_file",
    "size_text",
]

MAX_LINE_BYTES = 64 << 20
"""One line of a trace, blocktrace's or an EIP-3155 client's (the writer's lines
are far shorter: values are rendered bounded)."""

MAX_KEY_FILE_BYTES = 1 << 20
"""A checkpoint, a public key file or a private key file (a checkpoint with the
100 signatures a note may carry is about 10 KiB)."""

MAX_BUNDLE_BYTES = 64 << 20
"""A proof bundle (`blocktrace prove` refuses to write a bigger one)."""

MAX_SOURCE_BYTES = 16 << 20
"""A source file a trace names, read to show its lines."""

MAX_TABLE_BYTES = 256 << 20
"""A type table read by ``blocktrace types --from``."""

MAX_SNAPSHOT_INPUT_BYTES = 4 << 20
"""What ``blocktrace snapshot`` reads: a request on stdin, or each of SCRIPT and
``--input FILE`` (a script's source is further held to a request's 1,000,000
characters)."""


def size_text(n: int) -> str:
    """``64 MiB``, ``1 MiB``, ``64 KiB``, ``100 bytes``: a bound as people read it."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


class FileInputError(ValueError):
    """A file the user named cannot be used as input: it cannot be read, or it is
    larger than its bound; ``str()`` is the one line to print, naming the file."""


class InputTooLargeError(FileInputError):
    """A whole-file input is larger than its bound; ``str()`` is the one line to print."""


class LineTooLongError(ValueError):
    """A line is longer than its bound: ``number`` (1-based) and ``limit``."""

    def __init__(self, number: int, limit: int) -> None:
        super().__init__(f"line {number} is longer than {size_text(limit)}")
        self.number = number
        self.limit = limit


def read_small_file(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of ``path``, at most ``limit`` of them.

    Raises :class:`InputTooLargeError` naming the file and ``what`` it should
    be when there is more (reading stops after ``limit + 1`` bytes, so
    ``/dev/zero`` is fine), and ``OSError`` as ``open`` does.
    """
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InputTooLargeError(
            f"{os.fspath(path)} is larger than {size_text(limit)}: too big for {what}"
        )
    return data


def read_named_file(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """:func:`read_small_file` for a file the user named (a key, a checkpoint, a
    proof bundle): any way it fails is a :class:`FileInputError` whose one line
    names the file (``PATH: cannot read: No such file or directory``, as the
    trace readers say it, or the
    bound's ``PATH is larger than 1 MiB: too big for a checkpoint``)."""
    try:
        return read_small_file(path, limit, what)
    except OSError as exc:
        raise FileInputError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from exc


def bounded_lines(stream: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary stream, each with its ``\\n`` (the last may have
    none), each at most ``limit`` bytes; a longer one raises
    :class:`LineTooLongError` before more than ``limit + 1`` bytes of it are held."""
    for number, raw in enumerate(iter(lambda: stream.readline(limit + 1), b""), 1):
        if len(raw) > limit:
            raise LineTooLongError(number, limit)
        yield raw
