"""When a trace's writer starts its thread: one place decides
(``chain.writer.thread_start``), from ``writer_thread`` and
``BLOCKTRACE_WRITER_THREAD``; ``ChainTracer`` does what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

import blocktrace
from blocktrace.chain import writer
from blocktrace.chain.verify import verify_file
from blocktrace.tracers.chain import ChainTracer

pytestmark = pytest.mark.skipif(not writer.ACCELERATED, reason="no C writer here")


@pytest.mark.parametrize(
    ("env", "writer_thread", "start"),
    [
        ("1", None, "first line"),
        ("0", None, None),
        (None, True, "first line"),
        (None, False, None),
        ("0", True, "first line"),  # the tracer's own choice wins
        ("1", False, None),
    ],
)
def test_thread_start_and_what_the_tracer_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    env: str | None, writer_thread: bool | None, start: str | None,
) -> None:
    if env is None:
        monkeypatch.delenv("BLOCKTRACE_WRITER_THREAD", raising=False)
    else:
        monkeypatch.setenv("BLOCKTRACE_WRITER_THREAD", env)
    assert writer.thread_start(writer_thread) == start
    if writer_thread is None:
        assert writer.threaded_by_default() == (start is not None)
    tracer = ChainTracer(tmp_path / "t.jsonl", genesis="g", writer_thread=writer_thread)
    assert bool(tracer._writer.threaded) == (start == "first line")
    assert tracer._thread_later is False
    with blocktrace.trace(tracer):
        sum(range(10))
    assert verify_file(tmp_path / "t.jsonl", genesis="g").status == "sealed"


@pytest.mark.parametrize("env", [None, "", "yes"])
def test_unset_or_not_0_or_1_starts_at_the_first_full_buffer_on_two_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None
) -> None:
    if env is None:
        monkeypatch.delenv("BLOCKTRACE_WRITER_THREAD", raising=False)
    else:
        monkeypatch.setenv("BLOCKTRACE_WRITER_THREAD", env)
    start = writer.thread_start()
    assert start in ("first buffer", None)
    assert (start is not None) == writer._two_cpus()
    tracer = ChainTracer(tmp_path / "t.jsonl", genesis="g")
    assert not tracer._writer.threaded
    assert tracer._thread_later is (start is not None)
    tracer.close()
