"""The verifier's tamper matrix, on a real trace made by ``blocktrace run``, in
format version 3 and (re-chained) version 4.  A version 4 trace is checked by
the pure-Python walk too, whatever ``verify`` runs (and by ``verify`` only once
this blocktrace reads version 4), and both must give the same answer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocktrace.chain import verify
from blocktrace.chain.merkle import MerkleAccumulator
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.chain.verify import Verification, verify_file
from blocktrace.cli.verify import EXIT_STATUS
from blocktrace.format import reader
from tests.chain.recording import record_behaves

Runner = Callable[..., subprocess.CompletedProcess[str]]
_decode = msgspec.json.Decoder(dict[str, Any]).decode


@pytest.fixture(scope="session")
def recorded_trace_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sealed trace of a real run (a few hundred lines); do not modify."""
    trace = record_behaves(tmp_path_factory.mktemp("real") / "real.jsonl",
                           "--genesis", "nonce-42", args=("exit3",), status=3)
    assert len(trace.read_bytes().splitlines()) > 100
    return trace


@pytest.fixture(scope="session", params=[3, 4], ids=["v3", "v4"])
def real_trace_path(
    request: pytest.FixtureRequest, recorded_trace_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The recorded trace in format version 3 or 4 (the same lines, re-chained)."""
    data = recorded_trace_path.read_bytes()
    version = _decode(data.split(b"\n", 1)[0])["blocktrace"]
    if request.param == version:
        return recorded_trace_path
    path = tmp_path_factory.mktemp(f"v{request.param}") / "real.jsonl"
    path.write_bytes(rechain_trace(data, version=request.param))
    return path


@pytest.fixture
def real_trace(real_trace_path: Path) -> bytes:
    return real_trace_path.read_bytes()


def pure_verify(path: Path, head: str | None = None, genesis: str | None = None
                ) -> Verification:
    """``verify_file``'s answer by the pure-Python walk."""
    result = Verification(str(path), "unusable")
    with path.open("rb") as stream:
        reader._walk(stream, result, MerkleAccumulator())
    if result.status in ("sealed", "unsealed"):
        verify._check_anchors(result, head, genesis)
    return result


def _check(tmp_path: Path, data: bytes, **anchors: str) -> Verification:
    path = tmp_path / "t.jsonl"
    path.write_bytes(data)
    if not data.startswith(b'{"blocktrace":4,'):
        return verify_file(path, **anchors)
    pure = pure_verify(path, **anchors)
    said = verify_file(path, **anchors)  # what verify says (C or pure) is the reference's
    assert (said.status, said.line, said.reason, said.head, said.lines) == (
        pure.status, pure.line, pure.reason, pure.head, pure.lines)
    return pure


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def test_the_real_trace_is_sealed(real_trace: bytes, tmp_path: Path) -> None:
    result = _check(tmp_path, real_trace, genesis="nonce-42")
    assert result.status == "sealed" and EXIT_STATUS[result.status] == 0
    lines = _lines(real_trace)
    assert result.lines == len(lines)
    assert result.head == _decode(lines[-1])["hash"]
    assert result.genesis == "nonce-42"
    assert result.summary is not None and result.summary["error"] == "SystemExit: 3"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(min_value=0), new=st.integers(min_value=0, max_value=255))
def test_any_edited_byte_is_never_sealed(
    real_trace_path: Path, tmp_path: Path, position: int, new: int
) -> None:
    real_trace = real_trace_path.read_bytes()
    position %= len(real_trace)
    if real_trace[position] == new:
        new = (new + 1) % 256
    data = bytearray(real_trace)
    data[position] = new
    result = _check(tmp_path, bytes(data))
    assert result.status != "sealed", (position, new)


