"""``blocktrace view TRACE [B]``: step through a trace (or a diff) in the browser."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from blocktrace.cli import CliError

__all__ = ["register"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "view",
        help="step through a trace (or the diff of two) in the browser",
        description=(
            "Open TRACE (a blocktrace trace or any EIP-3155 client trace) in a local "
            "viewer, or the diff of A and B side by side.  A server on 127.0.0.1 (a free "
            "port, a random token in the URL) serves the page and answers its questions; "
            "the browser is opened unless --no-browser.  --html writes one self-contained "
            "page instead.  Exit status 2: an unusable input."
        ),
    )
    parser.add_argument("traces", nargs="+", metavar="TRACE",
                        help="the trace to view, or two traces to view their diff")
    parser.add_argument("--no-browser", action="store_true",
                        help="only print the URL; do not open a browser")
    parser.add_argument("--port", type=_port, default=0, metavar="N",
                        help="port to listen on (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                        help="address to listen on (default 127.0.0.1; anything else makes "
                        "the trace readable from other machines by whoever has the URL)")
    parser.add_argument("--html", metavar="OUT.html",
                        help="write one self-contained page (no server) for a small trace")
    parser.add_argument("--force", action="store_true", help="overwrite OUT.html")
    parser.add_argument("--dialect", metavar="NAME",
                        help="read client traces as this EIP-3155 dialect (default: detect)")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from blocktrace.eip3155 import DIALECTS
    from blocktrace.eip3155.reader import TraceError as ClientTraceError
    from blocktrace.format import TraceError
    from blocktrace.view.model import Model, open_model

    if len(args.traces) > 2:
        raise CliError("give one trace, or two to view their diff")
    if args.dialect is not None and args.dialect not in DIALECTS:
        raise CliError(f"unknown dialect {args.dialect!r} (known: {', '.join(sorted(DIALECTS))})")
    models: list[Model] = []
    for path in args.traces:
        try:
            models.append(open_model(path, args.dialect))
        except (TraceError, ClientTraceError) as exc:  # 1 where verify says TAMPERED
            raise CliError(str(exc), exc.exit_status) from None
        except OSError as exc:
            raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if args.html:
        from blocktrace.view.html import HtmlTooLarge, HtmlUnreadable, write_html

        if os.path.exists(args.html) and not args.force:
            raise CliError(f"{args.html} exists: not overwriting it (use --force)")
        if any(os.path.exists(args.html) and os.path.samefile(args.html, p)
               for p in args.traces):
            raise CliError(f"{args.html}: is a trace being viewed; not writing over it")
        try:
            write_html(models, args.html)
        except HtmlTooLarge as exc:
            raise CliError(str(exc)) from None
        except HtmlUnreadable as exc:
            raise CliError(str(exc), exc.status) from None
        except OSError as exc:
            raise CliError(f"{args.html}: cannot write: {exc.strerror or exc}") from None
        sys.stderr.write(f"blocktrace view: wrote {args.html}\n")
        return 0
    return _serve(models, args)


def _log(line: str) -> None:
    sys.stderr.write(f"blocktrace view: {line}\n")


def _seconds(name: str, default: float) -> float:
    """A deadline of the server from the environment (tests use short ones)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise CliError(f"{name}={text[:40]!r}: not a number of seconds above 0")
    return value


def _serve(models: list[Any], args: argparse.Namespace) -> int:
    from blocktrace.view.server import REQUEST_SECONDS, SEND_SECONDS, ViewServer, is_loopback
    from blocktrace.view.session import Session

    if not is_loopback(args.host):
        sys.stderr.write(
            f"blocktrace view: warning: listening on {args.host}, not loopback: anyone who "
            "can reach it and has the URL (its token) can read the trace\n")
    try:
        server = ViewServer(Session(models), args.host, args.port, log=_log,
                            request_seconds=_seconds("BLOCKTRACE_VIEW_REQUEST_SECONDS",
                                                     REQUEST_SECONDS),
                            send_seconds=_seconds("BLOCKTRACE_VIEW_SEND_SECONDS", SEND_SECONDS))
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: "
                       f"{exc.strerror or exc}") from None
    sys.stdout.write(f"blocktrace view: {server.url}\n")
    sys.stdout.flush()
    if not args.no_browser:
        import webbrowser

        try:
            opened = webbrowser.open(server.url)
        except webbrowser.Error:
            opened = False
        if not opened:  # no display, no browser: open() says False and raises nothing
            sys.stderr.write("blocktrace view: no browser found to open; open the URL above\n")
            sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
