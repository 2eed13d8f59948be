"""Shared fixtures: the test programs and running the real ``blocktrace`` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
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

CACHES = ("BLOCKTRACE_CACHE", "BLOCKTRACE_VIEW_CACHE")
"""``query``'s datasets and the viewer's tables: where each is kept."""


@pytest.fixture(scope="session", autouse=True)
def _session_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``query``'s and the viewer's caches in this session's temporary directory
    (for every command the tests run), not ``~/.cache/blocktrace``: that one is
    shared with every other run on the machine -- CI runs 3.12's and 3.13's suites
    at once -- and the user's own, and nothing in it is ever removed (473 MiB after
    a day of runs here, 1418 datasets).  A test that names its own keeps it."""
    root = tmp_path_factory.mktemp("caches")
    saved = {name: os.environ.get(name) for name in CACHES}
    os.environ["BLOCKTRACE_CACHE"] = str(root / "query")
    os.environ["BLOCKTRACE_VIEW_CACHE"] = str(root / "view")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
