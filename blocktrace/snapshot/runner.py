"""Running one request in a confined child process (the parent's side).

Each request gets a fresh private temporary directory and a fresh child
(:mod:`blocktrace.snapshot.child`), started with no inherited file descriptors,
a minimal environment, its own session (so the whole process group can be
killed), and a kernel-enforced layer: bubblewrap when it works here, else
Landlock and seccomp (:mod:`blocktrace.snapshot.oslayer`), in a private file
tree of its own where user namespaces work (:mod:`blocktrace.snapshot.mountns`);
running without one must be asked for (``sandbox="none"``).  The parent enforces
what the child cannot enforce on itself: the wall-clock limit, the size of what
comes back and (where no size-limited tmpfs holds the working directory) the
disk the program's files take; whatever happens, the child's process group is
killed and reaped and the directory removed before the answer is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from blocktrace.snapshot.confine import (
    SANDBOX_DIR,
    bwrap_command,
    bwrap_usable,
    landlock_usable,
    minimal_env,
    private_tree_usable,
    python_dirs,
)
from blocktrace.snapshot.model import (
    ChildJob,
    EndRecord,
    ErrorInfo,
    LimitName,
    Limits,
    SnapshotRequest,
    SnapshotResponse,
    Status,
    Step,
)

__all__ = [
    "Confinement", "RunResult", "SandboxKind", "confinement_facts", "run_request",
    "run_request_sync", "sandbox_kind",
]

_UNPRIVILEGED_UID = 65534
_KILL_GRACE = 2.0
_DISK_POLL = 0.02
_DISK_MAX_ENTRIES = 10_000

SandboxKind = Literal["bwrap", "landlock", "none"]


@dataclass(frozen=True)
class Confinement:
    """Which confinement layers to use; the defaults use every layer available."""

    audit_hook: bool = True
    sandbox: Literal["auto", "bwrap", "landlock", "none"] = "auto"
    """``auto``: bubblewrap when it works here, else Landlock and seccomp, else
    refuse; ``bwrap`` or ``landlock``: require that one; ``none``: no kernel
    layer at all (unsafe for untrusted code: only the audit hook and limits)."""
    python: str = field(default_factory=lambda: sys.executable)


@dataclass
class RunResult:
    """What a run produced, ready to send: the body and its media type."""

    body: bytes
    content_type: str
    status: Status
    limit: LimitName | None = None


def sandbox_kind(confinement: Confinement) -> SandboxKind:
    """The kernel-enforced layer runs will get; RuntimeError when the one asked
    for (or, for ``auto``, any) cannot work here."""
    wanted = confinement.sandbox
    if wanted == "none":
        return "none"
    if wanted in ("auto", "bwrap") and bwrap_usable() is not None:
        return "bwrap"
    if wanted == "bwrap":
        raise RuntimeError("bubblewrap (bwrap) is required but cannot run here")
    why = landlock_usable(confinement.python)
    if why is None:
        return "landlock"
    if wanted == "landlock":
        raise RuntimeError(f"Landlock and seccomp are required but cannot be applied here: {why}")
    raise RuntimeError(
        "no kernel-enforced confinement works here (bubblewrap cannot run; Landlock and "
        f"seccomp: {why}); refusing to run untrusted code without it"
    )


def _private_tree(kind: SandboxKind, confinement: Confinement) -> bool:
    return kind == "landlock" and private_tree_usable(confinement.python) is None


def confinement_facts(kind: SandboxKind, confinement: Confinement) -> dict[str, Any]:
    """What runs under ``kind`` can see and how their disk quota holds (for
    ``GET /health``): ``hostFilesHidden`` (host paths are not there, so not even
    ``os.stat`` finds them) and ``diskQuota`` (``tmpfs``: the kernel refuses
    past it; ``accounted``: the server measures and stops the run)."""
    hidden = kind == "bwrap" or _private_tree(kind, confinement)
    return {"hostFilesHidden": hidden, "diskQuota": "tmpfs" if hidden else "accounted"}


class _Collected:
    def __init__(self) -> None:
        self.steps: list[msgspec.Raw] = []
        self.trace: list[bytes] = []
        self.end: EndRecord | None = None
        self.size = 0
        self.bad = False
        self.too_big = False
        self.disk_used: int | None = None
        """Set when the program's files passed the disk quota (bytes seen)."""
        self.last_stdout = ""


_step_decoder = msgspec.json.Decoder(Step)
_end_decoder = msgspec.json.Decoder(EndRecord)


