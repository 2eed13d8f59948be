"""A named source is read only when it is a bounded regular file whose content
is what the trace recorded (issue 11: a forged trace must not make a reader
hang, exhaust memory or quote a file it never committed to)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from blocktrace.format import SourceLine, fingerprint, read_source


def _entry(path: str, data: bytes, text: str | None = None) -> SourceLine:
    return SourceLine(file=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                      text=text)


def test_a_matching_file_is_read(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("x = 1\n")
    got = read_source(_entry(str(src), b"x = 1\n"))
    assert got.text == "x = 1\n" and got.reason == ""
    assert fingerprint(str(src)) == (hashlib.sha256(b"x = 1\n").hexdigest(), 6)


def test_a_changed_file_is_not_quoted(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("secret = 'hunter2'\n")
    got = read_source(_entry(str(src), b"x = 1\n"))
    assert got.text is None and "source missing or changed" in got.reason


def test_dev_zero_is_not_read() -> None:
    got = read_source(_entry("/dev/zero", b""))
    assert got.text is None and "not a regular file" in got.reason


def test_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(read_source(_entry(str(fifo), b""))))
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "reading a FIFO hung"
    got = result[0]
    assert got.text is None and "not a regular file" in got.reason  # type: ignore[attr-defined]


def test_too_large_and_missing(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_bytes(b"#" * 2000)
    got = read_source(_entry(str(big), b"#" * 2000), limit=1000)
    assert got.text is None and "larger than 1000 bytes" in got.reason
    assert read_source(_entry(str(tmp_path / "nope.py"), b"")).text is None
    assert "records no hash" in read_source(None).reason


def test_embedded_text_wins(tmp_path: Path) -> None:
    got = read_source(_entry("/etc/shadow", b"anything", text="print(1)\n"))
    assert got.text == "print(1)\n"
