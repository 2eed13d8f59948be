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

__all__ = ["LINE_DEFAULT_FIELDS", "by_line"]

LINE_DEFAULT_FIELDS: tuple[str, ...] = (
    "depth", "line", "function", "thread", "error", "locals", "globals",
)


def by_line(steps: Iterator[Step]) -> Iterator[Step]:
    """One step per executed source line: the first step of each run of steps with the
    same (depth, code, line, thread), carrying the first error raised on that line.

    Steps with no source line (``line`` 0 or absent: bookkeeping instructions such
    as an exception handler's entry) belong to the line before them.  A line that
    runs twice in a row (a loop written on one line) becomes one step.
    """
    current: Step | None = None
    key: tuple[object, ...] = ()
    index = 0
    for step in steps:
        line = step.line
        if current is not None and (
            not line
            or (step.depth, step.code, line, step.thread) == key
        ):
            if current.error is None and step.error is not None:
                current.error = step.error
                current.event = step.event
            continue
        if current is not None:
            yield current
        current = Step(
            index, step.lineno, step.pc, step.op, step.gas, step.depth, step.stack_raw,
            step.raw, step.error, step.event, step.function, step.file,
        )
        key = (step.depth, step.code, line, step.thread)
        index += 1
    if current is not None:
        yield current
