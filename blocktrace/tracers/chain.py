"""ChainTracer: the hash-chained EIP-3155 JSON Lines writer (docs/FORMAT.md).

The per-instruction path: the ``OpStart`` of an instruction site is built once
by the stepper and reused, so its line pieces are built once here too and given
to the line writer (``blocktrace.chain.writer``), keyed by ``id(event)`` with
the event kept alive.  The writer's ``op(event, gas, depth)`` is this tracer's
``op_line``: the stepper's hook calls it with plain values, and an op line is
one call -- in C when the extension was built -- that formats prefix + gas +
depth + suffix, seals the line and buffers it (the writer never reads the
stepper).  Everything else -- first sight of a site, line starts when locals
or globals are recorded, several threads, the other events -- comes to
``__call__`` and from there to ``_slow``.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import secrets
import sys
import time
import weakref
from collections.abc import Sequence
from types import CodeType
from typing import IO, TYPE_CHECKING, Any, Literal

import msgspec

from blocktrace._native import extension
from blocktrace.chain.writer import LineWriter, PyLineWriter, thread_start
from blocktrace.events import (
    CallStart,
    OpEnd,
    OpException,
    OpStart,
    Return,
    Stop,
    TraceEvent,
)
from blocktrace.format.callline import call_body, call_pieces, json_text, return_body
from blocktrace.format.compressed import (
    ZSTD_MISSING,
    CompressionUnavailableError,
    FrameWriter,
    kind_for_name,
    zstd_available,
)
from blocktrace.format.members import CLOCK_MEMBER, GLOBALS_MEMBER, LOCALS_MEMBER, THREAD_MEMBER
from blocktrace.format.opline import op_body, op_site
from blocktrace.format.runlines import (
    EXCEPTION_LINE,
    source_body,
    summary_body,
    tracer_error_body,
)
from blocktrace.format.source import fingerprint, read_local_text
from blocktrace.format.versions import FORMAT_VERSION, LINES_PER_LEAF, MAX_LINE_BYTES
from blocktrace.tracers import VMState, capabilities_changed, discard_trace, get_tracer, set_tracer
from blocktrace.tracers.level import Level, check_level
from blocktrace.tracers.render import Renderer

if TYPE_CHECKING:
    from blocktrace.chain.checkpoint import Checkpointer
    from blocktrace.chain.note import Signer

__all__ = ["ChainTracer", "ValuesMode"]

ValuesMode = Literal["off", "on", "changes"]

_encode = msgspec.json.Encoder().encode


_cvalues: Any = extension("blocktrace.tracers._cvalues")
"""A line start's values in C (``_scan``), or None: the Python reference."""
_perf_counter_ns = time.perf_counter_ns
_PYTHON = platform.python_version()
"""The header's ``python`` (parsed from ``sys.version``: once per process)."""
# a line's thread and clock members (the format's spellings) with their numbers
_THREAD = THREAD_MEMBER + b"%d"
_CLOCK = CLOCK_MEMBER + b"%d"
_THREAD_CLOCK = _THREAD + _CLOCK


DEFAULT_NAME = "blocktrace.jsonl"


def _new_default_file() -> tuple[str, IO[bytes]]:
    """``ChainTracer()``'s file: the first of ``blocktrace.jsonl``,
    ``blocktrace-1.jsonl`` … that does not exist, created exclusively."""
    stem, ext = os.path.splitext(DEFAULT_NAME)
    n = 0
    while True:
        path = os.path.abspath(DEFAULT_NAME if n == 0 else f"{stem}-{n}{ext}")
        try:
            out = open(path, "xb", buffering=0)  # noqa: SIM115
        except FileExistsError:
            n += 1
            continue
        if sys.__stderr__ is not None:
            sys.__stderr__.write(f"blocktrace: writing the trace to {path}\n")
        return path, out


def _position(stream: IO[bytes]) -> Any:
    """The stream's ``tell``, when it can seek (else None)."""
    try:
        return stream.tell if stream.seekable() else None
    except Exception:
        return None


WRITE_PATH: set[CodeType] = set()
"""Code on the trace's write path, between the line writer and the file: a
program's signal handler that would run here runs just after instead
(blocktrace.vm.signals), since an exception raised between bytes handed on and
the writer's note of them would write them twice."""


_LIVE: weakref.WeakSet[ChainTracer] = weakref.WeakSet()
"""The ChainTracers of this process not yet sealed, for a fork (see ``_forked``)."""


def _before_fork() -> None:
    for tracer in list(_LIVE):
        tracer._before_fork()


def _after_fork_in_parent() -> None:
    for tracer in list(_LIVE):
        tracer._after_fork()


def _in_fork_child() -> None:
    for tracer in list(_LIVE):
        tracer._forked()
    _LIVE.clear()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_in_fork_child)


