"""Every line ChainTracer writes has the shape docs/FORMAT.md promises: member
order (EIP-3155 order for op lines), types, hex forms, code numbers introduced
before use."""

from __future__ import annotations

import dis
import hashlib
import io
import re
import threading
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import blocktrace
from blocktrace.format.versions import FORMAT_VERSION

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_HEX = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)\Z")
_HASH = re.compile(r"[0-9a-f]{64}\Z")


def _gen() -> Iterator[int]:
    yield 1
    yield 2


def _fails() -> None:
    raise KeyError("k")


def _thread_work() -> int:
    return sum(i for i in range(5))


def _program() -> int:
    total = sum(_gen())
    try:
        _fails()
    except KeyError:
        total += 1
    t = threading.Thread(target=_thread_work)
    t.start()
    t.join()
    return total


def _lines(**options: Any) -> list[dict[str, Any]]:
    out = io.BytesIO()
    tracer = blocktrace.ChainTracer(out, genesis="format", **options)
    with blocktrace.trace(tracer):
        _program()
    return [_decode(line) for line in out.getvalue().splitlines()]


def _shape(keys: list[str], fixed: list[str], optional: tuple[str, ...]) -> None:
    """``keys`` is ``fixed`` in order, then some of ``optional`` in order, then hash."""
    assert keys[: len(fixed)] == fixed, keys
    assert keys[-1] == "hash", keys
    rest = keys[len(fixed) : -1]
    assert rest == [k for k in optional if k in rest], keys


@pytest.mark.parametrize("values", ["off", "on"])
def test_every_line_has_its_documented_shape(values: str) -> None:
    lines = _lines(locals=values, globals=values)
    header, events, summary = lines[0], lines[1:-1], lines[-1]
    assert list(header) == [
        "blocktrace", "hashAlg", "genesis", "python", "implementation", "argv", "start", "pid",
        "level", "hash",
    ]
    assert header["blocktrace"] == FORMAT_VERSION and header["hashAlg"] == "sha256"
    assert header["level"] == "op"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", header["start"])
    assert isinstance(header["pid"], int) and isinstance(header["argv"], list)

    codes: set[int] = set()
    files: set[str] = set()
    kinds: set[str] = set()
    thread_seen = False
    for line in events:
        keys = list(line)
        assert _HASH.match(line["hash"])
        if "thread" in line:
            thread_seen = True
        elif thread_seen:
            pytest.fail(f"a line without its thread after a second thread ran: {line}")
        event = line.get("event")
        if "op" in line and event is None:
            kinds.add("op")
            _shape(keys, ["pc", "op", "gas", "gasCost", "depth", "opName", "line", "code"],
                   ("thread", "locals", "globals"))
            assert line["gasCost"] == "0x1"
            assert line["opName"] == dis.opname[line["op"]]
        elif "op" in line:
            kinds.add(str(event))
            assert event in ("raise", "reraise", "handled")
            _shape(keys, ["pc", "op", "gas", "gasCost", "depth", "opName", "error", "line",
                          "code", "event"], ("thread",))
            assert line["gasCost"] == "0x0"
            assert line["opName"] == dis.opname[line["op"]]
        elif event == "call":
            kinds.add("call")
            _shape(keys, ["event", "kind", "depth", "code", "name", "file", "firstLine"],
                   ("thread",))
            assert line["kind"] in ("call", "resume", "throw", "enter")
            codes.add(line["code"])
            if not line["file"].startswith("<"):
                assert line["file"] in files  # its source line came first

        elif event == "source":
            kinds.add("source")
            _shape(keys, ["event", "file", "sha256", "size"], ("text",))
            with open(line["file"], "rb") as f:
                content = f.read()
            assert line["sha256"] == hashlib.sha256(content).hexdigest()
            assert line["size"] == len(content)
            files.add(line["file"])
        elif event == "return":
            kinds.add("return")
            _shape(keys, ["event", "kind", "depth", "code", "pc", "gas", "value"], ("thread",))
            assert line["kind"] in ("return", "yield", "unwind")
        else:
            pytest.fail(f"unknown line {line}")
        if "gas" in line:
            assert _HEX.match(line["gas"]), line
        if "code" in line:
            assert line["code"] in codes, line  # introduced by a call line first
        if "depth" in line:
            assert line["depth"] >= 1, line
        if values == "on" and line.get("event") is None and "locals" in line:
            assert isinstance(line["locals"], dict)
    assert kinds >= {"op", "call", "return", "raise", "handled", "source"}
    assert thread_seen

    assert list(summary) == ["output", "gasUsed", "pass", "time", "lines", "hash"]  # v3, v4
    assert _HEX.match(summary["gasUsed"]) and summary["pass"] is True
    assert int(summary["gasUsed"], 16) == sum(1 for e in events if "op" in e and "event" not in e)
    assert summary["lines"] == len(lines) - 1


def test_out_of_gas_lines() -> None:
    out = io.BytesIO()
    tracer = blocktrace.ChainTracer(out)
    with pytest.raises(blocktrace.OutOfGas), blocktrace.trace(tracer, gas=25):
        _program()
    lines = [_decode(line) for line in out.getvalue().splitlines()]
    oog = [e for e in lines if str(e.get("error", "")).startswith("OutOfGas")]
    assert len(oog) == 2  # the instruction that could not be paid for, and the summary
    assert oog[0]["event"] == "raise" and oog[0]["gas"] == "0x0"
    summary = lines[-1]
    assert summary["error"] == "OutOfGas" and summary["pass"] is False
    assert list(summary)[:5] == ["output", "gasUsed", "pass", "time", "error"]
    assert summary["gasUsed"] == "0x19"
