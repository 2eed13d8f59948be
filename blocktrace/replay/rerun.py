"""``blocktrace replay``: re-run a recorded program with its recorded inputs, and diff.

The trace is verified first (a tampered trace is never replayed), its ``inputs``
line read (argv, stdin, the environment variables the program read, cwd,
``PYTHONHASHSEED``, the recording options), the program run again by
``blocktrace run --record-inputs`` in a child process with exactly those
inputs, and the two traces compared with the diff engine.
"""

from __future__ import annotations

import base64
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from blocktrace.chain.verify import verify_file
from blocktrace.eip3155.report import DiffReport, diff_files
from blocktrace.format import TraceReader
from blocktrace.format.lines import UnknownLine, line_type
from blocktrace.replay.inputs import INPUTS_EVENT

__all__ = ["ReplayError", "Replayed", "read_inputs", "replay"]


class ReplayError(Exception):
    """The trace cannot be replayed; ``str()`` is the one line to print.

    ``exit_status`` follows the readers' convention: 1 when the trace fails its
    check (``blocktrace verify`` says TAMPERED), 2 when it cannot be used
    (unusable, unsealed, no inputs line, another Python, a missing program)."""

    def __init__(self, message: str, exit_status: int = 2) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass
class Replayed:
    report: DiffReport
    status: int
    """The re-run's exit status."""
    changed: list[str] = field(default_factory=list)
    """The source files whose SHA-256 in the re-run differs from the recording's
    (looked for only when the behaviour differs): the re-run ran other code."""


def read_inputs(path: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The trace's header and its ``inputs`` line (None when it has none), read through
    the format's line kinds: an event line of a kind the format does not name is an
    ``UnknownLine``, and the one whose event is ``inputs`` is the recorded inputs."""
    reader = TraceReader(path)
    header: dict[str, Any] = {}
    for number, line in reader.raw_lines():
        if number == 1:
            header = reader.decode_object(number, line)
        elif line_type(line) is UnknownLine:
            kind = reader.decode(number, line)
            if isinstance(kind, UnknownLine) and kind.event == INPUTS_EVENT:
                return header, reader.decode_object(number, line)
    return header, None


def _check(path: str, by_line: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    result = verify_file(path)
    if result.status == "unusable":
        raise ReplayError(f"{path}: {result.reason}")
    if result.status == "tampered":
        where = f" at line {result.line}" if result.line else ""
        raise ReplayError(f"{path} is TAMPERED{where}: {result.reason} (blocktrace verify "
                          "says more); a tampered trace is not replayed", exit_status=1)
    if result.status == "unsealed":
        raise ReplayError(f"{path}: unsealed (the recorded run was cut short); "
                          "nothing to compare a re-run with")
    header, inputs = read_inputs(path)
    if inputs is None:
        raise ReplayError(f"{path}: no inputs recorded (record with "
                          "blocktrace run --record-inputs)")
    recorded = str(inputs.get("python", header.get("python", "")))
    here = platform.python_version()
    if recorded != here and not by_line:
        raise ReplayError(f"{path}: recorded on Python {recorded}, this is {here}: bytecode "
                          "differs between versions (--by-line compares source lines)")
    return header, inputs


def _command(header: dict[str, Any], inputs: dict[str, Any], output: str) -> list[str]:
    options = inputs.get("options") or {}
    argv = [str(a) for a in header.get("argv", [])]
    if not argv:
        raise ReplayError("the trace's header names no program (argv is empty)")
    cmd = [sys.executable, "-m", "blocktrace", "run", "--record-inputs", "--force", "-o", output]
    for name in ("locals", "globals"):
        if options.get(name, "off") != "off":
            cmd += [f"--{name}", str(options[name])]
    for name in ("include", "exclude"):
        for value in options.get(name) or ():
            cmd += [f"--{name}", str(value)]
    if options.get("target"):
        cmd += ["--target", str(options["target"])]
    if options.get("gas"):
        cmd += ["--gas", str(options["gas"])]
    if options.get("repr"):
        cmd.append("--repr")
    if header.get("level") in ("line", "call"):  # re-recorded at the trace's level
        cmd += ["--level", str(header["level"])]
    if "randomSeed" in inputs:
        cmd += ["--deterministic"]
    if options.get("module"):
        return [*cmd, "-m", *argv]
    return [*cmd, *argv]


def _environment(inputs: dict[str, Any]) -> dict[str, str]:
    env = {} if inputs.get("envAll") else dict(os.environ)
    for name, value in (inputs.get("env") or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    seed = str(inputs.get("pythonHashSeed", ""))
    if seed:
        env["PYTHONHASHSEED"] = seed
    else:
        env.pop("PYTHONHASHSEED", None)
    return env


def _changed_sources(recorded: str, rerun: str) -> list[str]:
    """The files both traces name whose recorded content (SHA-256) differs."""
    from blocktrace.eip3155.reader import trace_sources

    before = trace_sources(TraceReader(recorded))
    after = trace_sources(TraceReader(rerun))
    return sorted(name for name, line in before.items()
                  if name in after and after[name].sha256 != line.sha256)


def replay(path: str, *, by_line: bool = False, keep: str | None = None,
           max_hunks: int = 5) -> Replayed:
    """Replay the trace at ``path``; raises ``ReplayError`` when it cannot."""
    header, inputs = _check(path, by_line)
    cwd = str(inputs.get("cwd", ""))
    if not os.path.isdir(cwd):
        raise ReplayError(f"{path}: the recorded working directory {cwd} does not exist here")
    options = inputs.get("options") or {}
    target = str((header.get("argv") or [""])[0])
    if not options.get("module") and not os.path.exists(os.path.join(cwd, target)):
        raise ReplayError(f"{path}: the recorded program {target} is missing "
                          f"(looked in {cwd})")
    try:
        stdin = base64.b64decode(str(inputs.get("stdin", "")), validate=True)
    except ValueError:
        raise ReplayError(f"{path}: the inputs line's stdin is not base64") from None
    workdir = tempfile.mkdtemp(prefix="blocktrace-replay-")
    output = keep or os.path.join(workdir, "replay.jsonl")
    try:
        child = subprocess.run(_command(header, inputs, os.path.abspath(output)), cwd=cwd,
                               input=stdin, env=_environment(inputs), capture_output=True,
                               check=False)
        if not os.path.exists(output):
            problem = child.stderr.decode(errors="replace").strip().splitlines()
            raise ReplayError(f"the re-run wrote no trace: {problem[-1] if problem else ''}")
        report = diff_files(path, output, by_line=by_line, max_hunks=max_hunks)
        changed = [] if report.equal else _changed_sources(path, output)
        return Replayed(report, child.returncode, changed)
    finally:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)
