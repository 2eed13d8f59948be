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
  or parsed, batches, sources, :meth:`~TraceReader.verify`), :func:`check_chain`
  and :func:`blocktrace_header` (whether a file is a blocktrace trace, and a
  usable one: the answer every command gives);
- :mod:`~blocktrace.format.index`: :class:`TraceIndex`, the random-access index;
- :mod:`~blocktrace.format.compressed`: ``.jsonl.zst`` / ``.jsonl.gz`` read frame by frame;
- :class:`TraceError`: the one "not a (usable) trace" error (its ``status`` and
  ``exit_status`` say whether the trace fails its check there or is unusable).

This package imports nothing else of blocktrace: every layer may read traces.
"""

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
