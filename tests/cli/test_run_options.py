"""``blocktrace run`` options: scope (--include, --exclude, --target), values,
genesis, and a program whose threads outlive its main module."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.chain.verify import verify_file

Runner = Callable[..., subprocess.CompletedProcess[str]]
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _events(trace: Path) -> list[dict[str, Any]]:
    return [_decode(line) for line in trace.read_bytes().splitlines()]


def _called(trace: Path) -> list[tuple[str, str, int]]:
    return [
        (Path(e["file"]).name, e["name"], e["depth"])
        for e in _events(trace)
        if e.get("event") == "call"
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], [("scoped.py", "<module>", 1), ("scopelib.py", "<module>", 2),
              ("scoped.py", "local", 2), ("scopelib.py", "target", 2),
              ("scopelib.py", "helper", 3), ("scopelib.py", "apply", 2),
              ("scoped.py", "local", 3)]),
        (["--exclude", "scopelib"], [("scoped.py", "<module>", 1), ("scoped.py", "local", 2),
                                     ("scoped.py", "local", 2)]),
        (["--exclude", "scopelib.py,scoped.py"], []),
        (["--include", "scopelib.py"], [("scopelib.py", "<module>", 1),
                                        ("scopelib.py", "target", 1),
                                        ("scopelib.py", "helper", 2),
                                        ("scopelib.py", "apply", 1)]),
        (["--target", "scopelib:target"], [("scopelib.py", "target", 1),
                                           ("scopelib.py", "helper", 2)]),
        (["--target", "scoped:local"], [("scoped.py", "local", 1), ("scoped.py", "local", 1)]),
        (["--target", "__main__:local"], [("scoped.py", "local", 1), ("scoped.py", "local", 1)]),
    ],
)
def test_scope_options(
    options: list[str], expected: list[tuple[str, str, int]], tmp_path: Path, programs: Path,
    blocktrace_cli: Runner,
) -> None:
    trace = tmp_path / "t.jsonl"
    proc = blocktrace_cli("run", *options, "-o", trace, "scoped.py", cwd=programs)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "10 2\n", "")
    assert verify_file(trace).status == "sealed"
    assert _called(trace) == expected


def test_genesis_and_values_options(tmp_path: Path, programs: Path, blocktrace_cli: Runner) -> None:
    trace = tmp_path / "t.jsonl"
    proc = blocktrace_cli(
        "run", "--genesis", "verifier-nonce-7", "--locals", "changes", "--globals", "on",
        "-o", trace, "scoped.py", cwd=programs,
    )
    assert proc.returncode == 0
    events = _events(trace)
    assert events[0]["genesis"] == "verifier-nonce-7"
    assert verify_file(trace, genesis="verifier-nonce-7").status == "sealed"
    assert verify_file(trace, genesis="other").status == "tampered"
    with_locals = [e for e in events if "locals" in e]
    assert any(e["locals"].get("x") == 5 for e in with_locals)
    assert any("globals" in e for e in events)


def test_threads_that_outlive_the_main_module(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    script = programs / "threads_unjoined.py"
    plain = python_cli(script)
    trace = tmp_path / "t.jsonl"
    traced = blocktrace_cli("run", "-o", trace, script)
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, plain.stdout, "")
    assert plain.stdout == "main done\nworker done 285\n"
    assert verify_file(trace).status == "sealed"
    events = _events(trace)
    worker = [e for e in events if e.get("thread") == 2]
    assert any(e.get("name") == "worker" for e in worker)
    assert any(e.get("event") == "return" and e.get("value") is None for e in worker)
