"""JSON nested 10,000 levels deep is an answer from every reader, never a
``RecursionError`` traceback (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blocktrace.format import rechain

_DEEP = b"[" * 10_000 + b"]" * 10_000


def _files(tmp_path: Path) -> dict[str, Path]:
    header = b'{"blocktrace":3,"hashAlg":"sha256","genesis":"g","level":"op"'
    cases = {
        "bare": _DEEP + b"\n",
        "in-header": b'{"blocktrace":3,"hashAlg":"sha256","x":' + _DEEP + b"}\n",
        "chained-event": rechain([header, b'{"event":"x","v":' + _DEEP], 3),
        "chained-op": rechain([header, b'{"pc":1,"op":1,"gas":"0x1","depth":1,"v":' + _DEEP], 3),
        "chained-summary": rechain(
            [header, b'{"output":' + _DEEP + b',"gasUsed":"0x0","pass":true,"time":1,"lines":1'],
            3,
        ),
    }
    out = {}
    for name, data in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.mark.parametrize("command", ["verify", "verify --json", "prove", "lines", "diff"])
def test_deep_nesting_is_an_answer(tmp_path: Path, command: str) -> None:
    for name, path in _files(tmp_path).items():
        args = command.split()
        if command == "prove":
            args.append(str(path))
            args.append("2")
        elif command == "diff":
            args += [str(path), str(path)]
        else:
            args.append(str(path))
        done = subprocess.run([sys.executable, "-m", "blocktrace", *args[:1], *args[1:]],
                              capture_output=True, text=True, timeout=120)
        assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr, (
            name, command, done.stderr[-500:]
        )
        assert done.returncode in (0, 1, 2), (name, command, done.returncode, done.stderr)
