"""The kernel-enforced layer that works without bubblewrap: Landlock and seccomp.

Called by the child bootstrap (:mod:`blocktrace.snapshot.child`) after its
resource limits and before the program runs.  Both mechanisms need no
privilege, no namespaces and no helper binary: they are system calls a process
makes on itself, inherited by every thread and process it starts, and never
undone.  So they work in containers that forbid the namespaces bubblewrap needs.

- **Landlock** (Linux 5.13+, ABI 1-7): the process may read only the
  directories it is given (Python, its packages, the OS's shared libraries) and
  read and write only its working directory, whatever path, ``dir_fd``,
  symbolic link or ``..`` it uses: the kernel checks the file it reaches.  From
  ABI 4 no TCP ``bind``/``connect``; from ABI 6 no signals to processes outside
  the sandbox and no abstract Unix sockets outside it.
- **seccomp** (a BPF filter, Linux 3.17+): refuses with ``EPERM`` the system
  calls a teaching program never needs and an attacker wants — ``execve``,
  sockets, ``ptrace``, namespaces and mounts, keyrings, ``bpf``,
  ``io_uring``, ``setsid``/``setpgid`` (so nothing leaves the process group
  the server kills) — optionally ``fork`` (where there is no PID namespace) and
  every change of a file's mode, owner, times or extended attributes (where no
  private tree, :mod:`blocktrace.snapshot.mountns`, hides the host's files), and
  on the program's thread every way of writing to, duplicating or closing the
  report channel's descriptor.

The system calls are made through :mod:`ctypes` here rather than a binding
from PyPI: no Python binding of Landlock or libseccomp is published and
maintained for Python 3.12+ (docs/SECURITY.md), and both kernel interfaces are
small, stable and documented (``landlock(7)``, ``seccomp(2)``).  :mod:`ctypes`
is removed from ``sys.modules`` again before the program runs, so its
``import ctypes`` goes through the audit hook.
"""

from __future__ import annotations

import os
import platform
import struct
import sys
from collections.abc import Iterable, Sequence

__all__ = ["SYSTEM_DIRS", "Layer", "OsLayerError", "build_filter", "landlock_abi", "seccomp_arch"]

SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
"""The operating system's own files, readable under Landlock as under bubblewrap
(shared libraries that Python's extension modules load); ``/etc``, ``/home``,
``/root``, ``/tmp``, ``/proc`` and the rest are not."""


class OsLayerError(OSError):
    """Landlock or seccomp could not be applied."""


# -- Landlock (include/uapi/linux/landlock.h) --------------------------------

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_ALL = 0b11  # BIND_TCP | CONNECT_TCP, ABI 4
_SCOPE_ALL = 0b11  # ABSTRACT_UNIX_SOCKET | SIGNAL, ABI 6

_READ = _FS_READ_FILE | _FS_READ_DIR
_WRITE = (_READ | _FS_WRITE_FILE | _FS_TRUNCATE | _FS_MAKE_REG | _FS_MAKE_DIR | _FS_MAKE_SYM
          | _FS_REMOVE_FILE | _FS_REMOVE_DIR | _FS_REFER)


def _handled_fs(abi: int) -> int:
    """Every filesystem right the kernel knows at ``abi``: all are refused
    unless a rule grants them."""
    if abi >= 5:
        return (1 << 16) - 1
    return (1 << (13 + min(abi, 3))) - 1


# -- seccomp (include/uapi/linux/seccomp.h, filter.h, audit.h) ---------------

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_EPERM = 1
_ENOSYS = 38
_LD_ABS_W = 0x20
_JEQ = 0x15
_JGE = 0x35
_JGT = 0x25
_JSET = 0x45
_RET = 0x06
_CLONE_NEW_ANY = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_THREAD = 0x00010000

