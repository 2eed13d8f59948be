"""The snapshot service: a hand-written ASGI application (no framework).

``POST /trace`` takes a :class:`SnapshotRequest` as JSON and answers with the
run's :class:`SnapshotResponse` (or, for ``"format": "trace"``, the blocktrace
trace as JSON Lines).  ``GET /health`` says the service is up and how busy it
is.  Every run happens in its own confined child (see
:mod:`blocktrace.snapshot.runner`); at most ``workers`` run at once and at most
``queue`` more wait, beyond which a request is answered ``503`` at once rather
than piling up.  A bad request gets a 4xx whose JSON body holds a one-line
``error``.

Browsers: a page may call the service only from an origin allowed with
``cors_origins`` (the command line's ``--cors-origin``; none by default).  A
request from such a page gets the CORS headers, and its preflight ``OPTIONS`` a
``204``, so a Python Tutor or willow front end served from there can call the
service directly, as willow's own tracer service allowed.  A request that
carries any other ``Origin`` (a browser sends one with every cross-origin
request) is refused with ``403`` before anything runs: any page open in a
browser on the machine could otherwise have its program run here by a plain
form POST, which browsers send without a preflight.  Clients that are not
browsers send no ``Origin`` and are not affected.

Every response names the kernel-enforced layer in ``X-Blocktrace-Sandbox``
(``bwrap``, ``landlock`` or ``none``).  With none (``sandbox="none"``, the
command line's ``--unsafe-no-sandbox``) every response also carries
``X-Blocktrace-Warning`` and JSON bodies a ``warning`` member saying that the
program ran unconfined.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from blocktrace.snapshot.model import Limits, SnapshotRequest
from blocktrace.snapshot.runner import (
    Confinement,
    SandboxKind,
    confinement_facts,
    run_request,
    sandbox_kind,
)

__all__ = ["SnapshotApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_decoder = msgspec.json.Decoder(SnapshotRequest)

_FOREIGN_PAGE = (
    "a request from a web page of another origin is refused (its program would run): "
    "start the service with --cors-origin ORIGIN to let that page's origin call it"
)
_EXPOSED = b"x-blocktrace-status, x-blocktrace-limit, x-blocktrace-sandbox, x-blocktrace-warning"
"""The response headers a page allowed by CORS may read."""

UNCONFINED = ("this server runs programs WITHOUT kernel-enforced confinement "
              "(--unsafe-no-sandbox): only the audit hook and resource limits")


class _HTTPError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SnapshotApp:
    """The ASGI application; one instance serves every request of a server."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        confinement: Confinement | None = None,
        workers: int = 2,
        queue: int = 8,
        max_body: int = 256 * 1024,
        cors_origins: tuple[str, ...] = (),
    ) -> None:
        self.limits = limits or Limits()
        self.confinement = confinement or Confinement()
        self.workers = max(1, workers)
        self.queue = max(0, queue)
        self.max_body = max_body
        self.cors_origins = frozenset(_origin_key(o) for o in cors_origins)
        """Origins (``scheme://host[:port]``) whose pages may call the service;
        ``*``: any."""
        self.running = 0
        self.waiting = 0
        self.served = 0
        self._slots: asyncio.Semaphore | None = None
        self._sandbox: SandboxKind | None = None
        self._facts: dict[str, Any] | None = None

    @property
    def sandbox(self) -> SandboxKind:
        """The kernel-enforced layer of this server's runs."""
        if self._sandbox is None:
            self._sandbox = sandbox_kind(self.confinement)
        return self._sandbox

    @property
    def facts(self) -> dict[str, Any]:
        """What the runs can see of the host and how their disk quota holds."""
        if self._facts is None:
            self._facts = confinement_facts(self.sandbox, self.confinement)
        return self._facts

    def _marks(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-blocktrace-sandbox", self.sandbox.encode())]
        if self.sandbox == "none":
            headers.append((b"x-blocktrace-warning", UNCONFINED.encode()))
        return headers

    def _mark_json(self, body: bytes) -> bytes:
        """``body`` (a JSON object) with the unconfined warning as its first member."""
        if self.sandbox != "none" or not body.startswith(b"{"):
            return body
        rest = body[1:]
        warning = b'"warning":' + msgspec.json.encode(UNCONFINED)
        return b"{" + warning + (b"," + rest if rest.lstrip() != b"}" else rest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            origin = _header(scope, b"origin")
            allowed = self._allows(origin)
            marked = self._marker(send, self._cors(origin, allowed))
            try:
                if origin is not None and not allowed:
                    # A page of another origin: a browser sends a form or text/plain
                    # POST without asking first (no preflight), so refusing to let the
                    # page read the answer is not enough -- the program would run.
                    raise _HTTPError(403, _FOREIGN_PAGE)
                if allowed and scope["method"] == "OPTIONS":
                    await self._preflight(scope, marked)
                    return
                await self._http(scope, receive, marked)
            except _HTTPError as exc:
                await _send_json(marked, exc.status, {"error": exc.reason})

    def _allows(self, origin: bytes | None) -> bool:
        """Whether a page from ``origin`` may read the service's answers."""
        if origin is None or not self.cors_origins:
            return False
        return "*" in self.cors_origins or (
            _origin_key(origin.decode("latin-1")) in self.cors_origins)

    def _cors(self, origin: bytes | None, allowed: bool) -> list[tuple[bytes, bytes]]:
        """The CORS headers of a response to a request from ``origin``."""
        if not self.cors_origins:
            return []
        any_origin = "*" in self.cors_origins
        headers = [] if any_origin else [(b"vary", b"origin")]  # the answer depends on it
        if allowed and origin is not None:
            headers += [(b"access-control-allow-origin", b"*" if any_origin else origin),
                        (b"access-control-expose-headers", _EXPOSED)]
        return headers

    async def _preflight(self, scope: Scope, send: Send) -> None:
        """A browser asks whether its page may make the request (CORS preflight)."""
        path = scope["path"]
        if path not in ("/trace", "/health"):
            raise _HTTPError(404, f"no such endpoint: {path} (POST /trace, GET /health)")
        allowed = b"POST" if path == "/trace" else b"GET"
        await send({"type": "http.response.start", "status": 204, "headers": [
            (b"access-control-allow-methods", allowed),
            (b"access-control-allow-headers", b"content-type"),
            (b"access-control-max-age", b"3600"),
        ]})
        await send({"type": "http.response.body", "body": b""})

    def _marker(self, send: Send, cors: list[tuple[bytes, bytes]]) -> Send:
        """``send`` that adds the sandbox header, the CORS headers ``cors``, and
        when unconfined the warning (so the start of a response waits for its one
        body message)."""
        start: Message | None = None

        async def marked(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body" and start is not None:
                headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                body = message.get("body", b"")
                if dict(headers).get(b"content-type") == b"application/json":
                    body = self._mark_json(body)
                if start["status"] != 204:  # a 204 has no Content-Length (RFC 9110)
                    headers.append((b"content-length", str(len(body)).encode()))
                headers += [*self._marks(), *cors]
                await send({**start, "headers": headers})
                start = None
                message = {**message, "body": body}
            await send(message)

        return marked

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    kind = await asyncio.to_thread(sandbox_kind, self.confinement)
                    self._facts = await asyncio.to_thread(confinement_facts, kind,
                                                          self.confinement)
                    self._sandbox = kind
                except RuntimeError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/health":
            if method not in ("GET", "HEAD"):
                raise _HTTPError(405, f"{method} is not allowed on /health (use GET)")
            await _send_json(send, 200, self.health())
        elif path == "/trace":
            if method != "POST":
                raise _HTTPError(405, f"{method} is not allowed on /trace (use POST)")
            request = self._parse(await self._body(scope, receive))
            await self._run(request, send)
        else:
            raise _HTTPError(404, f"no such endpoint: {path} (POST /trace, GET /health)")

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` reports."""
        return {
            "status": "ok", "running": self.running, "queued": self.waiting,
            "workers": self.workers, "queue": self.queue, "served": self.served,
            "sandbox": self.sandbox, "auditHook": self.confinement.audit_hook, **self.facts,
        }

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise _HTTPError(400, "Content-Length is not a number") from None
                if declared > self.max_body:
                    raise _HTTPError(413, f"request body over {self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _HTTPError(400, "client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _HTTPError(413, f"request body over {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _parse(self, body: bytes) -> SnapshotRequest:
        try:
            request = _decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise _HTTPError(422, f"invalid request: {_one_line(exc)}") from None
        except msgspec.DecodeError as exc:
            raise _HTTPError(400, f"malformed JSON: {_one_line(exc)}") from None
        if request.steps > self.limits.max_steps:
            raise _HTTPError(422, f"invalid request: steps over {self.limits.max_steps}")
        return request

    async def _run(self, request: SnapshotRequest, send: Send) -> None:
        if self.running + self.waiting >= self.workers + self.queue:
            await _send_json(send, 503, {"error": "busy: every worker and queue place is taken"},
                             extra=[(b"retry-after", b"1")])
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            result = await run_request(request, self.limits, self.confinement)
        except Exception as exc:
            sys.stderr.write(f"blocktrace serve: run failed: {type(exc).__name__}: {exc}\n")
            raise _HTTPError(500, f"the run could not be carried out: {_one_line(exc)}") from None
        finally:
            self.running -= 1
            self._slots.release()
        self.served += 1
        headers = [(b"x-blocktrace-status", result.status.encode())]
        if result.limit is not None:
            headers.append((b"x-blocktrace-limit", result.limit.encode()))
        await _send(send, 200, result.body, result.content_type, headers)


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The request's header ``name`` (lower case), or None.  Sent more than once,
    its values joined by commas (RFC 9110): an ``Origin`` sent twice is then
    nobody's origin, and refused."""
    found = [bytes(value) for key, value in scope.get("headers", []) if key == name]
    return b", ".join(found) if found else None


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _origin_key(origin: str) -> str:
    """An origin as compared: scheme and host in lower case, no trailing ``/``,
    no default port -- as browsers serialise the ``Origin`` they send, so a
    service started with ``--cors-origin https://Tutor.example:443`` allows
    the page whose browser sends ``https://tutor.example``."""
    key = origin.strip().rstrip("/").lower()
    scheme = key.partition("://")[0]
    port = _DEFAULT_PORTS.get(scheme)
    if port is not None and key.endswith(port) and "]" not in key[-len(port):]:
        key = key[: -len(port)]
    return key


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


async def _send_json(
    send: Send, status: int, payload: dict[str, Any],
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await _send(send, status, msgspec.json.encode(payload), "application/json", extra or [])


async def _send(
    send: Send, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