_FINGERPRINTS: dict[str, tuple[tuple[int, ...], tuple[str, int]]] = {}
"""file -> (its stat when hashed, its fingerprint): a program traced again (a test
suite, a view started per call) hashes each unchanged source file once per
process, not once per run."""
_SETTLED_NS = 2_000_000_000
"""A file changed less than this long before it was hashed is hashed again next
time (a change within the file system's time resolution keeps its stat)."""


def _fingerprint(file: str) -> tuple[str, int] | None:
    """``fingerprint(file)``, kept while the file's stat (device, inode, size,
    modification and change times) stays the one it had when hashed."""
    try:
        st = os.stat(file)
    except OSError:
        return fingerprint(file)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    kept = _FINGERPRINTS.get(file)
    if kept is not None and kept[0] == key:
        return kept[1]
    found = fingerprint(file)
    if found is not None and found[1] == st.st_size and (
        time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS
    ):
        _FINGERPRINTS[file] = (key, found)
    return found


_CALL_PIECES: dict[int, tuple[bytes, bytes, CallStart]] = {}
"""id(event) -> (prefix, suffix, event) of a ``CallStart``'s call lines, for every
tracer of the process: the stepper reuses a code object's events from run to run
(``vm.sites``), so a traced-again program's call lines are not formatted again each
run.  (The event is kept: its id is not reused while it is here.)"""
_CALL_PIECES_KEPT = 4096
"""At most this many; the lot is dropped when full (a program exec'ing code afresh)."""


def _call_line_pieces(ev: CallStart) -> tuple[bytes, bytes, CallStart]:
    """``call_pieces`` of ``ev``, made once per process."""
    made = _CALL_PIECES.get(id(ev))
    if made is None:
        if len(_CALL_PIECES) >= _CALL_PIECES_KEPT:
            _CALL_PIECES.clear()
        pre, suf = call_pieces(ev.kind, ev.code, ev.name, ev.file, ev.first_line)
        made = _CALL_PIECES[id(ev)] = (pre, suf, ev)
    return made


def _write_all(stream: IO[bytes]) -> Any:
    """The line writer's ``write`` for a caller's stream: takes everything, or
    raises saying how much it took (``characters_written``).  A signal handler
    (Ctrl-C) can raise inside a Python-level stream's ``write`` after the data
    went in: the stream's position tells, when it has one; otherwise an
    interruption that is not an error (``KeyboardInterrupt``, ``SystemExit``)
    is taken to have come after the data, an error (``OSError``) before it."""
    write = stream.write
    try:
        seekable = stream.seekable()
    except Exception:
        seekable = False

    def write_all(data: bytes) -> int:
        view = memoryview(data)
        done = 0
        while done < len(data):
            before = stream.tell() if seekable else 0
            try:
                n = write(view[done:])
            except BaseException as exc:
                taken = 0
                try:
                    taken = stream.tell() - before if seekable else (
                        len(data) - done if not isinstance(exc, Exception) else 0
                    )
                except BaseException:
                    pass
                exc.characters_written = done + max(0, min(taken, len(data) - done))  # type: ignore[attr-defined]
                raise
            if not isinstance(n, int) or n >= len(data) - done:
                break
            if n <= 0:
                raise OSError("the trace's stream took no bytes")
            done += n
        return len(data)

    WRITE_PATH.add(write_all.__code__)
    return write_all