# Syscall numbers by architecture (from the kernel's unistd headers); None
# where the architecture has no such call.
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, {
        "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "clone": 56, "clone3": 435,
        "setsid": 112, "setpgid": 109, "unshare": 272, "setns": 308, "mount": 165,
        "umount2": 166, "pivot_root": 155, "chroot": 161, "move_mount": 429, "open_tree": 428,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
        "pidfd_open": 434, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 250,
        "add_key": 248, "request_key": 249, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169,
        "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179, "syslog": 103,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "mknod": 133, "mknodat": 259,
        "personality": 135, "iopl": 172, "ioperm": 173, "socket": 41, "socketpair": 53,
        "setrlimit": 160, "prlimit64": 302, "kill": 62, "tkill": 200, "tgkill": 234,
        "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424,
        "write": 1, "writev": 20, "pwrite64": 18, "pwritev": 296, "pwritev2": 328,
        "sendfile": 40, "splice": 275, "tee": 276, "vmsplice": 278, "copy_file_range": 326,
        "dup": 32, "dup2": 33, "dup3": 292, "fcntl": 72, "close": 3, "close_range": 436,
        "ioctl": 16, "sendto": 44, "sendmsg": 46, "sendmmsg": 307, "shutdown": 48,
        "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "chown": 92,
        "fchown": 93, "lchown": 94, "fchownat": 260, "utime": 132, "utimes": 235,
        "futimesat": 261, "utimensat": 280, "setxattr": 188, "lsetxattr": 189,
        "fsetxattr": 190, "setxattrat": 463, "removexattr": 197, "lremovexattr": 198,
        "fremovexattr": 199, "removexattrat": 466,
    }),
    "aarch64": (0xC00000B7, {
        "execve": 221, "execveat": 281, "clone": 220, "clone3": 435, "setsid": 157,
        "setpgid": 154, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
        "pivot_root": 41, "chroot": 51, "move_mount": 429, "open_tree": 428, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438,
        "pidfd_open": 434, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 219,
        "add_key": 217, "request_key": 218, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142,
        "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60, "syslog": 116,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "mknodat": 33, "personality": 92,
        "socket": 198, "socketpair": 199, "setrlimit": 164, "prlimit64": 261, "kill": 129,
        "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240,
        "pidfd_send_signal": 424, "write": 64, "writev": 66, "pwrite64": 68, "pwritev": 70,
        "pwritev2": 287, "sendfile": 71, "splice": 76, "tee": 77, "vmsplice": 75,
        "copy_file_range": 285, "dup": 23, "dup3": 24, "fcntl": 25, "close": 57,
        "close_range": 436, "ioctl": 29, "sendto": 206, "sendmsg": 211, "sendmmsg": 269,
        "shutdown": 210, "fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "fchown": 55,
        "fchownat": 54, "utimensat": 88, "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7,
        "setxattrat": 463, "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16,
        "removexattrat": 466,
    }),
}

_DENIED = (
    "execve", "execveat", "setsid", "setpgid", "unshare", "setns", "mount", "umount2",
    "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "pidfd_open", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct",
    "quotactl", "syslog", "open_by_handle_at", "name_to_handle_at", "mknod", "mknodat",
    "personality", "iopl", "ioperm", "setrlimit",
)
_METADATA = ("chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown",
             "fchownat", "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr",
             "fsetxattr", "setxattrat", "removexattr", "lremovexattr", "fremovexattr",
             "removexattrat")
"""Changes to a file's mode, owner, times and extended attributes, which Landlock
does not mediate: by path or through any descriptor (a file opened only for
reading will do), so refused outright where no private tree makes the host's
files unreachable or read-only."""
_SOCKETS = ("socket", "socketpair")
_SIGNALS = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal")
_FD_FIRST_ARG = ("write", "writev", "pwrite64", "pwritev", "pwritev2", "sendfile", "vmsplice",
                 "dup", "fcntl", "close", "ioctl", "sendto", "sendmsg", "sendmmsg", "shutdown")
"""Calls whose first argument is the descriptor they write to, copy or close."""
_FD_OTHER_ARG = {"dup2": (0, 1), "dup3": (0, 1), "tee": (1,), "splice": (2,),
                 "copy_file_range": (2,)}


def seccomp_arch() -> str | None:
    """This machine's architecture if the filter knows its system calls."""
    machine = platform.machine()
    return machine if machine in _ARCHES else None


