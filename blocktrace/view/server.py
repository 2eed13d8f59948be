"""The viewer's local HTTP server: the page's static files and the JSON API.

A :class:`http.server.ThreadingHTTPServer` (the standard library: ``view``
needs no extra) bound to 127.0.0.1 by default.  Every path starts with a random
token (as Jupyter's), so another local user or a web page in the browser cannot
read the trace: without it every request is a 404.  Read-only: GET and HEAD
only.  It serves exactly two things: the files under
``blocktrace/view/static`` (resolved, and refused if they leave it) and the
API of docs/VIEW.md, whose ``source`` answers only what the trace committed
to (``blocktrace.format.read_source``).
"""

from __future__ import annotations

import io
import ipaddress
import mimetypes
import os
import re
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from blocktrace.view.model import BadRequest, Changed, Model, NotReady
from blocktrace.view.session import Session

__all__ = ["STATIC_DIR", "ViewServer", "is_loopback", "serve"]

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
          ".html": "text/html", ".svg": "image/svg+xml", ".json": "application/json",
          ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2"}
_encode = msgspec.json.Encoder().encode
_ASSET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.(?:html|js|css|svg|png|ico|woff2)")
"""The page's files: flat names with a web extension (never ``__init__.py``)."""

FALLBACK_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>blocktrace view</title></head>
<body><h1>blocktrace view</h1>
<p>The page is not installed (blocktrace/view/static/index.html is missing);
the JSON API answers under <a href="api/meta">api/meta</a>.</p></body></html>
"""

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
)


IDLE_SECONDS = 60.0
"""A connection that sends nothing for this long is closed: each connection has
a thread of its own, so a slow or stalled client holds only that one, and not
for ever."""

SEND_SECONDS = 30.0
"""An answer must be taken whole within this of its first byte: a client that
asks and stops reading (its receive window shut) is dropped then, with one line
in the log.  Timing each write instead let a client that read a byte now and
then hold its thread for as long as it liked.  (A browser on the machine takes
an answer of megabytes in milliseconds.)  ``BLOCKTRACE_VIEW_SEND_SECONDS``
sets it."""

REQUEST_SECONDS = 5.0
"""Once the first byte of a request has arrived, its request line and headers
must all arrive within this: a client that sends them a byte at a time (a
"slowloris") is answered 408 and cut off then, not held while each byte resets
the idle time.  (A browser on the machine sends a request in one packet.)"""

MAX_CONNECTIONS = 64
"""Connections served at once (each a thread): one more is answered 503 and
closed at once.  Every client of a loopback server has a loopback address, and
a local process can use many of them, so this bounds them all together."""

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Length: 48\r\nConnection: close\r\n\r\n"
         b"Service Unavailable: too many open connections\n")

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)}
"""Control characters, escaped in what the server logs (a request line can carry
a terminal's escape sequences)."""


class _Timed(io.RawIOBase):
    """The connection's socket as the handler reads it: a read waits at most
    :data:`IDLE_SECONDS`, and none goes past ``deadline`` (set while a request
    is being read)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline: float | None = None
        self.expired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wait = IDLE_SECONDS
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0:
                self.expired = True
                raise TimeoutError("request not received in time")
        self._sock.settimeout(wait)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self.expired = self.deadline is not None
            raise


class _TimedWriter(io.BufferedIOBase):
    """The connection's socket as the handler writes it: every write of one
    answer together within ``seconds`` of the answer's first (``start``)."""

    def __init__(self, sock: socket.socket, seconds: float,
                 log: Callable[[str], None] | None) -> None:
        super().__init__()
        self._sock = sock
        self._seconds = seconds
        self._log = log
        self.deadline: float | None = None

    def writable(self) -> bool:
        return True

    def start(self) -> None:
        """An answer begins (its status line): its clock starts, unless running."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self._seconds

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            wait = IDLE_SECONDS if self.deadline is None else self.deadline - time.monotonic()
            try:
                if wait <= 0:
                    raise TimeoutError
                self._sock.settimeout(wait)
                sent += self._sock.send(view[sent:])
            except TimeoutError:
                self._drop(len(view) - sent)
                raise TimeoutError(f"answer not taken within {self._seconds:g} s") from None
        return sent

    def _drop(self, left: int) -> None:
        """Reset the connection (what it holds unsent is discarded) and say so."""
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        if self._log is not None:
            self._log(f"an answer not taken within {self._seconds:g} s ({left} bytes left): "
                      "connection dropped")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    protocol_version = "HTTP/1.1"
    server_version = "blocktrace-view"
    timeout = IDLE_SECONDS

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self._reader = _Timed(self.connection)
        self._buffered = io.BufferedReader(self._reader)
        self.rfile = self._buffered
        self._writer = _TimedWriter(self.connection, self.server.send_seconds, self.server.log)
        self.wfile = self._writer  # (unbuffered, as the base class's)

    def handle_one_request(self) -> None:
        """One request: up to :data:`IDLE_SECONDS` for its first byte, then
        :data:`REQUEST_SECONDS` for the rest of its line and headers (a 408 and
        the connection closed past that)."""
        reader = self._reader
        reader.deadline, reader.expired = None, False
        self._writer.deadline = None
        try:
            if not self._buffered.peek(1):
                self.close_connection = True
                return
        except (TimeoutError, ConnectionError):  # idle, or gone: no news
            self.close_connection = True
            return
        reader.deadline = time.monotonic() + self.server.request_seconds
        self.command, self.request_version = None, self.default_request_version  # type: ignore[assignment]
        super().handle_one_request()
        if reader.expired:
            reader.deadline = None
            try:
                self.send_error(HTTPStatus.REQUEST_TIMEOUT,
                                f"request not received within {self.server.request_seconds:g} s")
            except OSError:
                pass

    def parse_request(self) -> bool:
        """Read the headers; then no deadline on what follows (the answer has
        :data:`SEND_SECONDS` to be taken)."""
        ok = super().parse_request()
        self._reader.deadline = None
        self.connection.settimeout(IDLE_SECONDS)
        if not ok:
            return False
        if self.request_version == "HTTP/0.9":  # ("GET /path": a body with no status line)
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not served")
            return False
        return True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per request would bury what matters

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None and not format.startswith("Request timed out"):
            self.server.log((format % args).translate(_CONTROL))  # (an idle browser: no news)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The answer to a request the standard library could not read (a bad
        request line or header, too long, an unknown method): one line of text
        under a proper status line, instead of its HTML page (and of no status
        line at all when the request line was unreadable)."""
        phrase = self.responses.get(code, ("error", ""))[0]
        message = message or phrase
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # (the default before a request line is read)
            self.request_version = self.protocol_version
        text = f"{phrase}: {message}" if message != phrase else phrase
        self.send_response(code, phrase)
        self.send_header("Connection", "close")
        if code < 200 or code in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.end_headers()
            return
        self._send(code, (text.translate(_CONTROL) + "\n").encode("utf-8", "backslashreplace"),
                   "text/plain; charset=utf-8", started=True)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._writer.start()
        super().send_response(code, message)

    def _send(self, status: int, body: bytes, content_type: str, *,
              started: bool = False) -> None:
        if not started:
            self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, _encode(obj), "application/json; charset=utf-8")

    def _not_found(self) -> None:
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _has_body(self) -> bool:
        """Whether the request says a body follows.  This server reads none, so
        what follows must not be taken for the next request: it answers, then
        hangs up."""
        length = self.headers.get("Content-Length", "0").strip()
        return length != "0" or "Transfer-Encoding" in self.headers

    def _refuse(self) -> None:
        if self._has_body():
            self.close_connection = True
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # read-only

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self._has_body():
            self.close_connection = True
        try:
            self._get()
        except (ConnectionError, TimeoutError):  # the browser went away, or read nothing
            self.close_connection = True
        except Exception as exc:  # a bug: one line in the log, a 500, the server goes on
            self.log_message("internal error on %s: %s: %s", self.path.split("?")[0][:200],
                             type(exc).__name__, exc)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                       {"error": f"internal error: {type(exc).__name__}"})

    def _get(self) -> None:
        if not self._host_ok():
            self._send(HTTPStatus.FORBIDDEN, b"unexpected Host header\n",
                       "text/plain; charset=utf-8")
            return
        parts = urlsplit(self.path)
        path = parts.path
        prefix = f"/{self.server.token}/"
        if not secrets.compare_digest(path[:len(prefix)].encode(), prefix.encode()):
            self._not_found()
            return
        rest = path[len(prefix):]
        if rest.startswith("api/"):
            self._api(unquote(rest[4:]), parse_qs(parts.query, keep_blank_values=True))
        elif rest in ("", "index.html"):
            self._static("index.html")
        elif rest.startswith("static/"):
            self._static(unquote(rest[len("static/"):]))
        else:
            self._not_found()

    def _host_ok(self) -> bool:
        """A DNS-rebinding page reaches us under its own name: when bound to
        loopback, only loopback names are answered."""
        if not is_loopback(self.server.host):
            return True
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]")
        return name == "" or is_loopback(name)

    def _static(self, relative: str) -> None:
        if not _ASSET.fullmatch(relative):
            self._not_found()
            return
        root = os.path.realpath(self.server.static_dir)
        target = os.path.realpath(os.path.join(root, relative))
        if os.path.commonpath([root, target]) != root:
            self._not_found()
            return
        if not os.path.isfile(target):
            if relative == "index.html":
                self._send(HTTPStatus.OK, FALLBACK_PAGE, "text/html; charset=utf-8")
            else:
                self._not_found()
            return
        ext = os.path.splitext(target)[1].lower()
        kind = _TYPES.get(ext) or mimetypes.guess_type(target)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind == "application/json":
            kind += "; charset=utf-8"
        with open(target, "rb") as f:
            body = f.read()
        self._send(HTTPStatus.OK, body, kind)

    def _api(self, name: str, query: dict[str, list[str]]) -> None:
        session = self.server.session
        try:
            self._json(HTTPStatus.OK, session.answer(name, query))
        except NotReady as exc:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc), **exc.progress})
        except LookupError as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc.args[0] if exc.args else exc)})
        except BadRequest as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Changed as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc)})


