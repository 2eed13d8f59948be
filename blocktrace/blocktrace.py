"""``from blocktrace import blocktrace``: the import path of blocktrace 0.0.16, kept.

Code written for the 2021 tool runs unchanged (``blocktrace.BlockTrace(...)``,
``blocktrace.ChainFailure``); the view itself is :mod:`blocktrace.views.blocks`
(docs/MIGRATING.md).  This module holds nothing else.
"""

from __future__ import annotations

from blocktrace.views.blocks import BlockTrace, ChainFailure

__all__ = ["BlockTrace", "ChainFailure"]
