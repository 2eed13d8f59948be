"""The export's verify, fed the conversion's own reads of the file
(``query.verifying``), answers what ``verify_file`` answers, whatever the trace
holds and wherever the conversion stops."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from blocktrace._native import extension
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.chain.verify import verify_file
from blocktrace.format import TraceError, Verification, wholelines
from blocktrace.query import columns, verifying
from blocktrace.query.tables import RunFacts, trace_batches

pytestmark = pytest.mark.skipif(
    extension("blocktrace.format._cscan") is None,
    reason="the C extension is not built, or BLOCKTRACE_PURE is set (verify reads the file)",
)


def _one_pass(path: Path, stop_at: int | None = None) -> verifying.Verifier:
    """The verifier fed by a conversion of ``path`` (abandoned after ``stop_at`` batches)."""
    verifier = verifying.start_verify(str(path))
    assert verifier.feed is not None  # fed, not reading the file itself
    try:
        for n, _ in enumerate(trace_batches(str(path), RunFacts(str(path)), verifier.feed)):
            if n == stop_at:
                break
    except TraceError:
        pass  # the conversion stopped at a line it cannot read
    return verifier


def _lines(trace: Path) -> list[bytes]:
    return trace.read_bytes().splitlines(keepends=True)


_EDITS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "as written": lambda x: x,
    "tampered early": lambda x: [*x[:2], x[2].replace(b'"depth":1', b'"depth":2'), *x[3:]],
    "tampered late": lambda x: [*x[:-3], x[-3].replace(b'"code":', b'"code":1'), *x[-2:]],
    "no summary": lambda x: x[:-1],
    "torn": lambda x: [*x[:-1], x[-1][:40]],
    "after the summary": lambda x: [*x, b'{"x":1}\n'],
    "not JSON in the middle": lambda x: [*x[:200], b"{nope\n", *x[200:]],
    "too long in the middle": lambda x: [*x[:300], b"x" * (5 << 20) + b"\n", *x[300:]],
    "blank line": lambda x: [*x[:100], b"\n", *x[100:]],
    # the summaries of versions 1 and 2 commit to the Merkle root: the export's tree's
    "version 1": lambda x: rechain_trace(b"".join(x), version=1).splitlines(keepends=True),
    "version 2": lambda x: rechain_trace(b"".join(x), version=2).splitlines(keepends=True),
    "version 2, root changed": lambda x: rechain_trace(
        b"".join(x), version=2).replace(b'"root":"', b'"root":"0').splitlines(keepends=True),
}


@pytest.mark.parametrize("name", list(_EDITS))
def test_the_same_answer_as_verify(
    fib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(wholelines, "CHUNK", 4096)  # many buffers, lines across their ends
    monkeypatch.setattr(verifying, "QUEUED", 1)  # the conversion waits for the verifier
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(_EDITS[name](_lines(fib))))
    want = verify_file(path)
    assert _one_pass(path).result().as_json() == want.as_json()
    if name in ("as written", "version 1", "version 2"):
        assert want.status == "sealed"
    elif name != "no summary":
        assert want.status in ("tampered", "unusable") or want.reason


def test_an_abandoned_conversion_ends_the_verifier(
    fib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wholelines, "CHUNK", 4096)
    monkeypatch.setattr(verifying, "QUEUED", 1)
    verifier = _one_pass(fib, stop_at=0)
    verifier.close()  # returns: the walk is told the file ended
    assert not verifier._thread.is_alive()
    # asked for the answer instead, it reads the rest of the file itself
    assert _one_pass(fib, stop_at=0).result().as_json() == verify_file(fib).as_json()


def _fed(path: Path) -> list[tuple[bytes, int, bytes]]:
    """What a conversion of ``path`` hands its verifier: (chunk, first, bits)."""
    got: list[tuple[bytes, int, bytes]] = []
    for _ in trace_batches(str(path), RunFacts(str(path)),
                           lambda chunk, first, bits: got.append((chunk, first, bits))):
        pass
    return got


def _marked(fed: list[tuple[bytes, int, bytes]]) -> dict[int, bytes]:
    """The lines the map says were read whole, by number."""
    lines = b"".join(chunk for chunk, _, _ in fed).splitlines()
    out = {}
    for _, first, bits in fed:
        for k in range(8 * len(bits)):
            if bits[k >> 3] >> (k & 7) & 1:
                out[first + k] = lines[first + k - 1]
    return out


def test_the_conversion_tells_the_verifier_which_lines_it_read_whole(
    fib: Path, oddlines: Path, queried: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocktrace.format.reader import _not_an_object

    monkeypatch.setattr(wholelines, "CHUNK", 4096)  # many buffers, lines across their ends
    for path in (fib, oddlines, queried):
        fed = _fed(path)
        assert b"".join(chunk for chunk, _, _ in fed) == path.read_bytes()  # all, in order
        assert fed[-1][0] == b""
        marked = _marked(fed)
        lines = path.read_bytes().splitlines()
        # every line the map names is a JSON object, as verify's own test says
        assert all(_not_an_object(line) == "" for line in marked.values())
        assert all(lines[n - 1] == line for n, line in marked.items())
        # and the writer's plain op, call and return lines are in it (no JSON test for them)
        plain = [n for n, line in enumerate(lines, 1)
                 if line.startswith((b'{"pc":', b'{"event":"call"', b'{"event":"return"'))
                 and b"\\" not in line and line.isascii() and b'"locals"' not in line
                 and not re.search(rb'"value":-?[0-9]+[.eE]', line)]  # floats: Python's
        assert plain and set(plain) <= set(marked), path.name


_PROBES = b'0 -"\\{}[],:.ex9\x7f\x80\x00'


def test_a_line_read_whole_is_always_a_json_object(oddlines: Path) -> None:
    """Every one-byte change of the writer's op, exception, call and return lines:
    when the columns' reader still reads it whole, msgspec agrees it is a JSON object
    (so the verifier may skip its test for it)."""
    from blocktrace.format.reader import _not_an_object

    native = extension("blocktrace.format._cscan")
    kinds: dict[bytes, bytes] = {}
    for line in oddlines.read_bytes().splitlines():
        if line.isascii() and b"\\" not in line:
            for prefix in (b'{"pc":', b'{"event":"call"', b'{"event":"return"'):
                if line.startswith(prefix):
                    key = prefix + (b"0" if b'"gasCost":"0x0"' in line else b"")
                    kinds.setdefault(key + line[-90:-80], line)  # a few of each
    assert len(kinds) >= 4
    checked = 0
    for line in kinds.values():
        for at in range(len(line)):
            for probe in _PROBES:
                edited = line[:at] + bytes([probe]) + line[at + 1:]
                for variant in (edited, line[:at] + line[at + 1:], line[:at] + b"0" + line[at:]):
                    c = native.OpColumns()
                    c.take_known(1)
                    stop, pos, _ = c.feed(variant + b"\n", 0, 1, 1 << 17)
                    _, bits = c.take_known(2)
                    if bits and bits[0] & 1:
                        assert stop == columns.END and pos == len(variant) + 1
                        assert _not_an_object(variant) == "", variant
                        checked += 1
    assert checked > 100  # some edits still read whole (digits for digits, ...)


def test_a_line_said_whole_skips_the_scanners_json_test(fib: Path, tmp_path: Path) -> None:
    """``ChainScan.known`` is trusted: a line not JSON, re-hashed, passes when the
    map names it (so only the columns' reader may name lines), and is refused
    when it does not."""
    import io

    from blocktrace.chain.merkle import MerkleAccumulator
    from blocktrace.format import Verification, fastcheck

    native = extension("blocktrace.format._cscan")
    data = rechain_trace(fib.read_bytes(), lambda i, body: body.replace(b'"pc":', b'"pc":0')
                         if i == 5 else body)
    want = verify_file_bytes(data, tmp_path / "bad.jsonl")
    assert (want.status, want.line) == ("tampered", 6)

    def walk(first: int, bits: bytes) -> Verification:
        result = Verification("x", "unusable")
        fastcheck.walk(native, io.BytesIO(data), result, MerkleAccumulator(),
                       on_scan=lambda scan: scan.known(first, bits))
        return result

    refused = walk(1, b"\x00\x00")  # no line named: the JSON test refuses line 6
    assert (refused.status, refused.line) == ("tampered", 6)
    assert walk(1, bytes([1 << 4])).status == "tampered"  # bit 4 from line 1: line 5
    assert walk(1, bytes([1 << 5])).status == "sealed"  # bit 5 from line 1: line 6
    assert walk(2, bytes([1 << 4])).status == "sealed"  # bit 4 from line 2: line 6


def verify_file_bytes(data: bytes, path: Path) -> Verification:
    path.write_bytes(data)
    return verify_file(path)


def test_the_bulk_tree_is_the_accumulators_tree() -> None:
    """The export's Merkle tree (leaves in bulk, groups of 64 hashed in C) has the
    root and size of ``MerkleAccumulator`` (the reference), for every size around
    its groups and however the leaves come."""
    import hashlib
    import random

    from blocktrace.chain.merkle import MerkleAccumulator

    native = extension("blocktrace.format._cscan")
    rng = random.Random(7)
    for size in [*range(0, 140), 191, 192, 193, 255, 256, 257, 4095, 4096, 4097]:
        leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(size)]
        want = MerkleAccumulator()
        for leaf in leaves:
            want.append_leaf_hash(leaf)
        tree = verifying._Leaves(native.perfect_roots)
        at = 0
        while at < size:
            n = rng.choice([1, 2, 31, 64, 65, 300])
            tree.append_leaves(b"".join(leaves[at : at + n]))
            at += n
            assert tree.size == min(at, size)
        assert (tree.root(), tree.size) == (want.root(), want.size), size
        assert tree.root() == want.root()  # root() leaves the tree as it was