def _take_line(line: bytes, got: _Collected) -> None:
    kind, body = line[:1], line[1:]
    try:
        if kind == b"S":
            step = _step_decoder.decode(body)
            got.steps.append(msgspec.Raw(body))
            got.last_stdout = step.stdout
        elif kind == b"T":
            got.trace.append(body + b"\n")
        elif kind == b"E":
            got.end = _end_decoder.decode(body)
        else:
            got.bad = True
    except msgspec.DecodeError:
        got.bad = True


async def _read_channel(stream: asyncio.StreamReader, got: _Collected, cap: int) -> None:
    """Take the child's records up to its end record; nothing after it counts
    (the bootstrap's own code runs on after it, where a program's callbacks
    could still fire)."""
    pending = b""
    while True:
        chunk = await stream.read(1 << 16)
        if not chunk:
            break
        got.size += len(chunk)
        if got.size > cap:
            got.too_big = True
            return
        pending += chunk
        if b"\n" in chunk:  # not in pending: a huge line must not be rescanned per chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                _take_line(line, got)
                if got.end is not None:
                    return


async def _drain(stream: asyncio.StreamReader, cap: int) -> bytes:
    kept = b""
    while True:
        chunk = await stream.read(1 << 16)
        if not chunk:
            return kept
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _disk_usage(path: str) -> int:
    """Bytes the files under ``path`` take on disk; past the entry bound, more
    than any quota.  Links are not followed."""
    total = 0
    entries = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    if entries > _DISK_MAX_ENTRIES:
                        return 1 << 62
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


class _DiskWatch:
    """A thread that measures the program's directory every ``_DISK_POLL``
    seconds and kills the run past ``quota`` (a thread of its own, so a busy
    event loop does not let the program write on between looks)."""

    def __init__(self, workdir: str, quota: int, pid: int, got: _Collected) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(workdir, quota, pid, got),
                                        name="blocktrace-disk-watch", daemon=True)
        self._thread.start()

    def _run(self, workdir: str, quota: int, pid: int, got: _Collected) -> None:
        while not self._stop.wait(_DISK_POLL):
            used = _disk_usage(workdir)
            if used > quota:
                got.disk_used = used
                _kill_group(pid)
                return

    def stop(self) -> None:
        self._stop.set()

    async def finish(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)


async def run_request(
    request: SnapshotRequest,
    limits: Limits | None = None,
    confinement: Confinement | None = None,
) -> RunResult:
    """Run ``request`` in a confined child and build the response."""
    limits = limits or Limits()
    confinement = confinement or Confinement()
    kind = sandbox_kind(confinement)
    root = os.geteuid() == 0
    uid = _UNPRIVILEGED_UID if kind == "bwrap" and root else None
    # Its real path: the private tree and Landlock's rules hold real paths only.
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="blocktrace-snapshot-"))
    try:
        os.chmod(workdir, 0o700)
        inner_dir = SANDBOX_DIR if kind == "bwrap" else workdir
        python = [confinement.python, "-I", "-B", "-m", "blocktrace.snapshot.child"]
        if kind == "bwrap":
            bwrap = bwrap_usable()
            assert bwrap is not None
            cmd = bwrap_command(bwrap, python, setuid=uid is not None,
                                disk_bytes=limits.disk_bytes)
        else:
            cmd = python
        private = _private_tree(kind, confinement)
        job = ChildJob(
            request=request, limits=limits, workdir=inner_dir,
            audit_hook=confinement.audit_hook, os_layer=kind, uid=uid,
            allowed_read=python_dirs(), private_tree=private,
        )
        got, killed, returncode, stderr = await _run_child(
            cmd, msgspec.json.encode(job), workdir, limits, got=_Collected(),
            watch_disk=kind != "bwrap" and not private,
        )
        if kind == "bwrap" and returncode > 128:
            returncode = 128 - returncode  # bwrap reports a signal death as 128 + n
        return _result(request, got, killed, returncode, stderr, limits)
    finally:
        _remove_tree(workdir)


def _remove_tree(path: str) -> None:
    """Remove the run's directory, even where the program took away its own
    write permission (which stops an unprivileged ``rmtree``).  Symbolic links
    are never followed: the program may have pointed them anywhere."""
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            full = os.path.join(root, name)
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(full).st_mode):
                    os.chmod(full, 0o700)
    shutil.rmtree(path, ignore_errors=True)


