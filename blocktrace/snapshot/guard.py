"""The snapshot service's connections, bounded in time and number.

uvicorn reads the requests, and has no limit on how long a request may take
to arrive: a connection that sends nothing, or sends its headers or body a
byte at a time (a "slowloris"), held a file descriptor for as long as the
client liked, and with enough of them new connections waited for the
descriptor limit.  :func:`guarded_protocol` makes a subclass of uvicorn's h11
protocol that

- gives each request ``request_seconds`` to arrive whole, headers and body,
  from its first byte (the first request of a connection: from the
  connection's opening), then answers ``408`` and closes the connection (the
  time between requests is uvicorn's ``timeout_keep_alive``); the program's
  run, after the body has arrived, is not timed here (``--wall`` bounds it);
- serves at most ``per_client`` connections from one address and
  ``total`` in all: one more is answered ``503`` at once and closed;
- gives each answer ``send_seconds`` to be taken by the client, from when the
  service hands it over whole (the service writes an answer in one piece, which
  the event loop buffers however large it is): an answer still not sent
  by then (a client that asked and stopped reading, its receive window shut)
  drops the connection, in one line on stderr.  Without this such a client held
  the connection, and the answer in the server's memory, for as long as it
  stayed connected.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["guarded_protocol"]


def _answer(status: bytes, text: str) -> bytes:
    body = (text + "\n").encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body) + body)


def guarded_protocol(request_seconds: float, per_client: int, total: int,
                     send_seconds: float = 60.0) -> type[H11Protocol]:
    """An h11 protocol class for one server (it counts that server's connections)."""
    too_slow = _answer(b"408 Request Timeout",
                       f"Request Timeout: the request did not arrive within {request_seconds:g} s")
    busy_client = _answer(b"503 Service Unavailable",
                          f"Service Unavailable: over {per_client} connections from one address")
    busy = _answer(b"503 Service Unavailable",
                   f"Service Unavailable: over {total} connections")
    open_by_client: Counter[str] = Counter()

    class Guarded(H11Protocol):
        _counted: str | None = None
        _timer: asyncio.TimerHandle | None = None
        _send_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            host = self.client[0] if self.client else ""
            refusal = (busy_client if open_by_client[host] >= per_client
                       else busy if open_by_client.total() >= total else None)
            if refusal is not None:
                self.transport.write(refusal)
                self.transport.close()
                return
            open_by_client[host] += 1
            self._counted = host
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._send_timer is not None:
                self._send_timer.cancel()
                self._send_timer = None
            if self._counted is not None:
                open_by_client[self._counted] -= 1
                if open_by_client[self._counted] <= 0:
                    del open_by_client[self._counted]
                self._counted = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._timer is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the first bytes of a request after the last one's answer
            super().data_received(data)
            if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                self._disarm()  # the request is here whole (or the connection is done)

        def _arm(self) -> None:
            self._timer = self.loop.call_later(request_seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def on_response_complete(self) -> None:
            # The answer is handed over whole: from now the client has send_seconds
            # to take what the transport still holds (an earlier answer's deadline,
            # when one runs, stays: it is the older).
            if self._send_timer is None and self.transport.get_write_buffer_size():
                self._send_timer = self.loop.call_later(send_seconds, self._not_taken)
            super().on_response_complete()

        def pause_writing(self) -> None:
            # (an answer written in several parts: its first part already fills the buffer)
            if self._send_timer is None:
                self._send_timer = self.loop.call_later(send_seconds, self._not_taken)
            super().pause_writing()

        def _not_taken(self) -> None:
            self._send_timer = None
            left = self.transport.get_write_buffer_size()
            if not left:
                return
            who = self.client[0] if self.client else "a client"
            sys.stderr.write(f"blocktrace serve: an answer not taken within {send_seconds:g} s "
                             f"({left} bytes left): connection from {who} dropped\n")
            self.transport.abort()

        def _too_slow(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(too_slow)
            self.transport.close()

    return Guarded
