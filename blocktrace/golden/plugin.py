"""The pytest side of golden traces (see docs/GOLDEN.md).

``pytest --blocktrace-golden`` traces the call phase of every test (the test
function and the project code it runs, by ``blocktrace run``'s scope rules)
and compares it with the test's golden trace; the marker
``@pytest.mark.blocktrace_golden(...)`` opts single tests in or configures
them.  Registered through blocktrace's pytest11 entry point
(``blocktrace/pytest_plugin.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from blocktrace.golden.compare import GoldenCorrupt, compare_golden, fields_for
from blocktrace.golden.record import Recording, RecordingError
from blocktrace.golden.stabilise import UNCOUNTED, Normaliser
from blocktrace.golden.storage import (
    golden_path,
    partial_path,
    prune,
    unused_goldens,
    write_golden,
)
from blocktrace.tracers.level import Level

if TYPE_CHECKING:
    from blocktrace.format import TraceReader

__all__ = ["GoldenPlugin", "add_options", "configure"]

_LEVELS: dict[str, Level] = {
    "calls": "call", "call": "call", "lines": "line", "line": "line", "ops": "op", "op": "op",
}
_PROPERTY = "blocktrace_golden"
_MARKER = (
    "blocktrace_golden(level='lines', ignore=(), mask=(), values=False, include=(), "
    "exclude=(), enabled=True): compare this test's trace with its golden trace "
    "(blocktrace); level is calls, lines or ops"
)


def _older_form(stored: str, fresh: str) -> bool:
    """The stored golden, which compares equal, was made in an older form than
    ``fresh`` (a calls-level golden from before gas went uncounted, or with the
    return values that a calls-level golden without values now leaves out): an
    update rewrites it, so that the next run finds the same bytes (no comparison).
    Both are read through the format's reader: the headers as ``Header``s, the
    return lines by their kind."""
    from blocktrace.format import TraceError, TraceReader

    try:
        old, new = TraceReader(stored), TraceReader(fresh)
        if new.header.gas == UNCOUNTED and old.header.gas != UNCOUNTED:
            return True
        return new.level == "call" and _gives_values(old) and not _gives_values(new)
    except (OSError, TraceError, ValueError, RecursionError):  # (msgspec's DecodeError)
        return False


def _gives_values(reader: TraceReader) -> bool:
    """Whether a return line of the trace carries a value (``null`` included)."""
    from blocktrace.format.lines import ReturnLine, carries_value, line_type

    return any(
        line_type(raw) is ReturnLine and carries_value(raw) for _, raw in reader.raw_lines(2)
    )


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("blocktrace-golden", "blocktrace golden traces")
    group.addoption("--blocktrace-golden", action="store_true", default=False,
                    help="compare every test's trace with its golden trace "
                    "(__traces__/<module>/<test>.jsonl beside the test module)")
    group.addoption("--blocktrace-golden-update", action="store_true", default=False,
                    help="write missing goldens and rewrite those that differ")
    group.addoption("--blocktrace-golden-level", default="lines", choices=sorted(_LEVELS),
                    help="what must stay the same: calls (the call tree), lines (the "
                    "source lines run, default) or ops (every instruction)")
    group.addoption("--blocktrace-golden-values", action="store_true", default=False,
                    help="also record and compare values (locals at line starts; return "
                    "values at calls level)")
    group.addoption("--blocktrace-golden-include", metavar="PATH|MODULE", action="append",
                    default=[], help="trace only this file, directory or module (repeatable)")
    group.addoption("--blocktrace-golden-exclude", metavar="PATH|MODULE", action="append",
                    default=[], help="never trace this file, directory or module (repeatable)")
    group.addoption("--blocktrace-golden-ignore", metavar="FIELD", action="append", default=[],
                    help="leave this field out of every comparison (repeatable)")
    group.addoption("--blocktrace-golden-mask", metavar="REGEX", action="append", default=[],
                    help="replace what this pattern matches in recorded values by <masked> "
                    "(repeatable)")
    group.addoption("--blocktrace-golden-hunks", metavar="N", type=int, default=3,
                    help="stop comparing after N divergent regions (default 3)")
    group.addoption("--blocktrace-golden-prune", action="store_true", default=False,
                    help="remove golden traces that no collected test owns")


def configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER)
    config.pluginmanager.register(GoldenPlugin(config), "blocktrace-golden")


@dataclass(slots=True)
class _Settings:
    level: Level
    values: bool
    include: list[str]
    exclude: list[str]
    ignore: list[str]
    masks: list[str]


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class GoldenPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.everywhere = bool(config.getoption("blocktrace_golden"))
        self.update = bool(config.getoption("blocktrace_golden_update"))
        self.prune = bool(config.getoption("blocktrace_golden_prune"))
        self.hunks = int(config.getoption("blocktrace_golden_hunks"))
        self.root = str(config.rootpath)
        self.worker = os.environ.get("PYTEST_XDIST_WORKER")
        self.expected: set[str] = set()
        self.modules: set[str] = set()
        self.outcomes: dict[str, list[str]] = {}
        self.unused: list[str] = []
        self.used = False
        self._workdir: str | None = None
        """This process's directory for the recordings' files (made on first use)."""

    def _work(self) -> str:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="blocktrace-golden-")
        return self._workdir

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- which tests, and how ------------------------------------------------------

    def _settings(self, item: pytest.Item) -> _Settings | None:
        marker = item.get_closest_marker("blocktrace_golden")
        if marker is None and not self.everywhere:
            return None
        kw: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
        if not kw.get("enabled", True):
            return None
        opt = self.config.getoption
        level_name = str(kw.get("level", opt("blocktrace_golden_level")))
        level = _LEVELS.get(level_name)
        if level is None:
            raise pytest.UsageError(f"{item.nodeid}: blocktrace_golden level {level_name!r} "
                                    "is not one of calls, lines, ops")
        return _Settings(
            level=level,
            values=bool(kw.get("values", opt("blocktrace_golden_values"))),
            include=[*opt("blocktrace_golden_include"), *_listed(kw.get("include"))],
            exclude=[*opt("blocktrace_golden_exclude"), *_listed(kw.get("exclude"))],
            ignore=[*opt("blocktrace_golden_ignore"), *_listed(kw.get("ignore"))],
            masks=[*opt("blocktrace_golden_mask"), *_listed(kw.get("mask"))],
        )

    @staticmethod
    def _path_of(item: pytest.Item) -> str | None:
        path = getattr(item, "path", None)
        if path is None or not str(path).endswith(".py"):
            return None
        name = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
        return golden_path(str(path), name)

    # -- collection: which goldens are owned ---------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: Sequence[pytest.Item]) -> None:
        narrowed = {a.split("::", 1)[0] for a in self.config.args if "::" in a}
        narrowed = {os.path.realpath(os.path.join(str(self.config.invocation_params.dir), a))
                    for a in narrowed}
        for item in items:
            path = self._path_of(item)
            if path is None:
                continue
            self.expected.add(path)
            module = str(item.path)
            if os.path.realpath(module) not in narrowed:
                self.modules.add(module)

    # -- the call phase ------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        settings = self._settings(item)
        path = self._path_of(item) if settings is not None else None
        if settings is None or path is None:
            return (yield)
        self.used = True
        try:
            fields_for(settings.level, settings.ignore)
        except ValueError as exc:
            raise pytest.UsageError(f"blocktrace golden: {exc}") from None
        factory = getattr(self.config, "_tmp_path_factory", None)
        temp = getattr(factory, "_basetemp", None)
        rules = Normaliser(self.root, [item.nodeid], str(temp) if temp else None,
                           settings.masks)
        recording = Recording(level=settings.level, values=settings.values,
                              include=settings.include, exclude=settings.exclude, rules=rules,
                              workdir=self._work())
        # compared with the stored golden as it is made: the same bytes are not
        # written at all; an update writes beside the golden (renamed into place)
        stored = path if os.path.exists(path) else None
        fresh = None
        if self.update and os.path.isdir(os.path.dirname(path)):
            fresh = partial_path(path)
        try:
            try:
                recording.start(against=stored, fresh=fresh)
                problem: str | None = None
            except RecordingError as exc:
                problem = str(exc)
            if problem is not None:
                pytest.fail(f"blocktrace golden: this test cannot be traced: {problem}",
                            pytrace=False)
            try:
                result = yield
            except BaseException as exc:
                try:
                    recording.finish(type(exc).__name__, write=False)
                except RecordingError:
                    pass  # the test's own failure is what pytest reports
                raise
            try:
                recording.finish(None)
            except RecordingError as exc:
                problem = str(exc)
            if problem is not None:
                item.user_properties.append((_PROPERTY, (self._shown(path), "not traced")))
                pytest.fail(f"blocktrace golden: {problem}", pytrace=False)
            self._check(item, settings, recording.path, path, recording.same)
            return result
        finally:
            recording.cleanup()

    @staticmethod
    def _update_command(item: pytest.Item) -> str:
        """The command that writes this test's golden: ``--blocktrace-golden-update``
        alone traces only marked tests."""
        if item.get_closest_marker("blocktrace_golden") is not None:
            return "pytest --blocktrace-golden-update"
        return "pytest --blocktrace-golden --blocktrace-golden-update"

    def _shown(self, path: str) -> str:
        try:
            return os.path.relpath(path, self.root)
        except ValueError:
            return path

    def _check(self, item: pytest.Item, settings: _Settings, fresh: str, path: str,
               same: bool) -> None:
        shown = self._shown(path)

        def note(outcome: str) -> None:
            item.user_properties.append((_PROPERTY, (shown, outcome)))

        if same:
            note("same")
            return
        if not os.path.exists(path):
            if self.update:
                write_golden(fresh, path)
                note("created")
                return
            note("missing")
            pytest.fail(f"blocktrace golden: no golden trace for this test at {shown}; "
                        f"create it with {self._update_command(item)}", pytrace=False)
        try:
            diff = compare_golden(path, fresh, settings.level, ignore=settings.ignore,
                                  values=settings.values, hunks=self.hunks, root=self.root)
        except GoldenCorrupt as exc:
            problem = str(exc).replace(path, shown)
        else:
            problem = ""
        if problem:
            if self.update:
                write_golden(fresh, path)
                note("updated")
                return
            note("corrupt")
            pytest.fail(f"blocktrace golden: {problem}", pytrace=False)
        if diff.equal and not (self.update and _older_form(path, fresh)):
            note("same")
            return
        if self.update:
            write_golden(fresh, path)
            note("updated")
            return
        note("changed")
        pytest.fail(diff.text.replace(path, shown), pytrace=False)

    # -- reporting -----------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == _PROPERTY and isinstance(value, tuple | list):
                shown, outcome = str(value[0]), str(value[1])
                self.outcomes.setdefault(outcome, []).append(shown)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.worker not in (None, "gw0") or not self.modules:
            return
        if not (self.everywhere or self.update or self.prune or self.used):
            return
        unused = unused_goldens(self.modules, self.expected)
        if self.prune:
            prune(unused)
        self.unused = [self._shown(p) for p in unused]
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["blocktrace_golden_unused"] = self.unused

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        unused = getattr(node, "workeroutput", {}).get("blocktrace_golden_unused")
        if unused:
            self.unused = list(unused)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        for outcome, verb in (("created", "written"), ("updated", "rewritten")):
            paths = self.outcomes.get(outcome, [])
            if paths:
                write(f"blocktrace golden: {len(paths)} golden trace(s) {verb}:")
                for shown in sorted(paths):
                    write(f"  {shown}")
        counts = {k: len(v) for k, v in self.outcomes.items()
                  if k in ("same", "changed", "missing", "corrupt", "not traced")}
        if counts:
            write("blocktrace golden: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        if self.update and not self.everywhere and not self.outcomes and self.worker is None:
            write("blocktrace golden: --blocktrace-golden-update wrote nothing: without "
                  "--blocktrace-golden only tests marked blocktrace_golden are traced, and "
                  "none ran (pytest --blocktrace-golden --blocktrace-golden-update records "
                  "every test)")
        if self.unused:
            verb = "removed" if self.prune else "not used by any test"
            write(f"blocktrace golden: {len(self.unused)} golden trace(s) {verb}:")
            for shown in self.unused:
                write(f"  {shown}")
            if not self.prune:
                write("  (--blocktrace-golden-prune removes them)")