class ChainTracer:
    """Writes a run as a hash-chained trace to a path or a binary stream.

    A path ending in ``.zst`` or ``.gz`` is written compressed, in independent
    frames of whole Merkle leaves (``blocktrace.format.compressed``); the chain
    and the tree commit to the uncompressed lines, and decompressing the file
    gives exactly the ``.jsonl``.  Without a zstd library, a ``.zst`` path is a
    ``CompressionUnavailableError`` (an ``OSError``) naming the extra to install.

    Without either it writes to ``blocktrace.jsonl`` in the current directory
    (``blocktrace-1.jsonl``, ``-2`` … if that exists: never over a file) and says
    where on stderr.

    ``genesis``: the genesis token (default: 32 random hex digits).
    ``locals``/``globals``: ``"off"``, ``"on"`` (every line start) or
    ``"changes"`` (only names whose rendering changed).  ``force``: overwrite an
    existing file (otherwise an existing path is an error: nothing is
    overwritten silently).  ``checkpoint_every`` (lines) and/or
    ``checkpoint_seconds``: write a checkpoint ``PATH.cp.<size>`` that often
    while the run goes on, and a last one at the seal, signed by ``signer`` when
    given (see ``blocktrace.chain.checkpoint``).  ``clock``: call, return and
    exception lines carry ``clock``, ns since the run started (monotonic; never
    op lines).  The header is written at construction; ``Stop``
    writes the summary and seals the file; ``close()`` seals it if no ``Stop``
    came (a detached or interrupted run), marking it not passed.  ``level``
    (``"op"``, ``"line"``, ``"call"``) is written in the header and declared
    to the stepper (``Tracer.level``), which then produces only that level's
    events.  ``max_size`` (bytes, uncompressed): see :meth:`limit_size`.
    ``embed_source``: each source line also carries the file's text
    (``run --embed-source``), so the trace alone shows the code that ran.

    With the C writer and two CPUs or more (``chain.writer.thread_start``:
    ``BLOCKTRACE_WRITER_THREAD=0``/``1`` decide; ``writer_thread`` True/False
    decides for this tracer), the lines are made, hashed and
    (for a plain file) written on the writer's own thread; the program's thread
    only queues them.  The same bytes; the seal waits for every line.  By
    default the thread starts once the trace has filled its first buffer
    (``buffer_size``): a short run is written inline and starts no thread;
    ``writer_thread=True`` or ``BLOCKTRACE_WRITER_THREAD=1`` start it with the
    first line.

    ``format_version``: the format version written (the header's ``blocktrace``
    and the writer's chain rule; ``FORMAT_VERSION`` by default, 3 or 4).
    """

    wants_op_end = False

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes] | None = None,
        *,
        genesis: str | None = None,
        locals: ValuesMode = "off",
        globals: ValuesMode = "off",
        argv: Sequence[str] | None = None,
        force: bool = False,
        buffer_size: int = 1 << 16,
        checkpoint_every: int | None = None,
        checkpoint_seconds: float | None = None,
        signer: Signer | None = None,
        level: Level = "op",
        clock: bool = False,
        embed_source: bool = False,
        max_size: int | None = None,
        writer_thread: bool | None = None,
        format_version: int = FORMAT_VERSION,
    ) -> None:
        if locals not in ("off", "on", "changes") or globals not in ("off", "on", "changes"):
            raise ValueError("locals and globals take 'off', 'on' or 'changes'")
        if format_version not in (3, 4):
            raise ValueError(f"a trace is written in format version 3 or 4, not {format_version!r}")
        self.format_version = format_version
        self.level: Level = check_level(level)
        """The events this trace holds (a capability: the stepper produces only these)."""
        self.path: str | None
        self._out: IO[bytes]
        self._frames: FrameWriter | None = None
        write: Any
        if target is None:
            self.path, self._out = _new_default_file()
            self._owns = True
            write = self._out.write
        elif isinstance(target, (str, os.PathLike)):
            self.path = os.fspath(target)
            kind = kind_for_name(self.path)
            if kind == "zstd" and not zstd_available():
                raise CompressionUnavailableError(ZSTD_MISSING)
            # Unbuffered: the line writer buffers (and knows what a flush may do).
            self._out = open(self.path, "wb" if force else "xb", buffering=0)  # noqa: SIM115
            self._owns = True
            write = self._out.write
            if kind != "plain":  # .zst, .gz: frames of whole leaves, compressed off-thread
                self._frames = FrameWriter(self._out, kind, lines_per_leaf=LINES_PER_LEAF)
                write = self._frames.write
        else:
            self.path = None
            self._out = target
            self._owns = False
            write = _write_all(target)
        self.genesis = genesis if genesis is not None else secrets.token_hex(16)
        frames = self._frames
        self._locals = locals
        self._globals = globals
        self._multi = False
        self._calls: dict[int, tuple[bytes, bytes, CallStart]] = {}
        self._sources: set[str] = set()
        self._embed_source = embed_source
        self._prev_locals: dict[tuple[int, int], dict[str, tuple[object, bytes]]] = {}
        self._prev_globals: dict[int, dict[str, tuple[object, bytes]]] = {}
        """Per frame (thread, depth) / per module: name -> (the value, when it is kept,
        and its member bytes ``"name":value``) at the last line start (see ``_rendered``)."""
        self._line_sites: dict[int, tuple[bytes, bytes, OpStart, CodeType | None]] = {}
        """id(site) -> its op line's pieces (and code), for line starts written with values."""
        self._failure: str | None = None
        self._started = time.perf_counter_ns()
        self._tail = self._clocked if clock else self._thread
        self._clock = clock
        """The end of a call, return or exception line (never an op line's)."""
        self.sealed = False
        self._line_start: Any = None
        """With values and C: ``_cvalues.LineStart``, told when the tracer stops
        writing or its lines begin to name threads (``_values_state``)."""
        self.forked_away = False
        """This process is a fork's child of the one that records the trace: it writes nothing."""
        self._thread_before_fork = False  # the writer's thread ran when a fork began
        self.head = ""
        self._checkpoints: Checkpointer | None = None
        periodic = checkpoint_every is not None or checkpoint_seconds is not None
        if periodic and self.path is None:
            raise ValueError("periodic checkpoints need a trace path, not a stream")
        self.max_size: int | None = None
        self.size_limited = False
        """The trace reached ``max_size``: nothing more is recorded."""
        self.limit_step: int | None = None
        """Once sealed after the limit: the step recording stopped at (see ``limit_size``)."""
        self._written = 0
        self._gas_at_limit: int | None = None
        if max_size is not None:
            self._check_size(max_size)
            # flushed in pieces of at most 1/16 of the limit: it stops close to it
            buffer_size = min(buffer_size, max(256, max_size // 16))
        self._buffer_size = buffer_size
        # the file's position tells how much went in, for a plain file; the writer of
        # a compressed file counts what it took (that of a caller's stream cannot)
        position = (
            self._frames.position if self._frames is not None
            else self._out.tell if self._owns else None
        )
        write = self._counted(write, position)
        # the chain rule goes with the header's version
        extra: dict[str, Any] = {"version": format_version}
        later = False
        """The writer's thread starts once the trace fills its first buffer."""
        if LineWriter is PyLineWriter:
            if frames is None:  # see PyLineWriter.flush
                extra["tell"] = _position(self._out)
        elif max_size is None:  # (a size limit counts what `write` took)
            if self._owns and frames is None:  # a plain file of its own: written from C
                extra["fd"] = self._out.fileno()
            if os.environ.get("BLOCKTRACE_WRITER_OPS") == "1":  # see LineWriter's thread_ops
                extra["thread_ops"] = True
            start = None if periodic else thread_start(writer_thread)
            if start is not None:
                # Lines made on the writer's thread; `write` still runs here, with the
                # same chunks.  Checkpoints (on_leaf) keep the inline writer.  By
                # default only once the trace fills a buffer: a short run never pays
                # for starting and joining a thread.
                later = start == "first buffer"
                if not later:
                    extra["threaded"] = True
        self._writer = LineWriter(
            write, buffer_size=buffer_size, lines_per_leaf=LINES_PER_LEAF,
            on_leaf=self._leaf_done if periodic else None, **extra,
        )
        self._thread_later = later
        if later:
            self._writer.start_thread_later(full=True)
        self.op_line = self._write_op = self._writer.op
        self._call_line: Any = None
        """With locals and C: the call hook's ``line``, which forgets the locals kept
        for the frame a call line starts (``_cvalues.CallLine``; ``_call`` sets its vm)."""
        line = self._writer.line
        if locals != "off" and _cvalues is not None:
            self._call_line = _cvalues.CallLine(line, self._prev_locals)
            line = self._call_line.line  # a sink's line: the call hook calls it from C
        self.call_lines: tuple[Any, Any] | None = (line, self._call_pieces)
        """Call and return lines written by the stepper's C hooks
        (``Capabilities.call_lines``): this writer's ``line`` and ``_call_pieces``."""
        """An op line from plain values (``Capabilities.op_line``): the stepper's
        hook passes gas and depth; False for a site not added yet (then ``_slow``)."""
        if locals != "off" or globals != "off":
            self.fast_call: Any = self._with_values
            """``Capabilities.fast_call``: a line start with values straight to its line
            (in C when built: ``_cvalues.LineStart``, which gives what it does not
            write to ``_with_values``)."""
            if _cvalues is not None:
                # its lines go where _with_values's go: _line, or the writer's line
                # straight when _line is this class's (a subclass may rewrite lines)
                write = self._writer.line if type(self)._line is ChainTracer._line else self._line
                self.fast_call = self._line_start = _cvalues.LineStart(
                    self, self._with_values, self._line_sites, write,
                    self._prev_locals, _MODES[locals], self._prev_globals, _MODES[globals],
                    Renderer, _NOT_KEPT, _encode, _scan,
                )
                # the states the C call lines forget are reused by the next line
                # start at their depth (the same bytes; values.c "recycled states")
                self._line_start.calls = self._call_line
                self._values_state()
        header = {
            "blocktrace": format_version,
            "hashAlg": "sha256",
            "genesis": self.genesis,
            "python": _PYTHON,
            "implementation": sys.implementation.name,
            "argv": [json_text(a) for a in (sys.argv if argv is None else argv)],
            "start": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "pid": os.getpid(),
            "level": level,
        }
        self._line(_encode(header)[:-1])
        _LIVE.add(self)
        if max_size is not None:
            self.limit_size(max_size)
        self.flush()
        if periodic:
            assert self.path is not None
            from blocktrace.chain.checkpoint import Checkpointer  # only then: costs start-up

            self._checkpoints = Checkpointer(
                self.path, self._writer.head,  # the trace's id: the hash of line 1
                every_lines=checkpoint_every, every_seconds=checkpoint_seconds,
                signer=signer, flush=self.flush,
            )

    @property
    def lines(self) -> int:
        """Lines written so far (header included, summary included once sealed)."""
        return int(self._writer.lines)

    def __call__(self, vm: VMState, event: TraceEvent, /) -> None:
        if not self._write_op(event, vm.gas, vm.depth):
            self._slow(vm, event)

    def _with_values(self, vm: VMState, event: TraceEvent, /) -> None:
        """``__call__`` when values are recorded: a line start seen before (its
        pieces kept in ``_line_sites``) is written here, not through ``_slow``."""
        pieces = self._line_sites.get(id(event))
        if pieces is None or self.size_limited or self.sealed:
            if not self._write_op(event, vm.gas, vm.depth):
                self._slow(vm, event)
            return
        pre, suf, _, code = pieces
        renderer = vm.renderer
        if _cvalues is not None and code is not None and type(renderer) is Renderer:
            # the same as below, in one C call (tracers/csrc/values.c)
            if self._call_line is not None:
                self._call_line.settle()  # the states as the reference keeps them
            self._line(_cvalues.line(
                code, pre, suf + self._thread(vm), vm.gas, vm.depth, vm.thread,
                self._prev_locals, _MODES[self._locals], self._prev_globals,
                _MODES[self._globals], renderer, _NOT_KEPT, _encode, _scan,
            ))
            return
        extra = self._thread(vm) + self._values(vm, code)
        self._line(op_body(pre, vm.gas, vm.depth, suf + extra))

    # -- the size limit -----------------------------------------------------------

    def limit_size(self, max_size: int) -> None:
        """Stop recording once the trace holds about ``max_size`` bytes
        (uncompressed): the program runs on, and the seal's summary says
        ``"error": "TraceSizeLimit"`` with ``maxSize`` and ``step``, the
        instruction count (as ``gasUsed`` counts) when recording stopped -- at
        level ``op``, the number of op lines recorded.

        Bytes are counted as the writer hands them on, a buffer at a time.  With
        ``max_size`` given to the constructor, the buffer is at most 1/16 of it
        and recording stops while the next buffer still fits: the file ends
        within the limit, but for the line being written then and the summary
        (a single line larger than the buffer may pass it by more).  A limit set
        later (``blocktrace.trace(max_size=)``) stops at the first buffer past
        it: up to ``buffer_size`` (64 KiB) more."""
        self._check_size(max_size)
        stop_thread = getattr(self._writer, "stop_thread", None)
        if stop_thread is not None:  # the limit counts what `write` takes: inline, write
            stop_thread()
        self._thread_later = False
        self.max_size = max_size
        self._check_limit()

    @staticmethod
    def _check_size(max_size: int) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be a positive number of bytes, not {max_size!r}")

    def _counted(self, write: Any, position: Any) -> Any:
        """``write``, counting the bytes handed to it: once per buffer, never per line.

        A program's signal handler can raise anywhere in here, also after the
        bytes went to the file: the exception then says how many went
        (``characters_written``, from the file's position when it has one), so
        that the line writer never hands them on twice."""

        def counted(data: bytes) -> Any:
            before = position() if position is not None else 0
            try:
                n = write(data)
                self._written += n if isinstance(n, int) and 0 <= n < len(data) else len(data)
                if self.max_size is not None:
                    self._check_limit()
            except BaseException as exc:
                if position is not None and not hasattr(exc, "characters_written"):
                    try:
                        taken = position() - before
                        exc.characters_written = max(0, min(taken, len(data)))  # type: ignore[attr-defined]
                    except BaseException:
                        pass
                raise
            return n

        if position is None:  # it cannot say what went in: signals wait until it returns
            WRITE_PATH.add(counted.__code__)
        return counted

    def _check_limit(self) -> None:
        assert self.max_size is not None
        if self.size_limited or self.sealed:
            return
        # A buffer small against the limit: stop while the next one still fits.  A
        # large one (a limit set after construction): stop once past the limit.
        margin = self._buffer_size if self._buffer_size * 16 <= self.max_size else 0
        if self._written + margin >= self.max_size:
            self.size_limited = True
            self._values_state()
            self.op_line = self._write_op = self._past_limit
            self.call_lines = None
            capabilities_changed(self)  # a running stepper calls _past_limit from now on

    def _past_limit(self, event: object, gas: int, depth: int) -> bool:
        """``op_line`` once the limit is reached: writes nothing; only ``Stop``
        goes on (to seal the trace)."""
        if self._gas_at_limit is None:
            self._gas_at_limit = gas
        return type(event) is not Stop

    # -- fork -----------------------------------------------------------------------

    def _before_fork(self) -> None:
        """``os.fork`` is about to run: everything so far goes to the file, and the
        writer's threads end (the parent's writer goes on inline, a compressed
        trace's worker starts again at the next write), so that the program
        forks a process with no thread of ours: Python warns of a fork with
        threads (``DeprecationWarning``), which would change what it prints.
        The parent's writer thread starts again after the fork (``_after_fork``)."""
        if self.sealed:
            return
        try:
            self.flush()
            stop_thread = getattr(self._writer, "stop_thread", None)
            if stop_thread is not None:
                self._thread_before_fork = bool(getattr(self._writer, "threaded", False))
                stop_thread()
            if self._frames is not None:
                self._frames.pause()
        except Exception:  # a fork is the program's: it goes on, the trace says what it says
            pass

    def _after_fork(self) -> None:
        """In the parent after ``os.fork``: the writer's thread the fork ended starts
        again at the next line, from the chain's state.  (Not here: Python 3.13 counts
        the process's threads to warn of a fork with threads after these hooks ran.)"""
        running, self._thread_before_fork = self._thread_before_fork, False
        if not running and not self._thread_later:
            return
        later = getattr(self._writer, "start_thread_later", None)
        if self.sealed or later is None:
            return
        try:  # (a start deferred to the first full buffer stays so: stop_thread forgot it)
            later(full=not running)
        except Exception:  # a fork is the program's: the writer goes on inline
            pass

    def _forked(self) -> None:
        """In a fork's child: the trace is the parent's, and this process writes
        nothing more to it (a line from the child would break the parent's
        chain).  The child runs on untraced by this tracer; when it is the
        active one, the child's stepper gets ``discard_trace``."""
        self.sealed = True  # no seal, no line, no flush from this process
        self.forked_away = True
        self._values_state()
        self.op_line = self._write_op = _written_elsewhere
        if get_tracer() is self:
            set_tracer(discard_trace)
        else:
            capabilities_changed(self)  # inside a Tee: the others go on

    def flush(self) -> None:
        """Hand everything written so far to the file (or stream)."""
        self._writer.flush()
        if self._frames is not None:
            self._frames.flush()
        if not self._owns:
            self._out.flush()

    # -- everything else ----------------------------------------------------------

    def _line(self, body: bytes) -> None:
        self._writer.line(body)

    def _leaf_done(self) -> None:
        if self._checkpoints is not None:  # the root is computed only when one is due
            self._checkpoints.maybe_write(self._writer.tree_size, self._writer.root)

    def _slow(self, vm: VMState, event: TraceEvent) -> None:
        kind = type(event)
        if kind is OpStart:
            self._op(vm, event)  # type: ignore[arg-type]
        elif kind is CallStart:
            self._call(vm, event)  # type: ignore[arg-type]
        elif kind is Return:
            self._return(vm, event)  # type: ignore[arg-type]
        elif kind is OpException:
            self._exception(vm, event)  # type: ignore[arg-type]
        elif kind is Stop:
            self._stop(vm, event)  # type: ignore[arg-type]
        elif kind is OpEnd:
            pass  # EIP-3155 has one line per op; completion adds nothing

    def _thread(self, vm: VMState) -> bytes:
        return _THREAD % vm.thread if self._multi else b""

    def _clocked(self, vm: VMState) -> bytes:
        """``_tail`` with ``clock``: the thread, then ns since the run started."""
        now = _perf_counter_ns() - self._started
        if self._multi:
            return _THREAD_CLOCK % (vm.thread, now)
        return _CLOCK % now

    def _op(self, vm: VMState, ev: OpStart) -> None:
        per_line = ev.line_start and (self._locals != "off" or self._globals != "off")
        pieces = self._line_sites.get(id(ev)) if per_line else None
        if pieces is None:
            pre, suf = op_site(ev.pc, ev.op, ev.op_name, ev.line, ev.code)
            code = vm.code if per_line else None
            if per_line:  # the event kept: its id stays its own
                self._line_sites[id(ev)] = (pre, suf, ev, code)
        else:
            pre, suf, _, code = pieces
        if not self._multi and not per_line:
            self._writer.add_site(id(ev), pre, suf, ev)
        extra = self._thread(vm)
        if per_line:
            extra += self._values(vm, code)
        self._line(op_body(pre, vm.gas, vm.depth, suf + extra))

    def _call(self, vm: VMState, ev: CallStart) -> None:
        if vm.threads_seen > 1 and not self._multi:
            self._multi = True  # from now on every line names its thread
            self._values_state()
            self._writer.clear_sites()
        cached = self._calls.get(id(ev))
        if cached is None:
            if ev.file not in self._sources:
                self._source(ev.file)
            cached = self._calls[id(ev)] = _call_line_pieces(ev)
        if self._locals != "off":
            self._prev_locals.pop((vm.thread, vm.depth), None)
            if self._call_line is not None:
                self._call_line.vm = vm  # the thread of the calls the C hook writes
        self._line(call_body(cached[0], vm.depth, cached[1], self._tail(vm)))

    def _call_pieces(self, ev: CallStart) -> tuple[bytes, bytes] | None:
        """``call_lines``' pieces of ``ev``'s call lines, once ``_call`` made
        them; None while its lines carry more than the pieces and the depth
        (a thread, a clock), or a call does more than write (locals kept per
        frame) and the C ``CallLine`` is not there to do it, or once the size
        limit stopped recording."""
        if self._multi or self._clock or self.size_limited:
            return None
        if self._locals != "off" and self._call_line is None:
            return None
        cached = self._calls.get(id(ev))
        return None if cached is None else (cached[0], cached[1])

    def _source(self, file: str) -> None:
        """The source line committing to ``file``'s content, before the first
        call line naming it (once per file; nothing for ``<string>`` and other
        code without a readable regular file)."""
        self._sources.add(file)
        if file.startswith("<"):
            return
        if self._embed_source and self._embedded_source(file):
            return
        found = _fingerprint(file)
        if found is None:
            return
        digest, size = found
        self._line(source_body(file, digest, size))

    def _embedded_source(self, file: str) -> bool:
        """``embed_source``: the source line with the file's text (read once,
        hashed as read), unless it is not UTF-8 or the line would pass the
        line bound; False then (the caller writes the hash alone)."""
        got = read_local_text(file)
        if got.text is None:
            return False
        data = got.text.encode("utf-8")  # the file's bytes: strict UTF-8 round-trips
        line = source_body(file, hashlib.sha256(data).hexdigest(), len(data), got.text)
        if len(line) > MAX_LINE_BYTES - 100:  # room for the hash member
            return False
        self._line(line)
        return True

    def _return(self, vm: VMState, ev: Return) -> None:
        value = _encode(vm.renderer.render(ev.value))
        self._line(return_body(ev.kind, vm.depth, ev.code, ev.pc, vm.gas, value, self._tail(vm)))

    def _exception(self, vm: VMState, ev: OpException) -> None:
        error = _encode(f"{ev.error_type}: {ev.message}" if ev.message else ev.error_type)
        self._line(EXCEPTION_LINE % (  # (format.runlines.exception_body, inline)
            ev.pc, ev.op, vm.gas, vm.depth, _encode(ev.op_name), error, ev.line, ev.code,
            ev.kind.encode(), self._tail(vm)))

    def _values_state(self) -> None:
        """Tell the C line start (``_line_start``) what it would otherwise read at
        every line start: whether nothing more is written (sealed, a fork's
        child, the size limit) and whether lines name their thread."""
        if self._line_start is not None:
            self._line_start.stopped = self.sealed or self.size_limited
            self._line_start.multi = self._multi

    def _values(self, vm: VMState, code: CodeType | None) -> bytes:
        """The ``locals`` / ``globals`` members of a line start's op line (in C when
        the extension is there: ``tracers/csrc/values.c``; the same bytes)."""
        renderer = vm.renderer
        # C finds the live frame running code (VMState.frame), with a Renderer's
        # rendering; a vm without code (BlockTrace's replay) gives its own frame
        c = _cvalues if code is not None and type(renderer) is Renderer else None
        frame = vm.frame if c is None else c.frame_of(code)
        if frame is None:
            return b""
        out = b""
        if self._locals != "off":
            if self._call_line is not None:
                # the states C call lines left marked as frames gone's taken out
                # (values.c "frames gone, marked"): the states the reference keeps
                self._call_line.settle()
            key = (vm.thread, vm.depth)
            prev = self._prev_locals.get(key, _NOTHING)
            names = frame.f_locals
            changes = self._locals == "changes"
            done = None if c is None else c.scan(names, prev, renderer, changes, _NOT_KEPT, _encode)
            fresh, members = _scan(names, prev, renderer, changes) if done is None else done
            self._prev_locals[key] = fresh
            out += LOCALS_MEMBER + members
        if self._globals != "off" and frame.f_globals is not frame.f_locals:
            g = frame.f_globals
            prev = self._prev_globals.get(id(g), _NOTHING)
            changes = self._globals == "changes"
            done = None if c is None else c.scan(g, prev, renderer, changes, _NOT_KEPT, _encode)
            fresh, members = _scan(g, prev, renderer, changes) if done is None else done
            self._prev_globals[id(g)] = fresh
            out += GLOBALS_MEMBER + members
        return out

    def write_event(self, event: str, members: dict[str, Any]) -> None:
        """Write one ``{"event": event, ...members}`` line now (a line kind readers
        that do not know it skip, such as ``inputs``); nothing once sealed."""
        if self.sealed:
            return
        self._line(_encode({"event": event, **members})[:-1])

    def record_failure(self, message: str) -> None:
        """Record that a tracer of this run failed (a ``tracerError`` line)."""
        if self.sealed:
            return
        self._failure = message
        self._line(tracer_error_body(message))
        self.flush()

    def _stop(self, vm: VMState, ev: Stop) -> None:
        if self.size_limited:
            self.limit_step = vm.gas_used if self._gas_at_limit is None else (
                vm.gas_limit - self._gas_at_limit)
        self._seal(ev.output, ev.error, vm.gas_used)

    def _seal(self, output: str, error: str | None, gas_used: int) -> None:
        if self.sealed:
            return
        if self.size_limited:
            error = "TraceSizeLimit"  # the program's own outcome is in ``output``
        elif error is None and self._failure is not None:
            error = f"tracer failed: {self._failure}"
        writer = self._writer
        lines = writer.lines
        # The summary's members in their order (docs/FORMAT.md), as msgspec would
        # write the dict of them (tests/tracers/test_seal.py compares).
        summary = summary_body(
            output, gas_used, error, time.perf_counter_ns() - self._started, lines,
            (self.max_size or 0) if self.size_limited else None,  # (set when size_limited)
            self.limit_step)
        # Sealed before the write: a seal interrupted by a signal handler leaves an
        # unsealed file (or a sealed one), never a second summary line.
        self.sealed = True
        self._values_state()
        # Version 3: the summary is an ordinary line, the last of the last leaf,
        # so the tree (and a checkpoint of all of it) covers the outcome.  (Through
        # _line, as every line written in Python: golden.record's subclass rewrites them.)
        self._line(summary)
        writer.close_leaf()
        stop_thread = getattr(writer, "stop_thread", None)
        if stop_thread is not None and writer.threaded:  # nothing more to make: the
            stop_thread()  # writer's thread makes the queued lines and ends (one
            # hand-off), the rest is inline
        self.head = writer.head
        self.flush()  # (inline, a file of its own: one write from C)
        if stop_thread is not None:
            stop_thread()  # its copy of the descriptor closed
        if self._checkpoints is not None:  # a last checkpoint covering the whole tree
            self._checkpoints.write(writer.tree_size, writer.root())
        if self._frames is not None:
            self._frames.close()  # the zstd seek table
        if self._owns:
            self._out.close()

    def close(self, output: str = "", error: str | None = "not stopped") -> None:
        """Seal the trace if the run did not (no ``Stop`` reached this tracer)."""
        if not self.sealed:
            self._seal(output, error, 0)


def _written_elsewhere(event: object, gas: int, depth: int) -> bool:
    """``op_line`` of a ChainTracer in a fork's child: nothing is written."""
    return True


def _dunder(name: str) -> bool:
    """Module bookkeeping (``__name__``, ``__builtins__`` …) is left out of values."""
    return name.startswith("__") and name.endswith("__")


_KEPT_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None)})
"""Exact immutable builtins: the same object renders to the same bytes, so a name
still bound to the object it had at the last line start is not rendered again
(only these are kept: any other value may have changed inside, or renders by a
per-trace number that may be reassigned)."""
_NOT_KEPT = object()
_MODES = {"off": 0, "on": 1, "changes": 2}
"""A values mode as ``_cvalues.line`` takes it."""
_NOTHING: dict[str, tuple[object, bytes]] = {}


