"""The source lines a report quotes (diff, golden, replay), found by the format's byte
search over its buffers of whole lines (``TraceReader.sources``), whatever the
buffers' size: a source line at a buffer's start, its end, or across reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import blocktrace
from blocktrace.eip3155 import reader as read
from blocktrace.format import TraceReader, wholelines


def _loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i & 3
    return total


def _trace_two_files(tmp_path: Path) -> Path:
    module_file = tmp_path / "other_module.py"
    module_file.write_text("def twice(x):\n    return x * 2\n")
    spec = importlib.util.spec_from_file_location("other_module", module_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path / "t.jsonl"
    with blocktrace.trace(blocktrace.ChainTracer(path)):
        _loop(300)  # source line of this file near the start, of the other far from it
        module.twice(_loop(5))
    return path


@pytest.mark.parametrize("chunk", [5, 64, 1000, 4096, 1 << 22])
def test_sources_by_byte_search_are_the_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    path = _trace_two_files(tmp_path)
    expected = _line_by_line(path)
    assert len(expected) == 2
    monkeypatch.setattr(wholelines, "CHUNK", chunk)
    assert read.trace_sources(TraceReader(str(path))) == expected
    assert TraceReader(str(path)).sources() == expected


def _line_by_line(path: Path) -> dict[str, object]:
    """The source lines, every line decoded in turn (the reference)."""
    reader = TraceReader(str(path))
    out: dict[str, object] = {}
    for _, line in reader.lines():
        if isinstance(line, blocktrace.format.SourceLine):
            out.setdefault(line.file, line)
    return out


@pytest.mark.parametrize("chunk", [7, 1000, 1 << 22])
def test_a_source_line_that_does_not_decode_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    path = _trace_two_files(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    number = next(n for n, raw in enumerate(lines, 1)
                  if raw.startswith(b'{"event":"source"') and n > 2)
    lines[number - 1] = b'{"event":"source","file":3}\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(blocktrace.format.TraceError) as caught:
        TraceReader(str(path)).sources()
    monkeypatch.setattr(wholelines, "CHUNK", chunk)
    with pytest.raises(blocktrace.format.TraceError) as ours:
        read.trace_sources(TraceReader(str(path)))
    assert str(ours.value) == str(caught.value) and f":{number}: " in str(ours.value)


def test_sources_from_the_diffs_pass_are_the_readers(tmp_path: Path) -> None:
    """A diff that read a plain trace to its end hands its source lines on (no second
    search of the file); a file changed since is searched again."""
    from blocktrace.eip3155 import diff_files

    path = _trace_two_files(tmp_path)
    expected = TraceReader(str(path)).sources()
    diff_files(str(path), str(path))
    read.read_sources(str(path), [(2, path.read_bytes().splitlines(keepends=True)[1])])
    assert read.trace_sources(TraceReader(str(path))) == dict(list(expected.items())[:1])
    read.read_sources(str(path), [])
    with path.open("ab") as grow:
        grow.write(b"\n")
    assert read.trace_sources(TraceReader(str(path))) == expected
