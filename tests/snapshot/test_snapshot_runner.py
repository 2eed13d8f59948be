"""Confined runs in real child processes: hostile programs each get a clean
response, and nothing is left running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from blocktrace.snapshot import Confinement, Limits, SnapshotRequest, run_request_sync
from blocktrace.snapshot.confine import private_tree_usable

from .conftest import TEST_LIMITS, WALL_LIMITS, needs_bwrap, snap

pytestmark = pytest.mark.usefixtures("no_leftovers")


def test_a_good_program(tmp_path: Path) -> None:
    r = snap("name = input('who? ')\nprint('hi', name)\n", input="ada\n")
    assert r["status"] == "ok"
    assert r["error"] is None and r["limit"] is None
    assert r["stdout"] == "who? ada\nhi ada\n"
    assert [s["line"] for s in r["steps"]] == [1, 2, 2]
    assert r["steps"][-1]["event"] == "return"


def test_reading_past_the_input_is_eof() -> None:
    r = snap("input()\ninput()\n", input="only one line")
    assert r["status"] == "error"
    assert r["error"] == {"type": "EOFError", "message": "EOF when reading a line", "line": 2}
    assert r["steps"][-1]["event"] == "uncaught_exception"


def test_syntax_error_is_reported_with_its_line() -> None:
    r = snap("x = 1\ny = (\n")
    assert r["status"] == "error"
    assert r["error"]["type"] == "SyntaxError"
    assert r["error"]["line"] == 2
    assert r["steps"] == []


def test_the_program_may_use_its_own_directory() -> None:
    source = (
        "with open('notes.txt', 'w') as f:\n    f.write('kept')\n"
        "with open('notes.txt') as f:\n    text = f.read()\n"
        "import os\nnames = sorted(os.listdir('.'))\n"
    )
    r = snap(source)
    assert r["status"] == "ok", r["error"]
    module = r["steps"][-1]["stack"][0]["variables"]
    assert module["text"] == "kept"


HOSTILE = {
    "read-etc-passwd": ("print(open('/etc/passwd').read())\n", "error", None),
    "list-root": ("import os\nprint(os.listdir('/'))\n", "error", None),
    "write-outside": ("open('/tmp/blocktrace-escape', 'w').write('x')\n", "error", None),
    "socket": ("import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 80))\n", "error", None),
    "fork": ("import os\nos.fork()\n", "error", None),
    "fork-bomb": ("import os\nwhile True:\n    os.fork()\n", "error", None),
    "os-system": ("import os\nos.system('echo hi')\n", "error", None),
    "subprocess": ("import subprocess\nsubprocess.run(['ls'])\n", "error", None),
    "ctypes-crash": ("import ctypes\nctypes.string_at(0)\n", "error", None),
    "os-exit": ("import os\nos._exit(3)\n", "error", None),
    "memory-bomb": ("x = [0] * (10 ** 10)\n", "error", None),
    "memory-growth": ("s = 'a'\nwhile True:\n    s = s + s\n", "error", None),
    "huge-print": ("print('x' * 10 ** 7)\n", "limit", "output"),
    "print-forever": ("while True:\n    print('spam' * 1000)\n", "limit", "output"),
    "deep-recursion": ("import sys\nsys.setrecursionlimit(10 ** 6)\n"
                       "def f(n):\n    return f(n + 1)\nf(0)\n", "step_limit", "steps"),
    "infinite-loop": ("while True:\n    pass\n", "step_limit", "steps"),
    "except-baseexception": ("while True:\n    try:\n        while True:\n            pass\n"
                             "    except BaseException:\n        pass\n", "step_limit", "steps"),
    "sleep": ("import time\ntime.sleep(60)\n", "limit", "wall_time"),
    "raise-limits": ("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))\n",
                     "error", None),
    "big-file": ("f = open('big.bin', 'wb')\nf.write(b'x' * (2 * 1024 * 1024))\n", "error", None),
    "many-files": ("files = list(map(lambda i: open(f'f{i}', 'w'), range(100)))\n", "error", None),
    "kill-parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", "error", None),
    "patch-the-hook": ("import sys\nf = sys.modules['os'].path.realpath\n"
                       "f.__code__ = (lambda p: '/sandbox').__code__\n", "error", None),
}


# A generous wall clock, so that on a loaded machine the CPU limit still comes first.
CPU_IN_C = ("import itertools\nsum(itertools.repeat(1))\n",
            Limits(cpu_seconds=1, wall_seconds=120.0))


@pytest.fixture(scope="module")
def hostile_runs() -> dict[str, dict[str, Any]]:
    """Every hostile program run at once (most only wait for a limit), and the
    loop in C of the CPU limit's test with them; then each test checks its own."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {name: pool.submit(snap, source, steps=300,
                                     limits=WALL_LIMITS if limit == "wall_time" else TEST_LIMITS)
                   for name, (source, _, limit) in HOSTILE.items()}
        futures["cpu-in-c"] = pool.submit(snap, CPU_IN_C[0], limits=CPU_IN_C[1])
        return {name: f.result(timeout=300) for name, f in futures.items()}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_gets_a_clean_error(
    name: str, hostile_runs: dict[str, dict[str, Any]]
) -> None:
    _, status, limit = HOSTILE[name]
    r = hostile_runs[name]
    assert r["status"] == status, r["error"]
    assert r["limit"] == limit
    assert r["error"] is not None and r["error"]["type"]
    assert not os.path.exists("/tmp/blocktrace-escape")


