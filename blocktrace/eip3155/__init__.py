"""Reading, normalising and diffing EIP-3155 traces (any client's, and blocktrace's).

Works on files only: nothing here imports the stepper, so a differ never needs
the traced program.  ``diff_files`` is the entry point; ``normalise`` streams
one trace's steps; ``dialects`` holds every writer's quirks in two tables.
"""

from __future__ import annotations

from blocktrace.eip3155.compare import Comparer
from blocktrace.eip3155.dialects import DIALECTS, LINE_RULES
from blocktrace.eip3155.differ import DEFAULT_MAX_HUNKS, DEFAULT_WINDOW, diff_steps
from blocktrace.eip3155.normalise import TraceInfo, normalise, read_all
from blocktrace.eip3155.reader import TraceError
from blocktrace.eip3155.records import Step, Summary
from blocktrace.eip3155.render import render_json, render_text
from blocktrace.eip3155.report import DiffReport, diff_files

__all__ = [
    "DEFAULT_MAX_HUNKS",
    "DEFAULT_WINDOW",
    "DIALECTS",
    "LINE_RULES",
    "Comparer",
    "DiffReport",
    "Step",
    "Summary",
    "TraceError",
    "TraceInfo",
    "diff_files",
    "diff_steps",
    "normalise",
    "read_all",
    "render_json",
    "render_text",
]
