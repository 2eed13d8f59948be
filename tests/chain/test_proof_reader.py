"""``TraceFile`` (prove, sign, ``verify --checkpoint``, ``show``'s check of its
lines) reads a trace through the format's reader, not a pass of its own: line 1
judged as ``verify`` judges it, the extent (lines, last line, torn tail) from
``TraceReader.extent``, the leaves from the format's whole-line buffers.  What it
answered before is kept (roots, proofs, summaries, for every version, streamed
and from the index, plain and compressed); what it now says as every reader
does: a header refused in verify's words, and a trace that lost lines while it
was read is refused rather than given a root of fewer leaves."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from blocktrace.chain.merkle import LINES_PER_LEAF, MerkleAccumulator
from blocktrace.chain.proof import TraceError, TraceFile, check_bundle, encode_bundle, make_bundle
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.chain.verify import verify_file
from blocktrace.format import TraceReader, check_chain
from tests.chain.recording import record


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """One recorded run in every format version."""
    where = tmp_path_factory.mktemp("proof-reader")
    recorded = record(where).read_bytes()
    out = {}
    for version in (1, 2, 3, 4):
        path = where / f"v{version}.jsonl"
        path.write_bytes(rechain_trace(recorded, version=version))
        out[version] = path
    return out


def _verified_root(path: Path) -> str:
    result = check_chain(path, tree=MerkleAccumulator())
    assert result.status == "sealed", result.reason
    return result.root


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_streamed_and_indexed_trees_are_verifys(traces: dict[int, Path], version: int) -> None:
    path = traces[version]
    streamed = TraceFile(path)
    index = TraceReader(path).index()
    assert index is not None
    indexed = TraceFile(path, index=index)
    lines = path.read_bytes().splitlines()
    for trace in (streamed, indexed):
        assert trace.version == version and trace.sealed
        assert trace.complete_lines == len(lines)
        assert trace.summary is not None and trace.summary.lines == len(lines) - 1
        assert trace.root().hex() == _verified_root(path)
    for line in (1, 2, len(lines) // 2, streamed.tree_lines):
        one, two = make_bundle(streamed, line), make_bundle(indexed, line)
        assert encode_bundle(one) == encode_bundle(two)
        assert one.text == lines[line - 1].decode()
        check_bundle(encode_bundle(one))
    groups = list(streamed.leaves())
    assert [line for group in groups for line in group] == lines[: streamed.tree_lines]
    assert all(len(group) == LINES_PER_LEAF for group in groups[:-1])
    assert list(streamed.lines(5)) == lines[:5]


def test_a_compressed_trace_reads_as_the_plain_one(traces: dict[int, Path],
                                                   tmp_path: Path) -> None:
    plain = traces[4]
    packed = tmp_path / "t.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    one, two = TraceFile(plain), TraceFile(packed)
    assert (one.complete_lines, one.tree_size, one.root()) == (
        two.complete_lines, two.tree_size, two.root())


def test_a_torn_trace_is_unsealed_and_proves_its_whole_lines(traces: dict[int, Path],
                                                             tmp_path: Path) -> None:
    data = traces[4].read_bytes()
    cut = data[: data.index(b"\n", len(data) // 2) + 30]  # 29 bytes of the next line
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(cut)
    trace = TraceFile(torn)
    assert not trace.sealed and trace.summary is None
    assert trace.complete_lines == cut.count(b"\n") == trace.tree_lines
    check_bundle(encode_bundle(make_bundle(trace, trace.complete_lines)))


def test_a_header_is_refused_in_verifys_words(traces: dict[int, Path], tmp_path: Path) -> None:
    data = traces[4].read_bytes()
    for name, bad in [("blank", b"\n" + data), ("bom", b"\xef\xbb\xbf" + data),
                      ("headless", data.split(b"\n", 1)[1]), ("empty", b"")]:
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(bad)
        verify = verify_file(path)
        with pytest.raises(TraceError) as caught:
            TraceFile(path)
        assert verify.reason in str(caught.value), name
    directory = tmp_path / "dir.jsonl"
    directory.mkdir()
    with pytest.raises(TraceError, match="is a directory"):
        TraceFile(directory)


def test_a_header_without_a_valid_hash_is_refused(traces: dict[int, Path],
                                                  tmp_path: Path) -> None:
    data = traces[4].read_bytes()
    head, rest = data.split(b"\n", 1)
    body = msgspec.json.decode(head)
    body["hash"] = "x" * 64
    path = tmp_path / "h.jsonl"
    path.write_bytes(msgspec.json.encode(body) + b"\n" + rest)
    with pytest.raises(TraceError, match="the header has no valid hash"):
        TraceFile(path)


def test_lines_lost_while_reading_are_refused(traces: dict[int, Path], tmp_path: Path) -> None:
    """The file cut between the count and the leaves (another process, a rotation):
    the tree is not taken over the lines that are left (before: a root of fewer
    leaves, as if the trace were shorter)."""
    path = tmp_path / "shrinks.jsonl"
    data = traces[3].read_bytes()
    path.write_bytes(data)
    trace = TraceFile(path)
    with open(path, "r+b") as f:
        f.truncate(len(data) // 2)
        os.fsync(f.fileno())
    with pytest.raises(TraceError, match="changed while it was read"):
        trace.root()


def test_a_summary_that_is_no_summary_leaves_the_trace_unsealed(
    traces: dict[int, Path], tmp_path: Path
) -> None:
    """The last line is the summary when it is the format's ``Summary`` kind."""
    data = traces[3].read_bytes()
    body = data.rstrip(b"\n").rsplit(b"\n", 1)[0] + b'\n{"event":"other","hash":"' + b"0" * 64
    path = tmp_path / "other.jsonl"
    path.write_bytes(body + b'"}\n')
    trace = TraceFile(path)
    assert trace.summary is None and not trace.sealed


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_verify_checks_a_checkpoint_against_a_compressed_trace(tmp_path: Path,
                                                               suffix: str) -> None:
    """``verify --checkpoint`` of a compressed trace (no index: streamed): it said
    "cannot read: File or stream is not seekable" (exit 2) before, TraceFile's own
    pass going back to the start of a decompressed stream."""
    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)],
                              capture_output=True, text=True, timeout=120, check=False,
                              cwd=tmp_path)

    script = tmp_path / "prog.py"
    script.write_text("print(sum(range(10)))\n")
    trace = tmp_path / f"t{suffix}"
    assert cli("run", "-o", trace, script).returncode == 0
    assert cli("keygen", "--out", tmp_path / "k", "me").returncode == 0
    signed = cli("sign", "--key", tmp_path / "k.key", "-o", tmp_path / "cp", trace)
    assert signed.returncode == 0, signed.stderr
    done = cli("verify", "--no-index", "--checkpoint", tmp_path / "cp", "--pubkey",
               tmp_path / "k.pub", trace)
    assert done.returncode == 0, done.stderr
    assert "matches the whole tree" in done.stdout
