"""The diff's C pass over what two EVM clients' traces have in common
(``blocktrace.eip3155.clientpass``) against the reference path (every line decoded
and compared as steps): the same report, byte for byte, on every pair of the real
client traces, on long traces in each client's shapes (the benchmark's), and on
mutations of them where the pass must hand over to the reference."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocktrace.eip3155 import clientpass, diff_files
from blocktrace.eip3155.reader import TraceError
from blocktrace.eip3155.render import render_json, render_text
from blocktrace.eip3155.report import DiffReport

from .helpers import CLIENTS, ROOT, TESTS, trace

pytestmark = pytest.mark.skipif(clientpass._c is None, reason="the C extension is not built "
                                "(or BLOCKTRACE_PURE is set): only the reference path runs")


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_diff_clients", ROOT / "benchmarks" / "bench_diff_clients.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_diff_clients", module)
    spec.loader.exec_module(module)
    return module


bench = _bench()


def _outcome(a: Path, b: Path, **options: Any) -> tuple[str, ...] | DiffReport:
    try:
        return diff_files(str(a), str(b), **options)
    except TraceError as exc:
        return ("TraceError", str(exc))


def _both(a: Path, b: Path, monkeypatch: pytest.MonkeyPatch, **options: Any
          ) -> tuple[Any, Any, int]:
    """The outcome with the pass, the reference's (both a report, or both the same
    error), and the steps the pass passed over."""
    passed: list[int] = []
    real = clientpass._skip

    def counting(*args: Any) -> tuple[int, int, int, int, int, int]:
        got = real(*args)
        passed.append(got[0])
        return got

    with monkeypatch.context() as patch:
        patch.setattr(clientpass, "_skip", counting)
        fast = _outcome(a, b, **options)
    with monkeypatch.context() as patch:
        patch.setattr(clientpass, "_c", None)
        reference = _outcome(a, b, **options)
    if isinstance(fast, tuple) or isinstance(reference, tuple):
        assert fast == reference
    else:
        _same(fast, reference)
    return fast, reference, sum(passed)


def _same(fast: DiffReport, reference: DiffReport) -> None:
    assert render_text(fast) == render_text(reference)
    assert render_json(fast) == render_json(reference)
    for mine, theirs in ((fast.a, reference.a), (fast.b, reference.b)):
        assert mine == theirs
    assert fast.steps == reference.steps


@pytest.fixture(params=[clientpass.CHUNK, 97, 4096], ids=["4MiB", "97B", "4KiB"])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(clientpass, "CHUNK", request.param)
    yield request.param


@pytest.mark.parametrize("test", TESTS)
def test_every_pair_of_real_traces_reports_what_the_reference_does(
    monkeypatch: pytest.MonkeyPatch, test: str
) -> None:
    for a, b in itertools.product(CLIENTS, repeat=2):
        _both(trace(a, test), trace(b, test), monkeypatch)


@pytest.fixture(scope="module")
def long_traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The benchmark's traces of 1,100 iterations of its loop (one fault at 1000), each
    client's shapes, and geth's and revm's with a divergence every ~250 steps."""
    where = tmp_path_factory.mktemp("long")
    made = {}
    for client in CLIENTS:
        made[client] = where / f"{client}.jsonl"
        bench.make(client, made[client], 1100)
    for client in ("geth", "revm"):
        made[f"{client}-h"] = where / f"{client}-h.jsonl"
        bench.make(client, made[f"{client}-h"], 1100, hunks=100)
    return made


PAIRS = [("geth", "geth"), ("geth", "geth-h"), ("revm", "revm-h"), ("revm-h", "revm"),
         ("geth", "evmone"), ("besu", "revm"), ("nethermind", "nimbus"), ("eels", "erigon"),
         ("nimbus", "geth"), ("revm", "nethermind")]


@pytest.mark.parametrize(("client", "test"), [("geth", "statetest1"), ("revm", "negative_refund"),
                                             ("geth", "negative_refund")])
