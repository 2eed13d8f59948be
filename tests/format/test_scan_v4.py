"""The C scanner (``_cscan.ChainScan``) checks format version 4 exactly as the
reference rules (``rules.LeafChain(..., version=4)``) do: the same verdict at the
same line for an honest trace and for every tamper class of the version 3 tests,
the same leaf hashes, the same index bookkeeping.

The reference walk here is ``fastcheck``'s contract for the scanner alone: each
line in turn is torn, ends with a carriage return, has no hash member, carries
the wrong hash (``LeafChain.check``), is no JSON object (``reader._not_an_object``)
or is the summary -- the first of these ends the walk.  The whole readers'
answers (``check_chain``, pure against native) are compared in
``tests/format/test_native_check.py`` once readers accept version 4."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocktrace._native import extension
from blocktrace.format import reader
from blocktrace.format.index import EVERY
from blocktrace.format.rules import LeafChain, rechain, split_hash
from blocktrace.format.versions import LINES_PER_LEAF, MAX_LINE_BYTES, SUMMARY_PREFIX
from tests.chain.recording import record_behaves

NATIVE = extension("blocktrace.format._cscan")
pytestmark = pytest.mark.skipif(
    NATIVE is None, reason="the C scanner is not built, or BLOCKTRACE_PURE is set"
)
Answer = tuple[str, int, str, bytes]
"""(what stopped the walk, at which line, the head so far, the leaf hashes)."""


def bodies_of(data: bytes, version: int) -> list[bytes]:
    """The bodies of a trace's lines, its header saying ``version``."""
    bodies = []
    for line in data.splitlines():
        parts = split_hash(line)
        assert parts is not None
        bodies.append(parts[0])
    bodies[0] = bodies[0].replace(b'"blocktrace":3', b'"blocktrace":%d' % version, 1)
    return bodies


