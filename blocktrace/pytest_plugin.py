"""pytest plugin: ``pytest --blocktrace-types=DIR`` collects runtime types across a test suite.

The whole session runs under one :class:`~blocktrace.views.types.TypeTracer`
(sys.monitoring: nothing is patched, wrapped or imported into the tests, so
fixtures, ``monkeypatch`` and parametrisation behave as without it).  By default
the user's own code is traced (tests and the code they exercise, not pytest,
the standard library or site-packages); ``--blocktrace-types-include`` narrows
that.  At the end DIR holds ``types.jsonl`` (``types-<worker>.jsonl`` under
pytest-xdist), ``types.csv`` and ``stubs/``; ``blocktrace types --from
DIR/types.jsonl --patch FILE`` turns a table into a patch.

The same entry point registers the golden-trace plugin (``--blocktrace-golden``,
see ``blocktrace.golden.plugin`` and docs/GOLDEN.md).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

__all__ = ["pytest_addoption", "pytest_configure"]


def pytest_addoption(parser: pytest.Parser) -> None:
    from blocktrace.golden.plugin import add_options

    add_options(parser)
    group = parser.getgroup("blocktrace", "blocktrace runtime type collection")
    group.addoption(
        "--blocktrace-types", metavar="DIR", default=None,
        help="record the runtime types seen while the tests run into DIR "
        "(types.jsonl, types.csv, stubs/)",
    )
    group.addoption(
        "--blocktrace-types-include", metavar="PATH|MODULE", action="append", default=[],
        help="only record types for this file, directory or module (repeatable)",
    )
    group.addoption(
        "--blocktrace-types-loop-limit", metavar="K", type=int, default=8,
        help="stop watching a line once its types were stable for K visits, until the "
        "next call (0: never stop)",
    )


def pytest_configure(config: pytest.Config) -> None:
    from blocktrace.golden.plugin import configure

    configure(config)
    out = config.getoption("blocktrace_types")
    if out:
        if os.path.exists(out) and not os.path.isdir(out):
            # found now, not after the whole suite ran
            raise pytest.UsageError(f"--blocktrace-types: {out}: not a directory")
        config.pluginmanager.register(
            TypeCollection(
                str(out),
                list(config.getoption("blocktrace_types_include")),
                int(config.getoption("blocktrace_types_loop_limit")),
            ),
            "blocktrace-types",
        )


class TypeCollection:
    """Runs the session under a TypeTracer and writes what it saw."""

    def __init__(self, out_dir: str, include: list[str], loop_limit: int) -> None:
        from blocktrace.views.types import TypeTracer

        self.out_dir = os.path.abspath(out_dir)
        self.include = include or None
        self.tracer = TypeTracer(loop_limit=loop_limit or None)
        self._previous: Any = None
        self._running = False
        self._summary = ""

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        import blocktrace
        from blocktrace.vm.scope import ScopeError

        self._previous = blocktrace.set_tracer(self.tracer)
        try:
            blocktrace.start(include=self.include)
        except (RuntimeError, ScopeError) as exc:
            blocktrace.set_tracer(self._previous)
            raise pytest.UsageError(f"--blocktrace-types: {exc}") from None
        self._running = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._stop()
        try:
            self._write(session.config)
        except OSError as exc:
            where = exc.filename if exc.filename is not None else self.out_dir
            self._summary = (f"blocktrace: --blocktrace-types: cannot write {where}: "
                             f"{exc.strerror or exc}")
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._stop()

    def _stop(self) -> None:
        if not self._running:
            return
        import blocktrace

        blocktrace.stop()
        blocktrace.set_tracer(self._previous)
        self._running = False

    def _write(self, config: pytest.Config) -> None:
        from blocktrace.views.stubs import write_stubs

        os.makedirs(self.out_dir, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        stem = f"types-{worker}" if worker else "types"
        table = self.tracer.table
        table.write(os.path.join(self.out_dir, stem + ".jsonl"))
        table.write(os.path.join(self.out_dir, stem + ".csv"))
        if not worker:
            write_stubs(table, os.path.join(self.out_dir, "stubs"))
        where = os.path.join(self.out_dir, stem)
        self._summary = f"blocktrace: {len(table)} type rows -> {where}.jsonl"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self._summary:
            terminalreporter.write_line(self._summary)
