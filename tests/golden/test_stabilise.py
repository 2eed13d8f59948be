"""Golden bytes: volatile values replaced, keys kept, the chain re-sealed and verifying."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import msgspec

import blocktrace
from blocktrace.chain.verify import verify_file
from blocktrace.golden import GOLDEN_GENESIS, Normaliser, stabilise

_decode = msgspec.json.Decoder(dict[str, Any]).decode


class Thing:
    pass


def _program() -> str:
    return repr(Thing())  # "<...Thing object at 0x7f...>"


def _golden(tmp_path: Path, name: str, masks: tuple[str, ...] = ()) -> bytes:
    raw = tmp_path / f"{name}.raw.jsonl"
    with blocktrace.trace(blocktrace.ChainTracer(raw)):
        _program()
    out = io.BytesIO()
    root = os.path.dirname(os.path.dirname(__file__))
    with open(raw, "rb") as source:
        stabilise(source, out, Normaliser(root, ["the-test"], masks=masks))
    (tmp_path / f"{name}.jsonl").write_bytes(out.getvalue())
    return out.getvalue()


def test_two_runs_give_the_same_bytes_and_verify(tmp_path: Path) -> None:
    first = _golden(tmp_path, "one")
    assert _golden(tmp_path, "two") == first
    result = verify_file(tmp_path / "one.jsonl")
    assert result.status == "sealed" and result.genesis == GOLDEN_GENESIS
    lines = [_decode(line) for line in first.splitlines()]
    header, summary = lines[0], lines[-1]
    assert (header["start"], header["pid"], header["argv"]) == (
        "1970-01-01T00:00:00.000000Z", 0, ["the-test"])
    assert summary["time"] == 0
    files = {d["file"] for d in lines if d.get("event") in ("call", "source")}
    assert files == {"golden/test_stabilise.py"}  # relative to the root given
    sources = [d for d in lines if d.get("event") == "source"]
    assert len(sources) == 1 and len(sources[0]["sha256"]) == 64
    values = [d["value"] for d in lines if d.get("event") == "return"]
    assert any(" at 0x?>" in str(v) for v in values), values
    assert b" at 0x7" not in first


def test_masks_replace_values_never_keys(tmp_path: Path) -> None:
    golden = _golden(tmp_path, "masked", masks=(r"Thing object",))
    assert b"<masked>" in golden and b'"value":' in golden
    assert verify_file(tmp_path / "masked.jsonl").status == "sealed"


def _calls_thing(times: int) -> list[str]:
    return [_program() for _ in range(times)]


def test_repeated_lines_get_the_same_golden_form_as_the_first(tmp_path: Path) -> None:
    """Bodies rewritten once are reused: every line must still be what the rules
    make of it on its own (addresses masked, files relative), the chain intact."""
    raw = tmp_path / "raw.jsonl"
    with blocktrace.trace(blocktrace.ChainTracer(raw, level="call")):
        _calls_thing(20)
    root = os.path.dirname(os.path.dirname(__file__))
    rules = Normaliser(root, ["the-test"])
    out = io.BytesIO()
    with open(raw, "rb") as source:
        stabilise(source, out, rules)
    before = raw.read_bytes().splitlines()[1:-1]
    after = out.getvalue().splitlines()[1:-1]
    assert len(before) == len(after)
    hash_member = 75  # ,"hash":"<64 hex>"}
    bodies = [line[:-hash_member] for line in before]
    assert max(bodies.count(b) for b in bodies) >= 20  # the same call line, again and again
    for old, new in zip(bodies, after, strict=True):
        expected = msgspec.json.encode(rules.value(_decode(old + b"}")))[:-1]
        assert new[:-hash_member] == expected
    golden = tmp_path / "golden.jsonl"
    golden.write_bytes(out.getvalue())
    assert verify_file(str(golden)).status == "sealed"
