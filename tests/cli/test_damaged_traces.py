"""One answer per damaged trace, whichever command reads it.

Each file below is damaged where every reader starts: line 1 of a ``.jsonl``,
the first frame of a ``.jsonl.zst`` or ``.jsonl.gz``, or it is no trace at all.
``blocktrace verify`` says what it is (TAMPERED at line 1: exit 1; unusable:
exit 2), and every other reading command gives the same category -- exit 1 and
``TAMPERED at line 1``, or exit 2 and one line naming the file -- never a
traceback, never exit 0 for a file it could not read.  (``replay`` exited 2
for a trace verify calls TAMPERED; ``query`` said
"unusable" (2) of a compact trace whose first frame fails its stored head,
where verify says TAMPERED (1); ``diff``, ``query`` and ``export`` read a
trace whose header was deleted as a client's trace, exit 0; ``cat`` copied a
file that is no trace, exit 0.)  The rule lives in the format module
(``blocktrace.format.blocktrace_header``, ``TraceError.status``).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "fib.py"
HAS_ZSTD = importlib.util.find_spec("zstandard") is not None
HAS_QUERY = all(importlib.util.find_spec(m) is not None for m in ("duckdb", "pyarrow"))
HAS_ARROW = importlib.util.find_spec("pyarrow") is not None


def _bt(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", *map(str, args)], capture_output=True,
        text=True, timeout=180, env=env, check=False,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real run of the example recorded as .jsonl, .jsonl.gz (and .jsonl.zst)."""
    tmp = tmp_path_factory.mktemp("recorded")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache")}
    out = {}
    for ext in ("jsonl", "jsonl.gz", *(["jsonl.zst"] if HAS_ZSTD else [])):
        path = tmp / f"good.{ext}"
        proc = _bt("run", "-o", path, EXAMPLE, "5", env=env)
        assert proc.returncode == 0, proc.stderr
        out[ext] = path
    return out


def _zst_parts(path: Path) -> list[tuple[str, bytes]]:
    from tests.format.test_compact import _segments

    return _segments(path.read_bytes())


def _first_data(parts: list[tuple[str, bytes]]) -> int:
    return next(i for i, (kind, _) in enumerate(parts) if kind == "data")


def _zst_first_frame_edited(good: dict[str, Path]) -> bytes:
    """The header's frame decompresses and its checksum holds, but its line was
    edited: it does not match the head frame stored after it."""
    import zstandard

    parts = _zst_parts(good["jsonl.zst"])
    i = _first_data(parts)
    lines = zstandard.ZstdDecompressor().decompressobj().decompress(parts[i][1])
    edited = lines.replace(b'"python":"', b'"python":"9', 1)
    assert edited != lines
    parts[i] = ("data", zstandard.ZstdCompressor(write_checksum=True).compress(edited))
    return b"".join(p for _, p in parts)


def _zst_first_frame_corrupt(good: dict[str, Path]) -> bytes:
    parts = _zst_parts(good["jsonl.zst"])
    i = _first_data(parts)
    frame = bytearray(parts[i][1])
    for k in range(8, len(frame) - 4):
        frame[k] ^= 0x55
    parts[i] = ("data", bytes(frame))
    return b"".join(p for _, p in parts)