def test_a_step_changed_anywhere_is_found_as_the_reference_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: str, test: str
) -> None:
    """Each op line in turn with its pc changed (one step that differs at every place:
    the op line each step generator holds when the differ asks for a pass, too)."""
    lines = trace(client, test).read_bytes().splitlines(keepends=True)
    b = tmp_path / "b.jsonl"
    for i, line in enumerate(lines):
        if line.startswith(b'{"pc":'):
            b.write_bytes(b"".join([*lines[:i], line.replace(b'{"pc":', b'{"pc":9', 1),
                                    *lines[i + 1:]]))
            _both(trace(client, test), b, monkeypatch)


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_long_traces_report_what_the_reference_does(
    monkeypatch: pytest.MonkeyPatch, chunk: int, long_traces: dict[str, Path], a: str, b: str
) -> None:
    fast, _, passed = _both(long_traces[a], long_traces[b], monkeypatch)
    assert isinstance(fast, DiffReport)
    assert passed > fast.steps.common * 9 // 10, "the pass should cover most common steps"
    assert fast.equal == ("-h" not in a + b)


@pytest.mark.parametrize("options", [
    {"fields": ["pc", "op", "gas"]},
    {"ignore": ["stack"]},
    {"fields": ["pc", "op", "gasCost"]},  # not a field the pass compares: the reference
    {"stack_top": 2},
    {"max_hunks": 1},
    {"window": 4},
    {"dialect_a": "geth", "dialect_b": "evm"},
])
def test_options_report_what_the_reference_does(
    monkeypatch: pytest.MonkeyPatch, long_traces: dict[str, Path], options: dict[str, Any]
) -> None:
    _both(long_traces["geth"], long_traces["geth-h"], monkeypatch, **options)
    _both(long_traces["besu"], long_traces["revm-h"], monkeypatch, **options)


# -- mutations where the pass must hand over to the reference -----------------

