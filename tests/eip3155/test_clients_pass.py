"""The diff's C pass over what two EVM clients' traces have in common
(``blocktrace.eip3155.clientpass``) against the reference path (every line decoded
and compared as steps): the same report, byte for byte, on every pair of the real
client traces (plain, ``.gz`` and ``.zst``, with the options that choose the compared
fields), on long traces in each client's shapes (the benchmark's), on mutations of
them where the pass must hand over to the reference, and the same one-line error on
damaged compressed traces."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
import subprocess
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


HAS_ZSTD = importlib.util.find_spec("zstandard") is not None
KINDS = ["gz", *(["zst"] if HAS_ZSTD else [])]


def _compress(data: bytes, kind: str, pieces: int = 1) -> bytes:
    """``data`` as gzip or zstd (the zstd tool's one frame, or ``pieces`` frames or
    members of whole lines, as a tool writing as it goes does)."""
    lines = data.splitlines(keepends=True)
    step = max(1, -(-len(lines) // pieces))
    parts = [b"".join(lines[i:i + step]) for i in range(0, len(lines), step)] or [b""]
    if kind == "gz":
        return b"".join(gzip.compress(part, mtime=0) for part in parts)
    import zstandard

    return b"".join(zstandard.ZstdCompressor(write_checksum=True).compress(part)
                    for part in parts)


def _as(path: Path, kind: str, where: Path, pieces: int = 1) -> Path:
    if kind == "plain":
        return path
    out = where / f"{path.parent.name}-{path.stem}.jsonl.{kind}"
    if not out.exists():
        out.write_bytes(_compress(path.read_bytes(), kind, pieces))
    return out


ALL_FIELDS = ["pc", "op", "gas", "gasCost", "memSize", "stack", "depth", "refund", "opName",
              "error", "returnData", "line", "code", "function", "file", "thread", "locals",
              "globals", "event"]
OPTIONS: list[dict[str, Any]] = [
    {},
    {"fields": ["pc", "op", "gas", "gasCost", "memSize", "refund", "opName", "returnData"]},
    {"fields": ALL_FIELDS},
    {"stack_top": 2},
    {"stack_top": 0, "fields": ["stack", "refund"]},
    {"ignore": ["stack", "gas"]},
]


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


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize("kinds", [("gz", "zst"), ("zst", "plain"), ("plain", "gz")])
def test_every_pair_of_real_traces_compressed_reports_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test: str, kinds: tuple[str, str]
) -> None:
    """Every ordered pair, each side plain, ``.gz`` or ``.zst`` (every client on each
    side in each kind, over the three parametrisations)."""
    if "zst" in kinds and not HAS_ZSTD:
        pytest.skip("zstandard is not installed")
    for a, b in itertools.product(CLIENTS, repeat=2):
        _both(_as(trace(a, test), kinds[0], tmp_path), _as(trace(b, test), kinds[1], tmp_path),
              monkeypatch)


@pytest.mark.parametrize("options", OPTIONS[1:], ids=lambda o: ",".join(f"{k}={v}" for k, v in
                                                                     o.items())[:40])
def test_every_pair_of_real_traces_with_options_reports_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]
) -> None:
    """``--fields`` (every field), ``--stack-top``, ``--ignore``: every ordered pair of
    every test, one side ``.gz``."""
    for test in TESTS:
        for a, b in itertools.product(CLIENTS, repeat=2):
            _both(_as(trace(a, test), "gz", tmp_path), trace(b, test), monkeypatch, **options)


@pytest.fixture(scope="module")
def long_traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The benchmark's traces of 1,100 iterations of its loop (one fault at 1000), each
    client's shapes, and geth's and revm's with a divergence every ~250 steps."""
    for client in CLIENTS:  # built from each client's real trace: skip where those are absent
        trace(client, "negative_refund")
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


@pytest.mark.parametrize(("a", "b", "kind"), [
    ("geth", "geth-h", "gz"), ("revm-h", "revm", "zst"), ("besu", "revm", "gz"),
    ("nethermind", "nimbus", "zst"), ("eels", "erigon", "gz"),
])
def test_long_compressed_traces_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, long_traces: dict[str, Path],
    a: str, b: str, kind: str,
) -> None:
    """The benchmark's shapes as ``.gz``/``.zst`` (one frame, or many frames whose ends
    fall inside lines of the buffer), against a plain or compressed other side."""
    if kind == "zst" and not HAS_ZSTD:
        pytest.skip("zstandard is not installed")
    za = _as(long_traces[a], kind, tmp_path)
    zb = tmp_path / f"many-{b}.jsonl.{kind}"
    zb.write_bytes(_compress(long_traces[b].read_bytes(), kind, pieces=37))
    for x, y in ((za, zb), (za, long_traces[b]), (long_traces[a], zb)):
        fast, _, passed = _both(x, y, monkeypatch)
        assert isinstance(fast, DiffReport)
        assert passed > fast.steps.common * 9 // 10, "the pass should cover most common steps"


