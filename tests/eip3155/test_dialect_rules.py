"""Each dialect rule, on the real line that needs it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from blocktrace.eip3155 import LINE_RULES, diff_files, read_all
from blocktrace.eip3155.compare import Comparer, canonical_value
from blocktrace.format.errors import TraceError

from .helpers import lines_of, trace, write_lines

Runner = Callable[..., subprocess.CompletedProcess[str]]


def test_the_rule_table_names_every_rule_the_issue_lists() -> None:
    names = {rule.name for rule in LINE_RULES}
    assert {"noise", "implicit-stop", "fault-duplicate", "frame-exit", "state-root",
            "summary", "op", "header"} <= names


def test_implicit_stop_lines_are_dropped() -> None:
    raw = lines_of("geth", "negative_refund")
    assert json.loads(raw[411])["op"] == 0  # line 412: the implicit STOP at depth 3
    steps, info = read_all(str(trace("geth", "negative_refund")))
    assert info.stops_dropped == 2
    assert all(step.op != 0 for step in steps)
    # besu never writes them; with them kept the traces would not line up
    besu, _ = read_all(str(trace("besu", "negative_refund")))
    assert len(besu) == len(steps)


def test_implicit_stop_kept_would_be_a_divergence(tmp_path: Path) -> None:
    # Turning geth's STOP into a real op (JUMPDEST) makes it an extra step at that point.
    raw = lines_of("geth", "negative_refund")
    raw[411] = raw[411].replace('"op":0,', '"op":91,').replace('"STOP"', '"JUMPDEST"')
    report = diff_files(str(trace("besu", "negative_refund")),
                        str(write_lines(tmp_path / "g.jsonl", raw)))
    assert not report.equal
    assert report.steps.first is not None and report.steps.first.b is not None
    assert report.steps.first.b.lineno == 412


def test_the_duplicate_line_of_a_faulting_op_is_merged() -> None:
    raw = lines_of("geth", "00000936-mixed-1")
    first, second = json.loads(raw[24]), json.loads(raw[25])  # lines 25 and 26
    assert (first["pc"], first["gas"]) == (second["pc"], second["gas"]) == (83, "0x79bc18")
    assert len(first["stack"]) == 16 and len(second["stack"]) == 13
    steps, info = read_all(str(trace("geth", "00000936-mixed-1")))
    assert info.merged == 1
    last = steps[-1]
    assert last.lineno == 25
    assert last.stack is not None and len(last.stack) == 16  # the first line's stack
    assert last.error == "return data out of bounds"  # the second line's error


def test_nimbus_duplicate_line_is_merged_too() -> None:
    steps, info = read_all(str(trace("nimbus", "00000936-mixed-1")))
    assert info.merged == 1
    assert steps[-1].error == "Opcode Dispatch Error: OutOfBounds, depth=1"


def test_per_frame_exit_lines_are_not_the_summary() -> None:
    raw = lines_of("geth", "stackUnderflow_nonzeroMem")
    assert json.loads(raw[8]) == {"output": "", "gasUsed": "0x0"}  # after DELEGATECALL
    _, info = read_all(str(trace("geth", "stackUnderflow_nonzeroMem")))
    assert info.frame_exits == 1
    assert info.summary is not None
    assert info.summary.gasUsed == 0x79BEE4
    assert info.summary.error == "stack underflow (3 <=> 15)"
    _, info = read_all(str(trace("geth", "negative_refund")))
    assert info.frame_exits == 6


def test_state_root_on_its_own_line_joins_the_summary() -> None:
    raw = lines_of("eels", "statetest1")
    assert list(json.loads(raw[-1])) == ["stateRoot"]
    _, info = read_all(str(trace("eels", "statetest1")))
    assert info.summary is not None
    root = "0xa2b3391f7a85bf1ad08dc541a1b99da3c591c156351391f26ec88c557ff12134"
    assert info.summary.stateRoot == root
    assert info.summary.gasUsed == 0x2D1CC4


def test_besu_summary_on_one_line() -> None:
    raw = json.loads(lines_of("besu", "statetest1")[-1])
    assert {"stateRoot", "output", "gasUsed", "pass"} <= set(raw)
    _, info = read_all(str(trace("besu", "statetest1")))
    assert info.summary is not None
    assert info.summary.stateRoot == raw["stateRoot"]
    assert info.summary.passed is False
    assert info.gas_used == "transaction"


def test_non_json_noise_is_skipped_and_counted() -> None:
    assert lines_of("nethermind", "statetest1")[-1].startswith("\x1b[31mFAIL")
    _, info = read_all(str(trace("nethermind", "statetest1")))
    assert info.noise == 1
    revm = lines_of("revm", "statetest1")
    assert revm[7] == "error:"
    _, info = read_all(str(trace("revm", "statetest1")))
    assert info.noise == len(revm) - 7 == 14


def test_revm_hex_mem_size_and_wrapped_refund() -> None:
    revm, _ = read_all(str(trace("revm", "negative_refund")))
    evmone, _ = read_all(str(trace("evmone", "negative_refund")))
    nimbus, _ = read_all(str(trace("nimbus", "negative_refund")))
    step = revm[406]
    assert step.refund == "0xffffffffffffed40"
    assert canonical_value("refund", step.refund) == -4800
    assert evmone[406].refund == nimbus[406].refund == -4800
    assert Comparer(["refund", "memSize"]).same(step, evmone[406])
    small, _ = read_all(str(trace("revm", "stackUnderflow_nonzeroMem")))
    besu, _ = read_all(str(trace("besu", "stackUnderflow_nonzeroMem")))
    assert small[8].memSize == "0x20" and besu[8].memSize == 32
    assert Comparer(["memSize"]).same(small[8], besu[8])


def test_nethermind_without_op_name_and_refund() -> None:
    steps, info = read_all(str(trace("nethermind", "negative_refund")))
    assert info.op_lines == len(steps) == 411
    assert all(step.opName is None and step.refund is None for step in steps)


def test_numbers_in_any_spelling(tmp_path: Path) -> None:
    # EIP-7756: JSON numbers, 0x hex strings or decimal strings, in any numeric field.
    respelled = []
    for line in lines_of("geth", "statetest1"):
        obj = json.loads(line)
        if "pc" in obj:
            obj["pc"] = hex(obj["pc"])
            obj["gas"] = str(int(obj["gas"], 16))
            obj["depth"] = str(obj["depth"])
            obj["stack"] = [int(word, 16) if i % 2 else "0x" + word[2:].zfill(64)
                            for i, word in enumerate(obj["stack"])]
        respelled.append(json.dumps(obj))
    path = write_lines(tmp_path / "respelled.jsonl", respelled)
    report = diff_files(str(trace("revm", "statetest1")), str(path))
    assert report.equal, report.steps.first


def test_extra_fields_are_ignored(tmp_path: Path) -> None:
    extra = []
    for line in lines_of("besu", "statetest1"):
        obj = json.loads(line)
        obj.update(section=0, functionDepth=1, storage={"0x0": "0x1"}, stateGas="0x0")
        extra.append(json.dumps(obj))
    report = diff_files(str(trace("besu", "statetest1")),
                        str(write_lines(tmp_path / "extra.jsonl", extra)))
    assert report.equal


def test_byte_order_mark_and_crlf_line_endings(tmp_path: Path) -> None:
    text = "\r\n".join(lines_of("nimbus", "statetest1")) + "\r\n"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    report = diff_files(str(trace("nimbus", "statetest1")), str(path))
    assert report.equal
    assert report.b.noise == 0 and report.b.steps == 6


def test_a_byte_order_mark_is_a_client_traces_noise_but_a_blocktrace_traces_tampering(
    tmp_path: Path, blocktrace_cli: Runner, programs: Path,
) -> None:
    # A client's lines after a mark: diffed (the test above). A blocktrace trace with the
    # mark put before its header: TAMPERED at line 1, as verify says, exit 1 -- not read
    # as someone else's file.
    made = tmp_path / "t.jsonl"
    assert blocktrace_cli("run", "-o", made, programs / "behaves.py").returncode == 0
    marked = tmp_path / "marked.jsonl"
    marked.write_bytes(b"\xef\xbb\xbf" + made.read_bytes())
    client = tmp_path / "client.jsonl"
    client.write_bytes(b"\xef\xbb\xbf" + trace("nimbus", "statetest1").read_bytes())
    for argv in (("verify", marked), ("diff", made, marked), ("diff", marked, client)):
        proc = blocktrace_cli(*argv)
        assert proc.returncode == 1, (argv, proc)
        assert "TAMPERED at line 1" in proc.stderr + proc.stdout, (argv, proc)
    proc = blocktrace_cli("diff", client, trace("nimbus", "statetest1"))
    assert proc.returncode == 0, proc


def test_blank_lines_and_a_torn_last_line(tmp_path: Path) -> None:
    lines = lines_of("geth", "statetest1")
    torn = [*lines[:3], "", *lines[3:6], lines[6][:20]]
    path = write_lines(tmp_path / "torn.jsonl", torn)
    report = diff_files(str(trace("geth", "statetest1")), str(path))
    assert report.steps.equal  # all six steps are there; the torn summary is noise
    assert report.b.noise == 1
    assert any("no summary" in note for note in report.summary.notes)


def test_binary_bytes_among_a_client_traces_lines_are_no_trace(tmp_path: Path) -> None:
    """A client's chatter is text (the nethermind and revm lines above). Bytes that
    are not text (a NUL, bytes that are not UTF-8: a compressed trace whose magic
    number was damaged, read as plain) make the file no trace -- unusable, as
    verify says of it -- never a client trace of its JSON-looking lines."""
    raw = lines_of("revm", "statetest1")
    for bad in (b"\x00\x01binary", b"\xff\xfe\x80 not utf-8", b"[)M\x18\x14\x00\x00\x00blocktrace"):
        path = tmp_path / "t.jsonl"
        body = "\n".join(raw).encode()
        path.write_bytes(bad + b"\n" + body + b"\n")
        try:
            read_all(str(path))
        except TraceError as exc:
            assert exc.lineno == 1 and "binary data" in str(exc), exc
            assert exc.exit_status == 2
        else:
            raise AssertionError(f"{bad!r} was read as a client's chatter")
    # the same trace with its text chatter is read as before
    path = tmp_path / "ok.jsonl"
    path.write_bytes(("starting up\n" + "\n".join(raw) + "\n").encode())
    _, info = read_all(str(path))
    assert info.noise == 15
