"""The escapes that got past the audit hook without bubblewrap, each as a hostile
program: sent to the real server (``blocktrace serve`` on 127.0.0.1) in every
confinement mode this machine has, and run by the kernel layers alone (the
audit hook switched off), where with no layer at all each one must succeed --
so every containment checked here is one that could fail.

The modes: ``bwrap`` (bubblewrap), ``landlock`` (Landlock and seccomp, in the
private file tree of a user and mount namespace), ``landlock-no-userns`` (the
same where user namespaces are forbidden: no private tree, so file metadata
stays visible and the disk quota is accounted), ``unsafe``
(``--unsafe-no-sandbox``: the hook and limits only, and a warning on every
response).  All groups run at once, in one module fixture: every run mostly
waits (for a limit, a server, a child), so the module takes about as long as
its slowest run.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.snapshot import Confinement, Limits, SnapshotRequest, run_request_sync
from blocktrace.snapshot.confine import bwrap_usable, landlock_usable, private_tree_usable
from blocktrace.snapshot.mountns import MAX_FILES
from blocktrace.snapshot.oslayer import _ARCHES, seccomp_arch

from .conftest import Server, descendants

DISK_MIB = 4
LIMITS = Limits(cpu_seconds=10, wall_seconds=60.0, memory_bytes=256 * 1024 * 1024,
                disk_bytes=DISK_MIB << 20)


@dataclass(frozen=True)
class Target:
    """What the hostile programs go after: a secret file outside the sandbox, a
    path outside it to write, and a marker in the argv of processes they start."""

    secret: Path
    token: str
    outside: Path
    marker: str

    def format(self, source: str) -> str:
        return (source.replace("SECRET", repr(str(self.secret)))
                .replace("OUTSIDE", repr(str(self.outside)))
                .replace("MARKER", repr(self.marker)))


# Each program prints what it got; where the hook or the kernel refuses a step
# it ends with that exception.
DIR_FD_PREFIX = (
    "import os\n"
    "d = os.open('.', os.O_RDONLY)\n"
    "up = os.getcwd().count('/')\n"
    "deep = '/'.join(['d'] * (up + 1))\n"
    "os.makedirs(deep)\n"
    "os.chdir(deep)\n"
    "# relative to the cwd this stays inside the working directory; relative to d\n"
    "# (the working directory itself) it climbs to /\n"
)
ESCAPES = {
    "dir_fd_read": DIR_FD_PREFIX + (
        "fd = os.open('../' * up + SECRET.lstrip('/'), os.O_RDONLY, dir_fd=d)\n"
        "print(os.read(fd, 200).decode())\n"
    ),
    "dir_fd_write": DIR_FD_PREFIX + (
        "fd = os.open('../' * up + OUTSIDE.lstrip('/'), os.O_WRONLY | os.O_CREAT, dir_fd=d)\n"
        "os.write(fd, b'escaped')\n"
    ),
    "hook_off_by_gc": (
        "import gc, os\n"
        "# the hook's closure holds os.path.realpath: from it to the cell, the\n"
        "# closure tuple and the hook; then let it allow everything\n"
        "for cell in gc.get_referrers(os.path.realpath):\n"
        "    for closure in gc.get_referrers(cell) if type(cell).__name__ == 'cell' else ():\n"
        "        for f in gc.get_referrers(closure):\n"
        "            for c in getattr(f, '__closure__', None) or ():\n"
        "                if isinstance(c.cell_contents, tuple):\n"
        "                    c.cell_contents = ('',)\n"
        "                elif isinstance(c.cell_contents, frozenset):\n"
        "                    c.cell_contents = frozenset()\n"
        "print(open(SECRET).read())\n"
    ),
    "fork_exec": (
        "import _posixsubprocess, os\n"
        "for _ in range(12):\n"
        "    r, w = os.pipe()\n"
        "    _posixsubprocess.fork_exec(\n"
        "        [b'/bin/sleep', MARKER.encode()], [b'/bin/sleep'], True, (), None, None,\n"
        "        -1, -1, -1, -1, -1, -1, r, w, True, True, -1, None, None, None, -1, None,\n"
        "        False)\n"
        "print('started')\n"
    ),
    "stat_probe": (
        "import os\n"
        "st = os.stat(SECRET)\n"
        "print('size', st.st_size)\n"
        "print(sorted(os.listdir(os.path.dirname(SECRET))))\n"
    ),
    "metadata": (
        "import os\n"
        "# Landlock does not mediate mode, owner, times or xattrs; a library file\n"
        "# opened for reading is given its own mode again (no change if allowed)\n"
        "st = os.stat(os.__file__)\n"
        "fd = os.open(os.__file__, os.O_RDONLY)\n"
        "os.fchmod(fd, st.st_mode & 0o7777)\n"
        "print('fchmod')\n"
        "os.chmod(SECRET, 0o600)\n"
        "print('chmod')\n"
    ),
    "fd3_forgery": (
        "import os\n"
        "forged = b'E{\"status\":\"ok\",\"stdout\":\"forged\"}\\n'\n"
        "for fd in range(3, 64):\n"
        "    for attempt in (lambda: os.write(fd, forged), lambda: os.write(os.dup(fd), forged),\n"
        "                    lambda: open(f'/proc/self/fd/{fd}', 'wb').write(forged)):\n"
        "        try:\n"
        "            attempt()\n"
        "        except OSError:\n"
        "            continue\n"
        "        os._exit(0)  # before the real report can follow\n"
        "raise ValueError('the real end')\n"
    ),
    "fd3_via_monitoring": (
        "import os, sys\n"
        "mon = sys.monitoring\n"
        "forged = b'E{\"status\":\"ok\",\"stdout\":\"forged\"}\\n'\n"
        "def grab(*args):\n"
        "    try:\n"
        "        os.write(3, forged)\n"
        "    except OSError:\n"
        "        return\n"
        "    os._exit(0)\n"
        "# a callback for every line and call on every thread: the report's writer too\n"
        "tool = next(t for t in range(2, 6) if mon.get_tool(t) is None)\n"
        "mon.use_tool_id(tool, 'grab')\n"
        "for event in (mon.events.LINE, mon.events.PY_START, mon.events.CALL):\n"
        "    mon.register_callback(tool, event, grab)\n"
        "mon.set_events(tool, mon.events.LINE | mon.events.PY_START | mon.events.CALL)\n"
        "x = [1]\n"
        "raise ValueError('the real end')\n"
    ),
    "disk_fill": (
        "import os\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(512):  # 128 MiB in 256 KiB files, each under the file limit\n"
        "        fd = os.open(f'fill{i}', os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "        for _ in range(4):\n"
        "            written += os.write(fd, b'x' * 65536)\n"
        "        os.close(fd)\n"
        "finally:\n"
        "    print('wrote', written)\n"
    ),
}


def _kill_marked(marker: str) -> list[int]:
    """Kill (and name) every process whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline.split(b"\0"):
            found.append(int(entry))
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass
    return found


