"""One rule says whether a file is a blocktrace trace (``format.blocktrace_header``),
and ``diff`` asks it (``eip3155.report.sniff_python``), so that ``diff`` of a
damaged blocktrace trace answers as ``verify`` does: the same exit status and,
where verify refuses the file, the same reason.  Before, ``diff`` decoded the
first non-blank line itself and read a trace with blank lines before its header
as a good one (``same``, exit 0) where verify says unusable (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace.eip3155.report import sniff_python
from blocktrace.format import TraceError, blocktrace_header
from tests.format.recording import record_exceptions

CLIENT = (
    b'{"pc":0,"op":96,"gas":"0x79bc18","gasCost":"0x3","memSize":0,"stack":[],"depth":1,'
    b'"refund":0,"opName":"PUSH1"}\n'
    b'{"output":"","gasUsed":"0x3","time":1}\n'
)

# (name, edit of the trace's bytes, verify's exit status)
DAMAGE = [
    ("one blank line first", lambda d: b"\n" + d, 2),
    ("two blank lines first", lambda d: b"\n\n" + d, 2),
    ("blank lines with spaces first", lambda d: b" \n\t\n\n" + d, 2),
    ("a spaced header", lambda d: d.replace(b'{"blocktrace":', b'{ "blocktrace":', 1), 1),
    ("a byte-order mark", lambda d: b"\xef\xbb\xbf" + d, 1),
    ("the header deleted", lambda d: d.split(b"\n", 1)[1], 1),
    ("a torn header", lambda d: b'{"blocktrace":4,"hash\n' + d.split(b"\n", 1)[1], 2),
]


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_exceptions(tmp_path_factory.mktemp("good"), 3)


@pytest.mark.parametrize(("name", "edit", "status"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_diff_answers_as_verify_does(
    tmp_path: Path, good: Path, name: str, edit: object, status: int
) -> None:
    trace = tmp_path / "damaged.jsonl"
    trace.write_bytes(edit(good.read_bytes()))  # type: ignore[operator]
    verify = _cli("verify", "--no-index", trace)
    assert verify.returncode == status, verify.stderr
    diff = _cli("diff", trace, good)
    if status == 2:  # unusable: diff refuses it with verify's reason
        assert diff.returncode == 2, diff.stdout
        reason = verify.stderr.strip().split(f"{trace}: ", 1)[1]
        assert reason in diff.stderr
    else:  # tampered: diff says so (a refusal, or a note beside the steps)
        assert "TAMPERED at line 1" in diff.stderr
        assert diff.returncode in (0, 1)


def test_blank_lines_before_a_header_are_a_damaged_blocktrace_trace(
    tmp_path: Path, good: Path
) -> None:
    trace = tmp_path / "blank.jsonl"
    trace.write_bytes(b"\n\n\n" + good.read_bytes())
    with pytest.raises(TraceError) as caught:
        blocktrace_header(trace)
    assert (caught.value.status, caught.value.lineno) == ("unusable", 1)
    with pytest.raises(TraceError):
        sniff_python(str(trace))


@pytest.mark.parametrize("before", [b"", b"\n", b"\n\n\n"])
def test_a_client_trace_is_no_blocktrace_trace(tmp_path: Path, before: bytes) -> None:
    trace = tmp_path / "client.jsonl"
    trace.write_bytes(before + CLIENT)
    assert blocktrace_header(trace) is None
    assert sniff_python(str(trace)) is False


def test_blank_lines_are_looked_past_only_so_far(tmp_path: Path, good: Path) -> None:
    """A file of blank lines is not read to its end: past 1,024 of them it is no
    blocktrace trace, whatever follows."""
    far = tmp_path / "far.jsonl"
    far.write_bytes(b"\n" * 2000 + good.read_bytes())
    assert blocktrace_header(far) is None
    near = tmp_path / "near.jsonl"
    near.write_bytes(b"\n" * 1000 + good.read_bytes())
    with pytest.raises(TraceError):
        blocktrace_header(near)


def test_a_good_trace_is_blocktraces(good: Path) -> None:
    header = blocktrace_header(good)
    assert header is not None and header.blocktrace >= 1
    assert sniff_python(str(good)) is True
