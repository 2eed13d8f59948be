"""The diff of two traces as the viewer shows it: ``diff --json`` plus alignment.

The differ (``blocktrace.eip3155``) aligns the two step streams exactly as
``blocktrace diff`` does; this adds what a side-by-side view needs, in the
viewer's step numbers (the differ numbers its normalised steps, which can
differ from the viewer's: an exception line whose pc is the handler's is a
step of its own there): each hunk's step ranges (``aSteps``/``bSteps``,
half-open), ``firstDivergence.aStep``/``bStep``, and the common runs between
hunks (``segments``: ``{a, b, count}``, step ``a + i`` of A is aligned with
step ``b + i`` of B), so the page maps a step of one trace to the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blocktrace.eip3155 import diff_files
from blocktrace.eip3155.render import report_object

__all__ = ["diff_object"]

StepOfLine = Callable[[int], "int | None"]


class _Mapper:
    """Differ step -> viewer step, by the trace line of the steps the report
    shows (exact there), else by the last offset seen (between them)."""

    def __init__(self, step_of_line: StepOfLine | None) -> None:
        self.step_of_line = step_of_line
        self.offset = 0

    def learn(self, differ_step: int, line: int | None) -> None:
        if self.step_of_line is None or line is None:
            return
        viewer = self.step_of_line(line)
        if viewer is not None:
            self.offset = viewer - differ_step

    def __call__(self, differ_step: int) -> int:
        return differ_step + self.offset


def diff_object(
    path_a: str, path_b: str, *, max_hunks: int = 1000,
    step_of_line_a: StepOfLine | None = None, step_of_line_b: StepOfLine | None = None,
) -> dict[str, Any]:
    """``diff --json`` (version 2) of the two traces, with viewer step ranges
    and the aligned common segments.  Raises the differ's TraceError/ValueError."""
    report = diff_files(path_a, path_b, max_hunks=max_hunks)
    obj = report_object(report)
    map_a, map_b = _Mapper(step_of_line_a), _Mapper(step_of_line_b)
    segments: list[dict[str, int]] = []
    a = b = 0
    first = obj["firstDivergence"]
    for hunk in obj["hunks"]:
        map_a.learn(hunk["aStart"], hunk["aLines"][0] if hunk["aLines"] else None)
        map_b.learn(hunk["bStart"], hunk["bLines"][0] if hunk["bLines"] else None)
        start_a, start_b = map_a(hunk["aStart"]), map_b(hunk["bStart"])
        hunk["aSteps"] = [start_a, start_a + hunk["aCount"]]
        hunk["bSteps"] = [start_b, start_b + hunk["bCount"]]
        if start_a > a and start_b > b:
            segments.append({"a": a, "b": b, "count": min(start_a - a, start_b - b)})
        a, b = hunk["aSteps"][1], hunk["bSteps"][1]
        if first is not None and hunk is obj["hunks"][0]:
            first["aStep"], first["bStep"] = start_a, start_b
    steps_a, steps_b = obj["steps"]
    complete = obj["hunkCount"] <= len(obj["hunks"])
    end_a, end_b = map_a(steps_a), map_b(steps_b)
    if complete and end_a > a and end_b > b:
        segments.append({"a": a, "b": b, "count": min(end_a - a, end_b - b)})
    obj["segments"] = segments
    obj["segmentsComplete"] = complete
    return obj