class _Program:
    """A classic-BPF program built forwards; jumps are to labels resolved at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def load(self, offset: int) -> None:
        self.op(_LD_ABS_W, offset)

    def ret(self, value: int) -> None:
        self.op(_RET, value)

    def assemble(self) -> bytes:
        out = []
        for i, (code, jt, jf, k) in enumerate(self.code):
            def rel(target: int | str, i: int = i) -> int:
                if isinstance(target, int):
                    return target
                distance = self.labels[target] - i - 1
                if not 0 <= distance <= 255:
                    raise OsLayerError(f"seccomp filter jump out of range: {distance}")
                return distance
            out.append(struct.pack("=HBBI", code, rel(jt), rel(jf), k))
        return b"".join(out)


def _arg_lo(index: int) -> int:
    # struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6] (little-endian low word)
    return 16 + 8 * index + (4 if sys.byteorder == "big" else 0)


def _arg_hi(index: int) -> int:
    return 16 + 8 * index + (0 if sys.byteorder == "big" else 4)


def build_filter(
    *, deny_fork: bool, deny_signals: bool, deny_sockets: bool, protect_fd: int | None,
    deny_metadata: bool = False,
) -> bytes:
    """The seccomp filter as BPF bytes (see the module docstring for what it refuses)."""
    arch = seccomp_arch()
    if arch is None:
        raise OsLayerError(f"no seccomp system call table for {platform.machine()}")
    audit_arch, nr = _ARCHES[arch]
    deny = _RET_ERRNO | _EPERM
    p = _Program()
    p.load(4)  # arch: a call through another ABI (i386 on x86_64) is killed
    p.op(_JEQ, audit_arch, 0, "kill")
    p.load(0)
    if arch == "x86_64":
        p.op(_JGE, 0x40000000, "enosys", 0)  # the x32 ABI
    names = list(_DENIED)
    if deny_sockets:
        names += _SOCKETS
    if deny_signals:
        names += _SIGNALS
    if deny_fork:
        names += [n for n in ("fork", "vfork") if n in nr]
    if deny_metadata:
        names += _METADATA
    for name in names:
        if name in nr:
            p.op(_JEQ, nr[name], "deny", 0)
    # clone3's flags are out of a filter's sight; libc falls back to clone
    p.op(_JEQ, nr["clone3"], "enosys", 0)
    # clone: no new namespaces; with deny_fork, threads only
    p.op(_JEQ, nr["clone"], 0, "after_clone")
    p.load(_arg_lo(0))
    p.op(_JSET, _CLONE_NEW_ANY, "deny", 0)
    if deny_fork:
        p.op(_JSET, _CLONE_THREAD, "allow", "deny")
    else:
        p.ret(_RET_ALLOW)
    p.label("after_clone")
    # prlimit64 may read limits, never set them
    p.op(_JEQ, nr["prlimit64"], 0, "after_prlimit")
    p.load(_arg_lo(2))
    p.op(_JEQ, 0, 0, "deny")
    p.load(_arg_hi(2))
    p.op(_JEQ, 0, "allow", "deny")
    p.label("after_prlimit")
    if protect_fd is not None:
        p.load(0)
        for name in _FD_FIRST_ARG:
            p.op(_JEQ, nr[name], 0, f"after_{name}")
            p.load(_arg_lo(0))
            p.op(_JEQ, protect_fd, "deny", "allow")
            p.label(f"after_{name}")
            p.load(0)
        for name, args in _FD_OTHER_ARG.items():
            if name not in nr:
                continue
            p.op(_JEQ, nr[name], 0, f"after_{name}")
            for a in args:
                p.load(_arg_lo(a))
                p.op(_JEQ, protect_fd, "deny", 0)
            p.ret(_RET_ALLOW)
            p.label(f"after_{name}")
            p.load(0)
        # close_range(first, last, flags) must not cover the descriptor
        p.op(_JEQ, nr["close_range"], 0, "allow")
        p.load(_arg_lo(0))
        p.op(_JGT, protect_fd, "allow", 0)
        p.load(_arg_lo(1))
        p.op(_JGE, protect_fd, "deny", "allow")
    p.label("allow")
    p.ret(_RET_ALLOW)
    p.label("deny")
    p.ret(deny)
    p.label("enosys")
    p.ret(_RET_ERRNO | _ENOSYS)
    p.label("kill")
    p.ret(_RET_KILL_PROCESS)
    return p.assemble()


# -- applying both ----------------------------------------------------------


class _Libc:
    """The few libc entry points needed, loaded on first use."""

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        self.lib = ctypes.CDLL(None, use_errno=True)
        self.lib.syscall.restype = ctypes.c_long
        self.lib.prctl.restype = ctypes.c_int

    def check(self, result: int, what: str) -> int:
        if result < 0:
            err = self.ctypes.get_errno()
            raise OsLayerError(err, f"{what}: {os.strerror(err)}")
        return result

    def syscall(self, what: str, *args: object) -> int:
        c = self.ctypes
        conv = [c.c_long(a) if isinstance(a, int) else a for a in args]
        return self.check(self.lib.syscall(*conv), what)


def landlock_abi(libc: _Libc | None = None) -> int:
    """The Landlock ABI version this kernel offers (0: none)."""
    try:
        libc = libc or _Libc()
        return libc.syscall("landlock", _SYS_LANDLOCK_CREATE_RULESET, None, 0,
                            _LANDLOCK_CREATE_RULESET_VERSION)
    except OSError:
        return 0


def make_ruleset(libc: _Libc, abi: int, readable: Iterable[str], writable: Iterable[str]) -> int:
    """A Landlock ruleset fd: read ``readable``, read and write ``writable``, nothing else."""
    handled = _handled_fs(abi)
    attr = struct.pack("=QQQ", handled, _NET_ALL if abi >= 4 else 0,
                       _SCOPE_ALL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    buf = libc.ctypes.create_string_buffer(attr, 24)
    ruleset = libc.syscall("landlock_create_ruleset", _SYS_LANDLOCK_CREATE_RULESET, buf, size, 0)
    try:
        for paths, access in ((readable, _READ), (writable, _WRITE)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                try:
                    rule = struct.pack("=Qi", access & handled, fd)
                    rbuf = libc.ctypes.create_string_buffer(rule, len(rule))
                    libc.syscall(f"landlock_add_rule {path}", _SYS_LANDLOCK_ADD_RULE, ruleset,
                                 _LANDLOCK_RULE_PATH_BENEATH, rbuf, 0)
                finally:
                    os.close(fd)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset


def _drop_capabilities(libc: _Libc) -> None:
    """Give up every capability (a root server's child keeps uid 0 but no power)."""
    header = libc.ctypes.create_string_buffer(struct.pack("=Ii", 0x20080522, 0), 8)
    data = libc.ctypes.create_string_buffer(bytes(24), 24)
    libc.syscall("capset", 126 if seccomp_arch() == "x86_64" else 91, header, data)


class Layer:
    """seccomp, with Landlock when ``landlock``, prepared once and applied per thread.

    Both are per-thread in the kernel: :meth:`restrict` confines the calling
    thread (and whatever it starts afterwards).  The child confines its report
    writer thread without the descriptor rule, then its main thread with it.
    """

    def __init__(self, *, readable: Sequence[str], writable: Sequence[str], landlock: bool,
                 deny_fork: bool, protect_fd: int | None, deny_metadata: bool = False) -> None:
        self._libc = _Libc()
        self.abi = landlock_abi(self._libc) if landlock else 0
        if landlock and self.abi == 0:
            raise OsLayerError("Landlock is not available in this kernel")
        self._ruleset = (make_ruleset(self._libc, self.abi, readable, writable)
                         if landlock else None)
        # Without Landlock's signal scope (ABI 6) the program could signal the
        # server's other processes of its user; inside bubblewrap there are none.
        # Sockets: inside bubblewrap the network namespace has no interface.
        rules = {"deny_fork": deny_fork, "deny_signals": landlock and self.abi < 6,
                 "deny_sockets": landlock, "deny_metadata": deny_metadata}
        self._filter = build_filter(**rules, protect_fd=None)
        self._protecting_filter = build_filter(**rules, protect_fd=protect_fd)
        if landlock:  # root's powers, and those a user namespace gives
            _drop_capabilities(self._libc)
        self._libc.check(self._libc.lib.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")

    def restrict(self, *, protect: bool) -> None:
        """Confine the calling thread; ``protect`` adds the report descriptor rule."""
        libc = self._libc
        if self._ruleset is not None:
            libc.syscall("landlock_restrict_self", _SYS_LANDLOCK_RESTRICT_SELF, self._ruleset, 0)
        code = self._protecting_filter if protect else self._filter
        c = libc.ctypes
        buf = c.create_string_buffer(code, len(code))
        # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
        prog = c.create_string_buffer(struct.pack("=HxxxxxxQ", len(code) // 8,
                                                  c.addressof(buf)), 16)
        libc.check(libc.lib.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, prog, 0, 0), "seccomp")

    def close(self) -> None:
        """Forget the ruleset and :mod:`ctypes` (the program must import it anew)."""
        if self._ruleset is not None:
            os.close(self._ruleset)
            self._ruleset = None
        del self._libc
        for name in [m for m in sys.modules if m.partition(".")[0] in ("ctypes", "_ctypes")]:
            del sys.modules[name]
