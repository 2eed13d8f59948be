"""The line writer: seals lines (any version 2 to 4), buffers them, builds the tree.

:class:`PyLineWriter` is the reference, in Python; ``blocktrace.chain._cwriter``
(built from ``chain/csrc/*.c`` when a C compiler is present) has the same interface
and the same bytes, with the per-instruction path (``op``) in C.  :data:`LineWriter` is
the C one when ``blocktrace._native`` says the C paths are used, else the
reference.

Both keep the rules that make a trace survive Ctrl-C and signal handlers: a line
is sealed, buffered and chained as one step (no Python code runs in between,
so a handler cannot run half-way); the only Python code a writer runs is the
``write`` callable (when flushing, *before* adding a line that would not fit)
and ``on_leaf``; a failed ``write`` loses nothing (unwritten bytes stay
buffered, the line being added is not sealed; an exception from ``write`` means
nothing was taken unless it carries ``characters_written``, as ``BlockingIOError``
does); a flush that a handler's traced
code re-enters does not flush again (the nested line is buffered).

The C writer can also make its lines on a thread of its own
(``LineWriter(threaded=True)``, :func:`thread_start`): the calls then only
queue a record (an op line's site, gas and depth; a pre-built body) in a bounded
ring, and a native thread that never takes the GIL formats, hashes and buffers
the lines with the same code, closing chunks where the inline writer would
flush.  ``write`` still runs on the caller's thread, with the GIL, at points that
depend only on the lines (a chunk is handed on when the fourth chunk after it
closes); given the file's descriptor (``fd=``) the thread writes the file itself.
The same bytes, chain and tree; reading the chain's state, ``flush``, dropping
sites, a fork and ``stop_thread`` first wait until every queued line is made.
"""

from __future__ import annotations

import hashlib
import os
from binascii import hexlify
from collections.abc import Callable
from typing import Any, Literal

from blocktrace._native import extension
from blocktrace.chain.hashing import DOMAIN, LINK_PREFIX
from blocktrace.chain.merkle import MerkleAccumulator
from blocktrace.format.members import HASH_MEMBER
from blocktrace.format.opline import op_body
from blocktrace.format.rules import DOMAIN_V4, LEAF_PREFIX, LINE_TAIL_LEN
from blocktrace.format.versions import FORMAT_VERSION

__all__ = [
    "ACCELERATED", "LineWriter", "PyLineWriter", "ThreadStart", "thread_start",
    "threaded_by_default",
]

_TAIL = LINE_TAIL_LEN
_TAIL_FORMAT = HASH_MEMBER + b'%b"}\n'  # the line's tail from its hash's hex digits
_sha256 = hashlib.sha256


