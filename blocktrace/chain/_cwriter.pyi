"""Stubs of ``blocktrace.chain._cwriter`` (csrc/writer.c): the C line writer and its SHA-256."""

from collections.abc import Buffer, Callable
from typing import Any, Final, final

IMPLEMENTATION: Final[str]
"""The SHA-256 compression in use: ``"sha-ni"``, ``"openssl"`` or ``"portable"``
(chosen once per process: csrc/sha256.h)."""

def sha256(data: Buffer, /) -> bytes:
    """SHA-256 of a bytes-like object, with this module's implementation."""

def sha256_with(name: str, data: Buffer, /) -> bytes:
    """For tests: SHA-256 of ``data`` with the compression called ``name`` (``"sha-ni"``,
    ``"openssl"``, ``"portable"``); ValueError when this process cannot use it."""

def hash_lines(
    body: bytes, count: int, per_leaf: int, use_hashlib: bool, version: int = 0,
    deferred: bool = False, /
) -> int:
    """For benchmarks: CPU ns to hash ``count`` lines of ``body`` as the writer does,
    with this module's SHA-256 or with hashlib's (OpenSSL), driven from C.  ``version``
    0: the streaming calls' composition; 3 or 4: the writer's line function of that
    format version (``use_hashlib`` False); ``deferred`` (version 4): as the writer's
    thread does, each line's digest taken with the next line's first blocks."""

def lines4_with(name: str, how: str, prev: bytes, bodies: list[bytes], /) -> bytes:
    """For tests: the format version 4 lines of ``bodies`` in one leaf stream after
    ``prev``, with the compression called ``name`` through the streaming calls (``how``
    ``"composed"``; ``"deferred"``: each digest taken with the next line) or its own line
    functions (``"fused"``, ``"deferred-fused"``: ``"sha-ni"`` only); ValueError when this
    process has no such one."""

@final
class LineWriter:
    """Same interface and bytes as :class:`blocktrace.chain.writer.PyLineWriter`."""

    def __new__(
        cls,
        write: Callable[[bytes], Any],
        *,
        buffer_size: int = 65536,
        lines_per_leaf: int = 16,
        on_leaf: Callable[[], Any] | None = None,
        threaded: bool = False,
        fd: int = -1,
        version: int = ...,
        thread_ops: bool = False,
        ring_batch: int = ...,
        thread_writes: bool = ...,
        write_after: int = ...,
    ) -> LineWriter: ...
    @property
    def version(self) -> int:
        """The format version whose chain the writer writes (``FORMAT_VERSION`` by
        default; 2 and 3 share one)."""
    @property
    def head(self) -> str: ...
    @property
    def lines(self) -> int: ...
    @property
    def tree_size(self) -> int: ...
    @property
    def buffered(self) -> int: ...
    @property
    def threaded(self) -> bool:
        """Whether a thread of the writer makes the lines (``threaded=True``, until
        ``stop_thread``)."""
    @property
    def thread_cpu_ns(self) -> int:
        """CPU time (ns) the writer's thread used, once it ended (0 until then)."""
    def start_thread(self) -> None:
        """Go on with a thread making the lines again, from the chain's state now
        (after ``stop_thread``; the buffer is flushed first).  No-op while one runs,
        in a fork's child, after the summary, or with ``on_leaf``."""
    def start_thread_later(self, *, full: bool = False) -> None:
        """``start_thread`` at the next line, where it runs no Python code (else the
        writer stays inline): after ``os.fork``, once Python's check for threads ran.
        ``full``: at the first line after the buffer is next handed on because it is
        full (a trace shorter than one buffer never starts a thread; ``stop_thread``
        forgets it)."""
    def stop_thread(self) -> None:
        """Let the thread make every queued line, hand its finished chunks to
        ``write``, end it and go on inline (no-op without one)."""
    def line(self, body: Buffer, /) -> None: ...
    def summary(self, body: Buffer, /) -> None: ...
    def close_leaf(self) -> None: ...
    def flush(self) -> None: ...
    def root(self) -> bytes: ...
    def add_site(self, key: int, prefix: bytes, suffix: bytes, keep: object, /) -> None: ...
    def clear_sites(self) -> None: ...
    def op(self, event: object, gas: int, depth: int, /) -> bool:
        """The op line of ``event``'s site from plain values: True when written."""
