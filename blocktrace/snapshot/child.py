"""The child bootstrap: runs one request's program, confined, and reports.

Started by :mod:`blocktrace.snapshot.runner` as ``python -I -B -m
blocktrace.snapshot.child``.  It reads a :class:`ChildJob` on stdin, moves its
result channel off fd 1 (so the program's own writes to fd 1 go nowhere), moves
into its private file tree when told (:mod:`blocktrace.snapshot.mountns`), sets
its resource limits, switches user if told, applies the kernel layer (Landlock
and seccomp, :mod:`blocktrace.snapshot.oslayer`), installs the audit hook, and
runs the program under the snapshot tracer.  The channel carries one record per
line: ``S`` + a step's JSON, ``T`` + a trace line (``format: trace``), and last
``E`` + the :class:`EndRecord`.  Steps are sent as they are taken, so a run
killed for its time still leaves the steps it took.

Only a writer thread started before the program writes to the channel: the
seccomp filter of the program's thread (inherited by every thread and process
the program starts) refuses every write to, copy of and close of the channel's
descriptor, so the program cannot forge its report through it.
"""

from __future__ import annotations

import _thread
import builtins
import collections
import functools
import io
import os
import queue
import signal
import sys
import threading
import traceback
import types
from typing import IO, Any, NoReturn, cast

import msgspec

from blocktrace.snapshot.confine import apply_limits, count_processes, install_audit_hook
from blocktrace.snapshot.heap import clean_text, type_name
from blocktrace.snapshot.model import ChildJob, EndRecord, ErrorInfo, Status
from blocktrace.snapshot.mountns import enter_private_tree
from blocktrace.snapshot.oslayer import SYSTEM_DIRS, Layer, OsLayerError
from blocktrace.snapshot.streams import CappedOutput, FeedInput
from blocktrace.snapshot.tracer import SnapshotTracer

__all__ = ["main"]

_MAX_JOB = 4 * 1024 * 1024
MAIN_NAME = "main.py"


class _Channel:
    """The report channel, written only by a thread of its own.

    ``send`` hands bytes to the writer thread, confined like the program but
    without the seccomp rule that guards the channel's descriptor, and waits
    until they are written: a step is on its way to the server before the
    program goes on (a loop inside C code holds the interpreter lock until the
    CPU limit kills it, and must not take the steps before it along).

    The writer's loop is C calls only (``deque(map(ack.put, map(write,
    iter(queue.get, None))))``): no bytecode of it runs from before the
    program starts until after the end record is written (the server reads
    nothing after that), so a callback the program registers with
    ``sys.monitoring`` or a profile function set for all threads never runs on
    the writer thread, where the descriptor rule does not hold.  It blocks every
    signal, so a write is never cut short.
    """

    def __init__(self, fd: int) -> None:
        """Start the writer thread: before the process limit and the switch of
        user, so that other runs of the same user cannot leave it no room."""
        self._fd = fd
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._layers: queue.SimpleQueue[Layer | None] = queue.SimpleQueue()
        self._started = _thread.allocate_lock()
        self._done = _thread.allocate_lock()
        self._sending = _thread.allocate_lock()
        self._failure: BaseException | None = None
        self._started.acquire()
        self._done.acquire()
        _thread.start_new_thread(self._run, ())

    def begin(self, layer: Layer | None) -> None:
        """Confine the writer with ``layer`` and wait until it is in its loop."""
        self._layers.put(layer)
        self._started.acquire()
        if self._failure is not None:
            raise self._failure
        # Acknowledged from inside the loop: from here on the writer runs no bytecode.
        self.send(b"")

    def _run(self) -> None:
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            layer = self._layers.get()
            if layer is not None:
                layer.restrict(protect=False)
        except BaseException as exc:
            self._failure = exc
            self._started.release()
            return
        write = functools.partial(os.write, self._fd)
        self._started.release()
        try:
            collections.deque(map(self._acks.put, map(write, iter(self._queue.get, None))),
                              maxlen=0)
        except OSError:
            # The server stopped reading: nothing left to tell it; let senders go on.
            for _ in iter(self._queue.get, None):
                self._acks.put(0)
        self._done.release()

    def send(self, data: bytes) -> None:
        with self._sending:
            self._queue.put(bytes(data))
            self._acks.get()

    def close(self) -> None:
        """Send what is queued and stop the writer."""
        self._queue.put(None)
        self._done.acquire()


