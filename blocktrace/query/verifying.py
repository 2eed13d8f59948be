"""Verifying a trace while it is exported, from the same reads of its bytes.

The export reads the trace once: every buffer the conversion reads
(:func:`blocktrace.format.wholelines.complete_lines`) is also handed to a thread
that runs the format's native chain check (:func:`blocktrace.format.fastcheck.walk`,
the walk of ``verify``) over them, so the file's bytes are read once and
hashed beside the conversion (the scanner and the columns' reader both let
go of the interpreter's lock while they work, so the two use both cores
without a second process).  The answer is ``verify_file``'s for the same
file: the same walk over the same bytes.

Each buffer reaches the verifier once the conversion has read it, with the map
of the lines the columns' C reader read whole (``OpColumns.take_known``): its
grammar is the writer's exact forms, so those lines are JSON objects and the
scanner skips its JSON test for them (``ChainScan.known``); hashes, line ends
and every other line are checked as ``verify`` checks them.

Memory stays bounded: at most :data:`QUEUED` buffers wait for the verifier
(the conversion waits when they are there).  When the conversion stops early
(a line it cannot read), the verifier reads the rest of the file itself, so
verify's answer is still there to say whether the trace was tampered with.

Plain (uncompressed) traces with the C scanner only; otherwise
:func:`start_verify` verifies in a thread reading the file itself.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from hashlib import sha256
from typing import Any

from blocktrace._native import extension
from blocktrace.format import Verification
from blocktrace.format.compressed import kind_of
from blocktrace.format.rules import NODE_PREFIX

__all__ = ["QUEUED", "Verifier", "start_verify"]

QUEUED = 8
"""Buffers (of ``format.wholelines.CHUNK`` bytes) that may wait for the verifier."""

_READ = 1 << 20
_CANCEL, _FROM_FILE = object(), object()


class Verifier:
    """Verify the trace at ``path`` in a thread; ``feed`` takes the file's bytes in
    order (``b""`` at the end), ``result()`` waits for the answer."""

    def __init__(self, path: str, *, tee: bool) -> None:
        self.path = path
        self._tee = tee
        self._queue: queue.Queue[Any] = queue.Queue(QUEUED)
        self._stopped = threading.Event()  # the walk needs no more bytes
        self._answer: list[Verification] = []
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="blocktrace-verify", daemon=True)
        self._thread.start()

    @property
    def feed(self) -> Callable[[bytes, int, bytes], None] | None:
        """Where the conversion hands its buffers, in the file's order, with the map
        of the lines it read whole (``tables.Feed``); None: the verifier reads the
        file."""
        return self._put if self._tee else None

    def _put(self, chunk: bytes, first: int = 0, known: bytes = b"") -> None:
        if self._stopped.is_set():
            return  # the walk has its answer (a tampered line, the end of the chain)
        self._queue.put((chunk, first, known))

    def _run(self) -> None:
        try:
            if self._tee:
                from blocktrace.format import fastcheck

                native = extension("blocktrace.format._cscan")
                assert native is not None  # start_verify checked
                result = Verification(self.path, "unusable")
                chunks = _Chunks(self)
                stream: Any = chunks  # what walk reads of a stream
                fastcheck.walk(native, stream, result, _Leaves(native.perfect_roots),
                               on_scan=chunks.scanning)
            else:
                from blocktrace.chain.verify import verify_file

                result = verify_file(self.path)
            self._answer.append(result)
        except BaseException as exc:  # handed to result()'s caller
            self._failure.append(exc)
        finally:
            self._stopped.set()
            while True:  # a put waiting for room goes on
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def result(self) -> Verification:
        """Verify's answer.  When the conversion stopped before the end of the
        file, the verifier reads the rest of it itself."""
        if self._tee:
            self._put_end(_FROM_FILE)
        self._thread.join()
        if self._failure:
            raise self._failure[0]
        return self._answer[0]

    def close(self) -> None:
        """The answer is not needed (any more): the walk is told the file ended."""
        if self._tee:
            self._put_end(_CANCEL)
        self._thread.join()

    def _put_end(self, mark: object) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(mark, timeout=0.1)
                return
            except queue.Full:
                continue


class _Leaves:
    """The Merkle tree of :class:`~blocktrace.chain.merkle.MerkleAccumulator`
    (RFC 9162: the same ``root()`` and ``size``), its leaf hashes taken in bulk
    (``fastcheck.walk`` hands them over so): each aligned group of :data:`GROUP`
    leaves becomes one perfect subtree in C (``_cscan.perfect_roots``), so
    Python hashes a node per group, not per leaf (75 k leaves for 1.2 M lines:
    ~0.07 s of an export in Python)."""

    GROUP = 64

    def __init__(self, perfect_roots: Callable[[bytes, int], bytes]) -> None:
        self._perfect_roots = perfect_roots
        self.size = 0
        self._pending = b""  # the leaves after the last whole group
        self._stack: list[tuple[int, bytes]] = []  # perfect subtrees (leaves, hash), largest first

    def append_leaves(self, digests: bytes) -> None:
        """Leaf hashes, 32 bytes each."""
        self.size += len(digests) // 32
        data = self._pending + digests
        whole = len(data) // (32 * self.GROUP) * (32 * self.GROUP)
        if whole:
            roots = self._perfect_roots(data[:whole], self.GROUP)
            for at in range(0, len(roots), 32):
                _push(self._stack, self.GROUP, roots[at : at + 32])
        self._pending = data[whole:]

    def append_leaf_hash(self, digest: bytes) -> None:
        self.append_leaves(digest)

    def root(self) -> bytes:
        stack = list(self._stack)
        for at in range(0, len(self._pending), 32):
            _push(stack, 1, self._pending[at : at + 32])
        if not stack:
            return sha256(b"").digest()  # RFC 9162's empty tree
        root = stack[-1][1]
        for _, left in reversed(stack[:-1]):
            root = sha256(NODE_PREFIX + left + root).digest()
        return root


def _push(stack: list[tuple[int, bytes]], leaves: int, digest: bytes) -> None:
    """A perfect subtree after the others, merged with the equal ones before it."""
    while stack and stack[-1][0] == leaves:
        size, left = stack.pop()
        digest = sha256(NODE_PREFIX + left + digest).digest()
        leaves += size
    stack.append((leaves, digest))


class _Chunks:
    """The stream ``fastcheck.walk`` reads: the buffers fed, then (after
    ``_FROM_FILE``) the rest of the file read here."""

    def __init__(self, verifier: Verifier) -> None:
        self._v = verifier
        self._pending = b""
        self._file: Any = None
        self._at = 0  # bytes of the file given to the walk or pending
        self._eof = False
        self._scan: Any = None  # the walk's ChainScan
        self._known: tuple[int, bytes] = (0, b"")

    def scanning(self, scan: Any) -> None:
        """The walk's scanner: told which lines the conversion read whole."""
        self._scan = scan
        scan.known(*self._known)

    def _tell(self, first: int, known: bytes) -> None:
        # the walk asks for bytes only once it checked every whole line before
        # them, so the map of the lines now handed over replaces the last one
        self._known = (first, known)
        if self._scan is not None:
            self._scan.known(first, known)

    def _next(self) -> bytes:
        if self._eof:
            return b""
        if self._file is not None:
            chunk = self._file.read(_READ)
        else:
            item = self._v._queue.get()
            if item is _FROM_FILE:
                self._tell(0, b"")  # from here on every line gets the JSON test
                self._file = open(self._v.path, "rb")  # noqa: SIM115 (closed at its end)
                self._file.seek(self._at)
                chunk = self._file.read(_READ)
            elif item is _CANCEL:
                chunk = b""
            else:
                chunk, first, known = item
                self._tell(first, known)
        if not chunk:
            self._eof = True
            if self._file is not None:
                self._file.close()
        self._at += len(chunk)
        return chunk  # type: ignore[no-any-return]

    def readline(self, limit: int = -1) -> bytes:
        data = self._pending
        while b"\n" not in data and (limit < 0 or len(data) < limit):
            chunk = self._next()
            if not chunk:
                break
            data += chunk
        end = data.find(b"\n") + 1 or len(data)
        if limit >= 0:
            end = min(end, limit)
        self._pending = data[end:]
        return data[:end]

    def read(self, size: int = -1) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return self._next()


def start_verify(path: str) -> Verifier:
    """Verify the blocktrace trace at ``path`` beside its conversion: from the
    conversion's own buffers (a plain trace, the C scanner present), else in a
    thread reading the file."""
    tee = kind_of(path) == "plain" and extension("blocktrace.format._cscan") is not None
    return Verifier(path, tee=tee)