def check(name: str, r: dict[str, Any], target: Target, leftovers: list[int],
          hidden: bool) -> None:
    """The escape ``name`` was contained: ``r`` is its response; ``hidden``: the
    host's files are not in the program's file tree (bubblewrap, or Landlock's
    private tree) and its directory is a tmpfs of the quota."""
    body = msgspec.json.encode(r).decode()
    assert target.token not in body, (name, r)
    assert not target.outside.exists(), name
    assert leftovers == [], (name, leftovers)
    assert target.secret.stat().st_mode & 0o777 == 0o644, name
    if name in ("fd3_forgery", "fd3_via_monitoring"):
        assert r["status"] == "error" and r["stdout"] == ""
        line = 11 if name == "fd3_forgery" else 17
        assert r["error"] == {"type": "ValueError", "message": "the real end", "line": line}
    elif name == "disk_fill" and hidden:
        # the kernel's quota: the writes stop at it, however many files
        assert r["status"] == "error", r
        assert r["error"]["type"] == "OSError" and "No space left" in r["error"]["message"]
        written = int(r["stdout"].split()[-1])
        assert (DISK_MIB << 20) // 2 < written <= DISK_MIB << 20, written
    elif name == "disk_fill":  # accounted by the server
        assert r["status"] == "limit" and r["limit"] == "disk", r
        assert f"over the disk quota of {DISK_MIB << 20}" in r["error"]["message"]
    elif name == "stat_probe" and not hidden:
        # Landlock does not mediate stat(): a file's metadata stays visible
        # (docs/SECURITY.md); listing its directory is refused.
        assert r["stdout"].startswith(f"size {len(target.token)}\n"), r
        assert r["status"] == "error" and r["error"]["type"] == "PermissionError", r
    elif name == "stat_probe":  # not there at all
        assert r["status"] == "error" and r["error"]["type"] == "FileNotFoundError", r
        assert r["stdout"] == "", r
    elif name == "metadata":  # refused (EPERM), or a read-only mount (EROFS)
        assert r["status"] == "error" and r["stdout"] == "", r
        assert r["error"]["type"] in ("PermissionError", "OSError"), r
        assert r["error"]["line"] == 6, r
    elif name == "fork_exec":
        pass  # refused, or forked but never executed: nothing left running (above)
    else:
        assert r["status"] == "error", (name, r)
        assert r["error"]["type"] in ("PermissionError", "FileNotFoundError"), (name, r)


