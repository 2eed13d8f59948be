"""``blocktrace snapshot`` and ``blocktrace serve``: step-by-step snapshots of a
program, once from the command line or as a confined HTTP service."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

import msgspec

from blocktrace.cli import CliError, positive_float, positive_int, text_token
from blocktrace.limits import (
    MAX_SNAPSHOT_INPUT_BYTES,
    InputTooLargeError,
    read_small_file,
    size_text,
)
from blocktrace.snapshot.model import MAX_STEPS, Limits, SnapshotRequest
from blocktrace.snapshot.runner import Confinement, run_request_sync, sandbox_kind

MAX_CONNECTIONS = 512
"""Connections ``serve`` holds at once from all clients together (or
``--max-connections``, when larger): each is a file descriptor, and the usual
limit is 1024."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "snapshot",
        help="run a program confined and print its steps (stack, heap, output) as JSON",
        description="Read one request {\"source\", \"input\", \"steps\", \"format\"} as JSON on "
        "stdin, or take SCRIPT with --input and --steps, run it in a confined child process "
        "and write the response (docs/SNAPSHOTS.md) to stdout.  Exit status: 0 when the "
        "program ended normally, 1 when it raised or hit a limit, 2 for bad input.",
    )
    p.add_argument("script", nargs="?", metavar="SCRIPT", help="the program (default: a request "
                   "on stdin)")
    p.add_argument("--input", metavar="FILE", help="the program's stdin (with SCRIPT)")
    p.add_argument("--steps", type=_steps, default=1000, metavar="N",
                   help=f"record at most N steps (with SCRIPT; default 1000, at most {MAX_STEPS})")
    p.add_argument("--format", choices=("snapshots", "trace"), default=None,
                   help="snapshots (default) or a verifiable blocktrace trace (JSON Lines)")
    p.add_argument("--genesis", type=text_token, metavar="TOKEN",
                   help="genesis token of the trace (--format trace)")
    p.add_argument("--pretty", action="store_true", help="indent the JSON response")
    _limit_options(p)
    p.set_defaults(handler=snapshot)

    s = sub.add_parser(
        "serve",
        help="serve snapshots over HTTP: POST /trace, GET /health (needs uvicorn)",
        description="Serve POST /trace (a snapshot request as JSON) and GET /health with "
        "uvicorn (pip install 'blocktrace[server]').  Each request runs in its own confined "
        "child process; when all workers are busy and the queue is full the answer is 503.",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=8000,
                   help="port (default 8000; 0 picks a free one, printed at start)")
    s.add_argument("--workers", type=positive_int, default=2, metavar="N",
                   help="programs run at once (default 2)")
    s.add_argument("--queue", type=_non_negative_int, default=8, metavar="N",
                   help="requests that may wait for a worker before 503 (default 8)")
    s.add_argument("--max-body", type=positive_int, default=256 * 1024, metavar="BYTES",
                   help="largest request body accepted (default 262144)")
    s.add_argument("--max-steps", type=_steps, default=10_000, metavar="N",
                   help=f"largest 'steps' a request may ask for (default 10000, at most "
                   f"{MAX_STEPS})")
    s.add_argument("--cors-origin", type=_origin, action="append", default=[],
                   metavar="ORIGIN",
                   help="let web pages from ORIGIN (e.g. https://tutor.example.org, or * for "
                   "any) call the service from the browser (CORS; repeatable; default: none)")
    s.add_argument("--request-timeout", type=positive_float, default=10.0, metavar="SECONDS",
                   help="time a request's headers and body have to arrive, from its first "
                   "byte (a connection's first request: from its opening); past it the "
                   "answer is 408 and the connection is closed (default 10)")
    s.add_argument("--send-timeout", type=positive_float, default=60.0, metavar="SECONDS",
                   help="time a client has to take an answer once it is ready; past it "
                   "the connection is dropped (default 60)")
    s.add_argument("--max-connections", type=positive_int, default=64, metavar="N",
                   help="connections served at once from one client address (default 64; "
                   f"{MAX_CONNECTIONS} from all): one more is answered 503 and closed")
    _limit_options(s)
    s.set_defaults(handler=serve)


def _limit_options(p: argparse.ArgumentParser) -> None:
    d = Limits()
    p.add_argument("--cpu", type=positive_int, default=d.cpu_seconds, metavar="SECONDS",
                   help=f"CPU time limit of a run (default {d.cpu_seconds})")
    p.add_argument("--wall", type=positive_float, default=d.wall_seconds, metavar="SECONDS",
                   help=f"wall-clock limit of a run (default {d.wall_seconds:g})")
    p.add_argument("--memory", type=positive_int, default=d.memory_bytes >> 20, metavar="MIB",
                   help=f"address-space limit in MiB (default {d.memory_bytes >> 20})")
    p.add_argument("--disk", type=positive_int, default=d.disk_bytes >> 20, metavar="MIB",
                   help=f"all the program's files together, in MiB (default {d.disk_bytes >> 20})")
    p.add_argument("--sandbox", choices=("auto", "bwrap", "landlock", "none"), default="auto",
                   help="kernel-enforced confinement: bubblewrap when it works, else Landlock "
                   "and seccomp (auto, the default), or require one of them; none needs "
                   "--unsafe-no-sandbox")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run untrusted code with no kernel-enforced confinement (only the "
                   "audit hook and resource limits); every response says so")



def _port(text: str) -> int:
    value = 0 if text.strip() == "0" else positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