async def _run_child(
    cmd: list[str], job: bytes, workdir: str, limits: Limits, got: _Collected, watch_disk: bool
) -> tuple[_Collected, bool, int, bytes]:
    # The report channel is a socket, not a pipe: a pipe can be opened anew
    # through /proc/self/fd, which no filesystem rule (Landlock's) covers.
    ours, theirs = socket.socketpair()
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=theirs.fileno(),
            stderr=asyncio.subprocess.PIPE, close_fds=True, start_new_session=True,
            env=minimal_env(workdir), cwd=workdir,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    channel, channel_end = await asyncio.open_connection(sock=ours, limit=1 << 16)
    killed = False
    disk: _DiskWatch | None = None
    assert proc.stdin is not None and proc.stderr is not None
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(job)
            await proc.stdin.drain()
            proc.stdin.close()
        reader = asyncio.ensure_future(_read_channel(channel, got, limits.response_bytes))
        errors = asyncio.ensure_future(_drain(proc.stderr, 4096))
        disk = _DiskWatch(workdir, limits.disk_bytes, proc.pid, got) if watch_disk else None
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout=limits.wall_seconds)
        except TimeoutError:
            killed = True
        if got.too_big:
            killed = True
        if killed or got.end is not None:
            _kill_group(proc.pid)
        try:
            returncode = await asyncio.wait_for(proc.wait(), timeout=_KILL_GRACE)
        except TimeoutError:
            _kill_group(proc.pid)
            returncode = await proc.wait()
        # The child is gone, so both pipes are at end of file (or about to be).
        for task in (reader, errors):
            try:
                await asyncio.wait_for(task, timeout=_KILL_GRACE)
            except TimeoutError:
                pass  # wait_for has cancelled it
        stderr = errors.result() if errors.done() and not errors.cancelled() else b""
        if disk is not None:
            await disk.finish()
            if got.disk_used is None:  # a last look: a short run may fill it between polls
                used = await asyncio.to_thread(_disk_usage, workdir)
                if used > limits.disk_bytes:
                    got.disk_used = used
    except BaseException:
        _kill_group(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    finally:
        _kill_group(proc.pid)
        if disk is not None:
            disk.stop()
        channel_end.close()
    return got, killed and got.end is None, returncode, stderr


def _result(
    request: SnapshotRequest, got: _Collected, killed: bool, returncode: int, stderr: bytes,
    limits: Limits,
) -> RunResult:
    end = got.end
    if got.disk_used is not None:
        message = (f"stopped: the program's files took {got.disk_used} bytes, over the disk "
                   f"quota of {limits.disk_bytes}")
        stdout = end.stdout if end is not None else got.last_stdout
        end = EndRecord("limit", stdout, ErrorInfo("LimitExceeded", message), "disk")
    elif end is None:
        end = _abnormal_end(got, killed, returncode, stderr, limits)
    if request.format == "trace":
        return RunResult(b"".join(got.trace), "application/jsonl", end.status, end.limit)
    response = SnapshotResponse(
        status=end.status, steps=got.steps, stdout=end.stdout, error=end.error, limit=end.limit
    )
    return RunResult(msgspec.json.encode(response), "application/json", end.status, end.limit)


def _abnormal_end(
    got: _Collected, killed: bool, returncode: int, stderr: bytes, limits: Limits
) -> EndRecord:
    """The end record for a child that did not send one."""
    stdout = got.last_stdout
    if got.too_big:
        message = f"stopped: response over {limits.response_bytes} bytes"
        return EndRecord("limit", stdout, ErrorInfo("LimitExceeded", message), "output")
    if killed:
        message = f"stopped: wall-clock time limit of {limits.wall_seconds:g} s reached"
        return EndRecord("limit", stdout, ErrorInfo("LimitExceeded", message), "wall_time")
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        message = f"stopped: CPU time limit of {limits.cpu_seconds} s reached"
        return EndRecord("limit", stdout, ErrorInfo("LimitExceeded", message), "cpu_time")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        message = f"the program's process crashed ({name})"
        return EndRecord("error", stdout, ErrorInfo("ProcessCrashed", message))
    if got.bad:
        message = "the program wrote over the tracer's result channel"
        return EndRecord("error", stdout, ErrorInfo("ProcessCrashed", message))
    detail = stderr.decode("utf-8", "replace").strip().splitlines()
    tail = f": {detail[-1][:200]}" if detail else ""
    message = f"the program's process ended with exit status {returncode}{tail}"
    return EndRecord("error", stdout, ErrorInfo("ProcessExited", message))


def run_request_sync(
    request: SnapshotRequest,
    limits: Limits | None = None,
    confinement: Confinement | None = None,
) -> RunResult:
    """:func:`run_request` for callers without an event loop (the CLI)."""
    return asyncio.run(run_request(request, limits, confinement))