@pytest.mark.parametrize("options", [
    {"fields": ["pc", "op", "gas"]},
    {"ignore": ["stack"]},
    {"fields": ["pc", "op", "gasCost"]},
    {"fields": ["pc", "op", "memSize", "refund", "opName", "returnData", "error"]},
    {"fields": ALL_FIELDS},
    {"stack_top": 2},
    {"stack_top": 0},
    {"stack_top": 3, "ignore": ["gas"]},
    {"max_hunks": 1},
    {"window": 4},
    {"dialect_a": "geth", "dialect_b": "evm"},
])
def test_options_report_what_the_reference_does(
    monkeypatch: pytest.MonkeyPatch, long_traces: dict[str, Path], options: dict[str, Any]
) -> None:
    for a, b in (("geth", "geth-h"), ("besu", "revm-h"), ("nimbus", "evmone")):
        fast, _, passed = _both(long_traces[a], long_traces[b], monkeypatch, **options)
        assert isinstance(fast, DiffReport)
        if a == "geth" and "window" not in options and "max_hunks" not in options:
            assert passed > fast.steps.common * 9 // 10, "the pass should take these options"


def _shortened(lines: list[bytes], top: int) -> list[bytes]:
    """The lines with each op line's stack cut to its top ``top`` words (as goevmlab users
    compare a client that writes a shortened stack)."""
    out = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if isinstance(obj, dict) and isinstance(obj.get("stack"), list):
            obj["stack"] = obj["stack"][-top:] if top else []
            line = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        out.append(line)
    return out


def test_a_shortened_stack_with_stack_top_reports_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_traces: dict[str, Path]
) -> None:
    """One side writes only the top 2 stack words, compared with ``--stack-top`` 2 (the
    pass takes these steps), 1 and 3 (it must not: the reference finds the stacks
    differ)."""
    lines = long_traces["geth"].read_bytes().splitlines(keepends=True)
    short = tmp_path / "short.jsonl"
    short.write_bytes(b"".join(_shortened(lines, 2)))
    full = tmp_path / "full.jsonl"  # (every step differs at 3: a shorter trace)
    full.write_bytes(b"".join(lines[:3000]))
    short3 = tmp_path / "short3.jsonl"
    short3.write_bytes(b"".join(_shortened(lines[:3000], 2)))
    for top, a, b in ((2, long_traces["geth"], short), (2, short, long_traces["geth-h"]),
                      (1, long_traces["geth"], short), (3, full, short3)):
        fast, _, passed = _both(a, b, monkeypatch, stack_top=top)
        assert isinstance(fast, DiffReport)
        if top < 3:
            assert passed > fast.steps.common * 9 // 10
            assert fast.equal == (b == short)
        else:
            assert not fast.equal