@pytest.fixture(scope="module")
def bodies(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """A real trace's bodies (a few hundred lines: many leaves, a partial last one)."""
    data = record_behaves(tmp_path_factory.mktemp("v4") / "real.jsonl",
                          "--genesis", "nonce-42", args=("exit3",), status=3).read_bytes()
    found = bodies_of(data, 4)
    assert len(found) > 5 * LINES_PER_LEAF and len(found) % LINES_PER_LEAF
    return found


def reference(data: bytes, version: int) -> Answer:
    leaves: list[bytes] = []
    chain = LeafChain(LINES_PER_LEAF, leaves.append, version)
    head = ""
    n = 0
    pieces = [line + b"\n" for line in data.split(b"\n")]  # (not splitlines: CR ends none)
    pieces[-1] = pieces[-1][:-1]
    for n, raw in enumerate(pieces if pieces[-1] else pieces[:-1], 1):
        if not raw.endswith(b"\n"):
            return "end", n, head, b"".join(leaves)
        line = raw[:-1]
        if line.endswith(b"\r"):
            return "cr", n, head, b"".join(leaves)
        parts = split_hash(line)
        if parts is None:
            return "no hash", n, head, b"".join(leaves)
        body, stored = parts
        if chain.check(body, raw) != stored:
            return "mismatch", n, head, b"".join(leaves)
        if reader._not_an_object(line):
            return "malformed", n, head, b"".join(leaves)
        if body.startswith(SUMMARY_PREFIX):  # (the scanner's head: the line before)
            chain.close_leaf()
            return "summary", n, head, b"".join(leaves)
        head = stored
    return "end", n + 1, head, b"".join(leaves)


def native(data: bytes, version: int, every: int = 0) -> Answer:
    assert NATIVE is not None
    scan = NATIVE.ChainScan(version, LINES_PER_LEAF, MAX_LINE_BYTES, True, every)
    names = {NATIVE.END: "end", NATIVE.CR: "cr", NATIVE.NO_HASH: "no hash",
             NATIVE.MISMATCH: "mismatch", NATIVE.MALFORMED: "malformed",
             NATIVE.SUMMARY: "summary"}
    leaves = b""
    pos, number, trust = 0, 1, 0
    while True:
        code, pos, number = scan.scan(data, pos, number, trust)
        leaves += scan.take_leaves()
        trust = 0
        if code == NATIVE.UNSURE:  # fastcheck's answer: Python's JSON check
            line = data[pos : data.index(b"\n", pos)]
            trust = 2 if reader._not_an_object(line) else 1
            continue
        if code == NATIVE.STEP:
            scan.decide(True)
            continue
        return names[code], number, scan.head, leaves


def tampers(bodies: list[bytes], version: int) -> Iterator[tuple[str, bytes]]:
    """The version 3 tests' tamper classes (tests/format/test_native_check.py), on a
    trace chained by ``version``'s rules."""
    bodies = [bodies[0].replace(b'"blocktrace":4', b'"blocktrace":%d' % version), *bodies[1:]]
    data = rechain(bodies, version)
    lines = data.splitlines(keepends=True)
    n = len(lines)
    leaf = LINES_PER_LEAF
    yield "honest", data
    yield "unsealed", b"".join(lines[:-1])
    for at in (0, 1, 5, leaf - 1, leaf, leaf + 1, n - 2, n - 1):
        yield f"deleted line {at}", b"".join(lines[:at] + lines[at + 1 :])
        yield f"duplicated line {at}", b"".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])
        yield f"inserted line at {at}", b"".join([*lines[:at], b'{"x":1}\n', *lines[at:]])
        yield f"edited body at {at}", b"".join(
            [*lines[:at], lines[at].replace(b"{", b'{"x":1,', 1), *lines[at + 1 :]]
        )
        digits = bytearray(lines[at])
        digits[-5] = ord("0") if digits[-5] != ord("0") else ord("1")
        yield f"edited digit at {at}", b"".join([*lines[:at], bytes(digits), *lines[at + 1 :]])
    for at in (1, leaf - 1, leaf, 2 * leaf - 1, n - 2):
        yield f"swapped lines {at}", b"".join(
            [*lines[:at], lines[at + 1], lines[at], *lines[at + 2 :]]
        )
    a, b, c = leaf, 2 * leaf, 3 * leaf
    yield "swapped leaves", b"".join(lines[:a] + lines[b:c] + lines[a:b] + lines[c:])
    yield "dropped leaf", b"".join(lines[:a] + lines[b:])
    yield "duplicated leaf", b"".join(lines[:b] + lines[a:])
    yield "leaf moved to the end", b"".join(lines[:a] + lines[b:] + lines[a:b])
    yield "first leaf dropped", b"".join(lines[leaf:])
    for cut in (1, 2, leaf, leaf + 1, n // 2):
        yield f"cut {cut}", b"".join(lines[:-cut])
    for keep in (0, 1, 40, len(lines[-2]) - 1):
        yield f"torn {keep}", b"".join(lines[:-2]) + lines[-2][:keep]
    yield "torn summary", b"".join(lines[:-1]) + lines[-1][:-1]
    yield "crlf", data.replace(b"\n", b"\r\n")
    yield "one crlf", b"".join([*lines[:20], lines[20].replace(b"\n", b"\r\n"), *lines[21:]])
    yield "no hash member", b"".join([*lines[:4], lines[4][:-80] + b"}\n", *lines[5:]])
    upper = lines[4][:-20].upper() + lines[4][-20:]
    yield "uppercase hash", b"".join([*lines[:4], upper, *lines[5:]])
    yield "header genesis", data.replace(b"nonce-42", b"nonce-43", 1)
    yield "header version", data.replace(b'"blocktrace":%d' % version, b'"blocktrace":9', 1)
    yield "empty", b""
    yield "header only", lines[0]
    yield "not json", b"hello\n"
    other = 3 if version == 4 else 4
    yield "the other version's chain", rechain(bodies, other)
    yield "the other version's last leaf", b"".join(
        lines[: n - n % leaf] + rechain(bodies, other).splitlines(keepends=True)[n - n % leaf :]
    )
    edits: dict[str, Callable[[bytes], bytes]] = {
        "not an object": lambda b: b'["x"',
        "bad json": lambda b: b + b",",
        "not utf-8": lambda b: b[:-1] + b'"\xff"',
        "utf-8 in a string": lambda b: b + ',"s":"café ✓ 𝄞"'.encode(),
        "escaped surrogate": lambda b: b + b',"s":"\\ud800"',
        "whitespace": lambda b: b + b', "s" : [ 1 , 2 ]',
        "float": lambda b: b + b',"f":1.5e3',
        "deep": lambda b: b + b',"d":' + b"[" * 100 + b"]" * 100,
        "duplicate key": lambda b: b + b',"pc":1',
        "summary prefix": lambda b: b'{"output":"x"',
        "empty object": lambda b: b"{",
    }
    for name, edit in edits.items():
        for at in (0, 3, leaf, n - 1):
            changed = [edit(body) if k == at else body for k, body in enumerate(bodies)]
            yield f"{name} at {at} (rechained)", rechain(changed, version)


@pytest.mark.parametrize("version", [3, 4])
def test_every_tamper_class_gets_the_references_answer(bodies: list[bytes], version: int) -> None:
    """Version 3 too: the reference walk here is the scanner's contract for both."""
    seen = set()
    for name, data in tampers(bodies, version):
        want = reference(data, version)
        assert native(data, version) == want, name
        seen.add(want[0])
    assert seen == {"end", "cr", "no hash", "mismatch", "malformed", "summary"}


def test_version_4_is_not_version_3(bodies: list[bytes]) -> None:
    v3, v4 = rechain(bodies, 3), rechain(bodies, 4)
    assert native(v4, 4)[:2] == ("summary", len(bodies))
    assert native(v3, 4)[:2] == ("mismatch", 1)
    assert native(v4, 3)[:2] == ("mismatch", 1)
    # where each tamper is found in version 4 (the first line whose hash cannot match)
    lines = v4.splitlines(keepends=True)
    edited = b"".join([*lines[:20], lines[20].replace(b"{", b'{"x":1,', 1), *lines[21:]])
    assert native(edited, 4)[:2] == ("mismatch", 21)
    swapped = b"".join(lines[:16] + lines[32:48] + lines[16:32] + lines[48:])
    assert native(swapped, 4)[:2] == ("mismatch", 17)


def test_leaf_hashes_are_the_leaves_last_lines_hashes(bodies: list[bytes]) -> None:
    data = rechain(bodies, 4)
    lines = data.splitlines()
    answer = native(data, 4)
    leaves = answer[3]
    ends = [*range(LINES_PER_LEAF, len(lines) + 1, LINES_PER_LEAF), len(lines)]
    assert [leaves[k : k + 32].hex() for k in range(0, len(leaves), 32)] == [
        lines[end - 1][-66:-2].decode() for end in ends
    ]
    assert answer[2] == lines[-2][-66:-2].decode()  # the summary is Python's to read


def test_the_index_bookkeeping_is_version_3s(bodies: list[bytes]) -> None:
    """The same bodies make the same steps and checkpoints, whatever the chain."""
    assert NATIVE is not None
    states = []
    many = bodies[:-1] + bodies[1:-1] * 8 + bodies[-1:]  # past a checkpoint or two
    for version in (3, 4):
        data = rechain(many, version)
        scan = NATIVE.ChainScan(version, LINES_PER_LEAF, MAX_LINE_BYTES, False, EVERY // 4)
        pos, number, trust = 0, 1, 0
        while True:
            code, pos, number = scan.scan(data, pos, number, trust)
            trust = 0
            if code == NATIVE.STEP:
                scan.decide(True)
                continue
            if code == NATIVE.UNSURE:
                trust = 1
                continue
            break
        assert (code, number) == (NATIVE.SUMMARY, len(many))
        last = split_hash(scan.last_step[:-1])  # (its hash differs, of course)
        states.append((scan.index_state(), last and last[0], scan.checkpoints))
    assert states[0] == states[1]
    assert states[0][2] >= 2


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1,
                   max_size=3),
)
def test_random_edits_get_the_references_answer(
    bodies: list[bytes], edits: list[tuple[int, int]]
) -> None:
    data = bytearray(rechain(bodies, 4))
    for at, value in edits:
        data[at % len(data)] = value
    assert native(bytes(data), 4) == reference(bytes(data), 4)


def test_hashed_scans_take_version_4(tmp_path: Path) -> None:
    """Lines from compact frames (hashes put in by the Expander) of either chain."""
    assert NATIVE is not None
    for version in (3, 4):
        NATIVE.ChainScan(version, LINES_PER_LEAF, MAX_LINE_BYTES, False, 0, True)
    with pytest.raises(ValueError, match="version 1-4"):
        NATIVE.ChainScan(5, LINES_PER_LEAF, MAX_LINE_BYTES, False)