def _respell(line: bytes, how: int) -> bytes:
    """The line with one member written another way the decoder or the rules read
    differently from the plain forms (or the same: the pass must agree either way)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict) or not obj:
        return line
    keys = list(obj)
    key = keys[how % len(keys)]
    value = obj[key]
    kind = (how // 7) % 14
    if kind == 0 and isinstance(value, str) and value.startswith("0x") and len(value) > 2:
        obj[key] = int(value, 16)
    elif kind == 1 and isinstance(value, int):
        obj[key] = hex(value)
    elif kind == 2 and isinstance(value, str) and value.startswith("0x"):
        obj[key] = "0x00" + value[2:].upper()
    elif kind == 3 and isinstance(value, list) and value:
        obj[key] = [("0x0" + w[2:].upper()) if isinstance(w, str) else w for w in value]
    elif kind == 4 and isinstance(value, list) and value:
        obj[key] = value[:-1]
    elif kind == 5:
        obj["error"] = "boom"
    elif kind == 6:
        obj["error"] = ""
    elif kind == 7:
        obj[key] = None
    elif kind == 8:
        del obj[key]
    elif kind == 9:
        obj[key] = str(value) if isinstance(value, int) else 1.5
    elif kind == 10:
        return json.dumps(obj).encode() + b"\n"  # with spaces
    elif kind == 11:
        text = json.dumps(obj, separators=(",", ":"))
        return text.replace(f'"{key}"', '"\\u0070c"' if key == "pc" else f'"{key}\\t"',
                            1).encode() + b"\n"
    elif kind == 12:
        text = json.dumps(obj, separators=(",", ":"))
        return (text[:-1] + f',"{key}":{json.dumps(value)}}}').encode() + b"\n"  # twice
    else:
        obj = dict(reversed(list(obj.items())))
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


_INSERTS = [
    b"\n", b"   \n", b"noise\n", b"\x00\x01\n", b"{}\n", b"[1,2]\n", b"{\"output\":\"\"}\n",
    b'{"output":"","gasUsed":"0x10","error":"x"}\n', b'{"output":5,"gasUsed":"0x1"}\n',
    b'{"stateRoot":"0x00"}\n', b'{"pass":true}\n', b'{"blocktrace":1}\n',
    b'{"pc":1,"op":0,"gas":"0x1","depth":1,"stack":[],"error":"Stop"}\n',
    b'{"pc":1,"op":0,"gas":"zz","depth":1,"stack":[]}\n', b'{"pc":1,"op":0,"depth":1}\n',
    b'{"output":"","gasUsed":"0xzz"}\n', b'{"event":"call","code":1,"name":"f"}\n',
    b'{"pc":1,"op":1,"gas":"0x1","stack":["0x1"],"memory":{"a":[1,{"b":null}]}}\n',
    b"\xef\xbb\xbf" + b'{"pc":1,"op":1,"gas":"0x1"}\n',
]


@st.composite
def mutated(draw: st.DrawFn) -> list[bytes]:
    """A long trace in one client's shapes (or a real one), with a few lines respelled,
    copied, dropped or inserted."""
    client = draw(st.sampled_from(CLIENTS))
    lines = list(LONG[client] if draw(st.booleans()) else
                 (bench.REFDATA / client / "negative_refund.jsonl").read_bytes()
                 .splitlines(keepends=True))
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        where = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["respell", "respell", "copy", "twice", "drop", "insert",
                                     "tear"]))
        if kind == "respell":
            lines[where] = _respell(lines[where], draw(st.integers(0, 200)))
        elif kind == "copy":
            lines.insert(where, lines[draw(st.integers(0, len(lines) - 1))])
        elif kind == "twice":  # (as a faulting op's second line, without its error)
            lines.insert(where, lines[where])
        elif kind == "drop":
            del lines[where]
        elif kind == "insert":
            lines.insert(where, draw(st.sampled_from(_INSERTS)))
        else:
            lines = [*lines[:where], lines[where].rstrip(b"\n")]
    return lines


LONG: dict[str, list[bytes]] = {}


@pytest.fixture(scope="module")
def long_lines(long_traces: dict[str, Path]) -> None:
    for client in CLIENTS:
        LONG[client] = long_traces[client].read_bytes().splitlines(keepends=True)[:3000]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(a=mutated(), b=mutated(), small=st.booleans())
def test_mutated_traces_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_lines: None, a: list[bytes],
    b: list[bytes], small: bool,
) -> None:
    pa, pb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    pa.write_bytes(b"".join(a))
    pb.write_bytes(b"".join(b))
    with monkeypatch.context() as patch:
        if small:
            patch.setattr(clientpass, "CHUNK", 211)
        _both(pa, pb, monkeypatch)
        _both(pa, pa, monkeypatch)


def test_a_mutation_in_one_of_two_copies_is_found_as_the_reference_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_lines: None
) -> None:
    """Every kind of respelling and insertion, at one place in a copy of a long geth
    trace: the pass hands over there, and agrees with the reference."""
    lines = LONG["geth"]
    a = tmp_path / "a.jsonl"
    a.write_bytes(b"".join(lines))
    b = tmp_path / "b.jsonl"
    where = next(i for i in range(1234, len(lines)) if b'"op":1,' in lines[i])  # an ADD
    edits = [_respell(lines[where], how) for how in range(0, 14 * 7 * 3)]
    edits += [b"".join([insert, lines[where]]) for insert in _INSERTS]
    edits.append(lines[where] * 2)  # a line written twice: merged as a fault's second line
    for edit in dict.fromkeys(edits):
        b.write_bytes(b"".join([*lines[:where], edit, *lines[where + 1:]]))
        _both(a, b, monkeypatch)
        _both(b, a, monkeypatch)
        _both(b, b, monkeypatch)  # (the same place on both sides: the pass reaches it)

