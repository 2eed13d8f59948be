"""``blocktrace.format.linesource.BufferedLines``: a file's lines as bytes from one
buffer read in pieces -- the same lines as the file's own ``readlines`` whatever
the piece size, the last line without its newline left to the caller, memory held
to a piece and the line being read, and the buffer a caller consumes itself."""

from __future__ import annotations

import io
from collections.abc import Buffer
from pathlib import Path
from typing import Any

import pytest

import blocktrace
from blocktrace.format import TraceError
from blocktrace.format.compressed import CompressedDataError
from blocktrace.format.linesource import CHUNK, BufferedLines, LineTooLong, NumberedLines
from blocktrace.limits import MAX_LINE_BYTES

PIECES = [1, 2, 3, 7, 97, 4096, CHUNK]


def every_line(lines: BufferedLines, limit: int = 0) -> list[bytes]:
    got = []
    while (line := lines.line(limit)) is not None:
        got.append(line)
    return got


def a_trace(tmp_path: Path) -> Path:
    """A real trace: header, sources, calls, op lines, summary."""
    path = tmp_path / "t.jsonl"
    with blocktrace.trace(blocktrace.ChainTracer(path, genesis="lines")):
        total = 0
        for i in range(200):
            total += i * 7 % 11
    return path


@pytest.mark.parametrize("chunk", PIECES)
def test_a_traces_lines_are_its_readlines_at_any_piece_size(tmp_path: Path, chunk: int) -> None:
    path = a_trace(tmp_path)
    expected = path.read_bytes().splitlines(keepends=True)
    with BufferedLines.open(str(path), chunk) as lines:
        assert every_line(lines) == expected
        assert lines.rest() == b""
    assert len(expected) > 200


@pytest.mark.parametrize("chunk", PIECES)
@pytest.mark.parametrize("data", [b"", b"\n", b"a\n\nb\n", b"no newline", b"a\nb\ntorn",
                                  b"\n\n\ntorn"])
def test_the_last_line_without_a_newline_is_the_rest(chunk: int, data: bytes) -> None:
    lines = BufferedLines(io.BytesIO(data), chunk)
    whole = data.splitlines(keepends=True)
    torn = whole.pop() if whole and not whole[-1].endswith(b"\n") else b""
    assert every_line(lines) == whole
    assert lines.rest() == torn
    assert lines.line() is None  # and stays at the end


def test_no_stream_no_lines() -> None:
    lines = BufferedLines()
    assert lines.line() is None
    assert not lines.more()
    assert lines.rest() == b""


def test_a_piece_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BufferedLines(io.BytesIO(b"x\n"), 0)


def test_a_missing_file_raises_what_open_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), BufferedLines.open(str(tmp_path / "absent")):
        pass


def test_memory_is_a_piece_and_the_line_being_read() -> None:
    longest = 5000
    data = b"".join(b"x" * (i * 37 % longest) + b"\n" for i in range(2000))
    lines = BufferedLines(io.BytesIO(data), 4096)
    biggest = 0
    count = 0
    while lines.line() is not None:
        biggest = max(biggest, len(lines.buf))
        count += 1
    assert count == 2000
    assert biggest <= 4096 + 2 * longest


def test_a_line_at_the_limit_raises_and_one_under_it_does_not() -> None:
    under = b"a" * 9 + b"\n"
    assert every_line(BufferedLines(io.BytesIO(under * 3), 4), limit=10) == [under] * 3
    with pytest.raises(LineTooLong):
        every_line(BufferedLines(io.BytesIO(under + b"b" * 10 + b"\n"), 4), limit=10)


def test_a_line_with_no_end_raises_before_it_is_read_whole() -> None:
    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, size: int | None = -1) -> bytes:
            got = super().read(size)
            self.read_bytes += len(got)
            return got

        def readinto(self, buffer: Buffer, /) -> int:
            got = super().readinto(buffer)
            self.read_bytes += got
            return got

    stream = Counting(b"ok\n" + b"z" * (10 << 20))
    lines = BufferedLines(stream, 4096)
    assert lines.line(limit=10_000) == b"ok\n"
    with pytest.raises(LineTooLong):
        lines.line(limit=10_000)
    assert stream.read_bytes < 10_000 + 2 * 4096
    assert len(lines.buf) < 10_000 + 2 * 4096


def test_more_keeps_the_last_line_given_and_moves_the_offsets() -> None:
    lines = BufferedLines(io.BytesIO(b"first\nsecond\nthird"), 8)
    assert lines.line() == b"first\n"
    assert lines.line() == b"second\n"
    start, pos = lines.start, lines.pos
    assert lines.buf[start:pos] == b"second\n"
    assert lines.more()  # "third" comes in; what is before "second" goes
    assert lines.buf[lines.start:lines.pos] == b"second\n"
    assert lines.start == 0
    assert not lines.more()
    assert lines.line() is None
    assert lines.rest() == b"third"


