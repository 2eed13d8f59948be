"""Shared helpers for the snapshot tests: run a request confined, find leftovers,
run the real server."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from blocktrace.snapshot import Confinement, Limits, SnapshotRequest, run_request_sync
from blocktrace.snapshot.confine import bwrap_usable

# Small limits keep every hostile program fast; the clocks are generous.  A run's
# clocks count its start too (a confined interpreter importing blocktrace: a few
# tenths of a second here, seconds on a slow machine with others at once), and a
# program stopped by a clock it was not meant to meet fails its test.  The tests of
# the clock limits themselves set their own (WALL_LIMITS, and a CPU limit of 1 s).
TEST_LIMITS = Limits(cpu_seconds=10, wall_seconds=60.0, memory_bytes=256 * 1024 * 1024)
WALL_LIMITS = Limits(cpu_seconds=10, wall_seconds=4.0, memory_bytes=256 * 1024 * 1024)
"""For a program that sleeps: stopped by the wall clock, however loaded the machine."""


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) processes below ``pid``, found through /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] == b"Z":
            continue
        parents[int(entry)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.extend(kids)
        frontier.extend(kids)
    return found


def snap(
    source: str, *, input: str = "", steps: int = 200, limits: Limits = TEST_LIMITS,
    confinement: Confinement | None = None, format: str = "snapshots",
) -> dict[str, Any]:
    """Run ``source`` confined and return the decoded response."""
    request = SnapshotRequest(source=source, input=input, steps=steps, format=format)  # type: ignore[arg-type]
    result = run_request_sync(request, limits, confinement)
    assert result.content_type == "application/json"
    response: dict[str, Any] = msgspec.json.decode(result.body)
    assert response["status"] == result.status
    return response


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fails the test if it leaves any process of ours running."""
    yield
    left = descendants(os.getpid())
    assert left == [], f"processes left behind: {left}"


needs_bwrap = pytest.mark.skipif(
    bwrap_usable() is None,
    reason="bubblewrap (bwrap) is not installed or cannot create namespaces here",
)


class Server:
    """``blocktrace serve --port 0`` in a subprocess; the port comes from its
    "listening on" line."""

    def __init__(self, *args: str, launcher: list[str] | None = None) -> None:
        """``launcher`` stands for ``python -m blocktrace`` (a script that sets
        the server's process up first and then runs it)."""
        self.proc = subprocess.Popen(
            [*(launcher or [sys.executable, "-m", "blocktrace"]), "serve", "--port", "0",
             "--cpu", "10", "--wall", "60", *args],  # generous: see TEST_LIMITS
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stderr is not None
        self.log: list[str] = []
        while True:
            line = self.proc.stderr.readline()
            self.log.append(line)
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+) ", line)
            if match is not None:
                break
            if not line:
                self.stop()
                raise RuntimeError(f"the server did not start: {''.join(self.log)!r}")
        self.port = int(match.group(1))
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _, _ = self.request("GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start")
            time.sleep(0.1)

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 30
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def trace(self, payload: dict[str, Any]) -> tuple[int, Any]:
        status, _, body = self.request("POST", "/trace", msgspec.json.encode(payload))
        return status, msgspec.json.decode(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None and not hasattr(self, "_drain"):
            self.proc.stderr.close()