class PyLineWriter:
    """Seal lines per docs/FORMAT.md and hand them to ``write``.

    ``version``: the chain rule (``FORMAT_VERSION`` by default).  2 and 3 share
    one: a leaf's stream is fed each line as written, a leaf's first line links
    (``0x02``).  4 (:mod:`blocktrace.format.rules`): a leaf's stream starts with
    the hash of the line before it and is fed each body and a newline, never the
    digits; a line's hash is the stream's digest after its newline, the last
    one is the leaf hash.  The bytes are :func:`~blocktrace.format.rules.rechain`'s
    for that version.

    ``write``: called with a bytes object; may return how many bytes it took (a
    partial write: the rest is written next) or anything else for all of them.
    ``tell``: the stream's position, when it has one (see ``flush``).
    ``lines_per_leaf``: 16 in traces; 0 = no tree (one stream for the whole
    file; for measuring what the tree costs).  ``on_leaf()``: called after
    each completed leaf.  An op line is made from plain values (``op(event,
    gas, depth)`` with the pieces ``add_site`` gave) by the format's
    :func:`~blocktrace.format.opline.op_body`; the writer seals it and knows
    nothing of the stepper or of the line's layout.
    """

    def __init__(
        self,
        write: Callable[[bytes], Any],
        *,
        buffer_size: int = 1 << 16,
        lines_per_leaf: int = 16,
        on_leaf: Callable[[], Any] | None = None,
        tell: Callable[[], int] | None = None,
        version: int = FORMAT_VERSION,
    ) -> None:
        if buffer_size < 1 or lines_per_leaf < 0:
            raise ValueError("buffer_size must be positive and lines_per_leaf not negative")
        if version not in (2, 3, 4):
            raise ValueError(f"the writer writes format versions 2, 3 and 4, not {version!r}")
        self.version = version
        self._v4 = version == 4
        self._write = write
        self._tell = tell
        self._size = buffer_size
        self._per_leaf = lines_per_leaf
        self._on_leaf = on_leaf
        self._prev = _sha256(DOMAIN_V4 if self._v4 else DOMAIN).digest()
        self._stream = _sha256(LEAF_PREFIX + self._prev if self._v4 else LEAF_PREFIX)
        self._in_leaf = 0
        self._lines = 0
        self._tree = MerkleAccumulator()
        self._buf = bytearray()
        self._flushing = False
        self._done = False
        self._sites: dict[int, tuple[bytes, bytes, object]] = {}

    # -- state ---------------------------------------------------------------

    @property
    def head(self) -> str:
        return self._prev.hex()

    @property
    def lines(self) -> int:
        return self._lines

    @property
    def tree_size(self) -> int:
        return self._tree.size

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def root(self) -> bytes:
        return self._tree.root()

    # -- sites ----------------------------------------------------------------

    def add_site(self, key: int, prefix: bytes, suffix: bytes, keep: object) -> None:
        self._sites[key] = (prefix, suffix, keep)

    def clear_sites(self) -> None:
        self._sites.clear()

    def op(self, event: object, gas: int, depth: int) -> bool:
        """The op line of ``event``'s site (see ``add_site``) with this gas and
        depth: True when written, False (nothing written) when ``event`` has no
        site; the caller then writes the line itself."""
        site = self._sites.get(id(event))
        if site is None:
            return False
        body = op_body(site[0], gas, depth, site[1])  # the layout is the format's
        in_leaf = self._in_leaf
        if in_leaf == 0 or in_leaf == self._per_leaf or self._done:
            self.line(body)  # a link, a leaf to finish, an error: the general path
            return True
        # ``_add`` inlined, for a line inside a leaf: the per-instruction path.
        buf = self._buf
        if len(buf) + len(body) + _TAIL > self._size and buf:
            self.line(body)  # flushing first may change the state: the general path
            return True
        stream = self._stream.copy()
        stream.update(body)
        if self._v4:
            stream.update(b"\n")
        digest = stream.digest()
        tail = _TAIL_FORMAT % hexlify(digest)
        if not self._v4:
            stream.update(tail)
        buf += body
        buf += tail
        self._prev = digest
        self._lines += 1
        self._stream = stream
        self._in_leaf = in_leaf = in_leaf + 1
        if in_leaf == self._per_leaf:
            self._finish_leaf()
        return True

    # -- lines ----------------------------------------------------------------

    def line(self, body: bytes) -> None:
        """Seal and buffer one line of the tree; ``body`` is the line up to its hash member."""
        if self._in_leaf and self._in_leaf == self._per_leaf:
            self._finish_leaf()  # a leaf whose completion a signal handler interrupted
        self._add(body, self._in_leaf == 0)
        if self._in_leaf == self._per_leaf:
            self._finish_leaf()

    def close_leaf(self) -> None:
        """End a partial leaf now (before the summary)."""
        if self._in_leaf and self._per_leaf:
            self._finish_leaf()

    def summary(self, body: bytes) -> None:
        """Seal and buffer a version 2 summary line (link form, not in the tree); the
        last line.  (Versions 3 and 4: the summary is an ordinary ``line``.)"""
        if self._v4:
            raise ValueError("version 4 has no summary rule of its own: write it as a line")
        self.close_leaf()
        self._add(body, True, last=True)

    def flush(self) -> None:
        """Hand every buffered byte to ``write`` (not re-entrantly)."""
        if self._flushing:
            return
        self._flushing = True
        try:
            buf = self._buf
            tell = self._tell
            while buf:
                chunk = bytes(buf)
                before = tell() if tell is not None else 0
                try:
                    n = self._write(chunk)
                except BaseException as exc:
                    # Took nothing, unless it says how much (BlockingIOError's
                    # convention) or the position moved: in Python a signal
                    # handler can raise just *after* a write returned.
                    taken = getattr(exc, "characters_written", 0)
                    if not taken and tell is not None:
                        try:
                            taken = tell() - before
                        except BaseException:
                            taken = 0
                    if isinstance(taken, int) and 0 < taken <= len(chunk):
                        del buf[:taken]
                    raise
                taken = n if isinstance(n, int) and 0 <= n < len(chunk) else len(chunk)
                if not taken:  # would loop for ever: a stream that takes nothing is broken
                    raise OSError("the trace's write() took no bytes")
                del buf[:taken]
        finally:
            self._flushing = False

    def _add(self, body: bytes, link: bool, last: bool = False) -> None:
        if self._done:
            raise ValueError("the trace is sealed: no line follows the summary")
        if b"\n" in body:
            raise ValueError("a line body cannot contain a newline")
        buf = self._buf
        if buf and len(buf) + len(body) + _TAIL > self._size:
            # Before sealing: it may raise (then nothing of this line happened), or
            # run a handler whose traced code adds lines (then this one follows them).
            self.flush()
        stream = self._stream.copy()
        stream.update(body)
        if self._v4:  # no link: the stream started with the hash before the leaf
            stream.update(b"\n")
            digest = stream.digest()
        elif link:
            digest = _sha256(LINK_PREFIX + self._prev + body).digest()
        else:
            digest = stream.digest()
        tail = _TAIL_FORMAT % hexlify(digest)
        if not last and not self._v4:
            stream.update(tail)
        # The commit: stores and in-place operations only, no call, so no signal
        # handler runs between them.
        buf += body
        buf += tail
        self._prev = digest
        self._lines += 1
        if last:
            self._done = True
        else:
            self._stream = stream
            self._in_leaf += 1

    def _finish_leaf(self) -> None:
        tree = self._tree
        stack, size = tree._stack[:], tree._size
        try:
            if self._v4:  # the stream ended with the last line's newline: its hash
                fresh = _sha256(LEAF_PREFIX + self._prev)
                tree.append_leaf_hash(self._prev)
            else:
                fresh = _sha256(LEAF_PREFIX)
                tree.append_leaf_hash(self._stream.digest())
            self._stream = fresh  # these two: no call between, so no handler either
            self._in_leaf = 0
        except BaseException:
            if self._in_leaf:  # not committed: the next line retries
                tree._stack[:] = stack
                tree._size = size
            raise
        if self._on_leaf is not None:
            self._on_leaf()