def test_a_caller_consuming_the_buffer_itself() -> None:
    """The golden rewrite's way: scan the buffer, move pos over what was taken, read on."""
    data = b"".join(b"line %d\n" % i for i in range(1000)) + b"torn"
    lines = BufferedLines(io.BytesIO(data), 100)
    assert lines.line() == b"line 0\n"
    taken = [b"line 0\n"]
    while True:
        buf, pos, n = lines.buf, lines.pos, lines.n  # (buf is reused: buf[:n] was read)
        while (end := buf.find(b"\n", pos, n)) >= 0:
            taken.append(buf[pos:end + 1])
            pos = end + 1
        lines.pos = lines.start = pos
        if not lines.more():
            break
    assert b"".join(taken) + lines.rest() == data
    assert lines.rest() == b"torn"


def test_one_buffer_is_read_into_and_kept_while_the_lines_fit() -> None:
    """Pieces are read into the same ``bytearray`` (``readinto``: a stream with no
    ``read`` will do), the unfinished line moved to its front; ``base + pos`` is
    where the next line starts in the stream."""

    class OnlyReadinto:
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def readinto(self, buffer: memoryview, /) -> int:
            return self.inner.readinto(buffer)

    data = b"".join(b"%d\n" % (i * 7919) for i in range(3000))
    lines = BufferedLines(OnlyReadinto(data), 4096)
    assert lines.line() == b"0\n"
    buf = lines.buf
    offset = 2
    while (line := lines.line()) is not None:
        assert data[offset:offset + len(line)] == line
        offset += len(line)
        assert lines.base + lines.pos == offset
        assert lines.buf is buf and len(buf) <= 4096 + 256
    assert offset == len(data)


def test_a_subclass_keeps_what_kept_says() -> None:
    """``more`` lets go only of the bytes before ``kept()`` (the differ's pass keeps
    the lines its chain check has still to read)."""

    class KeepAll(BufferedLines):
        def kept(self) -> int:
            return 0

    data = b"".join(b"line %d\n" % i for i in range(500))
    lines = KeepAll(io.BytesIO(data), 64)
    assert every_line(lines) == data.splitlines(keepends=True)
    assert lines.base == 0 and lines.view().tobytes() == data


# -- NumberedLines: the differ's walks' one line source (skip.py, clientpass.py) --------


def numbered(data: bytes, chunk: int, **options: bool) -> tuple[NumberedLines, list[Any]]:
    source = NumberedLines("t.jsonl", chunk=chunk, **options)
    source.stream = io.BytesIO(data)
    return source, list(source.numbered_lines())


@pytest.mark.parametrize("chunk", PIECES)
@pytest.mark.parametrize("data", [b"", b"\n", b"a\n\nb\n", b"no newline", b"a\nb\ntorn"])
def test_numbered_lines_give_a_torn_last_line_only_when_asked(chunk: int, data: bytes) -> None:
    whole = data.splitlines(keepends=True)
    torn = whole[-1] if whole and not whole[-1].endswith(b"\n") else None
    source, got = numbered(data, chunk)
    assert got == [(n, line) for n, line in enumerate(whole, 1) if line is not torn]
    assert source.done and source.lineno == len(got)
    assert source.sources is None
    source, got = numbered(data, chunk, torn_last=True)  # as a client's reader gives them
    assert got == list(enumerate(whole, 1))
    assert source.done and source.lineno == len(whole)


@pytest.mark.parametrize("chunk", [97, CHUNK])
def test_numbered_lines_of_a_real_trace_keep_its_source_lines(tmp_path: Path, chunk: int) -> None:
    path = a_trace(tmp_path)
    expected = path.read_bytes().splitlines(keepends=True)
    source = NumberedLines(str(path), sources=True, chunk=chunk)
    with path.open("rb", buffering=0) as stream:
        source.stream = stream
        assert list(source.numbered_lines()) == list(enumerate(expected, 1))
    assert source.sources == [(n, line) for n, line in enumerate(expected, 1)
                              if line.startswith(b'{"event":"source",')]
    assert len(source.sources) == 1


def test_numbered_lines_name_a_line_too_long_and_end_once() -> None:
    ended = []

    class Ending(NumberedLines):
        __slots__ = ()

        def ended(self) -> None:
            ended.append(self.lineno)

    source = Ending("t.jsonl")
    source.stream = io.BytesIO(b"a\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\n")
    lines = source.numbered_lines()
    assert next(lines) == (1, b"a\n")
    with pytest.raises(TraceError, match=r"^t\.jsonl:2: line 2 is longer than "):
        next(lines)
    assert ended == []
    source = Ending("t.jsonl", chunk=4096)
    source.stream = io.BytesIO(b"a\nb\n")
    assert len(list(source.numbered_lines())) == 2
    assert ended == [2]


def test_numbered_lines_say_compressed_data_that_cannot_be_read_as_the_readers_do() -> None:
    class Unreadable:
        def readinto(self, buffer: memoryview, /) -> int:
            raise CompressedDataError("the compressed data is damaged", 0, truncated=False)

    source = NumberedLines("t.jsonl.zst")
    source.stream = Unreadable()
    with pytest.raises(TraceError, match=r"^t\.jsonl\.zst:1: the compressed data is damaged$"):
        list(source.numbered_lines())