def _zst_cut_in_first_frame(good: dict[str, Path]) -> bytes:
    parts = _zst_parts(good["jsonl.zst"])
    i = _first_data(parts)
    return b"".join(p for _, p in parts[:i]) + parts[i][1][: len(parts[i][1]) // 2]


def _gz_first_member_corrupt(good: dict[str, Path]) -> bytes:
    data = bytearray(good["jsonl.gz"].read_bytes())
    for k in range(12, 40):
        data[k] ^= 0x55
    return bytes(data)


def _plain(good: dict[str, Path]) -> list[bytes]:
    return good["jsonl"].read_bytes().splitlines(keepends=True)


# name -> (suffix, make bytes, verify's answer: (exit, status), header readable)
Damage = tuple[str, Callable[[dict[str, Path]], bytes], int, bool]
DAMAGES: dict[str, Damage] = {
    "jsonl line 1 edited": (
        "jsonl", lambda g: _plain(g)[0].replace(b'"python":"', b'"python":"9', 1)
        + b"".join(_plain(g)[1:]), 1, True),
    "jsonl header deleted": ("jsonl", lambda g: b"".join(_plain(g)[1:]), 1, False),
    "jsonl line 1 not JSON": ("jsonl", lambda g: b"hello\n" + b"".join(_plain(g)[1:]), 2, False),
    "jsonl line 1 torn": ("jsonl", lambda g: _plain(g)[0][:50], 2, False),
    "zst first frame edited": ("jsonl.zst", _zst_first_frame_edited, 1, False),
    "zst first frame corrupt": ("jsonl.zst", _zst_first_frame_corrupt, 2, False),
    "zst cut in its first frame": ("jsonl.zst", _zst_cut_in_first_frame, 2, False),
    "gz first member corrupt": ("jsonl.gz", _gz_first_member_corrupt, 2, False),
    "gz cut in its first member": ("jsonl.gz", lambda g: g["jsonl.gz"].read_bytes()[:30], 2,
                                   False),
    # what `zstd -d` gives of a compact .jsonl.zst: every line without its hash member
    "zstd -d of a compact trace": (
        "jsonl", lambda g: b"".join(line[:-76] + b"}\n" for line in _plain(g)), 2, False),
    "empty file": ("jsonl", lambda g: b"", 2, False),
    "a text file": ("jsonl", lambda g: b"hello world\nsecond line\n", 2, False),
    "a binary file": ("jsonl", lambda g: bytes(range(256)) * 3, 2, False),
}

# The commands that read a trace, and what they need.
Argv = Callable[[Path, Path, Path], list[str | Path]]
COMMANDS: dict[str, tuple[Argv, bool]] = {
    "show": (lambda t, good, out: ["show", t, "0"], True),
    "show --line": (lambda t, good, out: ["show", "--line", t, "1"], True),
    "cat": (lambda t, good, out: ["cat", t, "-o", out / "cat.jsonl"], True),
    "lines": (lambda t, good, out: ["lines", t], True),
    "diff": (lambda t, good, out: ["diff", t, good], True),
    "diff (as B)": (lambda t, good, out: ["diff", good, t], True),
    "query": (lambda t, good, out: ["query", t, "SELECT count(*) FROM ops"], HAS_QUERY),
    "export parquet": (lambda t, good, out: ["export", t, "--to", "parquet", out / "pq"],
                       HAS_ARROW),
    "export perfetto": (lambda t, good, out: ["export", t, "--to", "perfetto",
                                              out / "t.json"], True),
    "view": (lambda t, good, out: ["view", "--html", out / "page.html", t], True),
    "prove": (lambda t, good, out: ["prove", t, "1"], True),
    "replay": (lambda t, good, out: ["replay", t], True),
}

# Commands that show a tampered trace whose header reads, with a note (exit 0):
# the steps they show (or compare) come with "TAMPERED at line N" on stderr.
SHOWN_WITH_A_NOTE = {"cat", "lines", "diff", "diff (as B)"}


def _tampered_at_1(said: str) -> bool:
    """``TAMPERED at line 1``, or show's "no step 0 (0 steps before line 1, where
    it is TAMPERED ...)"."""
    return "TAMPERED at line 1" in said or (
        "before line 1, where it is TAMPERED" in said)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_every_reader_answers_as_verify_does(
    damage: str, recorded: dict[str, Path], tmp_path: Path
) -> None:
    suffix, make, verify_exit, header_reads = DAMAGES[damage]
    if suffix == "jsonl.zst" and not HAS_ZSTD:
        pytest.skip("the zstd extra is not installed")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "BLOCKTRACE_CACHE": str(tmp_path / "query-cache")}
    trace = tmp_path / f"damaged.{suffix}"
    trace.write_bytes(make(recorded))
    verify = _bt("verify", trace, env=env)
    assert verify.returncode == verify_exit, verify.stdout + verify.stderr
    assert ("TAMPERED at line 1" in verify.stdout) == (verify_exit == 1)
    wrong = []
    for name, (argv, available) in COMMANDS.items():
        if not available:
            continue
        out = tmp_path / name.replace(" ", "-")
        out.mkdir()
        proc = _bt(*argv(trace, recorded["jsonl"], out), env=env)
        said = proc.stderr
        assert "Traceback" not in said, (name, said)
        if verify_exit == 1 and header_reads and name in SHOWN_WITH_A_NOTE:
            ok = proc.returncode in (0, 1) and _tampered_at_1(said)
        elif verify_exit == 1 and header_reads and name == "view":
            ok = proc.returncode == 0 and '"status":"tampered","line":1' in (
                out / "page.html").read_text()
        elif verify_exit == 1:
            ok = proc.returncode == 1 and said.count("\n") == 1 and _tampered_at_1(said)
        else:
            ok = (proc.returncode == 2 and said.count("\n") == 1 and str(trace) in said
                  and "TAMPERED" not in said)
        if damage == "empty file":  # in verify's words (some said "empty file" alone)
            command = str(argv(trace, recorded["jsonl"], out)[0])
            ok = ok and said == verify.stderr.replace("verify:", f"{command}:", 1)
        if not ok:
            wrong.append(f"{name}: exit {proc.returncode}: {said.strip()!r}")
    assert not wrong, f"{damage}: verify exits {verify_exit}; " + "; ".join(wrong)


