"""The snapshot service against hostile HTTP and hostile programs: a real
``blocktrace serve`` process on 127.0.0.1 (confined by whatever kernel layer
this machine has; skipped, saying why, where it has none), raw bytes over real
sockets.

Whatever arrives -- a request line or header it cannot read, a body too big,
too short, chunked or not JSON, JSON of the wrong shape, a client that stalls,
many at once, a page's ``Origin`` in every spelling -- the answer is a status
line with a 4xx (or a 200 for a request it runs) and a one-line error, never a
Python traceback in a body or on the server's stderr, and the service answers
the next request.  Programs that try to leave their confinement or outgrow
their bounds are stopped at them, and nothing of theirs outlives the request.

The examples are the same on every run (``harness.FUZZ``, few: each run is a
confined child); ``BLOCKTRACE_FUZZ=deep`` searches longer.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from .harness import FUZZ

pytest.importorskip("uvicorn")

SECRET = "blocktrace-fuzz-secret-7f3a"
"""In the server's environment: no program may print it."""


class Service:
    """``blocktrace serve --port 0 ARGS`` with its stderr in a file."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log_path = log
        env = {**os.environ, "BLOCKTRACE_FUZZ_SECRET": SECRET}
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "blocktrace", "serve", "--port", "0", *args],
                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        while (match := re.search(r"listening on http://127\.0\.0\.1:(\d+) ", self.log())) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.skip(f"the service does not start here: {self.log().strip()}")
            time.sleep(0.05)
        self.port = int(match.group(1))
        while True:
            try:
                if self.ask(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.skip(f"the service does not answer here: {self.log().strip()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "backslashreplace")

    def ask(self, request: bytes, timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
        """Send ``request`` as is; the status, headers and body of the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(request)
            got = b""
            try:
                while chunk := sock.recv(65536):
                    got += chunk
                    if _complete(got):
                        break
            except ConnectionResetError:
                pass
        head, sep, body = got.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 "), f"no proper answer: {got[:300]!r}"
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = _unchunk(body)
        return int(lines[0].split()[1]), headers, body

    def post(self, body: bytes, headers: str = "") -> tuple[int, dict[str, str], bytes]:
        return self.ask(b"POST /trace HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                        b"Content-Type: application/json\r\n" + headers.encode() +
                        b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def alive(self) -> None:
        assert self.proc.poll() is None, f"the service died: {self.log()}"
        status, _, body = self.ask(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200, body

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _complete(got: bytes) -> bool:
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        return body.endswith(b"0\r\n\r\n")
    match = re.search(rb"content-length:\s*(\d+)", lower)
    return match is not None and len(body) >= int(match.group(1))


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, body = out + rest[:n], rest[n + 2:]
    return out


def one_line_error(status: int, headers: dict[str, str], body: bytes, what: object) -> None:
    """A refusal: one line, JSON ``{"error"}`` from the service (or uvicorn's own
    one line of text for what never reached it), no traceback."""
    assert b"Traceback" not in body, (what, body[:2000])
    if headers.get("content-type", "").startswith("application/json"):
        error = msgspec.json.decode(body)["error"]
        assert error and "\n" not in error, (what, body)
    else:
        assert body.count(b"\n") <= 1 and len(body) < 300, (what, body)


def descendants(pid: int) -> list[int]:
    """Live processes below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2:].split()
            if fields[0] != b"Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [c for c, p in parents.items() if p == frontier[-1]]
        frontier.pop()
        found += kids
        frontier += kids
    return found


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("fuzz-serve") / "serve.err"
    s = Service(log, "--workers", "2", "--queue", "16", "--cpu", "10", "--wall", "30",
                "--cors-origin", "https://Tutor.example:443", "--cors-origin",
                "http://localhost:8080")
    try:
        yield s
        s.alive()
        assert "Traceback" not in s.log(), s.log()
    finally:
        s.stop()


# -- requests uvicorn or the service refuses ------------------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /health HTTP/1.1\r\nno colon\r\n\r\n",
    b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health/../trace HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST /trace HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /trace HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"40000\r\n" + b"#" * 0x40000 + b"\r\n" + b"40000\r\n" + b"#" * 0x40000 + b"\r\n0\r\n\r\n",
    b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 200_000 + b"\r\n\r\n",
    b"PUT /trace HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /trace HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS /trace HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_request_is_refused_in_one_line(
    service: Service, request_bytes: bytes
) -> None:
    try:
        status, headers, body = service.ask(request_bytes)
    except AssertionError:
        # uvicorn may hang up on what it cannot parse at all (no answer is also
        # an answer); the service must still be up
        service.alive()
        return
    assert 400 <= status < 500, (request_bytes[:80], status, body[:300])
    one_line_error(status, headers, body, request_bytes[:80])
    service.alive()


KEYS = ["source", "input", "steps", "format", "genesis", "sauce", ""]
PROGRAMS = ["print(1)", "x = [1, 2]\ny = x\n", "", "def f(:", "\x00", "\ud800", "é" * 50,
            "import sys\nsys.exit(3)", "raise SystemExit('bye')", "input()", "1/0"]


ANY = (st.sampled_from(PROGRAMS) | st.text(max_size=30) | st.integers() | st.none()
       | st.booleans() | st.floats() | st.lists(st.integers(), max_size=3))
REQUESTS = st.fixed_dictionaries(
    {"source": st.sampled_from(PROGRAMS) | st.text(max_size=40)},
    optional={"input": st.text(max_size=20) | ANY, "steps": st.integers(-2, 200_000) | ANY,
              "format": st.sampled_from(["trace", "snapshots", "xml", ""]) | ANY,
              "genesis": st.text(max_size=20) | ANY},
) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), ANY, max_size=5)
"""Mostly requests that run (a source, the known fields with good and bad
values), sometimes any object."""


@settings(FUZZ, max_examples=max(8, (FUZZ.max_examples or 40) // 2))
@given(payload=REQUESTS, garble=st.sampled_from([b"", b"", b"", b"", b"}", b"\xff", b" ,"]))
def test_any_json_body_is_answered_in_one_line(
    service: Service, payload: dict[str, object], garble: bytes
) -> None:
    body = json.dumps(payload).encode() + garble  # (escapes lone surrogates; NaN as NaN)
    status, headers, raw = service.post(body)
    event(f"status {status}")
    assert status in (200, 400, 422, 503), (body, status, raw[:300])
    if status != 200:
        one_line_error(status, headers, raw, body)
        return
    if headers.get("content-type") == "application/jsonl":
        lines = raw.splitlines()
        assert msgspec.json.decode(lines[0])["blocktrace"] >= 3
    else:
        answer = msgspec.json.decode(raw)
        assert answer["status"] in ("ok", "error", "step_limit", "limit"), answer
        assert "Traceback" not in (answer.get("error") or {}).get("message", "")


# -- a page's Origin ------------------------------------------------------------------------

ORIGINS = [
    # (Origin header lines, allowed?) -- allowed: https://tutor.example (configured with
    # its default port and in capitals) and http://localhost:8080
    ("Origin: https://tutor.example\r\n", True),
    ("Origin: HTTPS://TUTOR.EXAMPLE\r\n", True),
    ("Origin: https://tutor.example:443\r\n", True),
    ("Origin: https://tutor.example/\r\n", True),
    ("Origin: http://localhost:8080\r\n", True),
    ("", True),  # no Origin: not a browser's cross-origin request
    ("Origin: http://tutor.example\r\n", False),  # another scheme
    ("Origin: https://tutor.example:8443\r\n", False),  # another port
    ("Origin: http://localhost\r\n", False),
    ("Origin: http://localhost:80\r\n", False),
    ("Origin: http://localhost:8081\r\n", False),
    ("Origin: https://tutor.example.evil.example\r\n", False),
    ("Origin: https://evil.example/https://tutor.example\r\n", False),
    ("Origin: null\r\n", False),
    ("Origin: \r\n", False),
    ("Origin: *\r\n", False),
    ("Origin: https://tutor.example, https://evil.example\r\n", False),
    ("Origin: https://tutor.example\r\nOrigin: https://evil.example\r\n", False),
    ("Origin: https://evil.example\r\nOrigin: https://tutor.example\r\n", False),
    ("Origin: https://tutor.exampl\xe9\r\n", False),
]


@pytest.mark.parametrize(("origin", "allowed"), ORIGINS, ids=range(len(ORIGINS)))
def test_only_an_allowed_origin_runs_anything(
    service: Service, origin: str, allowed: bool, tmp_path: Path
) -> None:
    status, headers, body = service.post(b'{"source": "print(6 * 7)", "steps": 50}',
                                         origin.encode("latin-1").decode("latin-1"))
    if allowed:
        assert status == 200 and msgspec.json.decode(body)["stdout"] == "42\n", (origin, body)
        if origin:
            assert headers["access-control-allow-origin"] == origin.split(": ")[1].strip()
    else:
        assert status == 403, (origin, status, body)
        assert "access-control-allow-origin" not in headers
        one_line_error(status, headers, body, origin)


# -- clients that stall, and many at once -------------------------------------------------

def test_a_stalled_client_stalls_no_other(service: Service) -> None:
    stalled = []
    try:
        for partial in (b"", b"POST /trace HTTP/1.1\r\n",
                        b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"so"):
            sock = socket.create_connection(("127.0.0.1", service.port), timeout=30)
            sock.sendall(partial)
            stalled.append(sock)
        # one that asks for a large answer and never reads it
        reader = socket.create_connection(("127.0.0.1", service.port), timeout=30)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        big = b'{"source": "for i in range(3000):\\n    x = [i] * 50\\n", "steps": 5000}'
        reader.sendall(b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big)
                       + big)
        stalled.append(reader)
        service.alive()
        status, _, body = service.post(b'{"source": "print(2 + 2)", "steps": 50}')
        assert status == 200 and msgspec.json.decode(body)["stdout"] == "4\n"
    finally:
        for sock in stalled:
            sock.close()


def _trickle(port: int, request: bytes, every: float = 1.0,
             give_up: float = 20.0) -> tuple[float, bytes]:
    """Send ``request`` one byte every ``every`` seconds until the server hangs
    up (a "slowloris"), or ``give_up`` seconds have passed; how long that took,
    and what it answered."""
    start = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            for byte in request or b"\0" * 1000:
                if time.monotonic() - start > give_up:
                    break
                if request:
                    sock.sendall(bytes([byte]))
                sock.settimeout(every)
                try:
                    got = sock.recv(65536)
                except TimeoutError:
                    continue
                answer += got
                if not got:
                    break
            sock.settimeout(30)
            while got := sock.recv(65536):
                answer += got
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass
    return time.monotonic() - start, answer


REQUEST_TIMEOUT = 2.0
SEND_TIMEOUT = 1.0
PER_CLIENT = 8


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("fuzz-serve-slow") / "serve.err"
    s = Service(log, "--workers", "1", "--queue", "4", "--request-timeout", str(REQUEST_TIMEOUT),
                "--send-timeout", str(SEND_TIMEOUT), "--max-connections", str(PER_CLIENT))
    try:
        yield s
        s.alive()
        assert "Traceback" not in s.log(), s.log()
    finally:
        s.stop()


BIG = (b'{"source": "xs = [\\"a\\" * 4000] * 2000\\nfor i in range(300):\\n    pass\\n", '
       b'"steps": 1000}')
"""A request whose answer is about 16 MB (quick to run): far more than the kernel's
buffers hold."""


def test_slow_clients_are_cut_at_their_deadlines(guarded: Service) -> None:
    """Headers or a body sent a byte a second, or nothing at all: uvicorn has no
    limit on how long a request takes to arrive, so each held a connection for
    as long as the client liked.  Now each is answered 408 (or, having sent
    nothing, closed) once --request-timeout has passed since it began.

    And at the same time (the two deadlines run together: the suite's time), a
    client that asks for a large answer into a small receive buffer and stops
    reading: the answer sat in the server's memory and the connection stayed
    open for as long as the client did.  Now, --send-timeout after the answer is
    ready, the connection is dropped, in one line on stderr.  A normal client
    is served throughout."""
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", guarded.port))
    try:
        stalled.sendall(b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                        % len(BIG) + BIG)
        _slow_clients(guarded)
        deadline = time.monotonic() + 60
        while "not taken" not in guarded.log():
            assert time.monotonic() < deadline, f"never dropped: {guarded.log()}"
            status, _, body = guarded.post(b'{"source": "print(2 + 2)", "steps": 50}')
            assert status == 200 and msgspec.json.decode(body)["stdout"] == "4\n"
            time.sleep(0.2)
        # what the kernel's buffers already held, then the end: never all of it
        stalled.settimeout(30)
        got = 0
        try:
            while chunk := stalled.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < 10_000_000, got
    finally:
        stalled.close()
    dropped = [line for line in guarded.log().splitlines() if "not taken" in line]
    assert len(dropped) == 1, guarded.log()
    assert dropped[0].startswith(f"blocktrace serve: an answer not taken within "
                                 f"{SEND_TIMEOUT:g} s"), dropped
    guarded.alive()


def _slow_clients(guarded: Service) -> None:
    body = b'{"source": "print(1)", "steps": 10}'
    slow = {
        "headers": b"POST /trace HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100,
        "body": b"POST /trace HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                + body,
        "nothing": b"",
    }
    with ThreadPoolExecutor(len(slow)) as pool:
        running = {name: pool.submit(_trickle, guarded.port, request)
                   for name, request in slow.items()}
        # A normal client is served while the slow ones trickle: its health check
        # answered before they are all cut, and a traced request answered 200.
        # (That request is not required to end inside their window too: it runs a
        # sandboxed program, which took over the window's 2 s at load 8-9; test_a_
        # stalled_client_stalls_no_other runs one while requests are held open.)
        answered_while_held = posts = 0
        while not all(f.done() for f in running.values()):
            guarded.alive()
            answered_while_held += not all(f.done() for f in running.values())
            status, _, answer = guarded.post(b'{"source": "print(2 + 2)", "steps": 50}')
            assert status == 200 and msgspec.json.decode(answer)["stdout"] == "4\n"
            posts += 1
        for name, future in running.items():
            took, answer = future.result()
            assert REQUEST_TIMEOUT <= took < REQUEST_TIMEOUT + 3, (name, took, answer)
            if name != "nothing" or answer:
                assert answer.startswith(b"HTTP/1.1 408 "), (name, answer)
                assert f"did not arrive within {REQUEST_TIMEOUT:g} s".encode() in answer, answer
    assert answered_while_held >= 1 and posts >= 1, (answered_while_held, posts)


def test_connections_past_the_cap_from_one_client_are_refused_at_once(
    guarded: Service,
) -> None:
    held = []
    try:
        for _ in range(PER_CLIENT):
            held.append(socket.create_connection(("127.0.0.1", guarded.port), timeout=30))
        time.sleep(0.2)
        started = time.monotonic()
        status, _, body = guarded.ask(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503 and time.monotonic() - started < REQUEST_TIMEOUT, (status, body)
        assert body == b"Service Unavailable: over 8 connections from one address\n"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    guarded.alive()




def test_many_clients_at_once(service: Service) -> None:
    statuses: list[int] = []
    failures: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            if i % 6:
                statuses.append(service.ask(b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                            b"Connection: close\r\n\r\n")[0])
            else:
                statuses.append(service.post(b'{"source": "print(%d)", "steps": 20}' % i)[0])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(36)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures, failures
    assert len(statuses) == 36 and set(statuses) <= {200, 503}, statuses
    service.alive()


# -- programs that try to get out, or to outgrow their bounds ---------------------------------

HOSTILE = {
    "environment": "import os\nprint(dict(os.environ))\n",
    "proc environ": "print(open('/proc/self/environ', 'rb').read())\n",
    "parent's environ": "import os\nprint(open(f'/proc/{os.getppid()}/environ', 'rb').read())\n",
    "write outside": "open('/tmp/blocktrace-fuzz-escaped', 'w').write('x')\n",
    "kill the server": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "kill everything": "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
    "threads": "import threading, time\nfor _ in range(10000):\n"
               "    threading.Thread(target=time.sleep, args=(60,)).start()\n",
    "stderr flood": "import sys\nfor _ in range(100):\n    sys.stderr.write('x' * 100000)\n",
    "deep C recursion": "import json\nx = json.loads('[' * 10 ** 6 + ']' * 10 ** 6)\n",
    "connect": "import socket\nsocket.create_connection(('127.0.0.1', 1))\n",
}
SLOW = {  # stopped by the clocks (tests/snapshot has them too): the deep search only
    "C loop": "sum(range(10 ** 12))\n",
    "sleep": "import time\ntime.sleep(3600)\n",
    "sleeping children": "import os\nos.fork() or __import__('time').sleep(3600)\n",
}


def test_hostile_programs_are_stopped_and_leave_nothing(service: Service) -> None:
    marker = Path("/tmp/blocktrace-fuzz-escaped")
    marker.unlink(missing_ok=True)
    programs = {**HOSTILE, **(SLOW if os.environ.get("BLOCKTRACE_FUZZ") == "deep" else {})}

    def run(name: str) -> tuple[str, int, bytes]:
        payload = {"source": programs[name], "steps": 10000}
        return (name, *service.post(msgspec.json.encode(payload))[::2])

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(run, programs))
    for name, status, body in answers:
        assert status == 200, (name, status, body[:300])
        assert SECRET.encode() not in body, name
        answer = msgspec.json.decode(body)
        assert answer["status"] in ("error", "limit", "step_limit", "ok"), (name, answer)
        assert len(answer["stdout"]) <= 65536 + 200, name
    service.alive()
    assert not marker.exists()
    assert descendants(service.proc.pid) == [], "processes left behind"
