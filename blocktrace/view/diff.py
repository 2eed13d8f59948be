"""The diff of two traces as the viewer shows it: ``diff --json`` plus alignment.

The differ (``blocktrace.eip3155``) aligns the two step streams exactly as
``blocktrace diff`` does; this adds what a side-by-side view needs: each hunk's
step ranges (``aSteps``/``bSteps``, half-open) and the common runs between
hunks (``segments``: ``{a, b, count}``, step ``a + i`` of A is aligned with
step ``b + i`` of B), so the page maps a step of one trace to the other.
"""

from __future__ import annotations

from typing import Any

from blocktrace.eip3155 import diff_files
from blocktrace.eip3155.render import report_object

__all__ = ["diff_object"]


def diff_object(path_a: str, path_b: str, *, max_hunks: int = 1000) -> dict[str, Any]:
    """``diff --json`` (version 2) of the two traces, with hunk step ranges and
    the aligned common segments.  Raises the differ's TraceError/ValueError."""
    report = diff_files(path_a, path_b, max_hunks=max_hunks)
    obj = report_object(report)
    segments: list[dict[str, int]] = []
    a = b = 0
    for hunk in obj["hunks"]:
        hunk["aSteps"] = [hunk["aStart"], hunk["aStart"] + hunk["aCount"]]
        hunk["bSteps"] = [hunk["bStart"], hunk["bStart"] + hunk["bCount"]]
        if hunk["aStart"] > a:
            segments.append({"a": a, "b": b, "count": hunk["aStart"] - a})
        a = hunk["aStart"] + hunk["aCount"]
        b = hunk["bStart"] + hunk["bCount"]
    steps_a, steps_b = obj["steps"]
    complete = obj["hunkCount"] <= len(obj["hunks"])
    if complete and steps_a > a and steps_b > b:
        segments.append({"a": a, "b": b, "count": min(steps_a - a, steps_b - b)})
    obj["segments"] = segments
    obj["segmentsComplete"] = complete
    return obj