def test_cpu_limit_stops_a_loop_inside_c(hostile_runs: dict[str, dict[str, Any]]) -> None:
    r = hostile_runs["cpu-in-c"]
    assert r["status"] == "limit"
    assert r["limit"] == "cpu_time"
    assert [s["line"] for s in r["steps"]] == [1, 2]


def test_blocked_operations_raise_permission_error() -> None:
    r = snap("open('/etc/passwd')\n")
    assert r["error"]["type"] == "PermissionError"
    assert "blocked by the snapshot sandbox" in r["error"]["message"]
    assert r["error"]["line"] == 1


def test_writes_to_fd_1_cannot_forge_the_response() -> None:
    r = snap("import os\nos.write(1, b'{\"status\": \"ok\"}\\n')\nx = 1\n")
    assert r["status"] == "ok"
    assert r["stdout"] == ""
    assert [s["line"] for s in r["steps"]] == [1, 2, 3, 3]


def test_steps_already_taken_survive_a_crash() -> None:
    r = snap("a = 1\nb = 2\nimport os\nos._exit(7)\n")
    assert r["status"] == "error"
    assert r["error"]["type"] == "ProcessExited"
    assert "exit status 7" in r["error"]["message"]
    assert [s["line"] for s in r["steps"]] == [1, 2, 3, 4]


def test_response_size_is_bounded() -> None:
    limits = Limits(cpu_seconds=10, wall_seconds=60.0, response_bytes=20_000)
    r = snap("xs = list(range(40))\nwhile True:\n    xs.append(1)\n", steps=5000, limits=limits)
    assert r["status"] == "limit"
    assert r["limit"] == "output"