@pytest.mark.parametrize("where", ["first", "second", "middle", "last event"])
def test_any_edited_byte_positions_in_the_hash_and_body(
    real_trace: bytes, tmp_path: Path, where: str
) -> None:
    lines = _lines(real_trace)
    places = {"first": 0, "second": 1, "middle": len(lines) // 2, "last event": len(lines) - 2}
    index = places[where]
    for offset in (0, 5, len(lines[index]) // 2, len(lines[index]) - 10, len(lines[index]) - 3):
        edited = bytearray(lines[index])
        edited[offset] ^= 0x01
        result = _check(tmp_path, b"".join([*lines[:index], bytes(edited), *lines[index + 1 :]]))
        assert result.status in ("tampered", "unusable"), (where, offset, result)
        if result.status == "tampered":
            assert result.line == index + 1


def _tampered_at(result: Verification, line: int | None) -> None:
    assert result.status == "tampered" and EXIT_STATUS[result.status] == 1, result
    assert result.line == line, result


def test_deleted_line(real_trace: bytes, tmp_path: Path) -> None:
    lines = _lines(real_trace)
    for index in (1, 7, len(lines) - 2):
        result = _check(tmp_path, b"".join(lines[:index] + lines[index + 1 :]))
        _tampered_at(result, index + 1)


def test_deleted_header_is_tampering(real_trace: bytes, tmp_path: Path) -> None:
    # Issue 11: a chained line where the header belongs is a tampered trace (1),
    # not some other file (2).
    result = _check(tmp_path, b"".join(_lines(real_trace)[1:]))
    _tampered_at(result, 1)
    assert "header" in result.reason


def test_swapped_first_lines_is_tampering(real_trace: bytes, tmp_path: Path) -> None:
    lines = _lines(real_trace)
    _tampered_at(_check(tmp_path, b"".join([lines[1], lines[0], *lines[2:]])), 1)


def test_a_file_that_is_no_trace_is_unusable(tmp_path: Path) -> None:
    assert _check(tmp_path, b'{"pc":1,"op":2}\n').status == "unusable"
    assert _check(tmp_path, b"hello\n").status == "unusable"


def test_duplicated_line(real_trace: bytes, tmp_path: Path) -> None:
    lines = _lines(real_trace)
    for index in (0, 3, len(lines) - 2):
        result = _check(tmp_path, b"".join(lines[: index + 1] + lines[index:]))
        _tampered_at(result, index + 2)


def test_inserted_line(real_trace: bytes, tmp_path: Path) -> None:
    lines = _lines(real_trace)
    # A well-formed line with a well-formed (but wrong) hash, and one from elsewhere.
    forged = lines[5].replace(b'"depth":1', b'"depth":2')
    for insert in (forged, lines[9]):
        result = _check(tmp_path, b"".join([*lines[:6], insert, *lines[6:]]))
        _tampered_at(result, 7)


def test_swapped_lines(real_trace: bytes, tmp_path: Path) -> None:
    lines = _lines(real_trace)
    swapped = [*lines]
    swapped[10], swapped[11] = swapped[11], swapped[10]
    _tampered_at(_check(tmp_path, b"".join(swapped)), 11)
    swapped = [*lines]
    swapped[-1], swapped[-2] = swapped[-2], swapped[-1]
    _tampered_at(_check(tmp_path, b"".join(swapped)), len(lines) - 1)


@pytest.mark.parametrize("cut", [1, 2, 50])
def test_truncated_tail_is_unsealed(real_trace: bytes, tmp_path: Path, cut: int) -> None:
    lines = _lines(real_trace)
    result = _check(tmp_path, b"".join(lines[:-cut]))
    assert result.status == "unsealed" and EXIT_STATUS[result.status] == 3
    assert result.lines == len(lines) - cut
    assert result.head == _decode(lines[-cut - 1])["hash"]


@pytest.mark.parametrize("keep", [1, 40, -3])
def test_torn_last_line_is_unsealed(real_trace: bytes, tmp_path: Path, keep: int) -> None:
    lines = _lines(real_trace)
    torn = lines[-5][:keep]
    result = _check(tmp_path, b"".join([*lines[:-5], torn]))
    assert result.status == "unsealed" and EXIT_STATUS[result.status] == 3
    assert result.lines == len(lines) - 5
    assert result.line == len(lines) - 4
    assert "torn" in result.reason


def test_torn_summary_is_not_sealed(real_trace: bytes, tmp_path: Path) -> None:
    result = _check(tmp_path, real_trace[:-1])  # the summary's newline gone
    assert result.status != "sealed"


@pytest.mark.parametrize(
    "extra",
    [
        b"\n",
        b"junk",
        b"junk\n",
        b'{"event":"call","hash":"' + b"0" * 64 + b'"}\n',
    ],
)
def test_anything_after_the_summary(real_trace: bytes, tmp_path: Path, extra: bytes) -> None:
    result = _check(tmp_path, real_trace + extra)
    _tampered_at(result, len(_lines(real_trace)) + 1)


def test_appended_copy_of_a_line(real_trace: bytes, tmp_path: Path) -> None:
    lines = _lines(real_trace)
    _tampered_at(_check(tmp_path, real_trace + lines[-1]), len(lines) + 1)
    _tampered_at(_check(tmp_path, real_trace + lines[3]), len(lines) + 1)


def test_byte_order_mark(real_trace: bytes, tmp_path: Path) -> None:
    _tampered_at(_check(tmp_path, b"\xef\xbb\xbf" + real_trace), 1)


def test_crlf_line_endings(real_trace: bytes, tmp_path: Path) -> None:
    _tampered_at(_check(tmp_path, real_trace.replace(b"\n", b"\r\n")), 1)
    lines = _lines(real_trace)
    one = b"".join([*lines[:20], lines[20].replace(b"\n", b"\r\n"), *lines[21:]])
    _tampered_at(_check(tmp_path, one), 21)


def _rechain(data: bytes, edit: Callable[[int, bytes], bytes]) -> bytes:
    """A forger who knows the format: edit line bodies (not the summary's), then
    recompute every hash and the summary's count (and, before version 3, its
    head and Merkle root), so the chain checks."""
    last = len(data.splitlines()) - 1
    return rechain_trace(data, lambda n, body: body if n == last else edit(n, body))


def test_rechained_forgery_is_caught_only_with_the_head(real_trace: bytes, tmp_path: Path) -> None:
    honest_head = _decode(_lines(real_trace)[-1])["hash"]

    def edit(number: int, body: bytes) -> bytes:
        return body.replace(b'"line":14', b'"line":15') if number > 0 else body

    forged = _rechain(real_trace, edit)
    assert forged != real_trace
    # The forger's tool is right: unchanged bodies give back the same bytes.
    assert _rechain(real_trace, lambda n, b: b) == real_trace

    alone = _check(tmp_path, forged)
    assert alone.status == "sealed"  # a chain alone proves nothing against a rewrite
    anchored = _check(tmp_path, forged, head=honest_head)
    _tampered_at(anchored, None)
    assert "anchored head" in anchored.reason
    # And the honest file matches its anchor, in either case of hex.
    assert _check(tmp_path, real_trace, head=honest_head.upper()).status == "sealed"


def test_forged_genesis(real_trace: bytes, tmp_path: Path) -> None:
    edited = real_trace.replace(b'"genesis":"nonce-42"', b'"genesis":"nonce-41"', 1)
    _tampered_at(_check(tmp_path, edited), 1)
    # Re-chained with the new genesis: sealed alone, caught by the expected genesis.
    forged = _rechain(
        real_trace, lambda n, b: b.replace(b'"genesis":"nonce-42"', b'"genesis":"nonce-41"')
    )
    assert _check(tmp_path, forged).status == "sealed"
    _tampered_at(_check(tmp_path, forged, genesis="nonce-42"), 1)
    _tampered_at(_check(tmp_path, real_trace, genesis="another"), 1)


def test_head_of_a_cut_file_does_not_match(real_trace: bytes, tmp_path: Path) -> None:
    lines = _lines(real_trace)
    head = _decode(lines[-1])["hash"]
    result = _check(tmp_path, b"".join(lines[:-1]), head=head)
    _tampered_at(result, None)


def test_summary_that_lies_about_the_count(real_trace: bytes, tmp_path: Path) -> None:
    def edit(number: int, body: bytes) -> bytes:
        return body

    lines = _lines(real_trace)
    # Drop an event, re-chain, but keep the old summary numbers: a careless forger.
    shorter = b"".join([*lines[:30], *lines[31:]])
    careless = rechain_trace(shorter, fix_summary=False)
    _tampered_at(_check(tmp_path, careless), len(lines) - 1)
    # The same in version 2, whose summary is hashed by its own rule.
    careless_v2 = rechain_trace(shorter, version=2, fix_summary=False)
    _tampered_at(_check(tmp_path, careless_v2), len(lines) - 1)
    careless_v4 = rechain_trace(shorter, version=4, fix_summary=False)
    _tampered_at(_check(tmp_path, careless_v4), len(lines) - 1)



def test_an_endless_line_is_refused_in_bounded_memory() -> None:
    """/dev/zero has no newline: the verifier stops at its line limit instead of
    reading it all into memory."""
    # The peak of this process's own memory (VmHWM): getrusage's ru_maxrss keeps the
    # parent's peak across the fork and exec, so it measured the pytest worker's size.
    code = (
        "from blocktrace.chain.verify import verify_file; "
        "r = verify_file('/dev/zero'); "
        "print(r.status, r.reason); "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0].startswith("unusable line 1 is longer than 64 MiB"), out
    assert int(out[1]) < 400 * 1024  # KiB: bounded by the line limit, not by the input


def test_an_overlong_line_after_the_header_is_tampering(
    real_trace: bytes, tmp_path: Path
) -> None:
    from blocktrace.chain.verify import MAX_LINE_BYTES

    data = _lines(real_trace)[0] + b"x" * (MAX_LINE_BYTES + 10) + b"\n"
    result = _check(tmp_path, data)
    assert result.status == "tampered" and result.line == 2, result.reason


def test_a_whole_leaf_deleted_or_two_leaves_swapped(real_trace: bytes, tmp_path: Path) -> None:
    """Leaves are 16 lines: removing lines 17-32 whole, or swapping two whole
    leaves, breaks the chain at the first line of the leaf that moved (version
    4: the leaf's stream starts with the hash of the line before it)."""
    lines = _lines(real_trace)
    _tampered_at(_check(tmp_path, b"".join(lines[:16] + lines[32:])), 17)
    swapped = lines[:16] + lines[32:48] + lines[16:32] + lines[48:]
    _tampered_at(_check(tmp_path, b"".join(swapped)), 17)
    # the last line of a leaf (whose hash is the leaf hash) edited, hash kept
    edited = lines[31].replace(b'"depth":1', b'"depth":2', 1)
    assert edited != lines[31]
    _tampered_at(_check(tmp_path, b"".join([*lines[:31], edited, *lines[32:]])), 32)
    # its hash digits changed alone: line 32's own check, then line 33's stream
    digits = lines[31][:-4] + (b"0" if lines[31][-4:-3] != b"0" else b"1") + lines[31][-3:]
    _tampered_at(_check(tmp_path, b"".join([*lines[:31], digits, *lines[32:]])), 32)
