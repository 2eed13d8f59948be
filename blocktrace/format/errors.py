"""The one error for "this is not a (usable) trace"."""

from __future__ import annotations

__all__ = ["TraceError"]


class TraceError(ValueError):
    """Input that cannot be used as a trace; ``str()`` is the one line to print
    (``PATH:LINE: problem``, or ``PATH: problem`` when no line is to blame)."""

    def __init__(self, path: str, lineno: int | None, problem: str) -> None:
        where = path if lineno is None else f"{path}:{lineno}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.lineno = lineno
        self.problem = problem
