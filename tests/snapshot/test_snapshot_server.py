"""The real service: ``blocktrace serve`` in a subprocess on 127.0.0.1, real
HTTP requests, hostile programs alongside good ones, nothing left behind."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest

from .conftest import Server, descendants

pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # A wall clock of 10 s: the sleeping hostile program below is stopped by it,
    # and the good ones have time to start with eight runs at once.
    s = Server("--workers", "4", "--queue", "32", "--wall", "10")
    try:
        yield s
    finally:
        s.stop()
    assert descendants(os.getpid()) == []


def test_health(server: Server) -> None:
    status, headers, body = server.request("GET", "/health")
    assert status == 200
    assert headers["content-type"] == "application/json"
    health = msgspec.json.decode(body)
    assert health["status"] == "ok"
    assert health["workers"] == 4
    assert health["sandbox"] in ("bwrap", "landlock")
    assert headers["x-blocktrace-sandbox"] == health["sandbox"]
    # bubblewrap's tree holds no host file; the disk quota is a tmpfs wherever that holds
    assert health["hostFilesHidden"] is True or health["sandbox"] == "landlock"
    assert health["diskQuota"] == ("tmpfs" if health["hostFilesHidden"] else "accounted")
    assert "x-blocktrace-warning" not in headers and "warning" not in health


def test_a_good_request(server: Server) -> None:
    status, response = server.trace({"source": "x = [1, 2]\ny = x\n", "steps": 20})
    assert status == 200
    assert response["status"] == "ok"
    last = response["steps"][-1]["stack"][0]["variables"]
    assert last["x"] == last["y"] and last["x"][0] == "REF"


def test_trace_format_over_http(server: Server) -> None:
    status, headers, body = server.request(
        "POST", "/trace", b'{"source": "print(1)", "format": "trace", "genesis": "n1"}'
    )
    assert status == 200
    assert headers["content-type"] == "application/jsonl"
    assert headers["x-blocktrace-status"] == "ok"
    lines = body.splitlines()
    assert msgspec.json.decode(lines[0])["genesis"] == "n1"
    assert msgspec.json.decode(lines[-1])["lines"] == len(lines) - 1  # the summary (version 3)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("POST", "/trace", b"{nope", 400, "malformed JSON"),
        ("POST", "/trace", b"", 400, "malformed JSON"),
        ("POST", "/trace", b'{"source": 1}', 422, "$.source"),
        ("POST", "/trace", b'{"source": "", "steps": "9"}', 422, "$.steps"),
        ("POST", "/trace", b'{"source": "", "sauce": 1}', 422, "sauce"),
        ("POST", "/trace", b'{"source": "", "steps": 99999}', 422, "steps over 10000"),
        ("POST", "/trace", b'{"source": "", "format": "xml"}', 422, "$.format"),
        ("POST", "/trace", b'{"source": "' + b"#" * 300_000 + b'"}', 413, "over 262144 bytes"),
        ("GET", "/trace", None, 405, "use POST"),
        ("POST", "/health", b"", 405, "use GET"),
        ("GET", "/nowhere", None, 404, "no such endpoint"),
    ],
)
def test_bad_requests_get_a_4xx_with_one_line(
    server: Server, method: str, path: str, body: bytes | None, status: int, needle: str
) -> None:
    got, _, raw = server.request(method, path, body)
    assert got == status
    reason = msgspec.json.decode(raw)["error"]
    assert needle in reason and "\n" not in reason


HOSTILE = [
    "while True:\n    pass\n",
    "import itertools\nsum(itertools.repeat(1))\n",
    "x = [0] * (10 ** 10)\n",
    "import os\nwhile True:\n    os.fork()\n",
    "import os\nos._exit(1)\n",
    "import ctypes\nctypes.string_at(0)\n",
    "print('x' * 10 ** 7)\n",
    "print(open('/etc/passwd').read())\n",
    "import socket\nsocket.create_connection(('127.0.0.1', 22))\n",
    "def f():\n    f()\nf()\n",
    "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n"
    "        pass\n",
    "import time\ntime.sleep(3600)\n",
]


def test_hostile_programs_next_to_good_ones(server: Server) -> None:
    good = {"source": "total = 0\nfor i in range(5):\n    total += i\nprint(total)\n",
            "steps": 100}
    with ThreadPoolExecutor(max_workers=8) as pool:
        bad_runs = [pool.submit(server.trace, {"source": s, "steps": 500}) for s in HOSTILE]
        good_runs = [pool.submit(server.trace, good) for _ in range(6)]
        for future in good_runs:
            status, response = future.result(timeout=300)
            assert status == 200
            assert response["status"] == "ok"
            assert response["stdout"] == "10\n"
        for source, future in zip(HOSTILE, bad_runs, strict=True):
            status, response = future.result(timeout=300)
            assert status == 200, source
            assert response["status"] != "ok", source
            assert response["error"]["type"], source
    status, _, body = server.request("GET", "/health")
    assert status == 200
    health = msgspec.json.decode(body)
    assert health["running"] == 0 and health["queued"] == 0
    assert descendants(server.proc.pid) == []


def test_a_full_queue_answers_503() -> None:
    # The slow run holds the only worker for --wall seconds: time enough to
    # see it running and be refused, whatever the load.
    s = Server("--workers", "1", "--queue", "0", "--wall", "10")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(s.trace, {"source": "import time\ntime.sleep(30)\n"})
            deadline = time.monotonic() + 120
            while msgspec.json.decode(s.request("GET", "/health")[2])["running"] == 0:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            status, headers, body = s.request("POST", "/trace", b'{"source": "x = 1"}')
            assert status == 503
            assert headers["retry-after"] == "1"
            assert "busy" in msgspec.json.decode(body)["error"]
            status, response = slow.result(timeout=300)
            assert status == 200 and response["limit"] == "wall_time"
        status, response = s.trace({"source": "x = 1"})
        assert status == 200 and response["status"] == "ok"
        assert descendants(s.proc.pid) == []
    finally:
        s.stop()


def test_an_address_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "blocktrace", "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert done.returncode == 2
    expected = f"blocktrace serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert done.stderr == expected


def _ask(port: int, method: str, path: str, headers: dict[str, str],
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_browser_front_ends_need_an_allowed_origin(server: Server) -> None:
    # Without --cors-origin a page's preflight is refused (willow's own service
    # allowed every origin).
    page = {"origin": "http://tutor.example", "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"}
    status, headers, _ = _ask(server.port, "OPTIONS", "/trace", page)
    assert status == 403 and "access-control-allow-origin" not in headers
    # ...and its request is refused before anything runs: a form or text/plain POST
    # comes without a preflight, so any page open in a browser here could run code.
    status, headers, body = _ask(
        server.port, "POST", "/trace",
        {"origin": "http://tutor.example", "content-type": "text/plain"},
        b'{"source": "open(\'/tmp/ran\', \'w\')"}')
    assert status == 403 and "access-control-allow-origin" not in headers
    assert "--cors-origin" in msgspec.json.decode(body)["error"]
    status, _, _ = _ask(server.port, "GET", "/health", {"origin": "null"})
    assert status == 403

    s = Server("--cors-origin", "http://tutor.example", "--cors-origin", "https://b.example:8443")
    try:
        status, headers, body = _ask(s.port, "OPTIONS", "/trace", page)
        assert (status, body) == (204, b"")
        assert headers["access-control-allow-origin"] == "http://tutor.example"
        assert headers["access-control-allow-methods"] == "POST"
        assert headers["access-control-allow-headers"] == "content-type"
        assert "content-length" not in headers
        status, headers, body = _ask(
            s.port, "POST", "/trace",
            {"origin": "https://b.example:8443", "content-type": "application/json"},
            b'{"source": "print(6 * 7)"}')
        assert status == 200 and msgspec.json.decode(body)["stdout"] == "42\n"
        assert headers["access-control-allow-origin"] == "https://b.example:8443"
        assert headers["vary"] == "origin"
        exposed = headers["access-control-expose-headers"]
        assert "x-blocktrace-status" in exposed and "x-blocktrace-sandbox" in exposed
        status, headers, _ = _ask(s.port, "GET", "/health", {"origin": "http://tutor.example"})
        assert status == 200 and headers["access-control-allow-origin"] == "http://tutor.example"
        # another origin: refused, preflight or not, with nothing a page may read
        other = {**page, "origin": "http://evil.example"}
        status, headers, _ = _ask(s.port, "OPTIONS", "/trace", other)
        assert status == 403 and "access-control-allow-origin" not in headers
        status, headers, _ = _ask(s.port, "POST", "/trace", {"origin": "http://evil.example"},
                                  b'{"source": "x = 1"}')
        assert status == 403 and "access-control-allow-origin" not in headers
        assert headers["vary"] == "origin"
        # no Origin (curl, http.client, a proxy that drops it): not a page, answered
        status, _, _ = _ask(s.port, "POST", "/trace", {}, b'{"source": "x = 1"}')
        assert status == 200
    finally:
        s.stop()
    s = Server("--cors-origin", "*")
    try:
        status, headers, _ = _ask(s.port, "OPTIONS", "/health",
                                  {**page, "access-control-request-method": "GET"})
        assert status == 204 and headers["access-control-allow-origin"] == "*"
        assert headers["access-control-allow-methods"] == "GET"
        status, headers, _ = _ask(s.port, "POST", "/trace", {"origin": "http://any.example"},
                                  b'{"source": "x = 1"}')
        assert status == 200 and headers["access-control-allow-origin"] == "*"
    finally:
        s.stop()


@pytest.mark.parametrize("origin", ["tutor.example", "http://tutor.example/app", "ftp://x", ""])
def test_a_bad_cors_origin_is_one_line_and_exit_2(origin: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "blocktrace", "serve", "--port", "0", "--cors-origin", origin],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not an origin" in done.stderr
