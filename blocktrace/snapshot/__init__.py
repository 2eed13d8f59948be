"""Step-by-step snapshots of stack and heap, and the confined service that
makes them for untrusted code (docs/SNAPSHOTS.md, docs/SECURITY.md).

- :class:`SnapshotTracer` records Python Tutor-style steps of a traced run.
- :func:`run_request` runs one :class:`SnapshotRequest` in a confined child
  process and builds the response; :class:`SnapshotApp` serves that over HTTP
  (ASGI, for uvicorn).
"""

from __future__ import annotations

from blocktrace.snapshot.app import SnapshotApp
from blocktrace.snapshot.heap import HeapEncoder
from blocktrace.snapshot.model import (
    ErrorInfo,
    Frame,
    HeapObject,
    Limits,
    SnapshotRequest,
    SnapshotResponse,
    Step,
)
from blocktrace.snapshot.runner import (
    Confinement,
    RunResult,
    run_request,
    run_request_sync,
    sandbox_kind,
)
from blocktrace.snapshot.streams import CappedOutput, FeedInput
from blocktrace.snapshot.tracer import SnapshotTracer

__all__ = [
    "CappedOutput",
    "Confinement",
    "ErrorInfo",
    "FeedInput",
    "Frame",
    "HeapEncoder",
    "HeapObject",
    "Limits",
    "RunResult",
    "SnapshotApp",
    "SnapshotRequest",
    "SnapshotResponse",
    "SnapshotTracer",
    "Step",
    "run_request",
    "run_request_sync",
    "sandbox_kind",
]
