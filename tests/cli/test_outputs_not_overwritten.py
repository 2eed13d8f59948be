"""``cat -o OUT`` and ``export --to perfetto|speedscope OUT`` refuse an existing
file unless ``--force``, as run, sign, prove, keygen, types and view do: nothing
is overwritten silently.  A device (``/dev/null``) is written to."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Runner = Callable[..., subprocess.CompletedProcess[str]]
Checker = Callable[[subprocess.CompletedProcess[str]], None]

WRITERS = {
    "cat": lambda trace, out: ("cat", trace, "-o", out),
    "perfetto": lambda trace, out: ("export", trace, "--to", "perfetto", out),
    "speedscope": lambda trace, out: ("export", trace, "--to", "speedscope", out),
}


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory, blocktrace_cli: Runner,
          programs: Path) -> Path:
    path = tmp_path_factory.mktemp("out") / "t.jsonl"
    done = blocktrace_cli("run", "-o", path, programs / "behaves.py")
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_an_existing_output_is_refused_then_replaced_with_force(
    name: str, trace: Path, tmp_path: Path, blocktrace_cli: Runner, one_line_error: Checker,
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"keep me\n")
    done = blocktrace_cli(*WRITERS[name](trace, out))
    one_line_error(done)
    assert done.returncode == 2
    assert f"{out} exists: not overwriting it (use --force)" in done.stderr
    assert out.read_bytes() == b"keep me\n"

    done = blocktrace_cli(*WRITERS[name](trace, out), "--force")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() != b"keep me\n"
    if name == "cat":
        assert out.read_bytes() == trace.read_bytes()


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_new_output_and_a_device_are_written(
    name: str, trace: Path, tmp_path: Path, blocktrace_cli: Runner,
) -> None:
    out = tmp_path / "new"
    done = blocktrace_cli(*WRITERS[name](trace, out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
    done = blocktrace_cli(*WRITERS[name](trace, "/dev/null"))
    assert done.returncode == 0, done.stderr
