"""``blocktrace run`` imports only what a run needs (issue 13 item 6).

The start-up time itself is measured by benchmarks/bench_startup.py (never a
timed assert); here the real command runs an empty script and the test looks at
every module the process imported, up to its end (the trace sealed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# ``python -m blocktrace ARGS``, then the names in sys.modules once it has ended.
_LIST_MODULES = """
import runpy, sys
sys.argv = ["blocktrace", *sys.argv[1:]]
try:
    runpy.run_module("blocktrace", run_name="__main__", alter_sys=True)
finally:
    with open(OUT, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
"""

# Never needed to run a program and seal its trace: other commands' code, the
# viewer, the sandbox, checkpoints and signatures (asked for by options), and
# the heavy standard-library packages some of those bring.
HEAVY = (
    "asyncio", "ssl", "socket", "http", "email", "json", "subprocess", "concurrent",
    "logging", "unittest", "sqlite3", "tomllib", "duckdb", "pyarrow", "zstandard",
    "blocktrace.cli.verify", "blocktrace.cli.diff", "blocktrace.cli.replay",
    "blocktrace.cli.proofs", "blocktrace.cli.snapshot", "blocktrace.cli.views",
    "blocktrace.cli.query", "blocktrace.cli.export", "blocktrace.cli.show",
    "blocktrace.cli.view",
    "blocktrace.eip3155", "blocktrace.snapshot", "blocktrace.query", "blocktrace.views",
    "blocktrace.view", "blocktrace.replay", "blocktrace.golden",
    "blocktrace.chain.checkpoint", "blocktrace.chain.note", "blocktrace.chain.proof",
    "blocktrace.tracers.tee", "blocktrace.tracers.recorder", "blocktrace.progress",
)


def _modules_of_run(tmp_path: Path, *options: str, pure: bool = False) -> set[str]:
    script = tmp_path / "empty.py"
    script.write_text("")
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if k != "BLOCKTRACE_PURE"}
    if pure:
        env["BLOCKTRACE_PURE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", f"OUT = {str(out)!r}\n{_LIST_MODULES}", "run", *options,
         "-o", str(tmp_path / "empty.trace.jsonl"), str(script)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return set(out.read_text().splitlines())


def _heavy_among(modules: set[str]) -> list[str]:
    return sorted(m for m in modules
                  if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("pure", [False, True], ids=["C", "pure"])
def test_run_of_an_empty_script_imports_no_heavy_module(tmp_path: Path, pure: bool) -> None:
    modules = _modules_of_run(tmp_path, pure=pure)
    # it did run and seal a trace: the modules that do it are there
    assert {"blocktrace.cli.run", "blocktrace.tracers.chain", "blocktrace.vm.runner",
            "blocktrace.vm.stepper", "blocktrace.chain.writer"} <= modules
    assert _heavy_among(modules) == []


def test_checkpoints_load_their_module_only_when_asked(tmp_path: Path) -> None:
    modules = _modules_of_run(tmp_path, "--checkpoint-every", "100")
    assert "blocktrace.chain.checkpoint" in modules
    assert any(p.name.startswith("empty.trace.jsonl.cp.") for p in tmp_path.iterdir())


def test_the_command_table_names_what_each_module_registers() -> None:
    """``blocktrace CMD`` imports only the module the table gives for CMD: the
    table must say what each module really registers (a command it misses
    still works, by importing every module)."""
    import argparse
    import importlib

    from blocktrace.cli import _COMMAND_MODULES

    for module, commands in _COMMAND_MODULES.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert tuple(sub.choices) == commands, module


def test_only_the_command_s_module_is_registered_unless_unknown() -> None:
    from blocktrace.cli import _COMMAND_MODULES, _subparser, build_parser

    every = {c for commands in _COMMAND_MODULES.values() for c in commands}
    for command, expected in (("verify", {"verify"}), ("prove", {"keygen", "sign", "prove",
                                                                 "check-proof"}),
                              (None, every), ("no-such-command", every)):
        parser = build_parser(command)
        sub = _subparser(parser, "verify" if command in (None, "no-such-command") else command)
        assert sub is not None
        names = {a for action in parser._actions if isinstance(action.choices, dict)
                 for a in action.choices}
        assert names == expected, command
