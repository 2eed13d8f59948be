"""The export's verify, fed the conversion's own reads of the file
(``query.verifying``), answers what ``verify_file`` answers, whatever the trace
holds and wherever the conversion stops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from blocktrace._native import extension
from blocktrace.chain.verify import verify_file
from blocktrace.format import TraceError
from blocktrace.query import columns, verifying
from blocktrace.query.tables import RunFacts, trace_batches

pytestmark = pytest.mark.skipif(
    extension("blocktrace.format._cscan") is None,
    reason="the C extension is not built, or BLOCKTRACE_PURE is set (verify reads the file)",
)


def _one_pass(path: Path, stop_at: int | None = None) -> verifying.Verifier:
    """The verifier fed by a conversion of ``path`` (abandoned after ``stop_at`` batches)."""
    verifier = verifying.start_verify(str(path))
    assert verifier.feed is not None  # fed, not reading the file itself
    try:
        for n, _ in enumerate(trace_batches(str(path), RunFacts(str(path)), verifier.feed)):
            if n == stop_at:
                break
    except TraceError:
        pass  # the conversion stopped at a line it cannot read
    return verifier


def _lines(trace: Path) -> list[bytes]:
    return trace.read_bytes().splitlines(keepends=True)


_EDITS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "as written": lambda x: x,
    "tampered early": lambda x: [*x[:2], x[2].replace(b'"depth":1', b'"depth":2'), *x[3:]],
    "tampered late": lambda x: [*x[:-3], x[-3].replace(b'"code":', b'"code":1'), *x[-2:]],
    "no summary": lambda x: x[:-1],
    "torn": lambda x: [*x[:-1], x[-1][:40]],
    "after the summary": lambda x: [*x, b'{"x":1}\n'],
    "not JSON in the middle": lambda x: [*x[:200], b"{nope\n", *x[200:]],
    "too long in the middle": lambda x: [*x[:300], b"x" * (5 << 20) + b"\n", *x[300:]],
    "blank line": lambda x: [*x[:100], b"\n", *x[100:]],
}


@pytest.mark.parametrize("name", list(_EDITS))
def test_the_same_answer_as_verify(
    fib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(columns, "CHUNK", 4096)  # many buffers, lines across their ends
    monkeypatch.setattr(verifying, "QUEUED", 1)  # the conversion waits for the verifier
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(_EDITS[name](_lines(fib))))
    want = verify_file(path)
    assert _one_pass(path).result().as_json() == want.as_json()
    if name == "as written":
        assert want.status == "sealed"
    elif name != "no summary":
        assert want.status in ("tampered", "unusable") or want.reason


def test_an_abandoned_conversion_ends_the_verifier(
    fib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(columns, "CHUNK", 4096)
    monkeypatch.setattr(verifying, "QUEUED", 1)
    verifier = _one_pass(fib, stop_at=0)
    verifier.close()  # returns: the walk is told the file ended
    assert not verifier._thread.is_alive()
    # asked for the answer instead, it reads the rest of the file itself
    assert _one_pass(fib, stop_at=0).result().as_json() == verify_file(fib).as_json()
