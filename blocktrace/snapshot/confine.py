"""Confinement of the child process that runs untrusted source.

Layers, each useful alone (docs/SECURITY.md says what each stops):

1. Resource limits (``setrlimit``) set by the child bootstrap before the
   program starts: CPU seconds, address space, process count, file size, open
   files, no core dumps.
2. An audit hook (PEP 578) installed just before the program runs, refusing
   file access outside the private working directory and Python's own library,
   sockets, new processes, signals to other processes, ``ctypes``, the ``gc``
   calls that lead to the hook's own closure and changes to the limits.
   CPython's documentation is plain that audit hooks are not a sandbox
   (``dir_fd``, ``os.stat`` and ``os.write`` pass it by); this layer turns
   ordinary hostile or mistaken programs into clean ``PermissionError``\\ s.
3. A kernel-enforced layer, the boundary: bubblewrap (``bwrap``) when it is
   installed and works here — new PID, net, IPC and UTS namespaces, a
   filesystem holding only Python, its libraries and a size-limited tmpfs as
   the working directory, a cleared environment, and (when the server runs as
   root) a switch to an unprivileged user so the process limit applies — else
   Landlock and seccomp (:mod:`blocktrace.snapshot.oslayer`).
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from blocktrace.snapshot.model import Limits

__all__ = [
    "SANDBOX_DIR",
    "apply_limits",
    "bwrap_command",
    "bwrap_usable",
    "install_audit_hook",
    "landlock_usable",
    "private_tree_usable",
    "python_dirs",
]

SANDBOX_DIR = "/sandbox"
"""Where the private working directory appears inside bubblewrap."""

_BLOCKED_EVENTS = frozenset(
    {
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "os.startfile", "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill",
        "resource.setrlimit", "resource.prlimit", "sys.remote_exec", "os.setns", "os.unshare",
        # the way to this hook's own closure (and the tracer's objects)
        "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    }
)
_BLOCKED_PREFIXES = ("socket.", "ctypes.", "_ctypes.", "winreg.", "msvcrt.")
_BLOCKED_IMPORTS = frozenset({"ctypes", "_ctypes", "cffi", "_cffi_backend", "_posixsubprocess"})
_PROTECTED_ATTRS = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
_READ_PATH_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "os.chdir", "os.getxattr",
                               "os.listxattr", "shutil.copyfile", "shutil.copytree"})
_WRITE_PATH_EVENTS = frozenset(
    {
        "os.mkdir", "os.rmdir", "os.remove", "os.rename", "os.chmod", "os.chown", "os.utime",
        "os.truncate", "os.symlink", "os.link", "os.chflags", "os.lchflags", "os.setxattr",
        "os.removexattr", "shutil.rmtree", "shutil.move", "shutil.chown", "shutil.make_archive",
        "shutil.unpack_archive", "os.mkfifo", "os.mknod",
    }
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def python_dirs() -> list[str]:
    """Directories Python needs to read: its library, the environment's
    packages, and blocktrace itself (an editable install lives elsewhere)."""
    import msgspec

    import blocktrace

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(msgspec.__file__))))
    dirs.add(os.path.dirname(os.path.abspath(blocktrace.__file__)))
    return sorted(os.path.realpath(d) for d in dirs)


def apply_limits(limits: Limits, *, extra_processes_base: int | None = None) -> None:
    """Set the child's resource limits (called in the child, before the program)."""
    cpu = max(1, limits.cpu_seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    base = extra_processes_base if extra_processes_base is not None else 0
    nproc = base + limits.processes
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def count_processes(uid: int) -> int:
    """How many processes and threads ``uid`` has now (what RLIMIT_NPROC counts)."""
    n = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}")
            if st.st_uid == uid:
                n += len(os.listdir(f"/proc/{entry}/task"))
        except OSError:
            continue
    return n


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r + os.sep) for r in roots)


def install_audit_hook(workdir: str, readable: Sequence[str]) -> None:
    """Refuse, from now on in this process, what a confined program may not do."""
    rw = (os.path.realpath(workdir),)
    ro = tuple(os.path.realpath(d) for d in readable) + rw
    hook = _make_hook(rw, ro)
    sys.addaudithook(hook)