def _steps(text: str) -> int:
    value = positive_int(text)
    if value > MAX_STEPS:
        raise argparse.ArgumentTypeError(f"at most {MAX_STEPS}: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def _origin(text: str) -> str:
    """``*`` or a web origin as browsers send it: ``scheme://host[:port]``."""
    if text == "*":
        return text
    scheme, sep, rest = text.rstrip("/").partition("://")
    host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    if (not sep or scheme.lower() not in ("http", "https") or not host or "/" in rest
            or any(c in rest for c in "?#@ ") or (port and not port.isdigit())):
        raise argparse.ArgumentTypeError(
            f"not an origin (scheme://host[:port], or *): {text!r}")
    return text.rstrip("/")



def _limits(args: argparse.Namespace, max_steps: int) -> Limits:
    return Limits(cpu_seconds=args.cpu, wall_seconds=args.wall, memory_bytes=args.memory << 20,
                  disk_bytes=args.disk << 20, max_steps=max_steps)


UNSAFE_WARNING = ("WARNING: running untrusted code WITHOUT kernel-enforced confinement "
                  "(--unsafe-no-sandbox): a program can read and write this machine's files "
                  "and start processes")


def _confinement(args: argparse.Namespace, command: str) -> tuple[Confinement, str]:
    """The confinement asked for and the layer it gives here; refuses to run
    without a kernel layer unless told ``--unsafe-no-sandbox``."""
    if args.unsafe_no_sandbox:
        if args.sandbox not in ("auto", "none"):
            raise CliError(f"--unsafe-no-sandbox contradicts --sandbox {args.sandbox}")
        confinement = Confinement(sandbox="none")
    elif args.sandbox == "none":
        raise CliError("--sandbox none runs untrusted code unconfined: say so with "
                       "--unsafe-no-sandbox")
    else:
        confinement = Confinement(sandbox=args.sandbox)
    try:
        kind = sandbox_kind(confinement)
    except RuntimeError as exc:
        raise CliError(f"{exc} (--unsafe-no-sandbox runs it anyway)") from None
    if kind == "none":
        sys.stderr.write(f"blocktrace {command}: {UNSAFE_WARNING}\n")
    return confinement, kind


def _read_text(path: str, what: str) -> str:
    article = "an" if what[0] in "aeiou" else "a"
    try:
        data = read_small_file(path, MAX_SNAPSHOT_INPUT_BYTES, f"{article} {what}")
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except InputTooLargeError as exc:
        raise CliError(str(exc)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{what} {path} is not UTF-8 text") from None


def _request(args: argparse.Namespace) -> SnapshotRequest:
    if args.script is not None:
        source = _read_text(args.script, "script")
        text = _read_text(args.input, "input file") if args.input is not None else ""
        fields = {"source": source, "input": text, "steps": args.steps,
                  "format": args.format or "snapshots", "genesis": args.genesis}
        try:  # held to what a request may hold, as one on stdin is
            return msgspec.convert(fields, SnapshotRequest)
        except msgspec.ValidationError as exc:
            raise CliError(f"script {args.script}: {exc}") from None
    if args.input is not None:
        raise CliError("--input goes with SCRIPT; a request on stdin carries its own input")
    raw = sys.stdin.buffer.read(MAX_SNAPSHOT_INPUT_BYTES + 1)
    if len(raw) > MAX_SNAPSHOT_INPUT_BYTES:
        raise CliError(f"request on stdin is larger than {size_text(MAX_SNAPSHOT_INPUT_BYTES)}")
    if not raw.strip():
        raise CliError('no request on stdin: give a SCRIPT, or a JSON request on stdin '
                       '(echo \'{"source": "print(1)"}\' | blocktrace snapshot)')
    try:
        request = msgspec.json.decode(raw, type=SnapshotRequest)
    except msgspec.ValidationError as exc:
        raise CliError(f"invalid request on stdin: {exc}") from None
    except msgspec.DecodeError as exc:
        raise CliError(f"request on stdin is not JSON: {exc}") from None
    if args.format is not None:
        request = msgspec.structs.replace(request, format=args.format)
    if args.genesis is not None:
        request = msgspec.structs.replace(request, genesis=args.genesis)
    return request


def snapshot(args: argparse.Namespace) -> int:
    request = _request(args)
    confinement, _ = _confinement(args, "snapshot")
    try:
        limits = _limits(args, MAX_STEPS)
        result = run_request_sync(request, limits, confinement)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    body = result.body
    if args.pretty and result.content_type == "application/json":
        body = msgspec.json.format(body, indent=2) + b"\n"
    elif not body.endswith(b"\n"):
        body += b"\n"
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return 0 if result.status == "ok" else 1


def serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise CliError("needs uvicorn: pip install 'blocktrace[server]' "
                       "(in a checkout: pip install -e '.[server]')") from None
    from blocktrace.snapshot.app import SnapshotApp
    from blocktrace.snapshot.guard import guarded_protocol

    confinement, _ = _confinement(args, "serve")
    app = SnapshotApp(
        limits=_limits(args, args.max_steps), confinement=confinement,
        workers=args.workers, queue=args.queue, max_body=args.max_body,
        cors_origins=tuple(args.cors_origin),
    )
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"blocktrace serve: listening on http://{shown}:{port} "
                     f"(POST /trace, GET /health)\n")
    protocol = guarded_protocol(args.request_timeout, args.max_connections,
                                max(MAX_CONNECTIONS, args.max_connections), args.send_timeout)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            http=protocol)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 1


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket for the server, so a bad address is one line and exit 2."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
