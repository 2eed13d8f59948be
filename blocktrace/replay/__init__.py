"""Replay: record what a run depended on (``inputs``), re-run it, check it did the same.

``blocktrace run --record-inputs`` writes an ``inputs`` line (``inputs``);
``blocktrace replay TRACE`` re-runs the program with those inputs and compares
the two traces (``rerun``).  See docs/GOLDEN.md ("Replay") and docs/FORMAT.md.
"""

from __future__ import annotations

from blocktrace.replay.inputs import INPUTS_EVENT, InputRecorder
from blocktrace.replay.rerun import Replayed, ReplayError, read_inputs, replay

__all__ = ["INPUTS_EVENT", "InputRecorder", "ReplayError", "Replayed", "read_inputs", "replay"]
