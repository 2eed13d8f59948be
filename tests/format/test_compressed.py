"""Compressed traces: written as the program runs, read by every command, bad
input answered as for a torn plain file."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blocktrace.chain.verify import verify_file
from blocktrace.format import TraceReader
from blocktrace.format.compressed import SEEKABLE_MAGIC, CompressedDataError, sniff

zstandard = pytest.importorskip("zstandard", reason="the zstd extra is not installed")

_PROGRAM = """\
def f(i):
    if i % 7 == 0:
        try:
            raise ValueError(i)
        except ValueError:
            pass
    return i * 2
total = 0
for i in range(N):
    total += f(i)
print(total)
"""


def _run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )


def _record(tmp: Path, name: str, n: int = 3000) -> Path:
    program = tmp / "prog.py"
    program.write_text(_PROGRAM.replace("N", str(n)))
    trace = tmp / name
    proc = _run("run", "-o", trace, program)
    assert proc.returncode == 0, proc.stderr
    return trace


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if sniff(data[:4]) == "gzip":
        return gzip.decompress(data)
    return zstandard.ZstdDecompressor().decompressobj().decompress(data) if False else b"".join(
        _zstd_frames(data)
    )


def _zstd_frames(data: bytes) -> list[bytes]:
    """Every frame's content, as ``zstd -d`` concatenates them (skippable frames skipped)."""
    out = []
    d = zstandard.ZstdDecompressor()
    while data:
        magic = int.from_bytes(data[:4], "little")
        if magic & 0xFFFFFFF0 == 0x184D2A50:
            data = data[8 + int.from_bytes(data[4:8], "little") :]
            continue
        obj = d.decompressobj()
        out.append(obj.decompress(data))
        assert obj.eof
        data = obj.unused_data
    return out


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("compressed")
    out = {"zst": _record(tmp, "t.jsonl.zst"), "gz": _record(tmp, "t.jsonl.gz")}
    for kind in ("zst", "gz"):
        plain = tmp / f"{kind}-plain.jsonl"
        # gzip -d gives the .jsonl; a compact .zst's lines need their hashes put back
        if kind == "gz":
            plain.write_bytes(_decompress(out[kind]))
        else:
            proc = _run("cat", out[kind], "-o", plain)
            assert proc.returncode == 0, proc.stderr
        out[f"{kind}-plain"] = plain
    hashless = tmp / "zst-hashless.jsonl"
    hashless.write_bytes(_decompress(out["zst"]))
    out["zst-hashless"] = hashless
    return out


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_decompressing_gives_the_trace_that_verifies_the_same(
    traces: dict[str, Path], kind: str
) -> None:
    packed, plain = traces[kind], traces[f"{kind}-plain"]
    assert sniff(packed.read_bytes()[:4]) == ("zstd" if kind == "zst" else "gzip")
    a, b = verify_file(packed), verify_file(plain)
    assert a.status == b.status == "sealed"
    assert (a.lines, a.head, a.root, a.tree_size) == (b.lines, b.head, b.root, b.tree_size)
    assert packed.stat().st_size * 3 < plain.stat().st_size
    reader = TraceReader(packed)
    assert reader.kind == ("zstd" if kind == "zst" else "gzip")
    assert [raw for _, raw in reader.raw_lines()] == plain.read_bytes().splitlines(keepends=True)