def test_a_gzip_trace_cut_after_its_header_is_unsealed_and_readable(
    recorded: dict[str, Path], tmp_path: Path
) -> None:
    """Not a damage of line 1: the header's member is whole, so verify says
    UNSEALED (3) and show reads line 1 -- the cut is not taken for a file that is
    no trace."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    header = _plain(recorded)[0]
    trace = tmp_path / "cut.jsonl.gz"
    trace.write_bytes(gzip.compress(header) + gzip.compress(_plain(recorded)[1])[:20])
    assert _bt("verify", trace, env=env).returncode == 3
    shown = _bt("show", "--line", trace, "1", env=env)
    assert shown.returncode == 0 and shown.stdout.encode() == header, shown.stderr
    assert "UNSEALED" in shown.stderr


@pytest.mark.parametrize("suffix", ["jsonl.gz", *(["jsonl.zst"] if HAS_ZSTD else [])])
def test_cat_of_compressed_data_cut_short_says_its_output_is_not_the_whole_trace(
    suffix: str, recorded: dict[str, Path], tmp_path: Path
) -> None:
    """verify reads a compressed trace cut inside a frame as a torn ``.jsonl``
    (UNSEALED, exit 3) and show/lines show it with a note (exit 0); cat cannot
    give the ``.jsonl`` byte for byte, so it exits 2 -- and its one line says why:
    the output stops there, at verify's line.  (It said only the decompressor's
    reason and "what came before it was written".)"""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    good = tmp_path / f"good.{suffix}"  # many frames (fib 5's .zst has one)
    assert _bt("run", "-o", good, EXAMPLE, "15", env=env).returncode == 0
    data = good.read_bytes()
    trace = tmp_path / f"cut.{suffix}"
    trace.write_bytes(data[: len(data) // 2])
    verify = _bt("verify", "--json", trace, env=env)
    assert verify.returncode == 3, verify.stdout + verify.stderr
    line = json.loads(verify.stdout)["line"]
    out = tmp_path / "out.jsonl"
    cat = _bt("cat", trace, "-o", out, env=env)
    assert cat.returncode == 2 and cat.stderr.count("\n") == 1, cat.stderr
    assert "the output stops there, not the whole trace" in cat.stderr, cat.stderr
    assert f"it holds the lines before line {line}" in cat.stderr, cat.stderr
    assert f"(blocktrace verify: UNSEALED at line {line})" in cat.stderr, cat.stderr
    written = out.read_bytes()
    assert written.count(b"\n") == line - 1
    assert ("and part of it" in cat.stderr) == (not written.endswith(b"\n"))
    full = tmp_path / "full.jsonl"
    assert _bt("cat", good, "-o", full, env=env).returncode == 0
    assert full.read_bytes().startswith(written)


def test_a_directory_given_as_a_trace_is_said_alike(
    recorded: dict[str, Path], tmp_path: Path
) -> None:
    """``diff`` said "cannot read: Is a directory" where the other readers say
    "is a directory, not a trace file"."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    directory = tmp_path / "dir"
    directory.mkdir()
    good = recorded["jsonl"]
    for argv in (["verify", directory], ["show", directory, "0"], ["cat", directory],
                 ["lines", directory], ["diff", directory, good], ["diff", good, directory],
                 ["prove", directory, "1"], ["view", "--html", tmp_path / "p.html", directory]):
        proc = _bt(*argv, env=env)
        assert (proc.returncode, proc.stderr) == (
            2, f"blocktrace {argv[0]}: {directory}: is a directory, not a trace file\n"), argv
