"""The one reader of trace files: streaming, bounded, with ranges and the chain check.

:class:`TraceReader` opens a trace (its header must be usable, else
:class:`~blocktrace.format.TraceError`) and reads its lines by number, raw or
as Structs, one at a time or in batches.  The index
(:mod:`blocktrace.format.index`, built by :meth:`TraceReader.index` in the
chain check's one pass and kept beside the trace) answers ranges and steps
without reading what lies before them.  Compressed traces (``.jsonl.zst``,
``.jsonl.gz``: :mod:`blocktrace.format.compressed`) read the same as plain
ones.  :func:`check_chain` is the verifier's walk over a file (every line's
hash, the summary's rules, a cheap well-formedness check); verify,
``TraceReader.verify`` and every consumer that must say what ``verify`` says of
its input use it.  Every bound and every "not a trace" answer lives here.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from typing import IO, Any, Literal, Protocol

import msgspec

from blocktrace._native import extension
from blocktrace.format.compact import NotCompact
from blocktrace.format.compressed import (
    CompressedDataError,
    FrameStream,
    Kind,
    Position,
    ReadAhead,
    kind_of,
    open_at,
)
from blocktrace.format.errors import TraceError
from blocktrace.format.index import (
    EVERY,
    IndexBuilder,
    StepCounter,
    TraceIndex,
    keep_index,
    load_index,
    stamp_of,
)
from blocktrace.format.lines import (
    DECODE_ERRORS,
    HEADER_PREFIX,
    SOURCE_PREFIX,
    Header,
    Line,
    SourceLine,
    Summary,
    decode_line,
    decode_members,
)
from blocktrace.format.rules import ChainHasher, LeafChain, leaf_hash, split_hash
from blocktrace.format.versions import (
    HASH_ALG,
    KNOWN_LEVELS,
    KNOWN_VERSIONS,
    LINES_PER_LEAF,
    MAX_LINE_BYTES,
    SUMMARY_IN_TREE,
    SUMMARY_PREFIX,
)
from blocktrace.limits import LineTooLongError, size_text

__all__ = [
    "Extent", "Status", "TraceReader", "Tree", "Verification", "blocktrace_header", "check_chain",
]

Status = Literal["sealed", "tampered", "unusable", "unsealed"]

_DECODE_ERRORS = DECODE_ERRORS
_decode_dict = decode_members
_header_decoder = msgspec.json.Decoder(Header)
_summary_decoder = msgspec.json.Decoder(Summary)
_GAS_HEX = re.compile(r"0x[0-9a-f]+\Z")


class _Object(msgspec.Struct):
    """Any JSON object (members skipped): the cheap well-formedness check."""


_check_object = msgspec.json.Decoder(_Object).decode


class Tree(Protocol):
    """What :func:`check_chain` feeds the leaves to (a ``MerkleAccumulator``)."""

    @property
    def size(self) -> int: ...

    def append_leaf_hash(self, digest: bytes) -> None: ...

    def root(self) -> bytes: ...


class Verification(msgspec.Struct):
    """What verifying one file found: ``status`` is one of

    - ``sealed``: every line's hash checks, the summary closes the chain;
    - ``tampered``: the first line where the file differs from what was
      written, and how (also: a head that does not match an anchor);
    - ``unusable``: not a blocktrace trace at all (missing, empty, a directory,
      not JSON, an unknown format version);
    - ``unsealed``: every complete line checks but there is no summary -- the
      run was cut short.  Never reported as valid.
    """

    path: str
    status: Status
    reason: str = ""
    line: int | None = None
    """1-based line number the reason is about, when it is about one."""
    lines: int = 0
    """Complete lines whose hash checked."""
    head: str = ""
    """The hash of the last line that checked (the sealed head when sealed)."""
    genesis: str | None = None
    version: int = 0
    header: dict[str, Any] = msgspec.field(default_factory=dict)
    summary: dict[str, Any] | None = None
    root: str = ""
    """The Merkle root of the whole tree (hex), when a tree was given and the
    trace is sealed.  Versions 3 and 4: every line; versions 1 and 2: the lines before
    the summary."""
    tree_size: int = 0
    index: TraceIndex | None = None
    """The index the check built, when asked to (``check_chain(build_index=True)``)."""

    @property
    def outcome_in_tree(self) -> bool:
        """The run's outcome (the summary) is in the Merkle tree (versions 3 and 4), so a
        checkpoint of the whole tree covers it."""
        return self.version in SUMMARY_IN_TREE

    @property
    def steps(self) -> int | None:
        """The steps among the lines that checked, as ``show``, ``diff`` and
        ``view`` number them (0 to ``steps - 1``; an exception line at its op's
        place is part of that op's step), from the index the check built; None
        without one (``verify --no-index``), or at level ``line`` or ``call``,
        whose op lines are not every instruction's."""
        if self.index is None or self.header.get("level", "op") != "op":
            return None
        return self.index.steps

    @property
    def stopped_at_step(self) -> int | None:
        """Where a trace that stopped before its program's end stopped, as
        :attr:`steps` counts: the first step it does not hold (``show`` of it says
        "the trace has N steps"; ``diff`` against a run that went on says the
        trace ended there; ``verify`` says "recording stopped at step N" of a
        size-limited one).  A trace stops early when recording reached its size
        limit (``TraceSizeLimit``: the program ran on), the run was halted out of
        gas (``OutOfGas``: step N-1 is the instruction it could not pay for) or by
        Ctrl-C (``KeyboardInterrupt``), or it is unsealed (cut short).  None for
        a trace of the whole run, or when steps are not counted."""
        steps = self.steps
        if steps is None or self.status not in ("sealed", "unsealed"):
            return None
        if self.status == "unsealed":
            return steps
        error = str((self.summary or {}).get("error") or "")
        if error in ("TraceSizeLimit", "OutOfGas") or error.startswith("KeyboardInterrupt"):
            return steps
        return None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.path,
            "status": self.status,
            "valid": self.status == "sealed",
            "lines": self.lines,
            "head": self.head,
        }
        if self.version:
            out["version"] = self.version
        steps = self.steps
        if steps is not None and self.status in ("sealed", "unsealed"):
            out["steps"] = steps
            stopped = self.stopped_at_step
            if stopped is not None:
                out["stoppedAtStep"] = stopped
        if self.reason:
            out["reason"] = self.reason
        if self.line is not None:
            out["line"] = self.line
        if self.genesis is not None:
            out["genesis"] = self.genesis
        if self.summary is not None:
            out["summary"] = {k: v for k, v in self.summary.items() if k != "hash"}
        if self.root:
            out["root"] = self.root
            out["treeSize"] = self.tree_size
        return out