def test_zstd_d_of_a_compact_trace_gives_the_lines_without_their_hashes(
    traces: dict[str, Path],
) -> None:
    """What the compact frames store: each line as the bytes its hash commits to."""
    full = traces["zst-plain"].read_bytes().splitlines(keepends=True)
    hashless = traces["zst-hashless"].read_bytes().splitlines(keepends=True)
    assert hashless == [line[:-76] + b"}\n" for line in full]
    proc = _run("verify", traces["zst-hashless"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "blocktrace cat" in proc.stderr


def test_zstd_frames_hold_whole_leaves_and_a_seek_table_ends_the_file(
    traces: dict[str, Path],
) -> None:
    data = traces["zst"].read_bytes()
    assert int.from_bytes(data[-4:], "little") == SEEKABLE_MAGIC
    frames = _zstd_frames(data)
    assert len(frames) > 3
    count = int.from_bytes(data[-9:-5], "little")
    assert count == len(frames)
    lines = 0
    for frame in frames[:-1]:
        assert frame.endswith(b"\n")
        lines += frame.count(b"\n")
    # the header is flushed on its own; the others end where a Merkle leaf ends
    assert all(f.count(b"\n") for f in frames)
    ends = [sum(f.count(b"\n") for f in frames[: i + 1]) for i in range(len(frames) - 1)]
    assert all(end % 16 == 0 for end in ends[1:])


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_every_reader_reads_it(traces: dict[str, Path], kind: str, tmp_path: Path) -> None:
    packed, plain = traces[kind], traces[f"{kind}-plain"]
    lines = plain.read_bytes().splitlines(keepends=True)
    verify = _run("verify", packed)
    assert verify.returncode == 0 and "valid and sealed" in verify.stdout
    show = _run("show", packed, "500:2")
    assert show.returncode == 0, show.stderr
    assert show.stdout == _run("show", plain, "500:2").stdout
    prove = _run("prove", packed, str(len(lines) - 3))
    assert prove.returncode == 0, prove.stderr
    bundle = tmp_path / "b.json"
    bundle.write_text(prove.stdout)
    assert _run("check-proof", bundle).returncode == 0
    assert json.loads(prove.stdout)["root"] == verify_file(plain).root
    same = _run("diff", packed, plain)
    assert same.returncode == 0, same.stdout + same.stderr
    listing = _run("lines", packed)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == _run("lines", plain).stdout


def test_random_access_seeks_into_compressed_frames(traces: dict[str, Path]) -> None:
    reader = TraceReader(traces["zst"])
    index = reader.index()
    assert index is not None and index.frames  # the frames of the checkpoints are kept
    lines = traces["zst-plain"].read_bytes().splitlines(keepends=True)
    for start in (1500, 5000, len(lines) - 1):
        assert list(reader.raw_lines(start, 2)) == [
            (n, lines[n - 1]) for n in range(start, min(start + 2, len(lines) + 1))
        ]


def _torn_plain_status(plain: Path, tmp: Path, lines: int) -> tuple[int, str]:
    """verify of the plain trace cut inside line ``lines + 1``."""
    data = plain.read_bytes().splitlines(keepends=True)
    cut = tmp / "cut.jsonl"
    cut.write_bytes(b"".join(data[:lines]) + data[lines][:10])
    proc = _run("verify", cut)
    return proc.returncode, proc.stdout


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_truncated_mid_frame_is_unsealed_with_the_last_line(
    traces: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    data = traces[kind].read_bytes()
    cut = tmp_path / f"cut.jsonl.{kind}"
    cut.write_bytes(data[: len(data) // 2])
    proc = _run("verify", cut)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "UNSEALED" in proc.stdout and "Traceback" not in proc.stderr
    result = verify_file(cut)
    assert result.status == "unsealed" and result.line == result.lines + 1
    assert "ends inside" in result.reason
    # the lines before it are the plain trace's, and its torn copy says the same
    status, _ = _torn_plain_status(traces[f"{kind}-plain"], tmp_path, result.lines)
    assert status == 3
    plain_lines = traces[f"{kind}-plain"].read_bytes().splitlines(keepends=True)
    assert result.head == json.loads(plain_lines[result.lines - 1])["hash"]


def _inside_a_data_frame(data: bytes, at: int) -> int:
    """An offset from ``at`` on with 64 bytes inside one zstd data frame, clear of
    its header and end: zeros there corrupt the frame, not a skippable frame
    beside it (zeros in a compact trace's head frame are a forged head: tampering,
    not a frame that cannot be read; where the middle of the file falls depends
    on the recorded lines)."""
    import zstandard

    start = 0
    while start < len(data):
        magic = int.from_bytes(data[start : start + 4], "little")
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame
            size = 8 + int.from_bytes(data[start + 4 : start + 8], "little")
        else:
            obj = zstandard.ZstdDecompressor().decompressobj()
            obj.decompress(data[start:])
            size = len(data) - start - len(obj.unused_data)
            lo, hi = start + 32, start + size - 32 - 64
            if hi >= lo and hi >= at:
                return max(lo, min(at, hi))
        start += size
    raise AssertionError("no data frame of 128 bytes or more after the middle")


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_a_corrupt_frame_is_unsealed_never_a_traceback(
    traces: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    data = bytearray(traces[kind].read_bytes())
    at = len(data) // 2 if kind == "gz" else _inside_a_data_frame(bytes(data), len(data) // 2)
    data[at : at + 64] = bytes(64)
    bad = tmp_path / f"bad.jsonl.{kind}"
    bad.write_bytes(bytes(data))
    proc = _run("verify", bad)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "cannot be read" in proc.stdout
    assert "UNSEALED" in _run("show", bad, "10").stderr  # what comes before still reads
    for command in (["show", bad, "100000"], ["prove", bad, "100000"], ["diff", bad, bad],
                    ["lines", bad]):
        other = _run(*command)
        assert "Traceback" not in other.stderr, (command, other.stderr)
        assert other.stderr.count("\n") <= 2, (command, other.stderr)


@pytest.mark.parametrize(
    "content",
    [b"\x28\xb5\x2f\xfd" + bytes(range(200)), b"\x1f\x8b" + b"not gzip at all" * 5,
     os.urandom(300)],
)
def test_not_compressed_data_is_unusable(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.jsonl.zst"
    bad.write_bytes(content)
    proc = _run("verify", bad)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") + proc.stdout.count("\n") <= 2
    assert "Traceback" not in proc.stderr
    for command in ("show", "prove", "lines"):
        other = _run(command, bad, "1")
        assert other.returncode == 2 and "Traceback" not in other.stderr, (command, other.stderr)


def test_killed_run_leaves_an_unsealed_compressed_trace(tmp_path: Path) -> None:
    program = tmp_path / "killed.py"
    program.write_text(
        "import os, signal\nt = 0\nfor i in range(30000):\n    t += i\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    trace = tmp_path / "k.jsonl.zst"
    proc = _run("run", "-o", trace, program)
    assert proc.returncode == -signal.SIGKILL
    result = verify_file(trace)
    assert result.status == "unsealed" and result.lines > 1


def test_without_the_zstd_library_one_line_names_the_extra(
    traces: dict[str, Path], tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked" / "zstandard"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('not installed here')\n")
    env = {"PYTHONPATH": str(blocked.parent)}
    read = _run("verify", traces["zst"], env=env)
    assert read.returncode == 2 and "blocktrace[zstd]" in read.stdout + read.stderr
    # PyPI's blocktrace is the old seed tool: the checkout's command is named too.
    assert "pip install -e '.[zstd]'" in read.stdout + read.stderr
    program = tmp_path / "p.py"
    program.write_text("x = 1\n")
    out = tmp_path / "new.jsonl.zst"
    write = _run("run", "-o", out, program, env=env)
    if sys.version_info < (3, 14):  # no compression.zstd in the standard library
        assert write.returncode == 2 and "blocktrace[zstd]" in write.stderr
        assert "pip install -e '.[zstd]'" in write.stderr
        assert write.stderr.count("\n") == 1 and not out.exists()


def test_read_ahead_hands_out_the_blocks_then_the_error_in_order(tmp_path: Path) -> None:
    """The chain check reads a compressed trace through a thread that decompresses
    ahead: every byte before a problem comes first, then the problem; closed
    early, the thread stops."""
    import io
    import threading

    from blocktrace.format.compressed import ReadAhead

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 5

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if not self.left:
                raise CompressedDataError("corrupt", 7, truncated=False)
            self.left -= 1
            buffer[:3] = b"ab\n"
            return 3

    ahead = ReadAhead(io.BufferedReader(Failing(), 4), block=3, depth=2)
    assert ahead.readline() == b"ab\n"
    got = b""
    with pytest.raises(CompressedDataError):
        while chunk := ahead.read():
            got += chunk
    assert got == b"ab\n" * 4
    ahead.close()
    before = threading.active_count()
    early = ReadAhead(io.BytesIO(b"x" * 10_000), block=10, depth=1)
    assert early.read() == b"x" * 10
    early.close()
    assert threading.active_count() <= before


_THREADS = """\
import threading
def work(n):
    t = 0
    for i in range(n):
        t += i
    return t
threads = [threading.Thread(target=work, args=(20000,)) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(work(10))
"""


def test_a_threaded_program_with_checkpoints_records_a_compressed_trace(tmp_path: Path) -> None:
    """With several program threads the stepper serialises its callbacks under a
    lock the program's thread holds while a checkpoint's flush waits for the
    compressed writer's thread: that thread's events must not wait for the lock
    (it hung before)."""
    script = tmp_path / "threads.py"
    script.write_text(_THREADS)
    trace = tmp_path / "t.jsonl.zst"
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "--checkpoint-every", "5000", "-o",
         str(trace), str(script)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, "45\n"), proc.stderr
    assert verify_file(trace).status == "sealed"


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_fill_reads_frame_after_frame_and_gives_the_bytes_before_a_corrupt_one(
    traces: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    """``FrameStream.fill`` (the differ's walk reads a compressed trace so): a buffer
    of megabytes filled in one call, not a frame's worth; with a corrupt frame, the
    bytes before it are given, then the error is raised (by the next call)."""
    from blocktrace.format.compressed import FrameStream

    whole = traces[f"{kind}-plain"].read_bytes()
    with traces[kind].open("rb", buffering=0) as raw:
        frames = FrameStream(raw, "zstd" if kind == "zst" else "gzip")
        first = frames.readinto(memoryview(bytearray(len(whole))))
        assert 0 < first < len(whole)  # readinto: one frame's worth (random access keeps it)
    with traces[kind].open("rb", buffering=0) as raw:
        frames = FrameStream(raw, "zstd" if kind == "zst" else "gzip")
        buffer = bytearray(len(whole) + 10)
        assert frames.fill(buffer) == len(whole)
        assert bytes(buffer[: len(whole)]) == whole
        assert frames.fill(buffer) == 0
    data = bytearray(traces[kind].read_bytes())
    at = len(data) // 2 if kind == "gz" else _inside_a_data_frame(bytes(data), len(data) // 2)
    data[at : at + 64] = bytes(64)
    bad = tmp_path / f"bad.jsonl.{kind}"
    bad.write_bytes(bytes(data))
    with bad.open("rb", buffering=0) as raw:
        frames = FrameStream(raw, "zstd" if kind == "zst" else "gzip")
        buffer = bytearray(len(whole))
        got = frames.fill(buffer)
        assert 0 < got < len(whole) and bytes(buffer[:got]) == whole[:got]
        with pytest.raises(CompressedDataError):
            frames.fill(buffer)
