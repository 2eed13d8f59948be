"""The child bootstrap: runs one request's program, confined, and reports.

Started by :mod:`blocktrace.snapshot.runner` as ``python -I -B -m
blocktrace.snapshot.child``.  It reads a :class:`ChildJob` on stdin, moves its
result channel off fd 1 (so the program's own writes to fd 1 go nowhere), sets
its resource limits, switches user if told, installs the audit hook, and runs
the program under the snapshot tracer.  The channel carries one record per
line: ``S`` + a step's JSON, ``T`` + a trace line (``format: trace``), and last
``E`` + the :class:`EndRecord`.  Steps are sent as they are taken, so a run
killed for its time still leaves the steps it took.
"""

from __future__ import annotations

import builtins
import io
import os
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
from blocktrace.snapshot.streams import CappedOutput, FeedInput
from blocktrace.snapshot.tracer import SnapshotTracer

__all__ = ["main"]

_MAX_JOB = 4 * 1024 * 1024
MAIN_NAME = "main.py"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _LineForwarder(io.RawIOBase):
    """A binary stream that sends each complete line to the channel as ``T`` + line."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._buf = b""

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._buf += data
        if b"\n" in self._buf:
            *lines, self._buf = self._buf.split(b"\n")
            _write_all(self._fd, b"".join(b"T" + line + b"\n" for line in lines))
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
    os.close(devnull)

    base = None
    if job.uid is not None:
        base = count_processes(job.uid)
    elif os.geteuid() != 0:
        base = count_processes(os.geteuid())
    apply_limits(job.limits, extra_processes_base=base)
    if job.uid is not None:
        os.setgroups([])
        os.setgid(job.uid)
        os.setuid(job.uid)
    os.chdir(job.workdir)

    request = job.request
    main_path = os.path.join(job.workdir, MAIN_NAME)
    out = CappedOutput(job.limits.stdout_chars)
    emit_steps = request.format == "snapshots"

    def emit(data: bytes) -> None:
        _write_all(chan, b"S" + data + b"\n")

    tracer = SnapshotTracer(
        max_steps=request.steps, output=out, emit=emit if emit_steps else None,
        max_bytes=job.limits.response_bytes,
    )

    def on_xcpu(signum: int, frame: types.FrameType | None) -> None:
        tracer.cpu_exceeded = True

    signal.signal(signal.SIGXCPU, on_xcpu)

    import blocktrace

    report_thread_error = threading.excepthook

    def thread_error(args: Any) -> None:
        # A thread stopped by the step limit is not the program's error.
        if not isinstance(args.exc_value, blocktrace.HaltRun):
            report_thread_error(args)

    threading.excepthook = thread_error

    chain: Any = None
    active: Any = tracer
    if not emit_steps:
        stream = cast(IO[bytes], _LineForwarder(chan))
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
    _write_all(chan, b"E" + msgspec.json.encode(end) + b"\n")
    # Leave now: the program's leftover threads and atexit handlers do not
    # get to run untraced after the report.
    os._exit(0)


if __name__ == "__main__":
    main()
