"""The viewer's server: a real ``blocktrace view`` process and in-process servers on
127.0.0.1, real HTTP: the token, read-only, what it serves and what it refuses."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocktrace.view.model import TraceModel
from blocktrace.view.server import ViewServer
from blocktrace.view.session import Session

from .api_support import api, get, record


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("served"))


@pytest.fixture
def server(trace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ViewServer]:
    monkeypatch.setenv("BLOCKTRACE_VIEW_CACHE", str(tmp_path / "cache"))
    model = TraceModel(str(trace))
    assert model.wait(120)
    served = ViewServer(Session([model]))
    served.start()
    yield served
    served.shutdown()
    served.server_close()


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_server_listens_on_loopback_and_answers_under_its_token(server: ViewServer) -> None:
    assert server.server_address[0] == "127.0.0.1"
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/{server.token}/")
    assert len(server.token) >= 32
    meta = api(server.url, "meta")
    assert meta["mode"] == "trace" and meta["traces"][0]["kind"] == "blocktrace"


def test_without_the_token_nothing_is_served(server: ViewServer) -> None:
    root = f"http://127.0.0.1:{server.port}/"
    wrong = server.token[:-1] + ("a" if server.token[-1] != "a" else "b")
    for path in ("", "api/meta", "index.html", "static/index.html", f"{wrong}/api/meta",
                 f"{wrong}/", f"{server.token}api/meta", f"x/{server.token}/api/meta"):
        status, _, body = get(root + path)
        assert status == 404, (path, status)
        assert b"blocktrace" not in body and server.token.encode() not in body


def test_the_served_page_and_answers_carry_protective_headers(server: ViewServer) -> None:
    status, headers, _ = get(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    status, headers, _ = get(server.url + "api/meta")
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Referrer-Policy"] == "no-referrer"  # the token stays out of Referer
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", [
    "static/../server.py",
    "static/../../view/model.py",
    "static/%2e%2e/server.py",
    "static/..%2fserver.py",
    "static/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
    "static//etc/passwd",
    "static/%2fetc%2fpasswd",
    "static/../../../../../../etc/passwd",
    "static/%00index.html",
    "../../etc/passwd",
    "api/../../etc/passwd",
])
def test_no_path_escapes_the_static_files(server: ViewServer, path: str) -> None:
    raw = _raw_request(
        server.port,
        f"GET /{server.token}/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        .encode(),
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"404", b"400"), (path, head)
    assert b"root:" not in body and b"import" not in body and b"[project]" not in body


def test_the_server_is_read_only(server: ViewServer) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        raw = _raw_request(
            server.port,
            f"{method} /{server.token}/api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode(),
        )
        assert raw.startswith(b"HTTP/1.1 405"), (method, raw[:80])


def test_a_foreign_host_header_is_refused_on_loopback(server: ViewServer) -> None:
    """A DNS-rebinding page would send its own name as Host."""
    raw = _raw_request(
        server.port,
        f"GET /{server.token}/api/meta HTTP/1.1\r\nHost: evil.example:{server.port}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert raw.startswith(b"HTTP/1.1 403")
    raw = _raw_request(
        server.port,
        f"GET /{server.token}/api/meta HTTP/1.1\r\nHost: localhost:{server.port}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert raw.startswith(b"HTTP/1.1 200")


def test_bad_api_requests_are_json_errors(server: ViewServer) -> None:
    for path, status in (("api/nothing", 404), ("api/window?from=x", 400),
                         ("api/stack?step=999999", 400), ("api/stack", 400),
                         ("api/nav?step=1&how=sideways", 400), ("api/meta?t=7", 200),
                         ("api/stack?step=1&t=7", 400), ("api/diff", 400)):
        got, headers, body = get(server.url + path)
        assert got == status, (path, got, body)
        assert headers["Content-Type"].startswith("application/json")
        if status != 200:
            assert "error" in json.loads(body)


# -- the command -----------------------------------------------------------------------


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "blocktrace", "view", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def test_view_prints_its_url_and_serves_until_interrupted(trace: Path, tmp_path: Path) -> None:
    env = dict(os.environ, BLOCKTRACE_VIEW_CACHE=str(tmp_path / "cache"))
    proc = _start("--no-browser", str(trace), env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("blocktrace view: http://127.0.0.1:"), line
        url = line.split()[-1]
        meta = api(url, "meta")
        assert meta["traces"][0]["path"] == str(trace)
        assert get(url.rsplit("/", 2)[0] + "/api/meta")[0] == 404
    finally:
        _, err = _stop(proc)
    assert "Traceback" not in err


def test_view_says_so_when_there_is_no_browser_to_open(trace: Path, tmp_path: Path) -> None:
    """No display and no console browser on PATH: webbrowser.open() returns
    False without raising, and the user was left with a URL and no word."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env.update(PATH=os.path.dirname(sys.executable),
               BLOCKTRACE_VIEW_CACHE=str(tmp_path / "cache"))
    proc = _start(str(trace), env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("blocktrace view: http://127.0.0.1:")
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 60)  # fails, not hangs, before
        said = proc.stderr.readline() if ready else ""
    finally:
        _, err = _stop(proc)
    assert said == "blocktrace view: no browser found to open; open the URL above\n", said + err
    assert "Traceback" not in err


def test_view_warns_when_not_listening_on_loopback(trace: Path, tmp_path: Path) -> None:
    env = dict(os.environ, BLOCKTRACE_VIEW_CACHE=str(tmp_path / "cache"))
    proc = _start("--no-browser", "--host", "0.0.0.0", str(trace), env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("blocktrace view: http://0.0.0.0:")
    finally:
        _, err = _stop(proc)
    assert "warning: listening on 0.0.0.0, not loopback" in err


@pytest.mark.parametrize("content", [
    b"", b"not json at all\n" * 200, b'{"blocktrace":99,"hashAlg":"sha256"}\n', b"\x00\x01\x02",
    b'{"blocktrace":3,"hashAlg":"sha256"',
])
def test_an_unusable_trace_is_one_line_and_exit_2_before_any_server(
    tmp_path: Path, content: bytes, blocktrace_cli: object, one_line_error: object
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    proc = blocktrace_cli("view", "--no-browser", bad, timeout=120)  # type: ignore[operator]
    one_line_error(proc)  # type: ignore[operator]
    assert proc.returncode == 2
    assert "http://" not in proc.stdout


def test_a_missing_trace_and_a_directory_are_one_line_errors(
    tmp_path: Path, blocktrace_cli: object, one_line_error: object
) -> None:
    for target in (tmp_path / "absent.jsonl", tmp_path):
        proc = blocktrace_cli("view", "--no-browser", target, timeout=120)  # type: ignore[operator]
        one_line_error(proc)  # type: ignore[operator]
        assert proc.returncode == 2 and str(target) in proc.stderr
