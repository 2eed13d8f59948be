"""What the tests of ``diff``'s fast paths against its reference share (imported by
test_diff_align, test_diff_lines, test_diff_levels and test_diff_calls): recording a
module's program, the two reports (the fast paths' and the reference's, every edited
trace re-chained first), their comparison, and a count of what a walk passed over."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import blocktrace
from blocktrace.eip3155 import diff_files, report, skip
from blocktrace.eip3155.render import render_json, render_text
from blocktrace.eip3155.report import DiffReport
from tests.fuzz.harness import rechain

__all__ = ["NEEDS_C", "SETTINGS", "Walked", "checked", "examples", "record", "recordings",
           "reports", "same"]

NEEDS_C = pytest.mark.skipif(skip._c is None, reason="the C extension is not built "
                             "(or BLOCKTRACE_PURE is set): only the reference path runs")


def examples(count: int) -> settings:
    """Hypothesis settings for a test drawing ``count`` examples (no deadline: each
    records or diffs real traces; fixtures are per module, read only)."""
    return settings(max_examples=count, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


SETTINGS = examples(40)


def record(program: Callable[..., Any], path: Path, args: dict[str, Any],
           **options: Any) -> Path:
    """``program(**args)`` recorded by a ``ChainTracer`` (``options``) to ``path``."""
    with blocktrace.trace(blocktrace.ChainTracer(path, **options)):
        program(**args)
    return path


def recordings(program: Callable[..., Any], where: Path,
               runs: Iterable[tuple[str, dict[str, Any], dict[str, Any]]]
               ) -> dict[str, list[bytes]]:
    """The lines of each run's recording (``name``, ``program``'s arguments, the
    tracer's options), by name, recorded under ``where``."""
    return {
        name: record(program, where / f"{name}.jsonl", args, **options).read_bytes()
        .splitlines(keepends=True)
        for name, args, options in runs
    }


def reports(a: Path, b: Path, monkeypatch: pytest.MonkeyPatch, **options: Any
            ) -> tuple[DiffReport, DiffReport]:
    """``diff_files(a, b, **options)`` by the fast paths, then by the reference alone.
    Plain inputs are re-chained first, as a forger would: a TAMPERED trace is read by the
    reference alone (``report._tampered``), so an edit not re-chained tests no walk."""
    for path in (a, b):
        if path.suffix == ".jsonl":
            path.write_bytes(rechain(path.read_bytes()))
    with monkeypatch.context() as patch:
        patch.setattr(report, "_TRACE_SOURCES", {})
        fast = diff_files(str(a), str(b), **options)
    with monkeypatch.context() as patch:
        patch.setattr(skip, "_c", None)
        patch.setattr(report, "_TRACE_SOURCES", {})
        reference = diff_files(str(a), str(b), **options)
    return fast, reference


def checked(a: Path, b: Path, monkeypatch: pytest.MonkeyPatch, *, swap: bool = False,
            **options: Any) -> tuple[DiffReport, DiffReport]:
    """``reports`` of A and B (B and A with ``swap``), asserted the ``same``."""
    if swap:
        a, b = b, a
    fast, reference = reports(a, b, monkeypatch, **options)
    same(fast, reference)
    return fast, reference


def same(fast: DiffReport, reference: DiffReport) -> None:
    """The two reports say the same: text, JSON, and every count and step behind them."""
    assert render_text(fast) == render_text(reference)
    assert render_json(fast) == render_json(reference)
    assert fast.a == reference.a
    assert fast.b == reference.b
    assert (fast.steps.common, fast.steps.hunk_count, fast.steps.differing_a,
            fast.steps.differing_b, fast.steps.window_overflows) == (
        reference.steps.common, reference.steps.hunk_count, reference.steps.differing_a,
        reference.steps.differing_b, reference.steps.window_overflows)
    assert fast.steps.hunks == reference.steps.hunks
    assert fast.steps.first == reference.steps.first
    assert fast.steps.last_common == reference.steps.last_common


class Walked:
    """How much the walk ``skip.<name>`` (``_skip_lines``, ``_skip_levels``,
    ``_skip_calls``) passed over: the sum of the first number of its answers (groups by
    source line for ``_skip_lines``, steps for the others)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.count = 0
        real = getattr(skip, name)

        def walk(*args: Any) -> tuple[int, ...]:
            got: tuple[int, ...] = real(*args)
            self.count += got[0]
            return got

        monkeypatch.setattr(skip, name, walk)