class ViewServer(ThreadingHTTPServer):
    """The server of one session (one trace, or two in a diff)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = MAX_CONNECTIONS
    """(socketserver's default backlog is 5: a burst of connections waited a
    second each for the kernel's retry.)"""

    def __init__(self, session: Session, host: str = "127.0.0.1", port: int = 0, *,
                 token: str | None = None, static_dir: str = STATIC_DIR,
                 log: Callable[[str], None] | None = None,
                 request_seconds: float = REQUEST_SECONDS,
                 send_seconds: float = SEND_SECONDS) -> None:
        self.session = session
        self.request_seconds = request_seconds
        self.send_seconds = send_seconds
        self.host = host
        self.token = token or secrets.token_urlsafe(24)
        self.static_dir = static_dir
        self.log = log
        self._open = 0
        self._open_lock = threading.Lock()
        if ":" in host:
            self.address_family = __import__("socket").AF_INET6
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection, or past :data:`MAX_CONNECTIONS` a 503
        at once (written without waiting: it fits in a fresh socket's buffer)."""
        with self._open_lock:
            full = self._open >= MAX_CONNECTIONS
            if not full:
                self._open += 1
        if full:
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._closed()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._closed()

    def _closed(self) -> None:
        with self._open_lock:
            self._open -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        """What escaped a request's handling: a client that went away (reset
        mid-request, or closed before its answer) is no news; anything else is
        one line in the log, never the traceback socketserver would print."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        if self.log is not None:
            self.log(f"internal error: {type(exc).__name__}: {exc}".translate(_CONTROL))

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{self.token}/"

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (tests); ``shutdown()`` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="blocktrace-view",
                                  daemon=True)
        thread.start()
        return thread


def serve(models: Sequence[Model], host: str = "127.0.0.1", port: int = 0) -> ViewServer:
    """A started server for ``models`` (tests and embedders)."""
    server = ViewServer(Session(list(models)), host, port)
    server.start()
    return server

