"""The trace format's one home (docs/FORMAT.md): versions, line kinds, the chain
rules' reference, the one reader, and the safe way to read a named source.

- :mod:`~blocktrace.format.versions`: ``FORMAT_VERSION``, ``KNOWN_VERSIONS``,
  ``LINES_PER_LEAF``, ``SUMMARY_PREFIX``, ``MAX_LINE_BYTES``;
- :mod:`~blocktrace.format.lines`: one msgspec Struct per line kind and
  :func:`decode_line`;
- :mod:`~blocktrace.format.rules`: the chain and leaf rules (``LeafChain``,
  ``ChainHasher``, :func:`rechain`, :func:`split_hash`) both writers are checked
  against;
- :mod:`~blocktrace.format.reader`: :class:`TraceReader` (lines by number, raw
  or parsed, batches, sources, extent, :meth:`~TraceReader.verify`), :func:`check_chain`
  and :func:`blocktrace_header` (whether a file is a blocktrace trace, and a
  usable one: the answer every command gives);
- :mod:`~blocktrace.format.index`: :class:`TraceIndex`, the random-access index;
- :mod:`~blocktrace.format.compressed`: ``.jsonl.zst`` / ``.jsonl.gz`` read frame by frame;
- :mod:`~blocktrace.format.wholelines`: the lines in large buffers of whole lines,
  for the readers that parse them in bulk (``query``'s and the viewer's tables);
- :class:`TraceError`: the one "not a (usable) trace" error (its ``status`` and
  ``exit_status`` say whether the trace fails its check there or is unusable).

This package imports nothing else of blocktrace: every layer may read traces.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from blocktrace.format.errors import TraceError
    from blocktrace.format.index import TraceIndex
    from blocktrace.format.lines import (
        CallLine,
        ExceptionLine,
        Header,
        Line,
        OpLine,
        ReturnLine,
        SourceLine,
        Summary,
        TracerErrorLine,
        UnknownLine,
        decode_line,
    )
    from blocktrace.format.reader import (
        Status,
        TraceReader,
        Verification,
        blocktrace_header,
        check_chain,
    )
    from blocktrace.format.rules import LeafChain, rechain, split_hash
    from blocktrace.format.source import MAX_SOURCE_BYTES, SourceText, fingerprint, read_source
    from blocktrace.format.versions import (
        FORMAT_VERSION,
        KNOWN_LEVELS,
        KNOWN_VERSIONS,
        LINES_PER_LEAF,
        MAX_LINE_BYTES,
        SUMMARY_IN_TREE,
        SUMMARY_PREFIX,
    )

# Each name is imported from its module when first used (PEP 562): a command
# that needs one module of the format (``blocktrace run``: the versions, the
# rules and the op line's layout) does not load the reader, the index and the
# compressed-trace machinery with it.
_HOMES = {
    "TraceError": "blocktrace.format.errors",
    "TraceIndex": "blocktrace.format.index",
    "CallLine": "blocktrace.format.lines",
    "ExceptionLine": "blocktrace.format.lines",
    "Header": "blocktrace.format.lines",
    "Line": "blocktrace.format.lines",
    "OpLine": "blocktrace.format.lines",
    "ReturnLine": "blocktrace.format.lines",
    "SourceLine": "blocktrace.format.lines",
    "Summary": "blocktrace.format.lines",
    "TracerErrorLine": "blocktrace.format.lines",
    "UnknownLine": "blocktrace.format.lines",
    "decode_line": "blocktrace.format.lines",
    "Status": "blocktrace.format.reader",
    "TraceReader": "blocktrace.format.reader",
    "Verification": "blocktrace.format.reader",
    "blocktrace_header": "blocktrace.format.reader",
    "check_chain": "blocktrace.format.reader",
    "LeafChain": "blocktrace.format.rules",
    "rechain": "blocktrace.format.rules",
    "split_hash": "blocktrace.format.rules",
    "MAX_SOURCE_BYTES": "blocktrace.format.source",
    "SourceText": "blocktrace.format.source",
    "fingerprint": "blocktrace.format.source",
    "read_source": "blocktrace.format.source",
    "FORMAT_VERSION": "blocktrace.format.versions",
    "KNOWN_LEVELS": "blocktrace.format.versions",
    "KNOWN_VERSIONS": "blocktrace.format.versions",
    "LINES_PER_LEAF": "blocktrace.format.versions",
    "MAX_LINE_BYTES": "blocktrace.format.versions",
    "SUMMARY_IN_TREE": "blocktrace.format.versions",
    "SUMMARY_PREFIX": "blocktrace.format.versions",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'blocktrace.format' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "FORMAT_VERSION",
    "KNOWN_LEVELS",
    "KNOWN_VERSIONS",
    "LINES_PER_LEAF",
    "MAX_LINE_BYTES",
    "MAX_SOURCE_BYTES",
    "SUMMARY_IN_TREE",
    "SUMMARY_PREFIX",
    "CallLine",
    "ExceptionLine",
    "Header",
    "LeafChain",
    "Line",
    "OpLine",
    "ReturnLine",
    "SourceLine",
    "SourceText",
    "Status",
    "Summary",
    "TraceError",
    "TraceIndex",
    "TraceReader",
    "TracerErrorLine",
    "UnknownLine",
    "Verification",
    "blocktrace_header",
    "check_chain",
    "decode_line",
    "fingerprint",
    "read_source",
    "rechain",
    "split_hash",
]