def _spaced(line: bytes, how: int) -> bytes:
    """An op line as tools that pretty-print per line write it (spaces after ``:`` and
    ``,``, around the brackets; hex in capitals; numbers as decimal strings)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    if how % 3 == 1:
        obj = {k: (str(int(v, 16)) if isinstance(v, str) and v.startswith("0x")
                   and k in ("pc", "op", "gas", "depth", "gasCost", "memSize", "refund") else v)
               for k, v in obj.items()}
    if how % 3 == 2 and isinstance(obj.get("stack"), list):
        obj["stack"] = [w.replace("0x", "0x000").upper().replace("0X", "0x")
                        if isinstance(w, str) else w for w in obj["stack"]]
    text = json.dumps(obj)
    if how % 2:
        text = text.replace("{", "{ ").replace("}", " }").replace("[", "[ ").replace(" : ", ":")
    return text.encode() + b"\n"


@pytest.mark.parametrize("how", [0, 1, 2, 5])
def test_spaced_json_and_other_number_spellings_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_traces: dict[str, Path], how: int
) -> None:
    """Every line of one side respelled (``"pc": 1``, decimal strings, padded capital
    hex): the pass takes them and says what the reference says."""
    for client, other in (("geth", "geth-h"), ("revm", "revm-h")):
        lines = long_traces[client].read_bytes().splitlines(keepends=True)
        spaced = tmp_path / f"{client}-spaced.jsonl"
        spaced.write_bytes(b"".join(_spaced(line, how) for line in lines))
        for options in ({}, {"fields": ALL_FIELDS}, {"stack_top": 2}):
            fast, _, passed = _both(spaced, long_traces[other], monkeypatch, **options)
            assert isinstance(fast, DiffReport)
            assert passed > fast.steps.common * 9 // 10, "the pass should take these lines"
        _both(long_traces[client], spaced, monkeypatch)


def _damaged(data: bytes, how: str, at: float) -> bytes:
    cut = int(len(data) * at)
    if how == "cut":
        return data[:cut]
    broken = bytearray(data)
    for i in range(cut, min(cut + 64, len(broken))):
        broken[i] ^= 0x5A
    return bytes(broken)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["cut", "corrupt"])
def test_damaged_compressed_traces_give_the_references_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_traces: dict[str, Path], kind: str,
    how: str,
) -> None:
    """A ``.gz``/``.zst`` cut short or with bytes changed, early, in the middle (while the
    pass reads) and near the end, one frame or many: the reference's one error, or its
    report when the damage is not seen, on either side."""
    plain = long_traces["geth"]
    for pieces in (1, 9):
        good = _compress(plain.read_bytes(), kind, pieces)
        for at in (0.01, 0.5, 0.97):
            bad = tmp_path / f"bad-{pieces}-{at}.jsonl.{kind}"
            bad.write_bytes(_damaged(good, how, at))
            fast, _, _ = _both(plain, bad, monkeypatch)
            _both(bad, plain, monkeypatch)
            assert isinstance(fast, tuple), "a damaged trace is an error"
    bad = tmp_path / "bad-1-0.5.jsonl.gz"
    if bad.exists():  # the command: one line on stderr, exit 2
        done = subprocess.run([sys.executable, "-m", "blocktrace", "diff", str(plain), str(bad)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert str(bad) in done.stderr


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
                 trace(client, "negative_refund").read_bytes()
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
@given(a=mutated(), b=mutated(), small=st.booleans(), options=st.sampled_from(OPTIONS),
       kind=st.sampled_from(["plain", "plain", *KINDS]))
def test_mutated_traces_report_what_the_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_lines: None, a: list[bytes],
    b: list[bytes], small: bool, options: dict[str, Any], kind: str,
) -> None:
    """Mutated traces, with the options that choose the compared fields, B plain or
    compressed."""
    pa, pb = tmp_path / "a.jsonl", tmp_path / f"b.jsonl.{kind}"
    pa.write_bytes(b"".join(a))
    pb.write_bytes(_compress(b"".join(b), kind, 3) if kind != "plain" else b"".join(b))
    with monkeypatch.context() as patch:
        if small:
            patch.setattr(clientpass, "CHUNK", 211)
        _both(pa, pb, monkeypatch, **options)
        _both(pa, pa, monkeypatch, **options)


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



def _negated(v: Any) -> Any:
    """A refund with the other sign, in its own form (revm's: the 64-bit wrap)."""
    if v is None:
        return None
    if isinstance(v, int):
        return -v
    n = int(v, 16)
    return f"0x{(-(n - (1 << 64) if n >= 1 << 63 else n)) % (1 << 64):x}"


_EDITS = [
    ("refund", _negated),
    ("refund", lambda v: -v if isinstance(v, int) and v else "-0x1" if v in (0, "0x0") else 7),
    ("refund", lambda v: "0xffffffffffffffff" if v in (0, "0x0") else 0),
    ("gasCost", lambda v: "0x" + format(int(v, 16) + 1, "X") if isinstance(v, str) else v + 1),
    ("memSize", lambda v: "0x41" if v in (0, "0x0") else 0),
    ("opName", lambda v: (v or "x").lower()),
    ("returnData", lambda v: "0xAB" if v in (None, "0x") else None),
    ("stack", lambda v: [*v[:-1], "0x" + v[-1][2:].upper() + "0"] if v else ["0x1"]),
]


@pytest.mark.parametrize("client", ["revm", "evmone", "geth", "nethermind"])
@pytest.mark.parametrize("edit", range(len(_EDITS)), ids=[f"{n}{i}" for i, (n, _) in
                                                          enumerate(_EDITS)])
def test_a_field_changed_in_one_step_is_found_as_the_reference_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: str, edit: int
) -> None:
    """One op line's gasCost, memSize, refund (its sign, its 64-bit wrap), opName (its
    case), returnData or top stack word changed, in the middle of a real trace, compared
    with every field and with --stack-top: found where the reference finds it."""
    name, change = _EDITS[edit]
    lines = trace(client, "negative_refund").read_bytes().splitlines(keepends=True)
    ops = [i for i, line in enumerate(lines) if line.startswith(b'{"pc":')]
    refunds = [i for i in ops if json.loads(lines[i]).get("refund") not in (None, 0, "0x0")]
    b = tmp_path / "b.jsonl"
    for where in (ops[len(ops) // 3], ops[len(ops) // 2], *refunds[-1:], *refunds[:1]):
        obj = json.loads(lines[where])
        obj[name] = change(obj.get(name))
        edited = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        b.write_bytes(b"".join([*lines[:where], edited, *lines[where + 1:]]))
        for options in ({"fields": ALL_FIELDS}, {"fields": [name, "pc"]}, {"stack_top": 1}):
            fast, _, passed = _both(trace(client, "negative_refund"), b, monkeypatch,
                                    **options)
            assert isinstance(fast, DiffReport)
            assert passed > 0
