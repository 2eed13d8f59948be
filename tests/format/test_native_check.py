"""The native chain check (blocktrace.format.fastcheck over the C scanner) gives
exactly the pure walk's answers: on every tamper class of the verifier's tests,
in the four format versions, on the fuzz corpus and on random edits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocktrace._native import extension
from blocktrace.chain.merkle import MerkleAccumulator
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.format import fastcheck, reader
from blocktrace.format.compressed import kind_of
from blocktrace.format.index import IndexBuilder, stamp_of
from blocktrace.format.reader import Verification
from tests.chain.recording import record_behaves
from tests.format.recording import record_exceptions

NATIVE = extension("blocktrace.format._cscan")
pytestmark = pytest.mark.skipif(
    NATIVE is None, reason="the C scanner is not built, or BLOCKTRACE_PURE is set"
)
CORPUS = Path(__file__).parent.parent / "fuzz" / "corpus"


def _walks(path: Path) -> tuple[tuple[Verification, bytes], tuple[Verification, bytes]]:
    answers = []
    for native in (False, True):
        result = Verification(str(path), "unusable")
        tree = MerkleAccumulator()
        with open(path, "rb") as stream:
            if native:
                fastcheck.walk(NATIVE, stream, result, tree)
            else:
                reader._walk(stream, result, tree)
        answers.append((result, tree.root() + tree.size.to_bytes(8, "big")))
    return answers[0], answers[1]


def _indexes(path: Path) -> tuple[bytes, bytes]:
    """The index each walk builds in its pass (as the index file's bytes), with the
    progress each reports at its end."""
    answers = []
    for native in (False, True):
        result = Verification(str(path), "unusable")
        builder = IndexBuilder(stamp_of(str(path), kind_of(str(path))), None)
        told: list[int] = []
        progress = type("P", (), {"update": staticmethod(told.append)})()
        with open(path, "rb") as stream:
            if native:
                fastcheck.walk(NATIVE, stream, result, builder, builder, progress)
            else:
                reader._walk(stream, result, builder, builder, progress)
        index = builder.finish(result) if result.status != "unusable" else None
        answers.append(msgspec.msgpack.encode([index, result.lines]))
    return answers[0], answers[1]


def _same(path: Path, data: bytes | None = None) -> Verification:
    if data is not None:
        path.write_bytes(data)
    pure, native = _walks(path)
    assert native == pure
    assert reader.check_chain(path, tree=MerkleAccumulator()) == pure[0]
    return pure[0]


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[int, bytes]:
    """A real trace of a few hundred lines (many leaves), in each format version."""
    data = record_behaves(tmp_path_factory.mktemp("native") / "real.jsonl",
                          "--genesis", "nonce-42", args=("exit3",), status=3).read_bytes()
    return {version: rechain_trace(data, version=version) for version in (1, 2, 3, 4)}


def _tampers(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The verifier's tamper classes (tests/chain/test_verify_tamper.py) and more."""
    lines = data.splitlines(keepends=True)
    n = len(lines)
    yield "honest", data
    yield "deleted line", b"".join(lines[:5] + lines[6:])
    yield "deleted header", b"".join(lines[1:])
    yield "swapped first lines", b"".join([lines[1], lines[0], *lines[2:]])
    yield "duplicated line", b"".join([*lines[:7], lines[6], *lines[7:]])
    yield "inserted line", b"".join([*lines[:9], b'{"x":1}\n', *lines[9:]])
    yield "swapped lines", b"".join([*lines[:10], lines[11], lines[10], *lines[12:]])
    for cut in (1, 2, 17, n // 2):
        yield f"cut {cut}", b"".join(lines[:-cut])
    for keep in (0, 1, 40, len(lines[-2]) - 1):
        yield f"torn {keep}", b"".join(lines[:-2]) + lines[-2][:keep]
    yield "torn summary", b"".join(lines[:-1]) + lines[-1][:-1]
    for extra in (b"\n", b"x", b"{}\n", lines[3], b"x" * 5000):
        yield f"after summary {extra[:8]!r}", data + extra
    yield "byte-order mark", b"\xef\xbb\xbf" + data
    yield "crlf", data.replace(b"\n", b"\r\n")
    yield "one crlf", b"".join([*lines[:20], lines[20].replace(b"\n", b"\r\n"), *lines[21:]])
    yield "no hash member", b"".join([*lines[:4], lines[4][:-80] + b"}\n", *lines[5:]])
    upper = lines[4][:-20].upper() + lines[4][-20:]
    yield "uppercase hash", b"".join([*lines[:4], upper, *lines[5:]])
    yield "edited byte", data[:500] + bytes([data[500] ^ 1]) + data[501:]
    yield "empty", b""
    yield "header only", lines[0]
    yield "not json", b"hello\n"
    yield "unknown version", data.replace(b'"blocktrace":', b'"blocktrace":9', 1)
    last = n - 1
    version = msgspec.json.decode(lines[0])["blocktrace"]
    bodies: dict[str, Callable[[bytes], bytes]] = {
        "not an object": lambda b: b'["x"',
        "bad json": lambda b: b + b",",
        "not utf-8": lambda b: b[:-1] + b'"\xff"',
        "latin-1 in a string": lambda b: b + b',"s":"caf\xe9"',
        "utf-8 in a string": lambda b: b + ',"s":"café ✓ 𝄞"'.encode(),
        "surrogate in utf-8": lambda b: b + b',"s":"\xed\xa0\x80"',
        "escaped surrogate": lambda b: b + b',"s":"\\ud800"',
        "escaped pair": lambda b: b + b',"s":"\\ud834\\udd1e"',
        "escapes": lambda b: b + b',"s":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9"',
        "bad escape": lambda b: b + b',"s":"\\x"',
        "control char": lambda b: b + b',"s":"a\tb"',
        "delete char": lambda b: b + b',"s":"a\x7fb"',
        "whitespace": lambda b: b + b', "s" : [ 1 , 2 ]',
        "float": lambda b: b + b',"f":1.5e3',
        "big int": lambda b: b + b',"n":123456789012345678901234567890',
        "leading zero": lambda b: b + b',"n":012',
        "negative": lambda b: b + b',"n":-7,"z":-0',
        "literals": lambda b: b + b',"a":[true,false,null,{},[]]',
        "deep": lambda b: b + b',"d":' + b"[" * 100 + b"]" * 100,
        "very deep": lambda b: b + b',"d":' + b"[" * 20000 + b"]" * 20000,
        "nan": lambda b: b + b',"f":NaN',
        "duplicate key": lambda b: b + b',"pc":1',
        "summary prefix": lambda b: b'{"output":"x"',
    }
    for name, edit in bodies.items():
        for where in (0, 3, last):
            def one(number: int, body: bytes, where: int = where, edit=edit) -> bytes:
                return edit(body) if number == where else body
            try:
                yield f"{name} at {where}", rechain_trace(data, one, version=version)
            except (ValueError, KeyError, msgspec.DecodeError, RecursionError):
                continue  # the forger's tool refuses: nothing to compare
    summary = lines[-1]
    yield "summary miscounts", b"".join(lines[:30] + lines[31:])
    yield "summary gasUsed", rechain_trace(
        data, lambda n, b: b.replace(b'"gasUsed":"0x', b'"gasUsed":"zz') if n == last else b
    )
    assert summary


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_every_tamper_class_gets_the_pure_answer(
    traces: dict[int, bytes], tmp_path: Path, version: int
) -> None:
    seen = set()
    for name, data in _tampers(traces[version]):
        answer = _same(tmp_path / "t.jsonl", data)
        seen.add(answer.status)
        assert name or answer
    assert seen == {"sealed", "unsealed", "tampered", "unusable"}


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_the_index_built_in_the_pass_is_the_pure_one(
    traces: dict[int, bytes], tmp_path: Path, version: int
) -> None:
    path = tmp_path / "t.jsonl"
    for name, data in list(_tampers(traces[version]))[:40]:
        path.write_bytes(data)
        pure, native = _indexes(path)
        assert native == pure, name


def test_the_fuzz_corpus_gets_the_pure_answers() -> None:
    names = sorted(CORPUS.glob("*.jsonl"))
    assert len(names) >= 5
    for path in names:
        _same(path)


def test_lines_longer_than_the_bound(
    traces: dict[int, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line bound (64 MiB, lowered here for both walks) is met at every place."""
    data = traces[3]
    lines = data.splitlines(keepends=True)
    bound = max(map(len, lines)) + 10
    for module in (reader, fastcheck):
        monkeypatch.setattr(module, "MAX_LINE_BYTES", bound)
    monkeypatch.setattr(fastcheck, "CHUNK", 64)  # many buffer refills, lines across them
    long = b"x" * (bound + 1)
    for name, case in [
        ("long first", long + b"\n"),
        ("long first torn", long),
        ("exactly the bound", lines[0] + b"x" * (bound - 1) + b"\n"),
        ("one over", lines[0] + b"x" * bound + b"\n"),
        ("long middle", b"".join([*lines[:5], long + b"\n", *lines[5:]])),
        ("long torn tail", b"".join(lines[:5]) + long),
        ("long after summary", data + long),
        ("long line after summary", data + long + b"\n"),
        *_tampers(data),
    ]:
        assert name
        _same(tmp_path / "t.jsonl", case)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    version=st.sampled_from([1, 2, 3, 4]),
    edits=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1,
                   max_size=3),
    rechain=st.booleans(),
)
def test_random_edits_get_the_pure_answers(
    traces: dict[int, bytes], tmp_path: Path, version: int,
    edits: list[tuple[int, int]], rechain: bool,
) -> None:
    data = bytearray(traces[version])
    for at, value in edits:
        data[at % len(data)] = value
    edited = bytes(data)
    if rechain:
        try:
            edited = rechain_trace(edited, version=version)
        except Exception:  # the forger's tool may refuse: compare what was made
            pass
    _same(tmp_path / "t.jsonl", edited)


_JSONISH = st.lists(
    st.sampled_from([b"{", b"}", b"[", b"]", b'"', b":", b",", b"\\", b"u", b"0", b"1", b"-",
                     b".", b"e", b"a", b" ", b"\t", b"true", b"null", b"\xc3\xa9", b"\xed",
                     b"\x80", b"\x00", b"\\ud800", b'"k"', b'"v"']),
    max_size=40,
).map(b"".join)


@settings(max_examples=2000, deadline=None)
@given(line=_JSONISH)
def test_the_c_json_check_never_accepts_what_msgspec_refuses(line: bytes) -> None:
    """It may leave any line to Python, but what it settles, msgspec accepts."""
    if NATIVE.plain_json_object(line):
        assert reader._not_an_object(line) == ""


# Rewrites of an op or exception line's members that decide whether it joins the
# step before it: the scanner settles the plain forms and leaves the rest to Python.
_STEP_EDITS: list[tuple[bytes, bytes]] = [
    (b'"pc":', b'"pc" :'),
    (b'"pc":', b'"p\\u0063":'),
    (b'"depth":', b'"depth":1,"depth":'),
    (b'"depth":1', b'"depth":1.0'),
    (b'"depth":1', b'"depth":true'),
    (b'"depth":1', b'"depth":-0'),
    (b'"depth":1', b'"depth":null'),
    (b'"depth":1', b'"depth":"1"'),
    (b'"gasCost":"0x0"', b'"gasCost":"0x0","event":null'),
    (b'"gasCost":"0x0"', b'"gasCost":"0x0","thread":[1]'),
    (b'"gasCost":"0x1"', b'"gasCost":"0x1","event":"x"'),
    (b'"gasCost":"0x1"', b'"gasCost":"0x1","event":"\\u0078"'),
    (b'"code":', b'"x":{"code":[1,"}"]},"code":'),
    (b'"gas":"0x', b'"gas":"0X'),
]


@pytest.fixture(scope="module")
def step_trace(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real trace of ~4,000 lines, full of exception lines, over a few checkpoints."""
    return record_exceptions(tmp_path_factory.mktemp("steps"), 130).read_bytes()


def test_steps_decided_in_c_are_the_reference_ones(step_trace: bytes, tmp_path: Path) -> None:
    """The scanner counts steps (and checkpoints' first steps) itself; the lines it
    is unsure of go to Python's rule: the index is the pure walk's either way."""
    path = tmp_path / "t.jsonl"
    pure, native = _indexes(_written(path, step_trace))
    assert native == pure
    lines = step_trace.count(b"\n")
    for old, new in _STEP_EDITS:
        for every in (1, 7, 97):
            def edit(number: int, body: bytes, old: bytes = old, new: bytes = new,
                     every: int = every) -> bytes:
                if number % every or not body.startswith(b'{"pc":'):
                    return body
                return body.replace(old, new, 1)
            edited = rechain_trace(step_trace, edit)
            pure, native = _indexes(_written(path, edited))
            assert native == pure, (old, new, every)
    assert lines > 2 * 1024


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(_STEP_EDITS)),
                      min_size=1, max_size=40))
def test_random_step_edits_give_the_reference_index(
    step_trace: bytes, tmp_path: Path, edits: list[tuple[int, tuple[bytes, bytes]]]
) -> None:
    n = step_trace.count(b"\n")
    where = {at % n: edit for at, edit in edits}

    def edit(number: int, body: bytes) -> bytes:
        if number in where and body.startswith(b'{"pc":'):
            old, new = where[number]
            return body.replace(old, new, 1)
        return body
    path = _written(tmp_path / "t.jsonl", rechain_trace(step_trace, edit))
    pure, native = _indexes(path)
    assert native == pure


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
