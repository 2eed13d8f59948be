"""The op line's layout has one Python home (blocktrace.format.opline) and one C home
(format/csrc/opline.h); chain/ seals the bytes they make and spells none of it."""

from __future__ import annotations

from pathlib import Path

import msgspec

from blocktrace.format import opline, rules
from blocktrace.format.rules import split_hash
from tests.chain.recording import record_behaves

_CHAIN = Path(rules.__file__).parents[1] / "chain"


def test_op_lines_of_a_real_trace_are_made_by_op_site_and_op_body(tmp_path: Path) -> None:
    trace = record_behaves(tmp_path / "t.jsonl")
    ops = 0
    for raw in trace.read_bytes().splitlines():
        if not raw.startswith(b'{"pc":') or b'"event"' in raw:
            continue
        body = split_hash(raw)[0]  # type: ignore[index]
        d = msgspec.json.decode(body + b"}")
        pre, suf = opline.op_site(d["pc"], d["op"], d["opName"], d["line"], d["code"])
        assert opline.op_body(pre, int(d["gas"], 16), d["depth"], suf) == body
        ops += 1
    assert ops > 50


def test_chain_spells_no_op_line() -> None:
    """Neither chain/'s Python nor its C holds the op line's middle or its format."""
    mid_c = rules.OP_MID.decode().replace('"', '\\"')
    for path in [*_CHAIN.glob("*.py"), *(_CHAIN / "csrc").glob("*.[ch]")]:
        text = path.read_text()
        assert "gasCost" not in text, path
        assert mid_c not in text and rules.OP_MID.decode() not in text, path