def _target(directory: Path) -> Target:
    token = "secret-" + secrets.token_hex(8)
    secret = directory / "secret.txt"
    secret.write_text(token)
    secret.chmod(0o644)
    # a unique sleep of about 30 s, so that even a process the test misses ends soon
    return Target(secret, token, directory / "escaped.txt",
                  f"30.{secrets.randbelow(10**6):06d}")


# A container that forbids user namespaces, as Docker's default seccomp profile
# does: unshare() fails with EPERM (a seccomp filter on the server's process
# and its children).  bubblewrap cannot run there, and Landlock's private tree
# cannot be made: the Landlock layer runs without it.
NO_USERNS = """
import ctypes, os, struct, sys
filt = b"".join(struct.pack("=HBBI", *i) for i in [
    (0x20, 0, 0, 0), (0x15, 0, 1, int(sys.argv[1])), (0x06, 0, 0, 0x00050000 | 1),
    (0x06, 0, 0, 0x7FFF0000)])
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(filt, len(filt))
prog = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", 4, ctypes.addressof(buf)), 16)
assert libc.prctl(38, 1, 0, 0, 0) == 0 and libc.prctl(22, 2, prog, 0, 0) == 0
os.execv(sys.executable, [sys.executable, "-m", "blocktrace", *sys.argv[2:]])
"""

_NO_LANDLOCK_WHY = landlock_usable(sys.executable)
_needs_bwrap = pytest.mark.skipif(
    bwrap_usable() is None,
    reason="bubblewrap (bwrap) is not installed or cannot create namespaces here")
_needs_landlock = pytest.mark.skipif(
    _NO_LANDLOCK_WHY is not None,
    reason=f"Landlock and seccomp cannot be applied here: {_NO_LANDLOCK_WHY}")
_needs_userns = pytest.mark.skipif(
    private_tree_usable(sys.executable) is not None,
    reason=f"no user namespaces here: {private_tree_usable(sys.executable)}")
SERVER_MODES = [
    pytest.param("bwrap", marks=_needs_bwrap),
    pytest.param("landlock", marks=[_needs_landlock, _needs_userns]),
    pytest.param("landlock-no-userns", marks=pytest.mark.skipif(
        _NO_LANDLOCK_WHY is not None or seccomp_arch() is None,
        reason="needs Landlock and a seccomp filter")),
    "unsafe",
]
KERNEL_MODES = [pytest.param("bwrap", marks=_needs_bwrap),
                pytest.param("landlock", marks=[_needs_landlock, _needs_userns])]


@dataclass
class Batch:
    """One group of runs of every escape: against a server, or through
    :func:`run_request_sync` with the audit hook off."""

    target: Target
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    leftovers: list[int] = field(default_factory=list)
    server: Server | None = None
    health: dict[str, Any] = field(default_factory=dict)
    server_descendants: list[int] = field(default_factory=list)


def _start_server(mode: str, directory: Path) -> Server:
    flags = ["--unsafe-no-sandbox"] if mode == "unsafe" else [
        "--sandbox", mode.removesuffix("-no-userns")]
    launcher = None
    if mode == "landlock-no-userns":
        arch = seccomp_arch()
        assert arch is not None
        script = directory / "no_userns.py"
        script.write_text(NO_USERNS)
        launcher = [sys.executable, str(script), str(_ARCHES[arch][1]["unshare"])]
    return Server(*flags, "--workers", "4", "--queue", "32", "--cpu", "10", "--wall", "60",
                  "--disk", str(DISK_MIB), launcher=launcher)


def _post(server: Server, batch: Batch, name: str) -> dict[str, Any]:
    source = batch.target.format(ESCAPES[name])
    status, headers, body = server.request(
        "POST", "/trace", msgspec.json.encode({"source": source, "steps": 2000}), timeout=60)
    assert status == 200, body
    batch.headers[name] = headers
    response: dict[str, Any] = msgspec.json.decode(body)
    return response


def _run_os_only(sandbox: str, source: str) -> dict[str, Any]:
    request = SnapshotRequest(source=source, steps=2000)
    result = run_request_sync(request, LIMITS, Confinement(audit_hook=False, sandbox=sandbox))  # type: ignore[arg-type]
    response: dict[str, Any] = msgspec.json.decode(result.body)
    return response


