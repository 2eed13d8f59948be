"""A private file tree for the Landlock layer, made in a user and mount namespace.

Landlock refuses to open what it does not grant, but it does not mediate
``stat()``: under it alone a program still learns whether any host path exists
and its size, owner and times.  Where the kernel lets an unprivileged process
create a user namespace (``unshare(CLONE_NEWUSER | CLONE_NEWNS)``, Python's
:func:`os.unshare`), the child bootstrap first moves into a mount tree of its
own, as bubblewrap does, before anything else:

- a small read-only tmpfs as ``/`` holding only the directories it is given
  (Python, its packages, blocktrace, ``/usr`` and the ``/lib``, ``/bin`` links),
  each a read-only bind mount at its own path;
- at the working directory's path a tmpfs of ``disk_bytes`` and at most
  ``max_files`` files: the disk quota is the kernel's (``ENOSPC``), not a count
  the server keeps;
- no ``/etc``, ``/home``, ``/tmp``, ``/proc`` or ``/dev``: ``os.stat`` of a host
  file answers ``FileNotFoundError`` because the file is not there.

The old root is detached (``pivot_root`` and a lazy unmount), so nothing of it
is reachable.  This must run while the process has a single thread (the
kernel's rule for ``CLONE_NEWUSER``).  Landlock and seccomp are applied on top,
unchanged: they forbid every later mount, ``unshare`` and ``pivot_root``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from blocktrace.snapshot.oslayer import OsLayerError, _Libc, seccomp_arch

__all__ = ["MAX_FILES", "enter_private_tree"]

MAX_FILES = 10_000
"""Files and directories the working directory's tmpfs holds at most
(``nr_inodes``): empty files take kernel memory that no size counts."""

_MS_NOSUID = 2
_MS_NODEV = 4
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 1
_MOUNT_ATTR_NOSUID = 2
_MOUNT_ATTR_NODEV = 4
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class _Mounts:
    def __init__(self, libc: _Libc) -> None:
        self.libc = libc
        c = libc.ctypes
        libc.lib.mount.argtypes = [c.c_char_p, c.c_char_p, c.c_char_p, c.c_ulong, c.c_char_p]
        libc.lib.umount2.argtypes = [c.c_char_p, c.c_int]

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        def b(s: str | None) -> bytes | None:
            return None if s is None else os.fsencode(s)
        self.libc.check(self.libc.lib.mount(b(source), b(target), b(fstype), flags, b(data)),
                        f"mount {target}")

    def read_only(self, target: str, recursive: bool) -> None:
        """Make the mount at ``target`` (and, ``recursive``, those below it) read-only,
        no set-user-id, no devices (``mount_setattr``, Linux 5.12, before Landlock)."""
        # struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd; }
        attr = struct.pack("=QQQQ", _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV,
                           0, 0, 0)
        self.libc.syscall(f"mount_setattr {target}", _SYS_MOUNT_SETATTR, _AT_FDCWD,
                          _c_path(self.libc, target), _AT_RECURSIVE if recursive else 0,
                          self.libc.ctypes.create_string_buffer(attr, len(attr)), len(attr))


def enter_private_tree(readable: Iterable[str], workdir: str, *, disk_bytes: int,
                       max_files: int = MAX_FILES) -> None:
    """Move this (single-threaded) process into a new user and mount namespace
    whose root holds only ``readable`` (read-only) and a fresh ``workdir`` (a
    tmpfs of ``disk_bytes``), each at its own path.  ``workdir`` must exist and
    be empty: the new root is built on top of it.  Raises :class:`OsLayerError`."""
    arch = seccomp_arch()
    if arch is None:
        raise OsLayerError("no system call table for this architecture")
    libc = _Libc()
    m = _Mounts(libc)
    uid, gid = os.geteuid(), os.getegid()
    try:
        os.unshare(os.CLONE_NEWUSER | os.CLONE_NEWNS)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
        _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
    except OSError as exc:
        raise OsLayerError(exc.errno, f"user namespace: {exc.strerror or exc}") from None
    m.mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    new = os.path.realpath(workdir)
    m.mount("tmpfs", new, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,nr_inodes=1024,mode=0755")
    bound: list[str] = []
    for path in sorted(set(readable), key=lambda p: (p.count("/"), p)):
        if os.path.islink(path) and os.path.dirname(path) == "/":
            # /lib -> usr/lib and the like: the same link in the new root
            os.symlink(os.readlink(path), new + path)
            continue
        real = os.path.realpath(path)
        if not os.path.isdir(real) or any(real == b or real.startswith(b + "/") for b in bound):
            continue
        os.makedirs(new + real, mode=0o755, exist_ok=True)
        m.mount(real, new + real, None, _MS_BIND | _MS_REC)
        m.read_only(new + real, recursive=True)
        bound.append(real)
    os.makedirs(new + new, mode=0o755, exist_ok=True)
    m.mount("tmpfs", new + new, "tmpfs", _MS_NOSUID | _MS_NODEV,
            f"size={disk_bytes},nr_inodes={max_files},mode=0700")
    os.chdir(new)
    libc.syscall("pivot_root", _SYS_PIVOT_ROOT[arch], _c_path(libc, "."), _c_path(libc, "."))
    libc.check(libc.lib.umount2(b".", _MNT_DETACH), "umount the old root")
    os.chdir("/")
    m.read_only("/", recursive=False)
    os.chdir(new)


def _c_path(libc: _Libc, path: str) -> object:
    return libc.ctypes.c_char_p(os.fsencode(path))
