"""The viewer's HTTP server against hostile requests: a real ``blocktrace view
--no-browser`` process on 127.0.0.1, raw bytes over real sockets.

Whatever arrives -- a malformed request line or header, a huge one, a body on a
GET, path traversal in any path or query parameter (``..``, ``%2e%2e``,
absolute paths, NUL, bytes that are not UTF-8), numbers out of range, negative
or not numbers, a stalled client, many clients at once -- the answer is a
proper status line with a 4xx or 5xx and a one-line body (JSON ``{"error"}``
under ``api/``), never a Python traceback in the body or on the server's
stderr, nothing from outside the trace and the page's files, and the server
still answers.  A trace changed or removed under the running server is never
served again as if verified (409, and ``verify`` says why).

The examples are the same on every run (``harness.FUZZ``); ``BLOCKTRACE_FUZZ=deep``
searches longer.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .conftest import Seeds
from .harness import FUZZ

_STATIC = Path(__file__).resolve().parents[2] / "blocktrace" / "view"
SECRET = b"root:x:0:0"
"""What /etc/passwd starts with: never in an answer."""


@dataclass
class Viewer:
    """A running ``blocktrace view --no-browser TRACE`` and its stderr."""

    proc: subprocess.Popen[bytes]
    port: int
    token: str
    stderr: Path
    trace: Path
    request_seconds: float
    send_seconds: float

    def raw(self, request: bytes, *, timeout: float = 30, until_close: bool = False) -> bytes:
        """Send ``request`` as is; the first answer (its Content-Length), or with
        ``until_close`` everything the server sends until it hangs up."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(request)
            got = b""
            try:
                while chunk := sock.recv(65536):
                    got += chunk
                    if not until_close and _complete(got):
                        break
            except ConnectionResetError:
                pass  # it hung up on what it did not read (a body it refused)
        return got

    def get(self, target: bytes | str, headers: bytes = b"") -> Response:
        if isinstance(target, str):
            target = target.encode()
        return Response.of(self.raw(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"Connection: close\r\n" + headers + b"\r\n"))

    def api(self, call: str) -> Response:
        return self.get(f"/{self.token}/api/{call}")

    def alive(self) -> None:
        assert self.proc.poll() is None, f"the server died: {self.log()}"
        answer = self.api("meta")
        assert answer.status == 200, answer

    def log(self) -> str:
        return self.stderr.read_text("utf-8", "backslashreplace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _complete(got: bytes) -> bool:
    """Whether ``got`` holds a whole answer (its headers and Content-Length bytes)."""
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head.startswith(b"HTTP/1.1 100 "):
        return _complete(body)
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


@dataclass
class Response:
    status: int
    headers: bytes
    body: bytes

    @classmethod
    def of(cls, raw: bytes) -> Response:
        head, sep, body = raw.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 "), f"no proper status line: {raw[:300]!r}"
        return cls(int(head.split()[1]), head, body)

    def check(self, what: object) -> None:
        """The property: a status this server gives, no traceback, nothing
        secret, and an error in one line (JSON under ``api/``)."""
        assert self.status in (200, 400, 403, 404, 405, 408, 409, 414, 431, 501, 503, 505), (
            what, self)
        assert b"Traceback" not in self.body, (what, self.body[:2000])
        assert SECRET not in self.body, (what, self.body[:2000])
        if self.status >= 400 and self.body:
            if self.body.startswith(b"{"):
                error = msgspec.json.decode(self.body)["error"]
                assert error and "\n" not in error, (what, self.body)
            else:
                assert self.body.endswith(b"\n") and self.body.count(b"\n") == 1, (what, self.body)


REQUEST_SECONDS = 1.0
SEND_SECONDS = 1.0
"""The viewers' deadlines here (short: the tests wait them out)."""


def start_viewer(trace: Path, scratch: Path, other: Path | None = None) -> Viewer:
    stderr = scratch / f"view-{trace.name}.err"
    env = {**os.environ, "BLOCKTRACE_VIEW_CACHE": str(scratch / "cache"),
           "XDG_CACHE_HOME": str(scratch / "xdg"),
           "BLOCKTRACE_VIEW_REQUEST_SECONDS": str(REQUEST_SECONDS),
           "BLOCKTRACE_VIEW_SEND_SECONDS": str(SEND_SECONDS)}
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "blocktrace", "view", "--no-browser", str(trace),
             *([str(other)] if other is not None else [])],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("blocktrace view: http://127.0.0.1:"), line + stderr.read_text()
    url = line.split()[-1]
    port, token = int(url.split("/")[2].split(":")[1]), url.split("/")[3]
    viewer = Viewer(proc, port, token, stderr, trace, REQUEST_SECONDS, SEND_SECONDS)
    deadline = time.monotonic() + 120  # the tables and the verdict: built in the background
    while True:
        meta = msgspec.json.decode(viewer.api("meta").body)
        verdict = msgspec.json.decode(viewer.api("verify").body)["status"]
        if verdict != "pending" and all(t["ready"] for t in meta["traces"]):
            return viewer
        # (the tests that follow need both: say so here, not as their own failure)
        assert time.monotonic() < deadline, ("not ready in 120 s", verdict, meta["traces"],
                                             viewer.log())
        time.sleep(0.1)


