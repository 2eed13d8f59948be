"""``blocktrace diff`` quotes a source file only as the trace committed to it:
a forged trace naming ``/dev/zero``, a FIFO or a file with other content gets
nothing quoted, and the report says why (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from blocktrace.chain.rewrite import rechain_trace

PROGRAM = "def f(x):\n    if x > 1:\n        return x * 2\n    return x\nprint(f({n}))\n"


def _bt(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _record(tmp_path: Path, name: str, n: int, *options: str) -> tuple[Path, Path]:
    """A trace of PROGRAM; by default without embedded source (these tests are
    about reading the files a trace names)."""
    where = tmp_path / name
    where.mkdir()
    prog = where / "prog.py"
    prog.write_text(PROGRAM.format(n=n))
    trace = where / "t.jsonl"
    done = _bt("run", *(options or ("--no-embed-source",)), "-o", trace, prog)
    assert done.returncode == 0, done.stderr
    return trace, prog


def _rename(trace: Path, old: Path, new: str) -> None:
    """A forger's edit: the trace names another file (its hash left as it was)."""
    old_json, new_json = msgspec.json.encode(str(old)), msgspec.json.encode(new)
    trace.write_bytes(rechain_trace(
        trace.read_bytes(), lambda _, body: body.replace(old_json, new_json)
    ))


def _first(a: Path, b: Path) -> tuple[dict[str, object], str]:
    done = _bt("diff", a, b, "--json")
    assert done.returncode == 1, done.stderr
    first = msgspec.json.decode(done.stdout)["firstDivergence"]
    text = _bt("diff", a, b)
    assert "Traceback" not in text.stderr
    return first["a"], text.stdout


def test_a_recorded_source_is_quoted(tmp_path: Path) -> None:
    a, _ = _record(tmp_path, "a", 1)
    b, _ = _record(tmp_path, "b", 2)
    step, _ = _first(a, b)
    assert "source" in step and "sourceMissing" not in step


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "other-content"])
def test_a_forged_trace_gets_nothing_quoted(tmp_path: Path, target: str) -> None:
    a, prog = _record(tmp_path, "a", 1)
    b, _ = _record(tmp_path, "b", 2)
    if target == "fifo":
        name = str(tmp_path / "pipe")
        os.mkfifo(name)
        why = "not a regular file"
    elif target == "other-content":
        secret = tmp_path / "secret.py"
        secret.write_text("PASSWORD = 'hunter2'\n" * 3)
        name = str(secret)
        why = "is not the file the trace recorded"
    else:
        name, why = target, "not a regular file"
    _rename(a, prog, name)
    step, text = _first(a, b)
    assert "source" not in step
    assert "source missing or changed" in str(step["sourceMissing"]) and why in str(
        step["sourceMissing"]
    )
    assert "hunter2" not in text and "source missing or changed" in text


def test_an_embedded_source_is_quoted_from_the_trace_never_the_named_file(
    tmp_path: Path,
) -> None:
    a, prog = _record(tmp_path, "a", 1, "--embed-source")
    b, _ = _record(tmp_path, "b", 2, "--embed-source")
    secret = tmp_path / "secret.py"
    secret.write_text("PASSWORD = 'hunter2'\n" * 3)
    _rename(a, prog, str(secret))
    step, text = _first(a, b)
    assert "source" in step and "hunter2" not in str(step["source"])
    assert "hunter2" not in text


def test_a_step_view_is_the_canonical_step_with_its_place_and_python_context(
        tmp_path: Path) -> None:
    """The diff report's step: its place first, then the step as ``normalise -o``
    writes it, with the step's function and file after its code number."""
    from blocktrace.eip3155.normalise import normalise
    from blocktrace.eip3155.report import step_view
    from blocktrace.eip3155.writer import canonical_step

    trace, _ = _record(tmp_path, "a", 2)
    step = [s for s in normalise(str(trace)) if s.function == "f"][-1]
    view = step_view(step)
    keys = list(view)
    assert keys[:2] == ["step", "traceLine"]
    assert (view["step"], view["traceLine"]) == (step.index, step.lineno)
    assert keys.index("function") == keys.index("code") + 1 == keys.index("file") - 1
    assert (view["function"], view["file"]) == ("f", step.file)
    body = {k: v for k, v in view.items()
            if k not in ("step", "traceLine", "function", "file", "source", "sourceMissing")}
    assert list(body.items()) == list(canonical_step(step).items())
    assert body["gas"] == hex(step.gas) and body["depth"] == step.depth
