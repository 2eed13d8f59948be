"""A process that runs ``blocktrace`` commands one after another, for the fuzz
tests that need another process's settings (``BLOCKTRACE_PURE=1``, read at
import) or its environment per command, without paying a Python start-up and
blocktrace's imports for each command (~0.15-0.3 s each on the CI machine).

Each command runs as :func:`harness.run_cli` runs it (stdout and stderr as a
real process's, the watchdog, the memory cap); an exception out of ``main`` is
written on its stderr as a real process would (a traceback, exit 1), so the
tests' checks see it.  ``Worker.run`` asks it over a pipe; anything the
command writes on file descriptor 1 goes to the worker's stderr instead.
"""

from __future__ import annotations

import base64
import contextlib
import os
import select
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from .harness import ARROW_POOL

TESTS = Path(__file__).resolve().parents[1]


class Done(msgspec.Struct):
    """What a command did, as ``subprocess.CompletedProcess`` says it."""

    returncode: int
    stdout: bytes
    stderr: bytes


class Worker:
    """``python`` running :func:`serve`, with ``env`` as its environment."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); "
                "from fuzz.worker import serve; serve()")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**(env if env is not None else os.environ),
                                          **ARROW_POOL})
        self._lock = threading.Lock()

    def run(self, argv: Sequence[str | bytes | os.PathLike[str]],
            env: Mapping[str, str] | None = None,
            cwd: str | os.PathLike[str] | None = None, timeout: float = 120) -> Done:
        """``blocktrace ARGV`` in the worker, ``env`` added to its environment
        for this command, in ``cwd``."""
        # (argv as bytes: a real process's argv may hold bytes that are not UTF-8)
        argv_bytes = [base64.b64encode(os.fsencode(a)).decode() for a in argv]
        request = msgspec.json.encode({"argv": argv_bytes,
                                       "env": dict(env or {}),
                                       "cwd": os.fspath(cwd) if cwd is not None else None})
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(request + b"\n")
            self.proc.stdin.flush()
            # (a command stuck where the worker's watchdog cannot reach it -- in C, or
            # the worker stopped -- fails the test after ``timeout``, saying so,
            # rather than hanging the suite)
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"the worker did not answer within {timeout:g} s "
                                     f"running {list(argv)} (killed)")
            line = self.proc.stdout.readline()
        assert line, f"the worker died (exit {self.proc.poll()}) running {list(argv)}"
        answer = msgspec.json.decode(line)
        return Done(answer["status"], base64.b64decode(answer["stdout"]),
                    answer["stderr"].encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def _environment(env: Mapping[str, str], cwd: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    here = os.getcwd()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _one(request: dict[str, Any]) -> dict[str, Any]:
    from fuzz.harness import run_cli

    with _environment(request["env"], request["cwd"]):
        try:
            argv = [os.fsdecode(base64.b64decode(a)) for a in request["argv"]]
            said = run_cli(*argv, tolerate_known_bugs=False)
            status, out, err = said.status, said.stdout, said.stderr
        except BaseException as exc:  # (what a real process prints, and its exit 1)
            if isinstance(exc, KeyboardInterrupt):
                raise
            status, out = 1, b""
            err = "".join(traceback.format_exception(exc))
    return {"status": status, "stdout": base64.b64encode(out).decode(),
            "stderr": err.encode("utf-8", "surrogateescape").decode("utf-8", "replace")}


def serve() -> None:
    """Answer requests on stdin, one JSON line each, until stdin closes."""
    answers: IO[bytes] = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # (whatever writes on fd 1 directly stays out of the answers)
    for line in sys.stdin.buffer:
        answers.write(msgspec.json.encode(_one(msgspec.json.decode(line))) + b"\n")
        answers.flush()


_SHARED: list[Worker] = []


def shared() -> Worker:
    """The session's worker with the tests' own environment (started on first use;
    conftest closes it at the end)."""
    if not _SHARED or _SHARED[0].proc.poll() is not None:
        _SHARED[:] = [Worker()]
    return _SHARED[0]


def close_shared() -> None:
    while _SHARED:
        _SHARED.pop().close()
