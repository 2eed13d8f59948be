"""Step-by-step snapshots of stack and heap, and the confined service that
makes them for untrusted code (docs/SNAPSHOTS.md, docs/SECURITY.md).

- :class:`SnapshotTracer` records Python Tutor-style steps of a traced run.
- :func:`run_request` runs one :class:`SnapshotRequest` in a confined child
  process and builds the response; :class:`SnapshotApp` serves that over HTTP
  (ASGI, for uvicorn).

Names are imported on first use, so the child process that runs a program
(:mod:`blocktrace.snapshot.child`) does not pay for asyncio and the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "SnapshotApp": "app",
    "HeapEncoder": "heap",
    "ErrorInfo": "model",
    "Frame": "model",
    "HeapObject": "model",
    "Limits": "model",
    "SnapshotRequest": "model",
    "SnapshotResponse": "model",
    "Step": "model",
    "Confinement": "runner",
    "RunResult": "runner",
    "run_request": "runner",
    "run_request_sync": "runner",
    "sandbox_kind": "runner",
    "CappedOutput": "streams",
    "FeedInput": "streams",
    "SnapshotTracer": "tracer",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'blocktrace.snapshot' has no attribute {name!r}")
    return getattr(importlib.import_module(f"blocktrace.snapshot.{home}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