def _marks_apply(params: list[Any]) -> list[str]:
    """The modes of ``params`` that this machine has (their skip marks do not apply)."""
    modes = []
    for p in params:
        marks = [] if isinstance(p, str) else list(p.marks)
        if not any(m.name == "skipif" and m.args[0] for m in marks):
            modes.append(p if isinstance(p, str) else p.values[0])
    return modes


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Batch]]:
    """Every escape in every group, all at once (they are slow only in waiting):
    ``server-MODE``, ``kernel-MODE`` and ``none`` (no layer and no hook), each
    with its own secret, outside path and marker."""
    groups: dict[str, Batch] = {}
    for mode in _marks_apply(SERVER_MODES):
        groups[f"server-{mode}"] = Batch(_target(tmp_path_factory.mktemp(mode)))
    for mode in _marks_apply(KERNEL_MODES):
        groups[f"kernel-{mode}"] = Batch(_target(tmp_path_factory.mktemp(f"k-{mode}")))
    groups["none"] = Batch(_target(tmp_path_factory.mktemp("none")))
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            starting = {g: pool.submit(_start_server, g.removeprefix("server-"),
                                       groups[g].target.secret.parent)
                        for g in groups if g.startswith("server-")}
            for g, started in starting.items():
                groups[g].server = started.result(timeout=120)
            runs: dict[tuple[str, str], Future[dict[str, Any]]] = {}
            for g, batch in groups.items():
                for name in ESCAPES:
                    if batch.server is not None:
                        runs[g, name] = pool.submit(_post, batch.server, batch, name)
                    else:
                        mode = g.removeprefix("kernel-")
                        runs[g, name] = pool.submit(_run_os_only, mode,
                                                    batch.target.format(ESCAPES[name]))
            for (g, name), future in runs.items():
                groups[g].results[name] = future.result(timeout=180)
        for batch in groups.values():
            batch.leftovers = _kill_marked(batch.target.marker)
            if batch.server is not None:
                batch.health = msgspec.json.decode(batch.server.request("GET", "/health")[2])
                batch.server_descendants = descendants(batch.server.proc.pid)
        # The unconfined fork_exec's sleeps outlive their request: each that got
        # to its setsid before the group was killed (some may not have exec'd at
        # the first look; they have once no new one turns up).
        none = groups["none"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = _kill_marked(none.target.marker)
            if not found and none.leftovers:
                break
            none.leftovers += found
            time.sleep(0.1)
        for batch in groups.values():
            if batch.server is not None:
                batch.server.stop()
        yield groups
    finally:
        for batch in groups.values():
            if batch.server is not None:
                batch.server.stop()
            _kill_marked(batch.target.marker)


@pytest.mark.parametrize("mode", SERVER_MODES)
def test_every_escape_is_contained_by_the_server(mode: str, batches: dict[str, Batch]) -> None:
    """The real server, hook and all: nothing gets out under a kernel layer;
    unconfined (where the dir_fd, stat and fd-3 escapes still work: the hook
    cannot see them), it says so at start and on every response."""
    batch = batches[f"server-{mode}"]
    server, results = batch.server, batch.results
    assert server is not None
    hidden = mode in ("bwrap", "landlock")
    for name, r in results.items():
        if mode != "unsafe":
            check(name, r, batch.target, batch.leftovers, hidden)
        headers = batch.headers[name]
        assert headers["x-blocktrace-sandbox"] == (
            "none" if mode == "unsafe" else mode.removesuffix("-no-userns"))
        if mode == "unsafe":
            assert "WITHOUT kernel-enforced confinement" in headers["x-blocktrace-warning"]
            assert "WITHOUT kernel-enforced confinement" in r["warning"]
        else:
            assert "x-blocktrace-warning" not in headers and "warning" not in r
    # In every mode the hook refuses gc's way to itself and the import of
    # _posixsubprocess, and the disk quota holds.
    assert "gc.get_referrers" in results["hook_off_by_gc"]["error"]["message"]
    assert "_posixsubprocess" in results["fork_exec"]["error"]["message"]
    assert batch.leftovers == []
    if not hidden:
        assert results["disk_fill"]["limit"] == "disk"
    assert batch.health["hostFilesHidden"] is hidden
    assert batch.health["diskQuota"] == ("tmpfs" if hidden else "accounted")
    assert batch.server_descendants == []
    if mode == "unsafe":
        assert "WARNING: running untrusted code WITHOUT kernel-enforced confinement" in (
            server.log[0])
    else:
        assert not any("WARNING" in line for line in server.log)


@pytest.mark.parametrize("mode", KERNEL_MODES)
def test_the_kernel_layer_alone_contains_every_escape(
    mode: str, batches: dict[str, Batch]
) -> None:
    """With the audit hook switched off, the kernel layer by itself holds --
    including ``os.stat``, which neither the hook nor Landlock sees: the host's
    files are not in the program's tree."""
    batch = batches[f"kernel-{mode}"]
    for name, r in batch.results.items():
        check(name, r, batch.target, batch.leftovers, hidden=True)


def test_without_any_layer_every_escape_succeeds(batches: dict[str, Batch]) -> None:
    """The same programs, with no kernel layer and no hook: each gets out (so
    the containment above is the layers' doing, not the programs' failing)."""
    batch = batches["none"]
    results, target = batch.results, batch.target
    assert target.token in results["dir_fd_read"]["stdout"]
    assert target.outside.read_text() == "escaped"
    assert target.token in results["hook_off_by_gc"]["stdout"]
    assert results["fork_exec"]["stdout"] == "started\n"
    assert len(batch.leftovers) >= 1  # outlived the request
    assert results["stat_probe"]["stdout"].startswith(f"size {len(target.token)}\n")
    assert results["metadata"]["stdout"] == "fchmod\nchmod\n"
    assert target.secret.stat().st_mode & 0o777 == 0o600
    for name in ("fd3_forgery", "fd3_via_monitoring"):
        assert results[name]["status"] == "ok"
        assert results[name]["stdout"] == "forged"
    assert results["disk_fill"]["limit"] == "disk"  # accounted even here

@_needs_landlock
@_needs_userns
def test_the_private_tree_holds_a_bounded_number_of_files() -> None:
    """Empty files take no bytes but kernel memory: the private tree's tmpfs
    holds at most MAX_FILES entries, whatever their size."""
    source = ("import collections, os\n"
              "# in C calls only: no steps\n"
              f"collections.deque(map(os.mkdir, map(str, range({MAX_FILES + 10}))), 0)\n")
    r = _run_os_only("landlock", source)
    assert r["status"] == "error", r
    assert r["error"]["type"] == "OSError" and "No space left" in r["error"]["message"], r


# A kernel without Landlock, as old kernels answer: landlock_create_ruleset
# fails with ENOSYS (a seccomp filter on the server's process and its
# children), and no bwrap on PATH.
NO_LANDLOCK = """
import ctypes, os, struct, sys
filt = b"".join(struct.pack("=HBBI", *i) for i in [
    (0x20, 0, 0, 0), (0x15, 0, 1, 444), (0x06, 0, 0, 0x00050000 | 38), (0x06, 0, 0, 0x7FFF0000)])
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(filt, len(filt))
prog = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", 4, ctypes.addressof(buf)), 16)
assert libc.prctl(38, 1, 0, 0, 0) == 0 and libc.prctl(22, 2, prog, 0, 0) == 0
os.execv(sys.executable, [sys.executable, "-m", "blocktrace", *sys.argv[1:]])
"""


@pytest.mark.skipif(landlock_usable(sys.executable) is not None, reason="needs a seccomp filter")
@pytest.mark.parametrize("command", ["serve", "snapshot"])
def test_with_no_kernel_layer_it_refuses_to_run(command: str, tmp_path: Path) -> None:
    script = tmp_path / "no_landlock.py"
    script.write_text(NO_LANDLOCK)
    env = {**os.environ, "PATH": str(tmp_path)}
    args = ["--port", "0"] if command == "serve" else []
    done = subprocess.run([sys.executable, str(script), command, *args],
                          input=b'{"source": "print(1)"}', capture_output=True, timeout=60,
                          env=env, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stdout == b"" and b"listening" not in done.stderr
    assert done.stderr.count(b"\n") == 1, done.stderr
    assert b"no kernel-enforced confinement works here" in done.stderr
    assert b"--unsafe-no-sandbox runs it anyway" in done.stderr
    if command == "snapshot":  # told, it runs, and says so
        done = subprocess.run([sys.executable, str(script), command, "--unsafe-no-sandbox"],
                              input=b'{"source": "print(1)"}', capture_output=True,
                              timeout=60, env=env, check=False)
        assert done.returncode == 0, done.stderr
        assert msgspec.json.decode(done.stdout)["stdout"] == "1\n"
        assert b"WARNING: running untrusted code WITHOUT kernel-enforced" in done.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["--sandbox", "none"], "--sandbox none runs untrusted code unconfined: say so with "
                            "--unsafe-no-sandbox"),
    (["--unsafe-no-sandbox", "--sandbox", "bwrap"], "--unsafe-no-sandbox contradicts"),
])
def test_unconfined_must_be_asked_for_by_name(args: list[str], needle: str) -> None:
    done = subprocess.run([sys.executable, "-m", "blocktrace", "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("blocktrace serve: ") and needle in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
