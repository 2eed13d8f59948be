"""Shared fixtures: the test programs and running the real ``blocktrace`` command."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

PROGRAMS = Path(__file__).parent / "programs"

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # A suite started as a background job (``cmd &`` without job control) inherits
    # Ctrl-C ignored, and so would every program it starts: the tests that Ctrl-C a
    # traced program would wait for it in vain.  Caught here, SIGINT is back to its
    # default in each child (an exec resets caught signals), as from a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)

# No property test is timed: an example that takes over hypothesis's 200 ms (a
# slow machine, a loaded one, a trace written or a process run inside) fails as
# DeadlineExceeded, or as Flaky when its replay is quicker.  Speed is measured in
# benchmarks/, never asserted.  Settings a test gives itself still apply.
# Nor does a test's outcome depend on the run: the examples are drawn from a seed
# made of the test's own code (derandomize), the same in every run and on every
# machine, so CI cannot fail on an example no earlier run tried (nor on a health
# check that a run's draws happened to trip).  To search at random:
# ``pytest --hypothesis-profile=blocktrace-random`` (and ``--hypothesis-seed=N``
# to replay a seed it reports).
settings.register_profile("blocktrace", deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("blocktrace-random", parent=settings.get_profile("blocktrace"),
                          derandomize=False)
settings.load_profile("blocktrace")

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _run(
    argv: list[str], *, cwd: Path | str | None = None, input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, input=input if input is not None else "", capture_output=True,
        text=True, timeout=timeout, check=False,
    )


@pytest.fixture(scope="session")
def programs() -> Path:
    """The directory of little real programs the tests trace."""
    return PROGRAMS


@pytest.fixture(scope="session")
def blocktrace_cli() -> Runner:
    """``blocktrace_cli("run", "-o", f, script)``: the real command in a subprocess."""

    def run(*args: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
        return _run([sys.executable, "-m", "blocktrace", *map(str, args)], **kw)  # type: ignore[arg-type]

    return run


@pytest.fixture(scope="session")
def python_cli() -> Runner:
    """``python_cli(script, *args)``: the same interpreter, without blocktrace."""

    def run(*args: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
        return _run([sys.executable, *map(str, args)], **kw)  # type: ignore[arg-type]

    return run


def assert_one_line_error(proc: subprocess.CompletedProcess[str]) -> None:
    """Bad input: a non-zero exit and exactly one line on stderr, no traceback."""
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1, repr(proc.stderr)


@pytest.fixture(scope="session")
def one_line_error() -> Callable[[subprocess.CompletedProcess[str]], None]:
    return assert_one_line_error
