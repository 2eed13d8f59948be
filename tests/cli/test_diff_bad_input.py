"""``blocktrace diff A B`` with one unusable input: one line on stderr naming that
input's file and line (as ``verify`` names its file), exit 2, nothing on stdout.
Each kind of bad input is tried with the bad trace as A and as B."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.eip3155.helpers import trace
from tests.fuzz.harness import rechain

PROGRAM = """\
def f(x):
    return x * 2
s = 0
for i in range(5):
    s += f(i)
print(s)
"""


def _diff(a: Path, b: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", "diff", *options, a.name, b.name],
        capture_output=True, text=True, timeout=120, cwd=a.parent,
    )


def _edit(lines: list[bytes], number: int, edit: Callable[[bytes], bytes]) -> list[bytes]:
    edited = list(lines)
    edited[number - 1] = edit(edited[number - 1])
    return edited


_CLIENT_EDITS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    # a stack kept raw until compared: found only when the report or --stack-top decodes it
    "stack not UTF-8": (lambda line: line.replace(b'"stack":[', b'"stack":["\xff",', 1),
                        "`stack` is not JSON"),
    "gas not a number": (lambda line: re.sub(rb'"gas":"[^"]*"', b'"gas":"zz"', line),
                         "`gas` is not a number"),
    "binary line": (lambda line: b"\x00\x01", "binary data"),
}


@pytest.mark.parametrize("kind", sorted(_CLIENT_EDITS))
@pytest.mark.parametrize("bad_is", ["A", "B"])
@pytest.mark.parametrize("options", [(), ("--json",), ("--stack-top", "2")])
def test_a_bad_client_line_names_its_file(
    tmp_path: Path, kind: str, bad_is: str, options: tuple[str, ...]
) -> None:
    lines = trace("geth", "statetest1").read_bytes().split(b"\n")
    edit, problem = _CLIENT_EDITS[kind]
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "bad.jsonl"
    good.write_bytes(b"\n".join(lines))
    bad.write_bytes(b"\n".join(_edit(lines, 6, edit)))
    a, b = (bad, good) if bad_is == "A" else (good, bad)
    done = _diff(a, b, *options)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("blocktrace diff: bad.jsonl:6: "), done.stderr
    assert problem in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("recorded")
    (where / "p.py").write_text(PROGRAM, encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "--locals", "on", "-o", "good.jsonl",
         "p.py"], cwd=where, check=True, capture_output=True, timeout=120,
    )
    return where / "good.jsonl"


@pytest.mark.parametrize("bad_is", ["A", "B"])
@pytest.mark.parametrize("options", [(), ("--by-line",), ("--json",)])
def test_bad_locals_in_a_chained_trace_name_its_file(
    recorded: Path, tmp_path: Path, bad_is: str, options: tuple[str, ...]
) -> None:
    """Locals that are no JSON (bytes not UTF-8) in a trace whose chain vouches for
    them (re-chained after the edit), so the walks read it too, not only the reference."""
    lines = recorded.read_bytes().split(b"\n")
    number = next(i for i, line in enumerate(lines, 1) if b'"locals":{"x"' in line)
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "bad.jsonl"
    good.write_bytes(recorded.read_bytes())
    bad.write_bytes(rechain(b"\n".join(
        _edit(lines, number, lambda line: line.replace(b'"locals":{"x"', b'"locals":{"\xffx"')))))
    a, b = (bad, good) if bad_is == "A" else (good, bad)
    done = _diff(a, b, *options)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr == (f"blocktrace diff: bad.jsonl:{number}: `locals` is not JSON "
                           "(Invalid UTF-8 encoded string)\n"), done.stderr
