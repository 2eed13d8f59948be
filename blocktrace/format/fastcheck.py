"""The chain check in native code: :func:`blocktrace.format.reader.check_chain`'s fast path.

The pure-Python walk (``reader._walk``) is the reference; this one gives the
same :class:`~blocktrace.format.reader.Verification` for every input, at the
speed the machine hashes.  The C scanner (``blocktrace.format._cscan``, built
from ``blocktrace/format/csrc/scan.c``) checks runs of ordinary lines in large
buffers -- each line's hash by its version's rules, a cheap "is a JSON object"
test, the leaf hashes -- and stops at whatever needs more than that: the
header is parsed here before it starts, and the summary, a line its JSON test
is unsure of, and every line that fails are answered here with the reference
walk's own helpers and words.  Building an index in the same pass, the scanner
also keeps its bookkeeping (steps, a checkpoint every 1,024 lines, the first
step after each), so the index costs the check next to nothing; an op line
whose step it cannot settle (one next to an exception line, written unusually)
is Python's to decide with ``index.merges``.  Memory is one buffer of
:data:`CHUNK` bytes plus at most one line (bounded by ``MAX_LINE_BYTES``),
whatever the trace's size.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import IO, Any

from blocktrace.format import reader
from blocktrace.format.compact import COMPACT_EXTRA, NotCompact
from blocktrace.format.compressed import FrameStream
from blocktrace.format.index import EVERY, IndexBuilder, merges
from blocktrace.format.reader import Tree, Verification
from blocktrace.format.rules import split_hash
from blocktrace.format.versions import LINES_PER_LEAF, MAX_LINE_BYTES

__all__ = ["CHUNK", "Follower", "walk"]

CHUNK = 1 << 20
"""Bytes read at a time."""
_PLACEHOLDER = b',"hash":"' + b"0" * 64 + b'"}'
"""A hash member whose digits do not matter (whether a line is a JSON object)."""


def walk(
    native: ModuleType,
    stream: IO[bytes],
    result: Verification,
    tree: Tree | None,
    index: IndexBuilder | None = None,
    progress: Any = None,
    frames: FrameStream | None = None,
    on_scan: Callable[[Any], object] | None = None,
) -> None:
    """``reader._walk``'s answer for ``stream`` (a binary stream at its start),
    computed by the scanner of extension module ``native``; ``index`` ends up
    as the reference walk's (the scanner counts, :meth:`IndexBuilder.absorb`
    takes its counts), ``progress`` is told once per buffer.  ``frames``: the
    compressed trace's frames under ``stream``; when they are compact, their
    expander computed every hash from the stored lines and checked each frame's
    stored head (and keeps the leaf hashes: :meth:`FrameStream.keep_leaves`),
    so the scanner checks everything but the hashes; when the frames hand out
    their compact lines (:meth:`FrameStream.hand_out_compact`), the scanner reads
    those as they are, each the full line less its hash member, with the hashes
    the expander computed (:attr:`FrameStream.pieces`): no line is expanded or
    its hash member parsed.  ``on_scan`` is given the
    ``ChainScan`` once it is made (the export's stream tells it, with
    ``ChainScan.known``, which lines its own parser read whole)."""
    first = stream.readline(MAX_LINE_BYTES + 1)
    pieces = frames.pieces if frames is not None and frames.compact_out else None
    header = first
    digests: tuple[int, bytes | None] | None = None
    while pieces and pieces[0][1] == b"":  # data frames without a line
        pieces.popleft()
    if pieces:
        digests = pieces.popleft()  # the first frame's (read by readline)
        if digests[1] is None:  # full lines from the start
            pieces = None
        elif first.endswith(b"}\n"):
            header = _full(first[:-2], digests[1][:32].hex().encode()) + b"\n"
    version = _first(result, first, header)
    if not version:
        return
    if pieces is not None and frames is not None and version != frames.chain_version:
        raise NotCompact  # nothing fed yet
    hashed = frames is not None and frames.compact and version == frames.chain_version
    scan = native.ChainScan(
        version, LINES_PER_LEAF, MAX_LINE_BYTES, tree is not None and not hashed,
        EVERY if index is not None else 0, hashed, pieces is not None,
    )
    if pieces is not None and digests is not None and digests[1] is not None:
        scan.digests(digests[0], digests[1])
    if on_scan is not None:
        on_scan(scan)
    try:
        _scan(native, scan, stream, first, version, result, tree, index, progress,
              frames if hashed else None, pieces)
    finally:
        if index is not None and not index.absorbed:
            index.absorb(scan)


def _first(result: Verification, first: bytes, header: bytes) -> int:
    """The format version of a trace whose first line is ``first`` (``header``: it in
    full), or 0 with the answer in ``result``."""
    if not first:
        result.reason = "empty file: not a trace"
        return 0
    if len(header) > MAX_LINE_BYTES:
        reader._too_long(result, 1)
        return 0
    if not first.endswith(b"\n"):
        reader._torn(result, 1, first)
        return 0
    return reader._header(result, header[:-1])


class Follower:
    """:func:`~blocktrace.format.reader.check_chain`'s answer for a plain file whose
    lines a caller reads itself and has the scanner check as it passes them (the
    golden comparison's byte pass, ``blocktrace.eip3155._cskip.skip`` with a scan:
    through ``_cscan``'s C entry points, csrc/scanapi.h), so the file is read once
    for both; :meth:`finish` checks the rest as ``check_chain`` does.

    ``scan`` (None once the answer is known: the header did not check) has checked
    the lines before byte ``pos``, line ``number``; ``code``: 0, or the scanner's stop
    code for the line at ``pos`` (nothing more is checked while it follows)."""

    __slots__ = ("code", "native", "number", "path", "pos", "result", "scan", "version")

    def __init__(self, native: ModuleType, path: str) -> None:
        self.native = native
        self.path = path
        self.result = Verification(path, "unusable")
        self.scan: Any = None
        self.pos = 0
        self.number = 1
        self.code = 0
        self.version = 0
        try:
            with open(path, "rb") as stream:
                first = stream.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            self.result.reason = f"cannot read: {exc.strerror or exc}"
            return
        self.version = _first(self.result, first, first)
        if self.version:
            self.scan = native.ChainScan(self.version, LINES_PER_LEAF, MAX_LINE_BYTES, False)

    def finish(self) -> Verification:
        """The check of the lines from ``pos`` to the end, and ``check_chain``'s answer."""
        result = self.result
        if self.scan is None:
            return result
        scan, self.scan = self.scan, None
        try:
            stream = open(self.path, "rb")  # noqa: SIM115 (read on by _scan)
        except OSError as exc:
            result.reason = f"cannot read: {exc.strerror or exc}"
            return result
        with stream:
            stream.seek(self.pos)
            buf = b""
            code = self.code or None
            if code is not None:  # the line it stopped at, whole, for its answer
                while b"\n" not in buf and len(buf) <= MAX_LINE_BYTES:
                    piece = stream.read(CHUNK)
                    if not piece:
                        code = None  # shorter now: the scanner's own answer below
                        break
                    buf += piece
            _scan(self.native, scan, stream, buf, self.version, result, None, None, None, None,
                  number=self.number, code=code)
        return result


def _scan(
    native: ModuleType,
    scan: Any,
    stream: IO[bytes],
    first: bytes,
    version: int,
    result: Verification,
    tree: Tree | None,
    index: IndexBuilder | None,
    progress: Any,
    hashed: FrameStream | None,
    pieces: Any = None,
    number: int = 1,
    code: int | None = None,
) -> None:
    """The scanner's walk from line ``number`` at the start of ``first``, and the
    answer for each line it stops at; ``code``: the scanner stopped at that line
    already (``Follower``), with this code."""
    compact = pieces is not None  # the lines are compact ones until scan.full()
    tell = progress.update if progress is not None else None
    done = 0
    buf = first
    pos = 0
    trust = 0
    eof = False
    pending = code
    while True:
        start = pos
        if pending is None:
            code, pos, number = scan.scan(buf, pos, number, trust)
        else:
            code, pending = pending, None
        trust = 0
        if tree is not None:  # the leaves of the lines that checked
            _feed(tree, scan.take_leaves() if hashed is None
                  else hashed.take_leaves(scan.lines // LINES_PER_LEAF))
        if scan.lines:
            result.lines = scan.lines
            result.head = scan.head
        if pos > start:
            if index is not None:
                index.follow(scan)
            if tell is not None:
                done += pos - start
                tell(done)
        if code == native.END:
            rest = buf[pos:]
            if len(rest) > MAX_LINE_BYTES:
                reader._too_long(result, number)
                return
            if eof:
                if rest:
                    reader._torn(result, number, rest)
                    return
                break
            chunk = stream.read(max(CHUNK, len(rest)))
            eof = not chunk
            buf = rest + chunk if rest else chunk
            pos = 0
            continue
        if code == native.DIGESTS:  # the next frame's hashes, or its full lines
            number_first, digests = pieces.popleft()
            if digests is None:
                scan.full()
                compact = False
            else:
                scan.digests(number_first, digests)
            continue
        line = buf[pos : buf.index(b"\n", pos)]
        if code == native.STEP:  # (the hash member is no step's business)
            scan.decide(not merges(line, scan.last_step))
            continue
        if code == native.UNSURE:
            trust = 2 if reader._not_an_object(_full(line[:-1]) if compact else line) else 1
            continue
        if code == native.SUMMARY:
            after = pos + len(line) + 1
            if compact:
                body, stored = line[:-1], scan.hash_of(number)
                line = _full(body, stored.encode())
            else:
                body, stored = split_hash(line) or (b"", "")  # the scanner checked it has one
            if tree is not None and hashed is not None:  # the summary closes the last leaf
                _feed(tree, hashed.take_leaves(-(-number // LINES_PER_LEAF)))
            if not reader._summary(result, number, body, version, tree):
                return
            result.lines = number
            result.head = stored
            if index is not None:
                index.absorb(scan)
                index.line(line + b"\n")
            _after_summary(stream, buf, after, number + 1, result, pieces if compact else None)
            return
        if code == native.TOO_LONG:
            reader._too_long(result, number)
        elif code == native.CR:
            reader._tampered(result, number, reader.CR_AT_END)
        elif code == native.NO_HASH:
            reader._tampered(result, number, reader.NO_HASH_MEMBER)
        elif code == native.MISMATCH:
            reader._tampered(result, number, reader.HASH_MISMATCH)
        else:  # MALFORMED
            reader._tampered(result, number,
                             reader._not_an_object(_full(line[:-1]) if compact else line))
        return
    result.status = "unsealed"
    result.reason = reader.NO_SUMMARY


def _full(body: bytes, hexed: bytes | None = None) -> bytes:
    """The full line (no newline) of a compact line's ``body`` (the line less its
    closing brace), with hash ``hexed`` (a placeholder when its digits do not matter)."""
    if hexed is None:
        return body + _PLACEHOLDER
    return b'%b,"hash":"%b"}' % (body, hexed)


def _feed(tree: Tree, leaves: bytes) -> None:
    bulk = getattr(tree, "append_leaves", None)  # IndexBuilder, the export's tree
    if bulk is not None:
        bulk(leaves)
        return
    append = tree.append_leaf_hash
    for at in range(0, len(leaves), 32):
        append(leaves[at : at + 32])


def _after_summary(
    stream: IO[bytes], buf: bytes, pos: int, number: int, result: Verification,
    pieces: Any = None,
) -> None:
    """What follows a summary whose members checked: nothing (sealed), or the
    answer the reference gives for the line ``number`` starting at ``pos``.
    ``pieces``: the frames' (:attr:`FrameStream.pieces`) when ``buf`` holds compact
    lines: a compact line's full line is longer."""
    rest = buf[pos:]
    compact = pieces is not None
    while b"\n" not in rest and len(rest) <= MAX_LINE_BYTES:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        if compact and not rest:  # a frame of its own: compact lines, or full ones
            compact = bool(pieces) and pieces.popleft()[1] is not None
        rest += chunk
    end = rest.find(b"\n")
    raw = rest if end < 0 else rest[: end + 1]
    if len(raw) + (COMPACT_EXTRA if compact and raw.endswith(b"}\n") else 0) > MAX_LINE_BYTES:
        reader._too_long(result, number)
    elif not raw:
        result.status = "sealed"
    elif end < 0:
        reader._torn(result, number, raw)
    else:
        reader._tampered(result, number, reader.after_summary(number - 1))