def _scan(
    names: Any, prev: dict[str, tuple[object, bytes]], renderer: Renderer, changes: bool,
    c: Any = None,
) -> tuple[dict[str, tuple[object, bytes]], bytes]:
    """``names``' rendered members (see ``_rendered``) and the JSON object of them
    (of those that changed, with ``changes``); with ``c`` (``_cvalues``) in C,
    which hands a name or value it does not render back to this reference."""
    if c is not None:
        done = c.scan(names, prev, renderer, changes, _NOT_KEPT, _encode)
        if done is not None:
            return done  # type: ignore[no-any-return]
    fresh = _rendered(dict(names), prev, renderer.render)
    return fresh, _object(fresh, prev if changes else None)


def _rendered(
    names: dict[str, Any], prev: dict[str, tuple[object, bytes]], render: Any
) -> dict[str, tuple[object, bytes]]:
    """name -> (the value when of a kept type, else a marker; ``"name":value`` as
    JSON), rendering only the names whose value is not the same kept object as in
    ``prev``.  Module bookkeeping (``__name__`` ...) is left out."""
    fresh: dict[str, tuple[object, bytes]] = {}
    for name, value in names.items():
        if _dunder(name):
            continue
        old = prev.get(name)
        if old is not None and old[0] is value and type(value) in _KEPT_TYPES:
            fresh[name] = old
        else:
            kept = value if type(value) in _KEPT_TYPES else _NOT_KEPT
            fresh[name] = (kept, _encode(name) + b":" + _encode(render(value)))
    return fresh


def _object(
    fresh: dict[str, tuple[object, bytes]], prev: dict[str, tuple[object, bytes]] | None
) -> bytes:
    """The JSON object of ``fresh``'s members, or (``prev`` given: ``changes``) of
    those whose rendering differs from ``prev``'s."""
    if prev is None:
        members = [m for _, m in fresh.values()]
    else:
        members = [m for name, (_, m) in fresh.items()
                   if (old := prev.get(name)) is None or old[1] != m]
    return b"{" + b",".join(members) + b"}"
