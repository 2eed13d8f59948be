"""The program's stdin and stdout during a snapshot run.

Output is kept in memory, bounded: each step carries everything printed so far
(as Python Tutor does), so a program that prints without end must be stopped,
not buffered.  Input comes from the request's ``input`` text and is echoed into
the output as a terminal would echo what was typed; reading past its end gives
``""``, which ``input()`` turns into ``EOFError``.
"""

from __future__ import annotations

import io

from blocktrace.snapshot.heap import clean_text

__all__ = ["CappedOutput", "FeedInput"]


class CappedOutput(io.TextIOBase):
    """A text stream that keeps at most ``limit`` characters.

    Writing more keeps the first ``limit`` characters and sets ``exceeded``;
    the snapshot tracer stops the run at its next step when it sees that.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.exceeded = False
        self._parts: list[str] = []
        self._size = 0
        self._joined: str | None = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        n = len(s)
        if self.exceeded or not n:
            return n
        s = clean_text(s)
        room = self.limit - self._size
        if n > room:
            s = s[:room]
            self.exceeded = True
        self._parts.append(s)
        self._size += len(s)
        self._joined = None
        return n

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        """Everything written so far (within the limit)."""
        if self._joined is None:
            self._joined = "".join(self._parts)
            self._parts = [self._joined]
        return self._joined


class FeedInput(io.TextIOBase):
    """Stdin fed from a fixed text, echoing each line read into ``echo``."""

    def __init__(self, text: str, echo: CappedOutput) -> None:
        super().__init__()
        self._text = text
        self._pos = 0
        self._echo = echo

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def _take(self, end: int) -> str:
        chunk = self._text[self._pos : end]
        self._pos = end
        if chunk:
            self._echo.write(chunk if chunk.endswith("\n") else chunk + "\n")
        return chunk

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        nl = self._text.find("\n", self._pos)
        end = len(self._text) if nl < 0 else nl + 1
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        return self._take(end)

    def read(self, size: int | None = -1) -> str:
        end = len(self._text)
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        return self._take(end)
