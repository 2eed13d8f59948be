"""Every input has a size bound (blocktrace.limits, docs/SECURITY.md "Readers'
input bounds"): past it, one line on stderr and exit 2 -- in bounded memory.

Each command runs as a real process with its address space capped far below
what reading the input whole would need (``/dev/zero`` never ends; the sparse
file's long line is 100 MiB), so a reader that reads without a bound dies of
``MemoryError`` instead of answering.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace.limits import (
    MAX_BUNDLE_BYTES,
    MAX_KEY_FILE_BYTES,
    MAX_LINE_BYTES,
    FileInputError,
    InputTooLargeError,
    LineTooLongError,
    bounded_lines,
    read_named_file,
    read_small_file,
    size_text,
)

ZERO = "/dev/zero"
MEMORY_CAP = 640 << 20
"""Address space of each command: room for a 64 MiB line read twice over, and
for the interpreter and its imports; far from enough to read 100 MiB whole."""

PROGRAM = "def f(n):\n    return n * 2\nprint(sum(f(i) for i in range(20)))\n"


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def bt(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", *map(str, args)], capture_output=True, text=True,
        timeout=120, preexec_fn=_cap, check=False,
    )


def refused(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("blocktrace "), done.stderr
    assert text in done.stderr, done.stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bounds")
    (d / "p.py").write_text(PROGRAM)
    for args in (("run", "-o", d / "t.jsonl", d / "p.py"),
                 ("keygen", "bounds.example/ci", "--out", d / "k"),
                 ("sign", d / "t.jsonl", "--key", d / "k.key", "-o", d / "t.cp"),
                 ("prove", d / "t.jsonl", "3", "-o", d / "b.json")):
        done = bt(*args)
        assert done.returncode == 0, done.stderr
    # a trace whose second line is 100 MiB long (sparse: no disk used)
    header = (d / "t.jsonl").read_bytes().split(b"\n", 1)[0] + b"\n"
    with open(d / "long.jsonl", "wb") as f:
        f.write(header + b'{"pc":0,"op":0,"gas":"0x1","opName":"')
        f.seek(100 << 20, 1)
        f.write(b'"}\n')
    return d


def test_a_trace_line_over_the_bound(work: Path) -> None:
    too_long = f"longer than {size_text(MAX_LINE_BYTES)}"
    refused(bt("lines", ZERO), too_long)
    # past a good header the over-long line is where verify says TAMPERED: lines says so
    cut = bt("lines", work / "long.jsonl")
    assert cut.returncode == 1 and "Traceback" not in cut.stderr, cut
    assert f"TAMPERED at line 2: line 2 is {too_long}" in cut.stderr, cut.stderr
    refused(bt("diff", ZERO, work / "t.jsonl"), too_long)
    refused(bt("diff", work / "t.jsonl", work / "long.jsonl"), too_long)
    refused(bt("prove", ZERO, "1"), too_long)
    refused(bt("verify", ZERO), too_long)
    tampered = bt("verify", work / "long.jsonl")
    assert tampered.returncode == 1 and f"line 2 is {too_long}" in tampered.stdout


def test_checkpoint_and_key_files_over_the_bound(work: Path) -> None:
    too_big = f"larger than {size_text(MAX_KEY_FILE_BYTES)}"
    t, cp, pub = work / "t.jsonl", work / "t.cp", work / "k.pub"
    refused(bt("verify", t, "--checkpoint", ZERO), too_big)
    refused(bt("verify", t, "--checkpoint", cp, "--pubkey", ZERO), too_big)
    refused(bt("verify", t, "--since", ZERO), too_big)
    refused(bt("check-proof", work / "b.json", "--checkpoint", ZERO), too_big)
    refused(bt("check-proof", work / "b.json", "--checkpoint", cp, "--pubkey", ZERO), too_big)
    refused(bt("prove", t, "3", "--checkpoint", ZERO), too_big)
    refused(bt("sign", t, "--key", ZERO), too_big)
    refused(bt("run", "--checkpoint-every", "16", "--sign-key", ZERO, "-o", work / "new.jsonl",
               work / "p.py"), too_big)
    assert not (work / "new.jsonl").exists()
    # and at the bound's edge the files still work
    assert bt("verify", t, "--checkpoint", cp, "--pubkey", pub).returncode == 0


def test_a_bundle_over_the_bound(work: Path) -> None:
    refused(bt("check-proof", ZERO), f"larger than {size_text(MAX_BUNDLE_BYTES)}")


def test_a_type_table_over_the_bound(tmp_path: Path) -> None:
    # with something to write (`types --from` with nothing to write is refused first)
    refused(bt("types", "--from", ZERO, "--csv", tmp_path / "types.csv"), "larger than 256 MiB")
    assert not (tmp_path / "types.csv").exists()


def test_the_bounded_reads(tmp_path: Path) -> None:
    """The two helpers every reader uses: exactly at the bound is fine, one byte more is not."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_small_file(path, 10, "a test file") == b"x" * 10
    with pytest.raises(InputTooLargeError, match="larger than 9 bytes: too big for a test file"):
        read_small_file(path, 9, "a test file")
    path.write_bytes(b"abc\n" + b"y" * 9 + b"\nlast")
    with open(path, "rb") as f:
        assert list(bounded_lines(f, 10)) == [b"abc\n", b"y" * 9 + b"\n", b"last"]
    with open(path, "rb") as f, pytest.raises(LineTooLongError, match="line 2 is longer than 9"):
        list(bounded_lines(f, 9))


def test_a_file_the_user_named_fails_with_one_error(tmp_path: Path) -> None:
    """``read_named_file`` (keys, checkpoints, proof bundles: ``verify --checkpoint``
    and the proof commands alike): missing, unreadable or too big, one
    ``FileInputError`` whose line names the file."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_named_file(path, 10, "a test file") == b"x" * 10
    with pytest.raises(FileInputError, match="larger than 9 bytes: too big for a test file"):
        read_named_file(path, 9, "a test file")
    missing = tmp_path / "missing"
    with pytest.raises(FileInputError) as caught:
        read_named_file(missing, 10, "a test file")
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"
    with pytest.raises(FileInputError) as caught:
        read_named_file(tmp_path, 10, "a test file")
    assert str(caught.value) == f"{tmp_path}: cannot read: Is a directory"