def _make_hook(rw: tuple[str, ...], ro: tuple[str, ...]) -> Callable[[str, tuple[Any, ...]], None]:
    # Everything the hook uses is bound now, so rebinding module attributes
    # (os.path.realpath = ...) later cannot change what it checks.
    realpath = os.path.realpath
    fspath = os.fspath
    fsdecode = os.fsdecode
    under = _under
    blocked = _BLOCKED_EVENTS
    prefixes = _BLOCKED_PREFIXES
    imports = _BLOCKED_IMPORTS
    protected = _PROTECTED_ATTRS
    read_events = _READ_PATH_EVENTS
    write_events = _WRITE_PATH_EVENTS
    write_flags = _WRITE_FLAGS

    def refuse(event: str, what: object) -> None:
        detail = f" {what!r}" if what != "" else ""
        raise PermissionError(f"blocked by the snapshot sandbox: {event}{detail}"[:300])

    def allowed(path: object, write: bool) -> bool:
        if path is None:
            return True
        if isinstance(path, int):
            return False
        try:
            p = realpath(fsdecode(fspath(cast(Any, path))))
        except (TypeError, ValueError):
            return False
        return under(p, rw if write else ro)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            write = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                isinstance(flags, int) and flags & write_flags
            )
            if not allowed(path, write):
                refuse(event, path)
        elif event in blocked or event.startswith(prefixes):
            refuse(event, args[0] if args and isinstance(args[0], str | bytes) else "")
        elif event == "import":
            if args and isinstance(args[0], str) and args[0].partition(".")[0] in imports:
                refuse(event, args[0])
        elif event == "object.__setattr__":
            if len(args) > 1 and args[1] in protected:
                refuse(event, args[1])
        elif event in read_events:
            if args and not allowed(args[0] if args[0] != "" else ".", False):
                refuse(event, args[0])
        elif event in write_events:
            for a in args[:2]:
                if isinstance(a, str | bytes | os.PathLike) and not allowed(a, True):
                    refuse(event, a)

    return hook


@functools.cache
def bwrap_usable() -> str | None:
    """The path of a ``bwrap`` that can create its namespaces here, else None."""
    import subprocess  # not at the top: the child must not have it loaded

    path = shutil.which("bwrap")
    if path is None:
        return None
    cmd = [path, *_namespace_args(), "--ro-bind", "/", "/", "--", "/bin/true"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if done.returncode == 0 else None


def _probe(python: str, probe: str, *args: str) -> str | None:
    """Run ``probe`` as the child would run (isolated, minimal environment, in
    a throwaway process): None when it succeeds, else why not in one line."""
    import subprocess  # not at the top: the child must not have it loaded

    try:
        done = subprocess.run([python, "-I", "-B", "-c", probe, *args], capture_output=True,
                              timeout=30, check=False, env=minimal_env("/"), cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


@functools.cache
def landlock_usable(python: str) -> str | None:
    """Why the Landlock and seccomp layer cannot be applied by ``python`` here,
    or None when it can."""
    return _probe(python, "from blocktrace.snapshot.oslayer import Layer\n"
                  "layer = Layer(readable=[], writable=[], landlock=True, deny_fork=True, "
                  "protect_fd=None)\nlayer.restrict(protect=True)\n")


@functools.cache
def private_tree_usable(python: str) -> str | None:
    """Why ``python`` cannot make the Landlock layer's private file tree here
    (:mod:`blocktrace.snapshot.mountns`: a user and mount namespace), or None
    when it can (tried in a throwaway directory too)."""
    import tempfile

    probe = ("import os, sys\n"
             "from blocktrace.snapshot.mountns import enter_private_tree\n"
             "from blocktrace.snapshot.oslayer import SYSTEM_DIRS\n"
             "enter_private_tree([*sys.argv[2:], *SYSTEM_DIRS], sys.argv[1], disk_bytes=1 << 16)\n"
             "assert not os.path.exists('/etc') and os.listdir('.') == []\n")
    with tempfile.TemporaryDirectory(prefix="blocktrace-probe-") as workdir:
        return _probe(python, probe, workdir, *python_dirs())


def _namespace_args() -> list[str]:
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:
        args.insert(0, "--unshare-user")
    return args


def bwrap_command(
    bwrap: str, python: Sequence[str], *, setuid: bool, disk_bytes: int
) -> list[str]:
    """``bwrap`` arguments that run ``python`` with only Python and a fresh
    tmpfs of ``disk_bytes`` (at :data:`SANDBOX_DIR`) visible, no network, and a
    cleared environment."""
    cmd = [bwrap, *_namespace_args()]
    for d in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    # No /proc: through /proc/self/fd the program could reopen the report
    # channel's pipe; Python does not need it.
    cmd += ["--dev", "/dev", "--tmpfs", "/tmp"]
    binds = python_dirs()
    parents: set[str] = set()
    for d in binds:
        p = os.path.dirname(d)
        while p not in ("/", ""):
            parents.add(p)
            p = os.path.dirname(p)
    for p in sorted(parents - {"/tmp", "/usr"}, key=lambda q: q.count("/")):
        # bwrap copies a parent's mode (/root is 0700): make the path walkable
        cmd += ["--perms", "0755", "--dir", p]
    for d in binds:
        cmd += ["--ro-bind", d, d]
    cmd += ["--perms", "01777", "--size", str(disk_bytes), "--tmpfs", SANDBOX_DIR,
            "--chdir", SANDBOX_DIR, "--clearenv"]
    for k, v in minimal_env(SANDBOX_DIR).items():
        cmd += ["--setenv", k, v]
    if setuid:
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return [*cmd, "--", *python]


def minimal_env(workdir: str) -> dict[str, str]:
    """The whole environment of the child: nothing inherited."""
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8"}