def _kind(path: str) -> Kind:
    if os.path.isdir(path):
        raise TraceError(path, None, "is a directory, not a trace file")
    try:
        return kind_of(path)
    except OSError as exc:
        raise TraceError(path, None, f"cannot read: {exc.strerror or exc}") from None


class TraceReader:
    """A trace file, read line by line, never whole.

    Construction reads the header (raising :class:`TraceError` when the file is
    not a usable trace); ``header``, ``version`` and ``level`` describe it.
    Line numbers are 1-based and count every line, header included.  The
    iterators open the file themselves (a reader holds no descriptor) and stop
    before a torn last line.  Reading does not check hashes: :meth:`verify`
    does (what ``blocktrace verify`` says of the file); a consumer that shows a
    trace shows that answer with it.
    """

    def __init__(
        self, path: str | os.PathLike[str], index: TraceIndex | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.kind: Kind = _kind(self.path)
        """``plain``, ``zstd`` or ``gzip`` (sniffed from the magic bytes)."""
        self._index: TraceIndex | None = index
        """``index``: one already loaded for this file (:meth:`index` gives it while
        the file's stamp is the one it was built from)."""
        header = _open_header(self.path, self.kind)
        assert header is not None
        self.header: Header = header
        self.version: int = header.blocktrace
        self.level: str = header.level

    def raw_lines(self, start: int = 1, count: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(number, exact bytes with the newline)`` for lines ``start`` ..
        ``start + count - 1`` (to the end when ``count`` is None).  (Not a
        generator itself: the lines come straight from :meth:`_numbered`'s.)"""
        if start < 1 or (count is not None and count < 0):
            raise ValueError("lines are numbered from 1 and counts are not negative")
        end = None if count is None else start + count
        first, at = 1, None
        if start > EVERY:
            index = self.index(build=False)
            if index is not None and index.checkpoints:  # (none: tampered at line 1)
                k = index.checkpoint_for_line(start)
                first, at = k * EVERY + 1, index.position(k)
        return self._numbered(first, at, start, end)

    def _numbered(
        self, first: int, at: Position | None, start: int, end: int | None
    ) -> Iterator[tuple[int, bytes]]:
        """Lines from the one numbered ``first`` (at ``at``), those in [start, end)
        (compressed data that cannot be read on ends them as a torn line does).
        One loop, no generator under it: every consumer of lines pays for each
        layer per line."""
        with open_at(self.path, self.kind, at) as stream:
            readline = stream.readline
            number = first - 1
            stop = -1 if end is None else end - 1
            while number != stop:
                try:
                    raw = readline(MAX_LINE_BYTES + 1)
                except CompressedDataError:
                    return
                if not raw:
                    return
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    too_long = f"line {number} is longer than {size_text(MAX_LINE_BYTES)}"
                    raise TraceError(self.path, number, too_long)
                if raw[-1] != 10:
                    return  # torn: the run was cut short mid-line
                if number >= start:
                    yield number, raw

    def lines(self, start: int = 1, count: int | None = None) -> Iterator[tuple[int, Line]]:
        """``(number, Struct)`` for the lines of :meth:`raw_lines`; a line that is
        not one of the format's kinds raises :class:`TraceError` naming it."""
        for number, raw in self.raw_lines(start, count):
            yield number, self.decode(number, raw)

    def decode(self, number: int, raw: bytes) -> Line:
        """One line's Struct, or :class:`TraceError` naming line ``number``."""
        try:
            return decode_line(raw)
        except _DECODE_ERRORS as exc:
            problem = (
                "JSON nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            )
            raise TraceError(self.path, number, f"not a trace line: {problem}") from None

    def decode_object(self, number: int, raw: bytes) -> dict[str, Any]:
        """One line's members as a dict, whatever its kind (``format.lines.decode_members``,
        which a consumer's loop calls itself, asking this for the error), or
        :class:`TraceError` naming line ``number`` when it is not a JSON object."""
        try:
            return _decode_dict(raw)
        except _DECODE_ERRORS as exc:
            problem = "JSON nested too deeply" if isinstance(exc, RecursionError) else exc
            raise TraceError(self.path, number, f"not a JSON object: {problem}") from None

    def batches(
        self, size: int = 4096, start: int = 1, count: int | None = None
    ) -> Iterator[list[tuple[int, bytes]]]:
        """:meth:`raw_lines` in lists of up to ``size`` (for consumers that hand
        lines on in bulk: exports, a viewer's page)."""
        if size < 1:
            raise ValueError("batch size must be positive")
        batch: list[tuple[int, bytes]] = []
        for item in self.raw_lines(start, count):
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- the index ---------------------------------------------------------------

    def index(self, build: bool = True, progress: Any = None, *,
              fresh: bool = False) -> TraceIndex | None:
        """The trace's index (:mod:`blocktrace.format.index`): the one kept beside
        the trace (or in the cache) when it is intact and commits to the trace as
        it is now, else -- with ``build`` -- built in one streaming pass (the
        chain check's) and stored.  None without ``build`` when there is none
        usable, or when the file is no usable trace.  ``progress``: an object
        with ``update(done_bytes)`` (``blocktrace.progress.Progress``).
        ``fresh``: built again whatever is kept (the lines were found to differ
        from those the kept one was built from), and stored in its place."""
        try:
            stamp = stamp_of(self.path, self.kind)
        except OSError as exc:
            raise TraceError(self.path, None, f"cannot read: {exc.strerror or exc}") from None
        if not fresh:
            if self._index is not None and self._index.stamp == stamp:
                return self._index
            found = load_index(self.path, stamp)
            if found is not None and self._head_matches(found):
                self._index = found
                return found
        self._index = None
        if not build:
            return None
        result = check_chain(self.path, build_index=True, progress=progress)
        built = result.index
        if built is None:
            return None
        keep_index(self.path, built)
        self._index = built
        return built

    def _head_matches(self, index: TraceIndex) -> bool:
        """The last indexed line is where the index says, with the hash it says."""
        if index.lines == 0:
            return False
        try:
            with open_at(self.path, self.kind, index.last) as stream:
                raw = stream.readline(MAX_LINE_BYTES + 1)
        except (TraceError, CompressedDataError, OSError):
            return False
        parts = split_hash(raw[:-1]) if raw.endswith(b"\n") else None
        return parts is not None and parts[1] == index.head

    def _from_checkpoint(self, k: int) -> Iterator[tuple[int, bytes]]:
        """Lines from checkpoint ``k``'s, to the end."""
        index = self._index
        assert index is not None
        yield from self._numbered(k * EVERY + 1, index.position(k), 1, None)

    def line_of_step(self, step: int) -> int:
        """The line number of step ``step`` (0-based, as ``diff`` numbers steps);
        builds the index when there is none.  ``IndexError`` when there is no
        such step among the lines the chain check accepted."""
        index = self.index()
        if index is None:
            raise TraceError(self.path, None, "not a usable trace: no index")
        if not 0 <= step < index.steps:
            raise IndexError(f"no step {step}: the trace has {index.steps} steps")
        k = index.checkpoint_for_step(step)
        count = index.steps_before(k)
        for number, starts in StepCounter().steps(self._from_checkpoint(k), index.first_step(k)):
            if starts:
                if count == step:
                    return number
                count += 1
        raise IndexError(f"no step {step} (the trace changed while it was read)")

    def step_of_line(self, lineno: int) -> int | None:
        """The step line ``lineno`` belongs to: its own when it is an op line, else
        the last step before it (an exception line belongs to the op before it);
        None before the first step."""
        index = self.index()
        if index is None:
            raise TraceError(self.path, None, "not a usable trace: no index")
        if not 1 <= lineno <= index.lines:
            raise IndexError(f"no line {lineno}: the trace has {index.lines} lines")
        k = index.checkpoint_for_line(lineno)
        count = index.steps_before(k)
        for number, starts in StepCounter().steps(self._from_checkpoint(k), index.first_step(k)):
            count += starts
            if number == lineno:
                break
        return count - 1 if count > 0 else None

    def extent(self) -> Extent:
        """How many complete lines the trace has, the last of them and whether
        bytes follow them: from the reader's index when it has one (the lines the
        chain check accepted; ``trailing`` when the check stopped at a line), else
        in one pass over the file that reads no line into memory but the last (a
        line longer than ``MAX_LINE_BYTES``, or compressed data that cannot be
        read, is :class:`TraceError`).  The hashes are not checked: that is
        :meth:`verify`."""
        index = self._index
        if index is not None:
            if index.lines == 0:
                return Extent(0, b"", False)
            last = b"".join(raw for _, raw in self.raw_lines(index.lines, 1))
            trailing = index.status != "sealed" and index.line is not None
            return Extent(index.lines, last, trailing)
        try:
            with open_at(self.path, self.kind) as stream:
                return _extent_of(stream)
        except LineTooLongError as exc:
            raise TraceError(self.path, exc.number, f"{exc}: not a blocktrace trace") from None
        except CompressedDataError as exc:
            raise exc.trace_error(self.path, None) from None

    def sources(self) -> dict[str, SourceLine]:
        """The source lines of the trace (version 3 on), by file name (the first
        line naming each file).  Found by a byte search over the format's
        buffers of whole lines (:func:`~blocktrace.format.wholelines.complete_lines`:
        plain and compressed traces alike, up to a torn last line), not line by
        line: ``diff``'s and ``replay``'s reports need them of traces of millions
        of lines.  A line is numbered only when it must be named (one that does not
        decode, one too long): the newlines before it are counted then."""
        from blocktrace.format.wholelines import complete_lines

        out: dict[str, SourceLine] = {}
        done = 0  # bytes of the buffers before this one (each starts a line)
        try:
            for buf in complete_lines(self):
                for at in _source_starts(buf, done > 0):  # (line 1 is the header)
                    raw = buf[at : buf.index(b"\n", at) + 1]
                    try:
                        line = self.decode(0, raw)
                    except TraceError:
                        self.decode(self._number_at(done + at), raw)  # (raises, naming it)
                        raise
                    if isinstance(line, SourceLine):
                        out.setdefault(line.file, line)
                done += len(buf)
        except LineTooLongError:
            number = self._number_at(done)
            too_long = f"line {number} is longer than {size_text(MAX_LINE_BYTES)}"
            raise TraceError(self.path, number, too_long) from None
        return out

    def _number_at(self, offset: int) -> int:
        """The number of the line starting at byte ``offset`` (of the uncompressed
        lines): the newlines before it counted, in the same buffers."""
        from blocktrace.format.wholelines import complete_lines

        newlines = 0
        try:
            for buf in complete_lines(self):
                if offset <= len(buf):
                    return newlines + buf.count(b"\n", 0, offset) + 1
                newlines += buf.count(b"\n")
                offset -= len(buf)
        except LineTooLongError:
            pass
        return newlines + 1

    def verify(self, tree: Tree | None = None) -> Verification:
        """What ``blocktrace verify`` says of this file's chain (see :func:`check_chain`)."""
        return check_chain(self.path, tree=tree)


class Extent:
    """A trace's complete lines (:meth:`TraceReader.extent`).  (A plain class: a
    ``NamedTuple`` or dataclass costs every command that imports the reader its
    making.)"""

    __slots__ = ("last", "lines", "trailing")

    def __init__(self, lines: int, last: bytes, trailing: bool) -> None:
        self.lines = lines
        """Complete lines (each ending with a newline), header included."""
        self.last = last
        """The last of them, with its newline (b"" when there is none)."""
        self.trailing = trailing
        """Bytes follow them: a torn last line (or, from an index, the line where
        the chain check stopped)."""


_PIECE = 1 << 20


def _extent_of(stream: IO[bytes]) -> Extent:
    """One pass over ``stream`` in pieces: its newlines counted, its last complete
    line kept (``LineTooLongError`` for a line longer than ``MAX_LINE_BYTES``)."""
    newlines, last, tail = 0, b"", b""
    while piece := stream.read(_PIECE):
        first = piece.find(b"\n")
        if first < 0:
            tail += piece
            if len(tail) > MAX_LINE_BYTES:
                raise LineTooLongError(newlines + 1, MAX_LINE_BYTES)
            continue
        if len(tail) + first + 1 > MAX_LINE_BYTES:  # (the lines after it are in the piece)
            raise LineTooLongError(newlines + 1, MAX_LINE_BYTES)
        newlines += piece.count(b"\n")
        end = piece.rfind(b"\n")
        start = piece.rfind(b"\n", 0, end)
        last = tail + piece[: end + 1] if start < 0 else piece[start + 1 : end + 1]
        tail = piece[end + 1 :]
    return Extent(newlines, last, bool(tail))


def blocktrace_header(path: str | os.PathLike[str]) -> Header | None:
    """The header of the blocktrace trace at ``path``, or None when the file is
    no blocktrace trace at all (neither its first line nor the next one that is
    not blank is a blocktrace line -- a header, or a line ending in a hash
    member: an EIP-3155 client's trace, or no trace -- the client reader says
    which).  A blocktrace trace that cannot be used raises :class:`TraceError`
    with what ``verify`` says of it (``status`` tampered or unusable), so that a
    command reading client traces too answers as every other command does (a
    blocktrace trace after blank lines: unusable, line 1 is not its header)."""
    name = os.fspath(path)
    return _open_header(name, _kind(name), others=True)


_HEADER_START = HEADER_PREFIX
_SOURCE = SOURCE_PREFIX
_NL_SOURCE = b"\n" + _SOURCE


def _source_starts(buf: bytes, starts_a_line: bool) -> Iterator[int]:
    """Where the lines of ``buf`` (whole lines) that start like a source line
    start; ``starts_a_line``: its first line counts too."""
    if starts_a_line and buf.startswith(_SOURCE):
        yield 0
    found = buf.find(_NL_SOURCE)
    while found >= 0:
        yield found + 1
        found = buf.find(_NL_SOURCE, found + 1)


def _open_header(path: str, kind: Kind, *, others: bool = False) -> Header | None:
    """Line 1 of the file as :func:`check_chain` judges it when it stops there:
    the header, or :class:`TraceError` (``status`` tampered where verify says
    TAMPERED at line 1, else unusable).  ``others``: None instead of the error
    for a file that is no blocktrace trace (see :func:`blocktrace_header`)."""
    second = b""
    with open_at(path, kind) as stream:
        try:
            first = stream.readline(MAX_LINE_BYTES + 1)
        except CompressedDataError as exc:
            if exc.line is not None:  # compact frames: the frame fails its stored head
                raise exc.trace_error(path, 1) from None
            raise TraceError(path, None, f"{exc.reason}: not a usable trace") from None
        if others and first and not first.startswith(_HEADER_START):
            try:
                second = _next_filled(stream)
            except CompressedDataError:
                second = b""
    if not first:
        raise TraceError(path, None, "empty file: not a trace")
    status: Status = "unusable"
    if len(first) > MAX_LINE_BYTES:
        why = f"line 1 is longer than {size_text(MAX_LINE_BYTES)}: not a trace"
    elif not first.endswith(b"\n"):
        why = "no complete first line: not a blocktrace trace"
    else:
        judged = _judge_header(path, first[:-1])
        if isinstance(judged, Header):
            return judged
        status, why = judged
    if status == "tampered" and not (others and _foreign_after_bom(first)):
        raise _tampered_at(path, 1, why)
    if others and not first.startswith(_HEADER_START) and not _chained(second):
        return None  # not blocktrace's: someone else's lines, or no trace
    raise TraceError(path, 1, why)


_BLANK_LINES = 1024
"""Blank lines looked past for the line that tells a blocktrace trace (bounded:
a file of nothing but newlines is not read to its end to say it is no trace)."""


def _next_filled(stream: IO[bytes]) -> bytes:
    """The next line of ``stream`` that is not blank (within ``_BLANK_LINES``
    lines), or the last one read."""
    line = b""
    for _ in range(_BLANK_LINES):
        line = stream.readline(MAX_LINE_BYTES + 1)
        if line.strip():
            break
    return line


def _chained(line: bytes) -> bool:
    """Whether ``line`` is a blocktrace line: a header, or a complete line ending
    in a hash member."""
    if line.startswith(_HEADER_START):
        return True
    return line.endswith(b"\n") and split_hash(line[:-1]) is not None


def _foreign_after_bom(first: bytes) -> bool:
    """A byte-order mark before a line that is not blocktrace's (neither its
    header nor a chained line): someone else's file with a mark (an editor's on
    Windows), not a blocktrace trace tampered at line 1."""
    if not first.startswith(_BOM):
        return False
    rest = first[len(_BOM) :].rstrip(b"\r\n")
    return not rest.startswith(_HEADER_START) and split_hash(rest) is None


_BOM = b"\xef\xbb\xbf"


def _tampered_at(path: str, line: int, reason: str) -> TraceError:
    """What cannot be read because the trace fails its check at ``line``."""
    return TraceError(path, None, f"TAMPERED at line {line}: {reason}", status="tampered")


def _judge_header(path: str, line: bytes) -> Header | tuple[Status, str]:
    """Line 1 (without its newline) as verify judges it: the header, or the
    status and reason: a byte-order mark, or a chained blocktrace line where
    the header belongs (the header deleted, lines moved), is tampering; any
    other line 1 makes the file unusable (not a blocktrace trace, an unknown
    version, a header without a hash member: the lines ``zstd -d`` gives of a
    compact trace)."""
    header = _parse_header(path, line)
    if not isinstance(header, str):
        if b',"hash":' not in line:  # not even an edited one: the compact form's lines
            return "unusable", HASHLESS
        return header
    if header.startswith("byte-order mark"):
        return "tampered", header
    if "not a blocktrace header" in header and split_hash(line) is not None:
        return "tampered", (
            "line 1 is not the trace's header (the header was deleted, or lines were "
            "moved): " + header
        )
    return "unusable", header


def _parse_header(path: str, line: bytes) -> Header | str:
    """Line 1 (without its newline) as a Header, or why it is not one (a format
    version this blocktrace does not know among the reasons)."""
    if line.startswith(_BOM):
        return "byte-order mark before the header"
    try:
        obj = _decode_dict(line)
    except _DECODE_ERRORS:
        return "line 1 is not a JSON object: not a blocktrace trace"
    version = obj.get("blocktrace")
    if version is None:
        return "line 1 is not a blocktrace header: not a blocktrace trace"
    if type(version) is not int or version not in KNOWN_VERSIONS or obj.get("hashAlg") != HASH_ALG:
        return (
            f"format version {version!r} with hash {obj.get('hashAlg')!r} is not one this "
            f"blocktrace knows ({', '.join(map(str, KNOWN_VERSIONS))}; {HASH_ALG})"
        )
    try:
        header = _header_decoder.decode(line)
    except _DECODE_ERRORS as exc:
        return f"malformed header: {exc}"
    if version >= 3 and header.level not in KNOWN_LEVELS:
        return f"unknown trace level {header.level!r} (this blocktrace reads {KNOWN_LEVELS})"
    return header


# -- the chain check -----------------------------------------------------------------


def check_chain(
    path: str | os.PathLike[str],
    *,
    tree: Tree | None = None,
    build_index: bool = False,
    progress: Any = None,
    _full: bool = False,
) -> Verification:
    """Verify the file at ``path`` against docs/FORMAT.md, streaming, in constant
    memory.  ``tree`` (a Merkle accumulator) is fed the leaf hashes; with one,
    the result carries the root and a version 2 summary's root is checked.
    ``build_index``: the same pass builds the trace's index (``result.index``;
    it computes the root itself, so no ``tree`` is needed).  ``progress``: an
    object with ``update(done_bytes)``, told once per 1,024 lines.
    Never raises for bad input: the answer is in the result."""
    name = os.fspath(path)
    result = Verification(name, "unusable")
    try:
        kind = _kind(name)
        stamp = stamp_of(name, kind)
        stream = open_at(name, kind)
    except TraceError as exc:
        result.reason = exc.problem
        return result
    except OSError as exc:
        result.reason = f"cannot read: {exc.strerror or exc}"
        return result
    raw = stream.raw if isinstance(stream, io.BufferedReader) else None
    frames = raw if isinstance(raw, FrameStream) else None
    given = (tree, progress)
    if progress is not None and frames is not None:
        progress = _FileProgress(progress, frames)  # compressed: count the file's bytes
    builder = None
    if build_index:
        builder = IndexBuilder(stamp, frames)
        tree = builder
    if frames is not None and tree is not None:
        frames.keep_leaves()  # compact frames: the expander's leaf hashes feed the tree
    native = extension("blocktrace.format._cscan")
    again = False
    with stream:
        try:
            if native is None:
                _walk(stream, result, tree, builder, progress)
            elif frames is None:
                from blocktrace.format import fastcheck  # the same answers, in C (imports us)

                fastcheck.walk(native, stream, result, tree, builder, progress)
            else:  # decompressed by a thread while the scanner checks the blocks before
                from blocktrace.format import fastcheck

                if not _full:
                    frames.hand_out_compact()  # compact frames: scanned as they are stored
                ahead = ReadAhead(frames)  # whole frames' pieces, no buffer between
                try:
                    fastcheck.walk(
                        native, ahead, result, tree, builder, progress, frames,  # type: ignore[arg-type]
                    )
                finally:
                    ahead.close()
        except CompressedDataError as exc:
            _unreadable(result, exc)
        except NotCompact:  # compact frames of a version 1/2 trace: read again, full lines
            again = True
    if again:
        return check_chain(path, tree=given[0], build_index=build_index, progress=given[1],
                           _full=True)
    if builder is not None and result.status != "unusable":
        result.index = builder.finish(result)
    return result


class _FileProgress:
    """Progress in the compressed file's bytes (what its size counts)."""

    def __init__(self, progress: Any, frames: FrameStream) -> None:
        self._update = progress.update
        self._frames = frames

    def update(self, done_bytes: int) -> None:
        self._update(self._frames.position)


def _unreadable(result: Verification, exc: CompressedDataError) -> None:
    """Compressed data that cannot be read on: as a torn plain file (unsealed,
    the lines before it check) or, before any line, unusable."""
    number = result.lines + 1
    if exc.line is not None:  # compact frames: a frame that does not match its stored head
        _tampered(result, exc.line, exc.reason.removeprefix(f"line {exc.line}: "))
        return
    if result.lines == 0:
        result.status = "unusable"
        result.reason = f"{exc.reason}: not a usable trace"
        return
    if result.summary is not None:
        _tampered(result, number, f"bytes after the summary line: {exc.reason}")
        return
    result.status = "unsealed"
    result.line = number
    result.reason = (
        f"line {number} cannot be read: {exc.reason}: the run was cut short (or the file "
        f"damaged) there; the lines before it check"
    )


# What the walks say of a line (both: this one and blocktrace.format.fastcheck's).
CR_AT_END = "carriage return at end of line (line endings changed)"
NO_HASH_MEMBER = "line does not end with a hash member"
HASH_MISMATCH = (
    "hash does not match: this line, or one before it, was edited, inserted, deleted or moved"
)
NO_SUMMARY = "no summary line: the run was cut short (or the tail was removed)"
HASHLESS = (
    "line 1 is a header without a hash member: these are the hash-less lines a compact "
    ".jsonl.zst stores (zstd -d gives them); verify the .zst itself, or write the full "
    "trace with: blocktrace cat TRACE.jsonl.zst -o TRACE.jsonl"
)


def after_summary(summary_at: int) -> str:
    return f"a line follows the summary (line {summary_at})"


def _walk(
    stream: IO[bytes],
    result: Verification,
    tree: Tree | None,
    index: IndexBuilder | None = None,
    progress: Any = None,
) -> None:
    """The reference walk."""
    on_leaf = tree.append_leaf_hash if tree is not None else None
    on_line = index.line if index is not None else None
    tell = progress.update if progress is not None else None
    done = 0
    v1 = ChainHasher()
    group: list[bytes] = []  # version 1: leaves are hashed apart from the chain
    chain = LeafChain(LINES_PER_LEAF, on_leaf)
    version = 0
    number = 0
    summary_at: int | None = None
    for raw in iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b""):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            _too_long(result, number)
            return
        if not raw.endswith(b"\n"):
            _torn(result, number, raw)
            return
        if summary_at is not None:
            _tampered(result, number, after_summary(summary_at))
            return
        line = raw[:-1]
        if number == 1:
            version = _header(result, line)
            if not version:
                return
            chain = LeafChain(LINES_PER_LEAF, on_leaf, version)  # 4: its own H_0
        if line.endswith(b"\r"):
            _tampered(result, number, CR_AT_END)
            return
        parts = split_hash(line)
        if parts is None:
            _tampered(result, number, NO_HASH_MEMBER)
            return
        body, stored = parts
        is_summary = body.startswith(SUMMARY_PREFIX)
        if version == 1:
            computed = v1.check(body)
        elif is_summary and version == 2:
            computed = chain.check_summary(body)
        else:
            computed = chain.check(body, raw)
        if computed != stored:
            _tampered(result, number, HASH_MISMATCH)
            return
        problem = _not_an_object(line)
        if problem:
            _tampered(result, number, problem)
            return
        if is_summary:
            if version == 1 and group:
                if on_leaf is not None:
                    on_leaf(leaf_hash(b"".join(group)))
                group.clear()
            if version in SUMMARY_IN_TREE:
                chain.close_leaf()
            if not _summary(result, number, body, version, tree):
                return
            summary_at = number
        elif version == 1:
            group.append(raw)
            if len(group) == LINES_PER_LEAF:
                if on_leaf is not None:
                    on_leaf(leaf_hash(b"".join(group)))
                group.clear()
        result.lines = number
        result.head = stored
        if on_line is not None:
            on_line(raw)
        if tell is not None:
            done += len(raw)
            if not number % EVERY:
                tell(done)
    if number == 0:
        result.reason = "empty file: not a trace"
        return
    if summary_at is None:
        result.status = "unsealed"
        result.reason = NO_SUMMARY
    else:
        result.status = "sealed"


def _not_an_object(line: bytes) -> str:
    """Why a line (whose hash checked) is not a UTF-8 JSON object, or ''."""
    try:
        if not line.isascii():
            line.decode("utf-8")
        _check_object(line)
    except UnicodeDecodeError:
        return "line is not valid UTF-8"
    except RecursionError:
        return "line is JSON nested too deeply"
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "line is not a JSON object"
    return ""


def _header(result: Verification, line: bytes) -> int:
    """The header's format version, or 0 (with the status set) when it is not a header."""
    header = _judge_header(result.path, line)
    if not isinstance(header, Header):
        status, reason = header
        if status == "tampered":
            _tampered(result, 1, reason)
        else:
            result.reason = reason
        return 0
    result.version = header.blocktrace
    result.header = {k: v for k, v in _decode_dict(line).items() if k != "hash"}
    result.genesis = header.genesis
    return header.blocktrace


def _summary(
    result: Verification, number: int, body: bytes, version: int, tree: Tree | None
) -> bool:
    text = body + b"}"
    try:
        summary = _summary_decoder.decode(text)
        as_dict = _decode_dict(text)
    except _DECODE_ERRORS as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        _tampered(result, number, f"summary line is malformed: {problem}")
        return False
    if not _GAS_HEX.match(summary.gasUsed):
        _tampered(result, number, f"summary gasUsed {summary.gasUsed!r} is not 0x-prefixed hex")
        return False
    if summary.lines != number - 1:
        _tampered(result, number, f"summary counts {summary.lines} lines, not {number - 1}")
        return False
    if version in SUMMARY_IN_TREE:
        extra = [k for k in ("head", "root", "treeSize") if k in as_dict]
        if extra:
            _tampered(
                result, number,
                f"a version {version} summary carries no {'/'.join(extra)} (it is in the tree)",
            )
            return False
    elif summary.head != result.head:
        _tampered(result, number, "summary head is not the hash of the line before it")
        return False
    if tree is not None:
        result.root = tree.root().hex()
        result.tree_size = tree.size
        if version not in SUMMARY_IN_TREE and "root" in as_dict and (
            summary.root != result.root or summary.treeSize != tree.size
        ):
            _tampered(result, number, "summary Merkle root does not match the lines before it")
            return False
    result.summary = as_dict
    return True


def _too_long(result: Verification, number: int) -> None:
    reason = f"line {number} is longer than {size_text(MAX_LINE_BYTES)}"
    if number == 1:
        result.reason = reason + ": not a blocktrace trace"
    else:
        _tampered(result, number, reason + ": no blocktrace line is that long")


def _torn(result: Verification, number: int, raw: bytes) -> None:
    if number == 1:
        result.reason = "the only line is incomplete (no newline): not a complete trace"
        return
    if result.summary is not None:
        _tampered(result, number, "bytes after the summary line")
        return
    result.status = "unsealed"
    result.line = number
    result.reason = (
        f"line {number} is torn ({len(raw)} bytes without a newline): the run was cut "
        "short mid-line; the lines before it check"
    )


def _tampered(result: Verification, number: int, reason: str) -> None:
    result.status = "tampered"
    result.line = number
    result.reason = reason


