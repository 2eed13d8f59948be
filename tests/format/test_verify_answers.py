"""What the verifier checks beyond the hashes (issue 11 item 2): one answer for a
malformed summary, text and --json alike; every line a UTF-8 JSON object."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

import blocktrace
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.chain.verify import verify_file


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = io.BytesIO()
    with blocktrace.trace(blocktrace.ChainTracer(out, argv=["x"])):
        sum(i * i for i in range(30))
    return out.getvalue()


def _forge_last(data: bytes, old: bytes, new: bytes) -> bytes:
    last = len(data.splitlines()) - 1
    return rechain_trace(data, lambda n, b: b.replace(old, new) if n == last else b,
                         fix_summary=False)


def _verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blocktrace", "verify", str(path), *extra],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("version", [2, 3])
def test_a_summary_gas_used_that_is_not_hex_is_one_answer(
    trace: bytes, tmp_path: Path, version: int
) -> None:
    data = rechain_trace(trace, version=version)
    summary = msgspec.json.decode(data.splitlines()[-1])
    forged = _forge_last(data, f'"gasUsed":"{summary["gasUsed"]}"'.encode(), b'"gasUsed":"zz"')
    path = tmp_path / "t.jsonl"
    path.write_bytes(forged)
    result = verify_file(path)
    assert result.status == "tampered" and "gasUsed" in result.reason
    text, js = _verify(path), _verify(path, "--json")
    assert text.returncode == js.returncode == 1
    assert "Traceback" not in text.stderr + js.stderr
    assert "TAMPERED" in text.stdout and "gasUsed" in text.stdout
    assert msgspec.json.decode(js.stdout)["valid"] is False


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"event":"x","v":"\xff\xfe"', "not valid UTF-8"),
        (b'{"event":"x","v":nope', "not a JSON object"),
        (b'["event","x"', "not a JSON object"),
    ],
)
def test_a_rechained_line_that_is_not_a_utf8_json_object_is_tampering(
    trace: bytes, tmp_path: Path, body: bytes, why: str
) -> None:
    forged = rechain_trace(trace, lambda n, b: body if n == 3 else b)
    path = tmp_path / "t.jsonl"
    path.write_bytes(forged)
    result = verify_file(path)
    assert (result.status, result.line) == ("tampered", 4), result
    assert why in result.reason
