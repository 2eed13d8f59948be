"""Source-line granularity for blocktrace traces (``blocktrace diff --by-line``).

Two runs of the same program on different Python versions (or with
different bytecode for the same source) execute different instructions but, in
the main, the same source lines in the same order.  Collapsing each run of
consecutive steps on one line of one frame into a single step makes those
runs comparable: the differ then aligns lines, not instructions.
"""

from __future__ import annotations

from collections.abc import Iterator

from blocktrace.eip3155.records import Step

__all__ = ["LINE_DEFAULT_FIELDS", "Lines", "by_line"]

LINE_DEFAULT_FIELDS: tuple[str, ...] = (
    "depth", "line", "function", "thread", "error", "locals", "globals",
)


def by_line(steps: Iterator[Step]) -> Lines:
    """One step per executed source line: the first step of each run of steps with the
    same (depth, code, line, thread), carrying the first error raised on that line.

    Steps with no source line (``line`` 0 or absent: bookkeeping instructions such
    as an exception handler's entry) belong to the line before them.  A line that
    runs twice in a row (a loop written on one line) becomes one step.
    """
    return Lines(steps)


class Lines:
    """:func:`by_line`'s steps, with what it holds where a pass over the lines as bytes
    (``skip.line_pair``) can see and move it: ``current``, the step of the group read
    last (not given yet: the steps after it may still belong to it), ``key`` its
    (depth, code, line, thread), ``index`` the next group's number."""

    __slots__ = ("current", "index", "key", "steps")

    def __init__(self, steps: Iterator[Step]) -> None:
        self.steps = steps
        self.current: Step | None = None
        self.key: tuple[object, ...] = ()
        self.index = 0

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> Step:
        current = self.current
        key = self.key
        for step in self.steps:
            line = step.line
            if current is not None and (
                not line
                or (step.depth, step.code, line, step.thread) == key
            ):
                if current.error is None and step.error is not None:
                    current.error = step.error
                    current.event = step.event
                continue
            index = self.index
            self.current = Step(
                index, step.lineno, step.pc, step.op, step.gas, step.depth, step.stack_raw,
                step.raw, step.error, step.event, step.function, step.file,
            )
            self.key = (step.depth, step.code, line, step.thread)
            self.index = index + 1
            if current is not None:
                return current
            current = self.current
            key = self.key
        self.current = None
        if current is None:
            raise StopIteration
        return current

    def passed(self, groups: int) -> None:
        """``groups`` groups were passed over, the one held (``current``) the first:
        the next step read starts a group."""
        self.current = None
        self.key = ()
        self.index += groups - 1
