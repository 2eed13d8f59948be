"""A trace another process shortens while ``blocktrace diff`` (or a golden comparison)
reads it: read short, never a SIGBUS.

The diff's byte pass and the report's search for source lines read files in
pieces into buffers of their own; a file mapped into memory would end the
process with SIGBUS at the first page past the new end.  Where the truncation
happens in a real run is a race, so the mechanism is tested directly: the pass's
source is opened and has read its first piece, then the file is cut short (a
child process runs it, so a SIGBUS would show as its exit status, not end the
test run).  What a short file then gives is what ``diff`` does for a torn trace.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from blocktrace.eip3155 import reader as eip_reader
from blocktrace.eip3155 import skip
from blocktrace.format import wholelines
from blocktrace.format.reader import TraceReader
from tests.format.recording import record_exceptions


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_exceptions(tmp_path_factory.mktemp("shortened"), 40)


def test_a_trace_cut_short_while_the_pass_reads_it_reads_short(trace: Path,
                                                              tmp_path: Path) -> None:
    if skip._c is None:
        pytest.skip("the C extension is not built (or BLOCKTRACE_PURE is set): no byte pass")
    data = trace.read_bytes()
    assert len(data) > 40_000
    victim = tmp_path / "victim.jsonl"
    victim.write_bytes(data)
    script = textwrap.dedent(f"""
        import os
        from blocktrace.eip3155 import skip
        skip.CHUNK = 8192  # the first piece, read before the cut
        source = skip._Source({str(victim)!r})
        with source.numbered() as lines:
            next(lines)
            os.truncate({str(victim)!r}, {len(data) // 3})  # (as another process would)
            print(sum(1 for _ in lines) + 1)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != -signal.SIGBUS, "the pass mapped the file: SIGBUS"
    assert run.returncode == 0, run.stderr
    given = int(run.stdout)
    whole = data.count(b"\n")
    kept = data[: len(data) // 3].count(b"\n")
    assert kept <= given < whole  # the piece read before the cut, then the short file


def test_diff_of_a_trace_cut_short_says_where_it_ended(trace: Path, tmp_path: Path) -> None:
    """What ``diff`` does with the short file it then reads: the torn trace ends there."""
    data = trace.read_bytes()
    short = tmp_path / "short.jsonl"
    short.write_bytes(data[: len(data) // 3])
    run = subprocess.run([sys.executable, "-m", "blocktrace", "diff", str(trace), str(short)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "B ended" in run.stdout and "Traceback" not in run.stderr


@pytest.mark.parametrize("chunk", [7, 64, 4096, 1 << 22])
def test_the_source_lines_are_found_across_pieces(trace: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   chunk: int) -> None:
    monkeypatch.setattr(wholelines, "CHUNK", chunk)  # (the format's search reads these)
    found = eip_reader.trace_sources(TraceReader(str(trace)))
    assert found and found == TraceReader(str(trace)).sources()
    # a torn last line that starts like a source line is not given
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(trace.read_bytes() + b'{"event":"source","file":"x.py"')
    assert eip_reader.trace_sources(TraceReader(str(torn))) == found
