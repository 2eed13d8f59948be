"""Shared helpers for the snapshot tests: run a request confined, find leftovers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from blocktrace.snapshot import Confinement, Limits, SnapshotRequest, run_request_sync
from blocktrace.snapshot.confine import bwrap_usable

# Small limits keep every hostile program fast.
TEST_LIMITS = Limits(cpu_seconds=1, wall_seconds=4.0, memory_bytes=256 * 1024 * 1024)


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) processes below ``pid``, found through /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] == b"Z":
            continue
        parents[int(entry)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.extend(kids)
        frontier.extend(kids)
    return found


def snap(
    source: str, *, input: str = "", steps: int = 200, limits: Limits = TEST_LIMITS,
    confinement: Confinement | None = None, format: str = "snapshots",
) -> dict[str, Any]:
    """Run ``source`` confined and return the decoded response."""
    request = SnapshotRequest(source=source, input=input, steps=steps, format=format)  # type: ignore[arg-type]
    result = run_request_sync(request, limits, confinement)
    assert result.content_type == "application/json"
    response: dict[str, Any] = msgspec.json.decode(result.body)
    assert response["status"] == result.status
    return response


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fails the test if it leaves any process of ours running."""
    yield
    left = descendants(os.getpid())
    assert left == [], f"processes left behind: {left}"


needs_bwrap = pytest.mark.skipif(
    bwrap_usable() is None,
    reason="bubblewrap (bwrap) is not installed or cannot create namespaces here",
)