def check_log(viewer: Viewer) -> None:
    """The server's stderr: no traceback, one ``blocktrace view:`` line per event,
    no raw control character (a request line can carry a terminal's escapes)."""
    log = viewer.log()
    assert "Traceback" not in log, log
    for line in log.splitlines():
        assert line.startswith("blocktrace view: "), log
        assert not any(ord(c) < 32 or ord(c) == 127 for c in line), repr(line)


@pytest.fixture(scope="module")
def viewer(seeds: Seeds, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    scratch = tmp_path_factory.mktemp("fuzz-view")
    trace = scratch / "served.jsonl"
    shutil.copyfile(seeds.locals, trace)
    served = start_viewer(trace, scratch)
    try:
        yield served
        check_log(served)
    finally:
        served.stop()


# -- requests the standard library's parser sees first ------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"FOO /TOKEN/api/meta HTTP/1.1\r\n\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X: a\r\n" * 200 + b"\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    b"GET /TOKEN/api/meta\x1b[2J\x07 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET \xff\xfe/TOKEN HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nHost: 127.0.0.1.nip.io\r\n\r\n",
    b"POST /TOKEN/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nabcde",
    b"DELETE /TOKEN/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
    b"GET /TOKEN/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\nab",
]


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_request_gets_a_status_line_and_one_line(
    viewer: Viewer, request_bytes: bytes
) -> None:
    raw = viewer.raw(request_bytes.replace(b"TOKEN", viewer.token.encode()))
    for answer in raw.split(b"HTTP/1.1 ")[1:]:  # (an answer, and at most one more)
        got = Response.of(b"HTTP/1.1 " + answer)
        got.check(request_bytes[:80])
    assert raw.startswith(b"HTTP/1.1 "), raw[:300]
    viewer.alive()


def test_a_body_on_a_get_is_never_taken_for_a_request(viewer: Viewer) -> None:
    # The server reads no body: it answers and hangs up, rather than reading the
    # body as the next request (the smuggled one below would be answered 200).
    smuggled = f"GET /{viewer.token}/api/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    raw = viewer.raw(f"GET /{viewer.token}/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Length: {len(smuggled)}\r\n\r\n".encode() + smuggled,
                     until_close=True)
    assert raw.count(b"HTTP/1.1 ") == 1, raw[:2000]
    assert Response.of(raw).status == 200


@FUZZ
@given(data=st.data())
def test_a_request_mangled_byte_by_byte(viewer: Viewer, data: st.DataObject) -> None:
    good = (f"GET /{viewer.token}/api/window?from=1&count=3 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode()
    mangled = bytearray(good)
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        at = data.draw(st.integers(0, len(mangled)), label="at")
        how = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from(b"\x00\r\n :/?%&=\x80\xff\t\x1b") | st.integers(0, 255))
        if how == "insert":
            mangled.insert(at, byte)
        elif at < len(mangled):
            if how == "delete":
                del mangled[at]
            else:
                mangled[at] = byte
    raw = viewer.raw(bytes(mangled) + b"\r\n\r\n", timeout=20)
    if raw:  # (an empty or unfinished request line is answered by hanging up)
        Response.of(raw).check(bytes(mangled))
    viewer.alive()


# -- paths and queries ------------------------------------------------------------------