def test_trace_format_verifies(tmp_path: Path) -> None:
    request = SnapshotRequest(source="x = [1]\nx.append(2)\nprint(x)\n", format="trace",
                              genesis="grader-nonce-1")
    result = run_request_sync(request, TEST_LIMITS)
    assert result.content_type == "application/jsonl"
    assert result.status == "ok"
    path = tmp_path / "run.trace.jsonl"
    path.write_bytes(result.body)
    done = subprocess.run([sys.executable, "-m", "blocktrace", "verify", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "valid and sealed" in done.stdout
    assert b'"genesis":"grader-nonce-1"' in result.body.split(b"\n")[0]


def test_trace_format_stops_at_the_step_limit_and_still_seals(tmp_path: Path) -> None:
    request = SnapshotRequest(source="while True:\n    pass\n", format="trace", steps=30)
    result = run_request_sync(request, TEST_LIMITS)
    assert result.status == "step_limit"
    path = tmp_path / "loop.trace.jsonl"
    path.write_bytes(result.body)
    done = subprocess.run([sys.executable, "-m", "blocktrace", "verify", str(path)],
                          capture_output=True, text=True, check=False)
    assert "valid and sealed" in done.stdout, done.stdout + done.stderr


# -- the OS layer alone: bubblewrap with the audit hook switched off ----------

OS_ONLY = Confinement(audit_hook=False, sandbox="bwrap")


@needs_bwrap
def test_bwrap_hides_the_hosts_files() -> None:
    r = snap("import os\nroot = sorted(os.listdir('/'))\nopen('/etc/passwd')\n",
             confinement=OS_ONLY)
    assert r["error"]["type"] == "FileNotFoundError"
    root = r["steps"][-1]["heap"]
    names = next(o for o in root.values() if o["category"] == "list")["members"]
    assert "etc" not in [m[1] for m in names]
    assert "home" not in [m[1] for m in names]


@needs_bwrap
def test_bwrap_has_no_network() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        r = snap(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n",
                 confinement=OS_ONLY)
    assert r["status"] == "error"
    assert r["error"]["type"] in ("ConnectionRefusedError", "OSError", "TimeoutError")


@needs_bwrap
def test_bwrap_process_limit_stops_a_fork_bomb() -> None:
    source = (
        "import os, time\npids = []\nwhile True:\n    pid = os.fork()\n    if pid == 0:\n"
        "        time.sleep(30)\n        os._exit(0)\n    pids.append(pid)\n"
    )
    r = snap(source, steps=5000, confinement=OS_ONLY)
    assert r["status"] == "error"
    assert r["error"]["type"] == "BlockingIOError"  # EAGAIN from fork: RLIMIT_NPROC


def test_unencodable_text_is_escaped_not_fatal() -> None:
    source = (
        "s = 'a\\udcffb'\nprint(s)\nglobals()['\\udcfe'] = {s: s}\nx = 1\nraise ValueError(s)\n"
    )
    r = snap(source)
    assert r["status"] == "error"
    assert r["stdout"] == "a\\udcffb\n"
    assert r["error"] == {"type": "ValueError", "message": "a\\udcffb", "line": 5}
    module = r["steps"][-2]["stack"][0]["variables"]
    assert module["s"] == "a\\udcffb"
    assert "\\udcfe" in module


def test_a_thread_that_spins_is_stopped_by_the_step_limit() -> None:
    source = (
        "import threading\ndef spin():\n    while True:\n        pass\n"
        "t = threading.Thread(target=spin)\nt.start()\nt.join()\nprint('never')\n"
    )
    r = snap(source, steps=100)
    assert r["status"] == "step_limit"
    assert r["stdout"] == ""  # no traceback of the halted thread, no 'never'
    assert r["steps"][-1]["event"] == "step_limit"


def test_the_working_directory_is_removed_whatever_the_program_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    runs, outside = tmp_path / "runs", tmp_path / "outside"
    runs.mkdir()
    outside.mkdir()
    outside.chmod(0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(runs))
    source = (
        "import os\nos.makedirs('a/b')\nopen('a/b/f', 'w').write('x')\n"
        f"os.symlink({str(outside)!r}, 'a/link')\nos.chmod('a/b', 0o500)\nos.chmod('a', 0o500)\n"
    )
    r = snap(source, confinement=Confinement(audit_hook=False))
    assert r["status"] == "ok", r["error"]
    assert os.listdir(runs) == []
    assert outside.stat().st_mode & 0o777 == 0o755  # the link was not followed


@pytest.mark.skipif(private_tree_usable(sys.executable) is not None,
                    reason="needs the Landlock layer's private tree (user namespaces)")
def test_the_private_tree_works_under_a_symlinked_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tree holds real paths only: a run directory reached through a link
    (TMPDIR=/tmp on a system where /tmp is one) must still be found there."""
    import tempfile

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "link"))
    r = snap("import os\nopen('f', 'w').write('x')\nprint(os.listdir('.'))\n",
             confinement=Confinement(sandbox="landlock"))
    assert r["status"] == "ok", r["error"]
    assert r["stdout"] == "['f']\n"
    assert os.listdir(tmp_path / "real") == []
