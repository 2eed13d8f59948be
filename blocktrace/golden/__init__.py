"""Golden traces: pin what a test's code *did* and report the first step where it changed.

``pytest --blocktrace-golden`` (see docs/GOLDEN.md and ``golden.plugin``)
records each test as a blocktrace trace in golden form (``stabilise``: stable
bytes for the same behaviour) and compares it with the stored one
(``compare``) using the diff engine.
"""

from __future__ import annotations

from blocktrace.golden.compare import GoldenCorrupt, GoldenDiff, compare_golden
from blocktrace.golden.stabilise import GOLDEN_GENESIS, Normaliser, stabilise
from blocktrace.golden.storage import golden_path, safe_name

__all__ = [
    "GOLDEN_GENESIS",
    "GoldenCorrupt",
    "GoldenDiff",
    "Normaliser",
    "compare_golden",
    "golden_path",
    "safe_name",
    "stabilise",
]