_c = extension("blocktrace.chain._cwriter")
LineWriter: Any = PyLineWriter if _c is None else _c.LineWriter
ACCELERATED = _c is not None


ThreadStart = Literal["first line", "first buffer"]


def thread_start(writer_thread: bool | None = None) -> ThreadStart | None:
    """When a trace's C writer starts making its lines on a thread of its own
    (``LineWriter(threaded=True)``: the interpreter's thread only queues them):
    with the first line, once the trace has filled its first buffer (a short run
    then starts no thread), or None: never (the lines are made inline).

    ``writer_thread`` True/False decides for one trace (True: from the first
    line).  None: ``BLOCKTRACE_WRITER_THREAD=1`` from the first line, ``=0``
    never; unset, from the first full buffer when this process may run on two
    CPUs or more (on one, the thread's hand-offs cost more than they save:
    docs/PERFORMANCE.md).  None without the C writer."""
    if _c is None:
        return None
    if writer_thread is None:
        wanted = os.environ.get("BLOCKTRACE_WRITER_THREAD", "")
        if wanted not in ("0", "1"):
            return "first buffer" if _two_cpus() else None
        writer_thread = wanted == "1"
    return "first line" if writer_thread else None


def threaded_by_default() -> bool:
    """Whether a trace's C writer makes its lines on a thread of its own unless
    told otherwise (:func:`thread_start` with no ``writer_thread``)."""
    return thread_start() is not None


def _two_cpus() -> bool:
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):  # no affinity masks here
        return (os.cpu_count() or 1) >= 2
