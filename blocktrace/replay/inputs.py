"""What a run depended on that a re-run cannot know: ``blocktrace run --record-inputs``.

``InputRecorder.install()`` (before the program runs) wraps what the program
reads from outside so it can be written down:

- stdin: ``sys.stdin`` is replaced by a text stream of the same encoding over a
  reader that keeps a copy of every byte read from file descriptor 0 (what the
  program's buffered reads took from the OS, in order);
- the environment: ``os.environ`` keeps its contents and identity, but its
  class becomes a subclass of ``os._Environ`` that notes each name looked up
  (``environ[name]``, ``get``, ``in``, ``getenv``); iterating the whole
  environment (``os.environ.copy()``, ``dict(os.environ)``) is noted as
  "everything";
- the working directory, ``PYTHONHASHSEED`` and the Python version are read.

``inputs()`` (before the trace is sealed) gives the ``inputs`` line's members
(docs/FORMAT.md, "Recorded inputs").  Not recorded: the clock, ``os.urandom``
and ``secrets``, the network, files other than stdin, signals, thread timing.
"""

from __future__ import annotations

import base64
import io
import os
import platform
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["INPUTS_EVENT", "InputRecorder"]

INPUTS_EVENT = "inputs"
_STDIN_LIMIT = 64 << 20
"""Stdin kept for the trace (bytes); a run reading more is marked ``stdinTruncated``."""


class _TeeReader(io.RawIOBase):
    """File descriptor 0, read raw, with a copy of every byte read."""

    def __init__(self, fd: int, kept: bytearray) -> None:
        super().__init__()
        self._fd = fd
        self._kept = kept
        self.truncated = False

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def readinto(self, buffer: Any) -> int:
        data = os.read(self._fd, len(buffer))
        n = len(data)
        buffer[:n] = data
        if len(self._kept) + n <= _STDIN_LIMIT:
            self._kept += data
        else:
            self.truncated = True
        return n


class _Seen:
    names: set[str] = set()
    everything = False


class _RecordingEnviron(os._Environ[str]):
    """``os.environ``'s class while inputs are recorded: notes what is looked up."""

    def __getitem__(self, key: str) -> str:
        _Seen.names.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            _Seen.names.add(key)
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        _Seen.everything = True
        return super().__iter__()

    def copy(self) -> dict[str, str]:
        _Seen.everything = True
        return super().copy()


class InputRecorder:
    """Installs the wrappers, and gives what was read as the ``inputs`` line's members."""

    def __init__(self, *, deterministic: bool = False, seed: int = 0) -> None:
        self.deterministic = deterministic
        self.seed = seed
        self._stdin = bytearray()
        self._reader: _TeeReader | None = None
        self._environ_class: type | None = None
        self.cwd = os.getcwd()

    def install(self) -> None:
        _Seen.names = set()
        _Seen.everything = False
        stdin = sys.stdin
        if stdin is not None:
            try:
                fd = stdin.fileno()
            except (OSError, ValueError, AttributeError):
                fd = -1
            if fd >= 0:
                self._reader = _TeeReader(fd, self._stdin)
                sys.stdin = io.TextIOWrapper(
                    io.BufferedReader(self._reader),
                    encoding=stdin.encoding, errors=stdin.errors,
                    line_buffering=bool(stdin.line_buffering),
                )
        if type(os.environ) is os._Environ:
            self._environ_class = type(os.environ)
            os.environ.__class__ = _RecordingEnviron
        if self.deterministic:
            import random

            random.seed(self.seed)

    def uninstall(self) -> None:
        if self._environ_class is not None:
            os.environ.__class__ = self._environ_class
            self._environ_class = None

    def inputs(self) -> dict[str, Any]:
        """The members of the ``inputs`` line (without ``event``)."""
        self.uninstall()
        environ = os.environ
        names = sorted(environ) if _Seen.everything else sorted(_Seen.names)
        env: dict[str, str | None] = {name: environ.get(name) for name in names}
        env.pop("PYTHONHASHSEED", None)
        members: dict[str, Any] = {
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
            "cwd": self.cwd,
            "pythonHashSeed": os.environ.get("PYTHONHASHSEED", ""),
            "env": env,
            "envAll": _Seen.everything,
            "stdin": base64.b64encode(bytes(self._stdin)).decode(),
        }
        if self._reader is not None and self._reader.truncated:
            members["stdinTruncated"] = True
        if self.deterministic:
            members["randomSeed"] = self.seed
        return members
