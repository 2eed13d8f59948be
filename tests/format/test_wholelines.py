"""``format.wholelines.complete_lines``: a trace's lines in buffers of whole lines,
exactly the lines :meth:`TraceReader.raw_lines` reads (plain, zstd, gzip; a torn
end; compressed data cut short), with the same bound on a line; on real traces."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blocktrace.format import TraceReader, wholelines
from blocktrace.format.wholelines import complete_lines
from blocktrace.limits import LineTooLongError
from tests.format.recording import record_exceptions


@pytest.fixture(scope="module", params=["t.jsonl", "t.jsonl.zst", "t.jsonl.gz"])
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_exceptions(tmp_path_factory.mktemp("wholelines"), 400, request.param)


@pytest.fixture
def trace(recorded: Path, tmp_path: Path) -> Path:
    target = tmp_path / recorded.name
    shutil.copyfile(recorded, target)
    return target


def _raw(path: Path) -> bytes:
    return b"".join(raw for _, raw in TraceReader(path).raw_lines())


def _read(path: Path) -> tuple[list[bytes], list[bytes], int]:
    """(buffers, what feed was given, ticks)."""
    fed: list[bytes] = []
    ticks = [0]

    def tick() -> None:
        ticks[0] += 1

    buffers = list(complete_lines(TraceReader(path), fed.append, tick))
    return buffers, fed, ticks[0]


@pytest.mark.parametrize("chunk", [97, 4096, wholelines.CHUNK])
def test_the_buffers_are_the_readers_lines(
    trace: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wholelines, "CHUNK", chunk)
    buffers, fed, ticks = _read(trace)
    assert b"".join(buffers) == _raw(trace)
    assert all(buf.endswith(b"\n") for buf in buffers)
    assert fed == [*buffers, b""]
    assert ticks >= len(buffers)
    if chunk == 97:
        assert len(buffers) > 50


def test_a_torn_last_line_is_not_given_but_fed(tmp_path: Path) -> None:
    plain = record_exceptions(tmp_path, 20)
    whole = plain.read_bytes()
    with open(plain, "ab") as f:
        f.write(b'{"pc":12,"op":100,"ga')
    buffers, fed, _ = _read(plain)
    assert b"".join(buffers) == whole == _raw(plain)
    assert fed == [*buffers, b'{"pc":12,"op":100,"ga', b""]


def test_compressed_data_cut_short_gives_the_lines_before(
    trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if trace.suffix == ".jsonl":
        pytest.skip("plain: a torn line, above")
    data = trace.read_bytes()
    trace.write_bytes(data[: len(data) * 2 // 3])
    monkeypatch.setattr(wholelines, "CHUNK", 4096)
    buffers, fed, _ = _read(trace)
    got = b"".join(buffers)
    assert got == _raw(trace) and got.count(b"\n") > 10
    assert fed[-1] == b""


def test_a_line_over_the_bound_raises_after_the_lines_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = record_exceptions(tmp_path, 20)
    lines = plain.read_bytes().splitlines(keepends=True)
    bound = max(len(line) for line in lines) - 1
    first = next(i for i, line in enumerate(lines) if len(line) > bound)  # 0-based
    assert first > 0
    monkeypatch.setattr(wholelines, "MAX_LINE_BYTES", bound)
    monkeypatch.setattr(wholelines, "CHUNK", 4096)
    given: list[bytes] = []
    with pytest.raises(LineTooLongError) as caught:
        for buf in complete_lines(TraceReader(plain)):
            given.append(buf)
    read = b"".join(given)
    assert read == b"".join(lines[:first])  # every line before it, none after
    assert read.count(b"\n") + caught.value.number == first + 1  # the caller names it


@pytest.mark.parametrize("chunk", [97, wholelines.CHUNK])
def test_the_line_lists_are_the_readers_lines_without_newlines(
    trace: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (chain.proof.TraceFile.leaves groups them into the Merkle tree's leaves)
    monkeypatch.setattr(wholelines, "CHUNK", chunk)
    lists = list(wholelines.line_lists(TraceReader(trace)))
    assert [line for lines in lists for line in lines] == [
        raw.rstrip(b"\n") for _, raw in TraceReader(trace).raw_lines()]
    assert len(lists) == len(_read(trace)[0])
