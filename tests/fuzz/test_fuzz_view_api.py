"""The viewer's whole API on randomly damaged traces: a real ``blocktrace view
--no-browser`` server, asked over real sockets on 127.0.0.1.

The damage is test_fuzz_one_answer.py's (``cases``: real traces of format
versions 4 and 3, plain and ``.jsonl.zst``, sealed and cut short, a byte
flipped, lines dropped, repeated or swapped, cut mid-line or mid-frame, frames
shuffled or foreign, an index missing, stale, corrupt or re-stamped), and
about a third of the examples view the diff of the damaged trace and its
original.  ``blocktrace verify --json --no-index`` gives the answer; then
every call the page makes (docs/VIEW.md, ``static/data.js``: ``meta``,
``verify``, ``window``, ``stack``, ``values``, ``source``, ``nav`` of every
kind, ``search``, ``timeline``, ``diff``) with in-range and out-of-range
numbers, on each trace of the session, must

- answer with a status line, 200 with JSON, or a 4xx/503 whose body is JSON
  with a one-line ``error`` -- never a 500, never a traceback, never a hang
  (each request has 30 s);
- ``verify`` says what ``blocktrace verify`` says: the same status, and for
  TAMPERED the same line (the page's banner shows this answer: nothing past
  the damage is shown as verified);
- ``meta`` answers (200) once the tables are done, even when they could not
  be built (its ``error`` says why), so the page can open;
- the server goes on serving (``meta`` answers after everything) and writes
  no traceback on its stderr, one ``blocktrace view:`` line per event.

A server that refuses to start must say as a reader does what verify says
(exit 1 with its TAMPERED line, or exit 2).  The examples are the same on every
run (``harness.FUZZ``, ``EXAMPLES``); ``BLOCKTRACE_FUZZ=deep`` searches longer.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from .harness import FUZZ
from .test_fuzz_one_answer import _VERDICTS, Case, Seed, _bt, _lay_out, _tampered_at, cases

EXAMPLES = int(os.environ.get("BLOCKTRACE_FUZZ_EXAMPLES", "4"))
"""Each example starts a server (and its table builder): few in CI."""

REQUEST_TIMEOUT = 30.0
"""A request not answered within this is a hang."""


@pytest.fixture(scope="module")
def seeds(damage_seeds: dict[str, Seed]) -> dict[str, Seed]:
    return damage_seeds


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bt-fuzz-view-api-") as d:
        yield Path(d)


_counter = itertools.count()


@dataclass
class Answer:
    status: int
    body: bytes
    json: Any


class Server:
    """A running ``blocktrace view --no-browser`` (its URL's port and token)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, stderr: Path) -> None:
        self.proc = proc
        self.port = int(url.split("/")[2].split(":")[1])
        self.token = url.split("/")[3]
        self.stderr = stderr

    def get(self, call: str) -> Answer:
        request = (f"GET /{self.token}/api/{call} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=REQUEST_TIMEOUT) as sock:
            sock.sendall(request)
            got = b""
            while chunk := sock.recv(1 << 20):  # (TimeoutError: a hung request)
                got += chunk
        head, sep, body = got.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 "), f"{call}: no status line: {got[:300]!r}"
        status = int(head.split()[1])
        assert b"Traceback" not in body, (call, body[:2000])
        assert status in (200, 400, 404, 409, 503), (call, status, body[:2000])
        assert b"application/json" in head, (call, head)
        answer = msgspec.json.decode(body)
        if status != 200:
            error = answer.get("error")
            assert isinstance(error, str) and error and "\n" not in error, (call, body[:2000])
        return Answer(status, body, answer)

    def log(self) -> str:
        return self.stderr.read_text("utf-8", "backslashreplace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _start(argv: list[str], env: dict[str, str], stderr: Path) -> Server | tuple[int, str]:
    """The server, or (exit status, stderr) when it refused to start."""
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "blocktrace", *argv],
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode()
    if not first.startswith("blocktrace view: http://"):
        proc.wait(60)
        return proc.returncode, stderr.read_text("utf-8", "backslashreplace")
    return Server(proc, first.split()[-1], stderr)


def _settled(server: Server, count: int) -> list[dict[str, Any]]:
    """``meta``'s traces once every trace's tables are done (built, or failed)
    and every verify answer is in."""
    deadline = time.monotonic() + 120
    while True:
        meta = server.get("meta")
        assert meta.status == 200, ("meta", meta.status, meta.json)
        traces = meta.json["traces"]
        assert len(traces) == count, traces
        done = all(t["ready"] or t.get("error") for t in traces)
        verdicts = [server.get(f"verify?t={t}").json["status"] for t in range(count)]
        if done and "pending" not in verdicts:
            return list(traces)
        assert time.monotonic() < deadline, (traces, verdicts)
        time.sleep(0.05)


def _calls(draw: Any, meta: dict[str, Any], t: int, diff: bool) -> list[str]:
    """Every call the page makes of trace ``t``, with numbers in and out of range."""
    steps = meta.get("steps") or 0
    step = st.integers(-1, steps + 2) if steps else st.integers(-1, 300)
    some_step = draw(step)
    files = [*(meta.get("files") or []), "/etc/passwd", "fuzzseed.py"]
    file = draw(st.sampled_from(files))
    calls = [
        "meta", f"verify?t={t}",
        f"window?t={t}&from={draw(step)}&count={draw(st.sampled_from([1, 7, 100, 5000]))}",
        f"window?t={t}&from=0&count=5000",
        f"stack?t={t}&step={some_step}", f"values?t={t}&step={some_step}",
        f"source?t={t}&file={quote(file)}",
        f"search?t={t}&name={draw(st.sampled_from(['total', 'x', 'i', 'stack', '']))}"
        f"&text={draw(st.sampled_from(['', '1', 'a']))}&limit={draw(st.sampled_from([1, 100]))}"
        f"&from={draw(step)}",
        f"timeline?t={t}&from={draw(step)}&to={draw(step)}&buckets=200",
        f"timeline?t={t}&from=0&to={max(steps - 1, 0)}&buckets=200",
    ]
    for how in ("next", "prev", "over", "back-over", "out", "back-out", "next-exception",
                "prev-exception"):
        calls.append(f"nav?t={t}&step={draw(step)}&how={how}")
    line = draw(st.integers(-1, 60))
    for how in ("next-hit", "prev-hit"):
        calls.append(f"nav?t={t}&step={some_step}&how={how}&file={quote(file)}&line={line}")
    function = draw(st.sampled_from(["<module>", "risky", "main", "fuzzseed.py:risky", "nope"]))
    for how in ("next-call", "prev-call"):
        calls.append(f"nav?t={t}&step={some_step}&how={how}&function={quote(function)}")
    if diff:
        calls.append("diff")
    return calls


def check_served(case: Case, where: Path, draw: Any) -> None:
    where.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(where / "cache"),
           "BLOCKTRACE_VIEW_CACHE": str(where / "view-cache")}
    trace = _lay_out(case, where, env)
    reference = _bt(["verify", "--json", "--no-index", trace], env=env)
    verdict = reference.returncode
    assert verdict in (0, 1, 2, 3), reference.stderr
    report = msgspec.json.decode(reference.stdout) if reference.stdout.strip() else {}
    line = report.get("line")
    diff = draw(st.integers(0, 2)) == 0
    traces = [str(trace), str(case.seed.path)] if diff else [str(trace)]
    if diff and draw(st.booleans()):
        traces.reverse()
    damaged = traces.index(str(trace))
    started = _start(["view", "--no-browser", *traces], env, where / "view.err")
    event(f"verify exit {verdict}, {'diff' if diff else 'one trace'}, "
          f"{'served' if isinstance(started, Server) else 'refused'}")
    if not isinstance(started, Server):
        status, err = started
        assert "Traceback" not in err and err.count("\n") == 1, err
        assert err.startswith("blocktrace view: "), err
        assert verdict in (1, 2), f"refused what verify passes (exit {verdict}): {err}"
        assert status == verdict, (verdict, status, err)
        if verdict == 1:
            assert _tampered_at(err, line), (line, err)
        return
    server = started
    try:
        metas = _settled(server, len(traces))
        said = server.get(f"verify?t={damaged}").json
        assert said["status"] == _VERDICTS[verdict], (report, said)
        if verdict == 1:
            assert said["line"] == line, (report, said)
        if diff:  # the other side: the seed as recorded
            other = server.get(f"verify?t={1 - damaged}").json
            assert other["status"] == ("unsealed" if "unsealed" in case.seed.name
                                       else "sealed"), other
        for t, meta in enumerate(metas):
            for call in _calls(draw, meta, t, diff):
                got = server.get(call)
                event(f"{call.split('?')[0]} {got.status}")
                if got.status == 409:
                    raise AssertionError(f"{call}: 409 of a file nobody changed: {got.json}")
                if call.startswith("verify") and t == damaged:
                    assert got.json == said, (call, got.json, said)
        assert server.proc.poll() is None, server.log()
        assert server.get("meta").status == 200
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log, log
    for text in log.splitlines():
        assert text.startswith("blocktrace view: "), log


@settings(FUZZ, max_examples=EXAMPLES)
@given(data=st.data())
def test_every_api_call_on_a_damaged_trace(
    data: st.DataObject, seeds: dict[str, Seed], scratch: Path
) -> None:
    case = data.draw(cases(seeds))
    check_served(case, scratch / f"case-{next(_counter)}", data.draw)


# -- what the search found ---------------------------------------------------------------


def test_meta_answers_when_the_tables_cannot_be_built(
    seeds: dict[str, Seed], tmp_path: Path
) -> None:
    """A line past where the trace is TAMPERED that is not JSON: the tables
    cannot be built, and ``meta`` answered 400 from then on -- the page could
    not load (``cannot load the trace``) and never showed verify's TAMPERED.
    Now meta answers 200 with the reason in ``error``, verify says TAMPERED at
    that line, and the calls that need the tables say why in one line."""
    from .test_fuzz_one_answer import _byte_set

    trace = tmp_path / "t.jsonl"
    trace.write_bytes(_byte_set(seeds["v4.jsonl"].data, 12, 0))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "BLOCKTRACE_VIEW_CACHE": str(tmp_path / "view-cache")}
    server = _start(["view", "--no-browser", str(trace)], env, tmp_path / "view.err")
    assert isinstance(server, Server), server
    try:
        (meta,) = _settled(server, 1)
        assert meta["ready"] is False and "not a trace line" in meta["error"], meta
        said = server.get("verify").json
        assert (said["status"], said["line"]) == ("tampered", 12), said
        for call in ("window?from=0&count=10", "stack?step=0", "timeline?from=0&to=10"):
            got = server.get(call)
            assert got.status == 400 and "not a trace line" in got.json["error"], (call, got)
        assert server.get("meta").status == 200
    finally:
        server.stop()
    assert "Traceback" not in server.log()
