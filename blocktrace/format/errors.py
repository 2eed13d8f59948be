"""The one error for "this is not a (usable) trace"."""

from __future__ import annotations

from typing import Literal

__all__ = ["TraceError"]


class TraceError(ValueError):
    """Input that cannot be used as a trace; ``str()`` is the one line to print
    (``PATH:LINE: problem``, or ``PATH: problem`` when no line is to blame).

    ``status`` is what ``blocktrace verify`` says of such a file: ``unusable``
    (not a trace, or one that cannot be read), or ``tampered`` when what cannot
    be used is a trace that fails its check there (a compact first frame that
    does not match its stored head, a chained line where the header belongs:
    the problem then says ``TAMPERED at line N``).  Every command exits with
    :attr:`exit_status` for it, so that one file gets one answer."""

    def __init__(self, path: str, lineno: int | None, problem: str, *,
                 status: Literal["unusable", "tampered"] = "unusable") -> None:
        where = path if lineno is None else f"{path}:{lineno}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.lineno = lineno
        self.problem = problem
        self.status = status

    @property
    def exit_status(self) -> int:
        """The commands' exit status: 1 the trace fails its check, 2 unusable input."""
        return 1 if self.status == "tampered" else 2