class _LineForwarder(io.RawIOBase):
    """A binary stream that sends each complete line to the channel as ``T`` + line."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self._channel = channel
        self._buf = b""

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._buf += data
        if b"\n" in self._buf:
            *lines, self._buf = self._buf.split(b"\n")
            self._channel.send(b"".join(b"T" + line + b"\n" for line in lines))
        return len(data)


def _error_line(exc: BaseException, filename: str) -> int | None:
    """The last line of the user's source in ``exc``'s traceback."""
    line = None
    for fs in traceback.extract_tb(exc.__traceback__):
        if fs.filename == filename:
            line = fs.lineno
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        line = exc.lineno
    return line


def _describe(exc: BaseException) -> str:
    try:
        return clean_text(str(exc)[:1000])
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def main() -> NoReturn:
    job = msgspec.json.decode(sys.stdin.buffer.read(_MAX_JOB), type=ChildJob)
    chan = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)

    # Counted while /proc is there (not in the private tree), with the writer
    # thread about to start.
    base = None
    if job.uid is not None:
        base = count_processes(job.uid) + 1
    elif os.geteuid() != 0:
        base = count_processes(os.geteuid()) + 1
    if job.private_tree:
        # Before any thread: the kernel makes a user namespace only for a
        # single-threaded process.
        try:
            enter_private_tree([*job.allowed_read, *SYSTEM_DIRS], job.workdir,
                               disk_bytes=job.limits.disk_bytes)
        except OSError as exc:
            sys.stderr.write(f"the private file tree could not be made: {exc}\n")
            os._exit(70)
    channel = _Channel(chan)
    apply_limits(job.limits, extra_processes_base=base)
    if job.uid is not None:
        os.setgroups([])
        os.setgid(job.uid)
        os.setuid(job.uid)
    os.chdir(job.workdir)

    import blocktrace

    layer = None
    if job.os_layer != "none":
        # Landlock and seccomp are the boundary in "landlock" mode; inside
        # bubblewrap, seccomp guards the channel and refuses exec and the rest.
        try:
            layer = Layer(readable=[*job.allowed_read, *SYSTEM_DIRS], writable=[job.workdir],
                          landlock=job.os_layer == "landlock",
                          deny_fork=job.os_layer == "landlock", protect_fd=chan,
                          deny_metadata=job.os_layer == "landlock" and not job.private_tree)
        except OsLayerError as exc:
            sys.stderr.write(f"the kernel confinement could not be applied: {exc}\n")
            os._exit(70)
    channel.begin(layer)
    if layer is not None:
        layer.restrict(protect=True)
        layer.close()
    # From here on the program's stderr goes nowhere either: nothing it writes
    # reaches the server except through the tracer.
    os.dup2(devnull, 2)
    os.close(devnull)

    request = job.request
    main_path = os.path.join(job.workdir, MAIN_NAME)
    out = CappedOutput(job.limits.stdout_chars)
    emit_steps = request.format == "snapshots"

    def emit(data: bytes) -> None:
        channel.send(b"S" + data + b"\n")

    tracer = SnapshotTracer(
        max_steps=request.steps, output=out, emit=emit if emit_steps else None,
        max_bytes=job.limits.response_bytes,
    )

    def on_xcpu(signum: int, frame: types.FrameType | None) -> None:
        tracer.cpu_exceeded = True

    signal.signal(signal.SIGXCPU, on_xcpu)

    report_thread_error = threading.excepthook

    def thread_error(args: Any) -> None:
        # A thread stopped by the step limit is not the program's error.
        if not isinstance(args.exc_value, blocktrace.HaltRun):
            report_thread_error(args)

    threading.excepthook = thread_error

    chain: Any = None
    active: Any = tracer
    if not emit_steps:
        stream = cast(IO[bytes], _LineForwarder(channel))
        chain = blocktrace.ChainTracer(stream, genesis=request.genesis, argv=[MAIN_NAME])
        active = blocktrace.Tee(chain, tracer)

    status: Status = "ok"
    error: ErrorInfo | None = None
    module = types.ModuleType("__main__")
    module.__file__ = main_path
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    sys.argv = [MAIN_NAME]
    sys.path[:0] = [job.workdir]
    try:
        code = compile(request.source, main_path, "exec")
    except (SyntaxError, ValueError) as exc:
        status = "error"
        error = ErrorInfo(type=type_name(type(exc)), message=_describe(exc),
                          line=_error_line(exc, main_path))
    else:
        sys.stdout = sys.stderr = out
        sys.stdin = FeedInput(request.input, out)
        if job.audit_hook:
            install_audit_hook(job.workdir, job.allowed_read)
        try:
            with blocktrace.trace(active, include=[job.workdir]):
                exec(code, module.__dict__)
        except blocktrace.HaltRun:
            status = "step_limit" if tracer.halted == "steps" else "limit"
            error = getattr(tracer, "halt_error", None)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                status = "error"
                error = ErrorInfo(type="SystemExit", message=_describe(exc),
                                  line=_error_line(exc, main_path))
        except BaseException as exc:
            status = "error"
            error = ErrorInfo(type=type_name(type(exc)), message=_describe(exc),
                              line=_error_line(exc, main_path))
            if tracer.halted is None:
                tracer.final_step(error)
        finally:
            sys.stdout, sys.stderr, sys.stdin = sys.__stdout__, sys.__stderr__, sys.__stdin__
    if chain is not None:
        chain.close()
    if tracer.halted == "steps":
        status = "step_limit"
    elif tracer.halted is not None:
        status = "limit"
        error = getattr(tracer, "halt_error", error)
    limit = tracer.halted if tracer.halted is not None else None
    end = EndRecord(status=status, stdout=out.getvalue(), error=error, limit=limit)
    channel.send(b"E" + msgspec.json.encode(end) + b"\n")
    channel.close()
    # Leave now: the program's leftover threads and atexit handlers do not
    # get to run untraced after the report.
    os._exit(0)


if __name__ == "__main__":
    main()