TRAVERSALS = [
    "../../../../etc/passwd", "/etc/passwd", "%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%2f..%2fserver.py", "%252e%252e%252fserver.py", "....//....//etc/passwd",
    "index.html%00.js", "%00", "%ff%fe", "\\..\\..\\server.py", "static/../server.py",
    "__init__.py", "../server.py", "/proc/self/environ", "file:///etc/passwd", "%c0%ae%c0%ae/",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_is_refused_everywhere(viewer: Viewer, target: str) -> None:
    t = viewer.token
    asked = [f"/{t}/static/{target}", f"/{t}/{target}", f"/{target}", f"/{t}/api/{target}",
             f"/{t}/api/source?file={target}", f"/{t}/api/source?file={quote(target)}",
             f"/{t}/api/nav?step=0&how=next-hit&file={quote(target)}&line=1",
             f"/{t}/api/search?name={quote(target)}&text={quote(target)}"]
    for path in asked:
        got = viewer.get(path)
        got.check(path)
        assert b"import " not in got.body, path  # no Python file of the package
        if "/source?" in path:
            assert got.status == 200 and msgspec.json.decode(got.body)["text"] is None, path


NUMBER_PARAMS = {"window": ("from", "count", "t"), "stack": ("step",), "values": ("step",),
                 "nav": ("step", "line"), "search": ("limit", "from"),
                 "timeline": ("from", "to", "buckets")}
NUMBERS = ["-1", "-9223372036854775809", "0", "1", "99999999999999999999999999", "1e3", "0x10",
           "1_000", "+5", " 7", "\uff11", "\u0661", "nan", "", "%00", "%ff", "9" * 5000,
           "1.5", "--1", "true", "[]"]


@FUZZ
@given(call=st.sampled_from(sorted(NUMBER_PARAMS)), data=st.data())
def test_numbers_out_of_range_or_not_numbers(
    viewer: Viewer, call: str, data: st.DataObject
) -> None:
    params = data.draw(st.dictionaries(st.sampled_from(NUMBER_PARAMS[call]),
                                       st.sampled_from(NUMBERS) | st.integers().map(str),
                                       min_size=1))
    query = "&".join(f"{k}={quote(v, safe='%')}" for k, v in params.items())
    got = viewer.api(f"{call}?{query}")
    got.check(query)
    assert got.status in (200, 400), (query, got)
    if any(v and not re.fullmatch(r"-?[0-9]+", v) for v in params.values()):
        # only ASCII digits are numbers (int() would take 1_000, +5 and other scripts' digits)
        assert got.status == 400, (query, got)


def test_only_ascii_digits_are_numbers(viewer: Viewer) -> None:
    for value in ("1_0", "+1", "%201", "%EF%BC%91", "%D9%A1"):
        got = viewer.api(f"window?from={value}&count=1")
        assert got.status == 400, (value, got)
        assert "not a whole number" in msgspec.json.decode(got.body)["error"]
    long = viewer.api("window?from=" + "9" * 5000)
    assert long.status == 400 and len(long.body) < 300, long.body[:400]


CALLS = ["meta", "verify", "window", "stack", "values", "source", "nav", "search", "timeline",
         "diff", "", "..", "meta/", "META", "window/../meta"]
PARAMS = ["t", "from", "count", "step", "file", "how", "line", "function", "name", "text",
          "limit", "to", "buckets", ""]
VALUES = st.sampled_from(NUMBERS + TRAVERSALS + ["next", "prev", "out", "<module>", "x", "'\""]) | \
    st.text(max_size=40) | st.integers().map(str)


@FUZZ
@given(call=st.sampled_from(CALLS) | st.text(max_size=20),
       query=st.lists(st.tuples(st.sampled_from(PARAMS) | st.text(max_size=8), VALUES),
                      max_size=6),
       raw_bytes=st.binary(max_size=12))
def test_any_api_call_is_answered_in_one_line(
    viewer: Viewer, call: str, query: list[tuple[str, str]], raw_bytes: bytes
) -> None:
    text = "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
    target = f"/{viewer.token}/api/{quote(call)}?{text}".encode()
    # and, sometimes, bytes that are not UTF-8 (percent-encoded or raw) in the query
    target += b"&x=" + b"".join(b"%%%02x" % b for b in raw_bytes)
    got = viewer.get(target)
    got.check(target)
    assert got.status in (200, 400, 404), (target, got)


# -- clients that stall, and many at once -------------------------------------------------

def test_a_stalled_client_stalls_no_other(viewer: Viewer) -> None:
    stalled = []
    try:
        for partial in (b"", b"GET /", b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
            sock = socket.create_connection(("127.0.0.1", viewer.port), timeout=30)
            sock.sendall(partial)
            stalled.append(sock)
        # a client that asks for a large answer and never reads it
        reader = socket.create_connection(("127.0.0.1", viewer.port), timeout=30)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(f"GET /{viewer.token}/api/window?from=0&count=5000 HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\n\r\n".encode() * 50)
        stalled.append(reader)
        for _ in range(3):
            viewer.alive()  # answered while the others hold their connections
    finally:
        for sock in stalled:
            sock.close()


@dataclass
class Trickle:
    """A client that sends ``request`` one byte every ``every`` seconds (a
    "slowloris") until the server hangs up: when, and what it answered."""

    request: bytes
    every: float = 1.0
    cut_after: float | None = None
    answer: bytes = b""

    def run(self, port: int) -> None:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            try:
                for byte in self.request:
                    sock.sendall(bytes([byte]))
                    time.sleep(self.every)
                    sock.setblocking(False)
                    try:
                        got = sock.recv(65536)
                    except BlockingIOError:
                        got = None
                    finally:
                        sock.setblocking(True)
                    if got is not None:
                        self.answer += got
                        if not got or _complete(self.answer):
                            break
                self.answer += sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                pass
        self.cut_after = time.monotonic() - start


def test_a_slowloris_is_cut_at_the_deadline_and_holds_no_one_else(viewer: Viewer) -> None:
    """Request headers sent a byte at a time: each byte reset the idle time, so
    the connection (and its thread) was held for as long as the client liked.
    Now the request must arrive within the server's request deadline (5 s; 1 s
    here) of its first byte: a 408 then, and the connection closed; other
    clients are answered meanwhile."""
    slow = [Trickle(f"GET /{viewer.token}/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "X-Padding: ".encode() + b"a" * 200, every=0.25) for _ in range(3)]
    threads = [threading.Thread(target=t.run, args=(viewer.port,)) for t in slow]
    for thread in threads:
        thread.start()
    served = 0
    while any(thread.is_alive() for thread in threads):
        viewer.alive()  # a normal client, answered while the slow ones trickle
        served += 1
        time.sleep(0.2)
        assert served < 150, "the slow clients were not cut"
    for thread in threads:
        thread.join()
    for t in slow:
        assert t.cut_after is not None
        assert viewer.request_seconds <= t.cut_after < viewer.request_seconds + 3, t.cut_after
        answer = Response.of(t.answer)
        assert answer.status == 408, answer
        answer.check("slowloris")
    assert served >= 1  # (asked while they trickled: the loop asks before it looks)
    check_log(viewer)


def test_an_answer_never_read_is_dropped_at_the_send_deadline(viewer: Viewer) -> None:
    """A client asks for large answers into a small receive buffer and stops
    reading: each write of an answer waited up to 60 s, so reading a byte now
    and then held the connection and its thread for ever.  Now an answer must be
    taken whole within the send deadline (30 s; 1 s here), else the connection
    is dropped with one line in the log; normal clients are answered meanwhile."""
    before = viewer.log().count("not taken")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", viewer.port))
    try:
        stalled.sendall(f"GET /{viewer.token}/api/window?from=0&count=5000 HTTP/1.1\r\n"
                        "Host: 127.0.0.1\r\n\r\n".encode() * 100)
        deadline = time.monotonic() + 60
        while viewer.log().count("not taken") == before:
            assert time.monotonic() < deadline, f"never dropped: {viewer.log()}"
            viewer.alive()
            time.sleep(0.2)
        stalled.settimeout(30)
        got = b""
        try:
            while chunk := stalled.recv(1 << 20):
                got += chunk
        except ConnectionResetError:
            pass
        assert got.count(b"HTTP/1.1 200 ") < 100, "every answer was taken"
    finally:
        stalled.close()
    dropped = [x for x in viewer.log().splitlines() if "not taken" in x][before:]
    assert dropped == [dropped[0]] and dropped[0].startswith(
        f"blocktrace view: an answer not taken within {viewer.send_seconds:g} s"), dropped
    viewer.alive()
    check_log(viewer)


def test_connections_past_the_cap_are_refused_at_once(viewer: Viewer) -> None:
    """Idle connections, each holding a thread: past MAX_CONNECTIONS a new one is
    answered 503 at once and closed; once they go, clients are served again."""
    from blocktrace.view.server import MAX_CONNECTIONS

    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(socket.create_connection(("127.0.0.1", viewer.port), timeout=30))
        time.sleep(0.5)
        started = time.monotonic()
        refused = Response.of(viewer.raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                         until_close=True))
        assert refused.status == 503 and time.monotonic() - started < 5, refused
        refused.check("past the cap")
    finally:
        for sock in held:
            sock.close()
    for _ in range(100):  # the server's threads see the connections go
        try:
            if viewer.api("meta").status == 200:
                break
        except AssertionError:
            pass
        time.sleep(0.1)
    viewer.alive()


def test_a_client_that_resets_mid_request_leaves_no_traceback(viewer: Viewer) -> None:
    # (found by the mangling test: socketserver printed the ConnectionResetError's
    # traceback on the server's stderr)
    for partial in (b"GET /x HTTP/1.1\r\nHost: 127", b"GARB",
                    f"GET /{viewer.token}/api/window?from=0&count=5000 HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\n\r\n".encode() * 20):
        sock = socket.create_connection(("127.0.0.1", viewer.port), timeout=30)
        sock.sendall(partial)
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, not a close
    time.sleep(0.5)
    viewer.alive()
    check_log(viewer)


def test_many_clients_at_once(viewer: Viewer) -> None:
    answers: list[int] = []
    failures: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            call = ("meta", "verify", f"window?from={i}&count=50", f"stack?step={i}",
                    f"values?step={i}", "timeline?from=0&to=100", "nope")[i % 7]
            answers.append(viewer.api(call).status)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    assert len(answers) == 48 and set(answers) <= {200, 404}, answers
    viewer.alive()


# -- the trace changed under the server ------------------------------------------------------

def _edited(trace: Path, line: int) -> None:
    """Line ``line`` (1-based) of ``trace`` changed in place, same length: a
    holder's edit after the viewer verified the file."""
    lines = trace.read_bytes().split(b"\n")
    target = lines[line - 1]
    at = target.index(b'"opName":"') + len(b'"opName":"')
    lines[line - 1] = target[:at] + b"X" + target[at + 1:]
    with open(trace, "r+b") as f:  # in place: the same inode, the same size
        f.write(b"\n".join(lines))


def _first_op_line(trace: Path) -> int:
    for number, line in enumerate(trace.read_bytes().split(b"\n"), 1):
        if b'"opName":"' in line:
            return number
    raise AssertionError("no op line")


@pytest.mark.parametrize("how", ["edited", "removed", "replaced"])
def test_a_trace_changed_under_the_server_is_not_served_as_verified(
    seeds: Seeds, tmp_path: Path, how: str
) -> None:
    trace = tmp_path / "changing.jsonl"
    shutil.copyfile(seeds.locals, trace)
    served = start_viewer(trace, tmp_path)
    try:
        assert msgspec.json.decode(served.api("verify").body)["status"] == "sealed"
        before = served.api("window?from=0&count=20")
        assert before.status == 200 and b'"opName":"X' not in before.body
        if how == "edited":
            _edited(trace, _first_op_line(trace))
        elif how == "removed":
            trace.unlink()
        else:  # another file renamed over it: an intact trace, but not the one verified
            other = tmp_path / "other.jsonl"
            shutil.copyfile(seeds.plain, other)
            os.replace(other, trace)
        for call in ("window?from=0&count=20", "stack?step=1", "values?step=1",
                     "nav?step=0&how=next", "search?name=x", "timeline?from=0&to=10",
                     "source?file=x"):
            got = served.api(call)
            got.check(call)
            assert got.status == 409, (how, call, got)
            assert b'"opName":"X' not in got.body
            assert "changed on disk" in msgspec.json.decode(got.body)["error"]
        verdict = msgspec.json.decode(served.api("verify").body)
        assert verdict["status"] == "unusable" and "changed on disk" in verdict["reason"], verdict
        served.alive()  # meta still answers (what was opened), the server stays up
        check_log(served)
    finally:
        served.stop()


def test_in_a_diff_only_the_changed_trace_is_refused(seeds: Seeds, tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    shutil.copyfile(seeds.plain, a)
    shutil.copyfile(seeds.locals, b)
    served = start_viewer(a, tmp_path, b)
    try:
        for _ in range(600):
            if msgspec.json.decode(served.api("diff").body).get("status") != "pending":
                break
            time.sleep(0.1)
        assert served.api("diff").status == 200
        _edited(b, _first_op_line(b))
        assert served.api("window?t=0&from=0&count=5").status == 200  # A is as opened
        assert served.api("window?t=1&from=0&count=5").status == 409
        assert served.api("diff").status == 409  # the diff read B
        verdicts = [msgspec.json.decode(served.api(f"verify?t={t}").body) for t in (0, 1)]
        assert verdicts[0]["status"] == "sealed" and verdicts[1]["status"] == "unusable"
        served.alive()
        check_log(served)
    finally:
        served.stop()
