"""The viewer tells a blocktrace trace from a client's as every other command does
(``blocktrace.format.blocktrace_header``), not by a sniff of its own: a blocktrace
trace whose header line was edited is shown TAMPERED at line 1 (as ``verify``
says), never as an unchained client trace; a gzip'd client trace is read as the
client's (as ``diff`` reads it), not refused as a blocktrace trace."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from blocktrace.view.model import Model, open_model
from tests.format.recording import record_exceptions

CLIENT = (
    b'{"pc":0,"op":96,"gas":"0x79bc18","gasCost":"0x3","memSize":0,"stack":[],"depth":1,'
    b'"refund":0,"opName":"PUSH1"}\n'
    b'{"pc":2,"op":96,"gas":"0x79bc15","gasCost":"0x3","memSize":0,"stack":["0x1"],"depth":1,'
    b'"refund":0,"opName":"PUSH1"}\n'
    b'{"output":"","gasUsed":"0x6","time":1}\n'
)


def _verdict(model: Model) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (answer := model.verify())["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.02)
    return answer


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("edit", [(b'{"blocktrace":', b'{ "blocktrace":'),
                                  (b'{"blocktrace":', b'{"genesis":"x","blocktrace":')])
def test_an_edited_header_is_a_tampered_blocktrace_trace(
    tmp_path: Path, edit: tuple[bytes, bytes]
) -> None:
    trace = record_exceptions(tmp_path, 5)
    data = trace.read_bytes()
    trace.write_bytes(data.replace(*edit, 1))
    assert _cli("verify", "--no-index", trace).returncode == 1  # TAMPERED at line 1
    model = open_model(str(trace))
    assert model.kind == "blocktrace"
    answer = _verdict(model)
    assert (answer["status"], answer["line"]) == ("tampered", 1)


def test_a_gzipped_client_trace_is_the_clients(tmp_path: Path) -> None:
    plain = tmp_path / "client.jsonl"
    plain.write_bytes(CLIENT)
    packed = tmp_path / "client.jsonl.gz"
    packed.write_bytes(gzip.compress(CLIENT))
    assert _cli("diff", plain, packed).returncode == 0  # diff reads it: the same steps
    model = open_model(str(packed))
    assert model.kind == "eip3155"
    assert model.meta()["steps"] == open_model(str(plain)).meta()["steps"] == 2
    assert _verdict(model)["status"] == "unchained"
