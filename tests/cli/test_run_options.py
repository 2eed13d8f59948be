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
    # a run that traced nothing says so, in one line (issue 17); any other says nothing
    said = "" if expected else ("blocktrace run: 0 steps recorded: nothing in scope ran "
                                "(--include PATH|MODULE traces library code, --exclude leaves "
                                "code out)\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "10 2\n", said)
    assert verify_file(trace).status == "sealed"
    assert _called(trace) == expected


def test_a_library_module_with_the_default_scope_says_how_to_widen_it(
    tmp_path: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    plain = python_cli("-m", "json.tool", input='{"a": 1}')
    proc = blocktrace_cli("run", "-o", tmp_path / "t.jsonl", "-m", "json.tool", input='{"a": 1}')
    assert (proc.returncode, proc.stdout) == (0, plain.stdout)
    assert proc.stderr == ("blocktrace run: 0 steps recorded: by default only your own code is "
                           "traced, not the standard library or site-packages: add --include "
                           "json to trace json.tool\n")
    widened = blocktrace_cli("run", "--include", "json", "-o", tmp_path / "w.jsonl", "-m",
                             "json.tool", input='{"a": 1}')
    assert (widened.returncode, widened.stdout, widened.stderr) == (0, plain.stdout, "")
    assert any(e.get("event") == "call" for e in _events(tmp_path / "w.jsonl"))


def test_a_target_that_never_ran_says_so(tmp_path: Path, blocktrace_cli: Runner) -> None:
    (tmp_path / "never.py").write_text("def f():\n    pass\n\n\nif 0:\n    f()\n")
    proc = blocktrace_cli("run", "--target", "never:f", "-o", "t.jsonl", "never.py", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert proc.stderr == "blocktrace run: 0 steps recorded: --target never:f never ran\n"


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no_such_module_here:f", "no module named 'no_such_module_here'"),
        ("scopelib:no_such_function", "defines no function 'no_such_function'"),
        ("__main__:nope", "scoped.py defines no function 'nope'"),
        ("scopelib.py:nope", "defines no function 'nope'"),
    ],
)
def test_a_target_that_does_not_exist_is_an_error(
    target: str, says: str, tmp_path: Path, programs: Path, blocktrace_cli: Runner,
) -> None:
    trace = tmp_path / "t.jsonl"
    proc = blocktrace_cli("run", "--target", target, "-o", trace, "scoped.py", cwd=programs)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert not trace.exists()


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
