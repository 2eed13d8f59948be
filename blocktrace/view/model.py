"""What the viewer knows about one trace: the answers behind the JSON API.

:class:`TraceModel` is a blocktrace trace, read through
:class:`blocktrace.format.TraceReader`; its tables (:mod:`.tables`) are built
in a background thread while the page already shows the first steps, and the
verdict of ``blocktrace verify`` is computed in another.  :class:`ClientModel`
is an EIP-3155 client trace, read through the differ's normaliser (the eight
dialects).  Both answer the same questions (docs/VIEW.md); every answer is a
plain JSON-able dict.  Nothing here holds a whole trace: windows of steps are
read on demand, the tables are on disk and read by position.
"""

from __future__ import annotations

import functools
import itertools
import os
import subprocess
import sys
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any

import msgspec

from blocktrace.eip3155.normalise import TraceInfo, normalise
from blocktrace.eip3155.reader import TraceError as ClientTraceError
from blocktrace.eip3155.reader import open_trace, trace_lines
from blocktrace.eip3155.records import Step
from blocktrace.format import (
    CallLine,
    ExceptionLine,
    OpLine,
    ReturnLine,
    SourceLine,
    TraceError,
    TraceReader,
    Verification,
    blocktrace_header,
    check_chain,
    read_source,
)
from blocktrace.format.callline import json_text
from blocktrace.format.identity import FileIdentity, identity_or_none
from blocktrace.format.index import keep_index
from blocktrace.view.tables import (
    CallTable,
    StepRecord,
    Tables,
    counts_events,
    load_cached,
    load_or_build,
)

__all__ = [
    "EARLY_STEPS",
    "MAX_WINDOW",
    "BadRequest",
    "Changed",
    "ClientModel",
    "Model",
    "NotReady",
    "TraceModel",
    "open_model",
]

MAX_WINDOW = 5000
"""Steps one ``window`` request returns at most."""
EARLY_STEPS = 20000
"""Before the tables are built, windows ending below this step are read from
the start of the file (the first screen shows at once); later ones through
the reader's index once verify's pass built it, else they wait (503)."""
EARLY_LINES = 50_000
"""Lines read from the file's start, when the index is not built yet, at most."""
MAX_SEARCH = 1000
SEARCH_BUDGET = 20000
_STEP_NOTES = {
    "call": "call-level trace: a step is a call, a return or an exception "
            "(as blocktrace diff counts them; blocktrace show counts only the exceptions)",
    "line": "line-level trace: a step is the first instruction of a source line "
            "(as blocktrace diff and show count them)",
}
"""What a step is, said on the page, where the trace's level makes it worth saying."""
"""Value changes one search request reads at most (then it answers ``next``)."""
MAX_TIMELINE = 5000
CLIENT_SEARCHABLE = ("stack", "memory", "returnData", "refund")

HOWS = (
    "next", "prev", "over", "back-over", "out", "back-out", "next-hit", "prev-hit",
    "next-call", "prev-call", "next-exception", "prev-exception",
)

_value_text = msgspec.json.Encoder(order="sorted").encode


class NotReady(Exception):
    """The answer needs the tables, which are still being built (HTTP 503)."""

    def __init__(self, progress: dict[str, Any]) -> None:
        super().__init__("the trace's tables are still being built")
        self.progress = progress


class BadRequest(ValueError):
    """A request the API cannot answer as asked (HTTP 400)."""


class Changed(Exception):
    """The trace file changed on disk (or went) since the viewer opened it
    (HTTP 409): what the viewer verified is no longer what it would read."""




def _text(value: Any) -> str:
    return value if isinstance(value, str) else _value_text(value).decode()


class _Background:
    """A result computed in a daemon thread: ``value`` once done, ``error`` if it failed."""

    def __init__(self, work: Any, name: str) -> None:
        self.value: Any = None
        self.error: str | None = None
        self.done = threading.Event()
        self._work = work
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.value = self._work()
        except (TraceError, ClientTraceError, BadRequest) as exc:
            self.error = json_text(str(exc))  # (an answer in JSON: it may name the file)
        except (OSError, ValueError, MemoryError) as exc:
            self.error = json_text(f"{type(exc).__name__}: {exc}")
        finally:
            self.done.set()


class Model:
    """The questions every kind of trace answers; the navigation shared by both.

    Subclasses provide :meth:`tables` (step records and the call table) and
    the reading of steps, values and sources."""

    kind = "?"
    path: str
    opened: FileIdentity | None
    """The file's identity when the model opened it, before reading a byte."""

    def check_unchanged(self) -> None:
        """:class:`Changed` when the file is no longer the one opened: every
        answer read from it is checked after it is read, so no line written
        after the verification is served as if verified."""
        if identity_or_none(self.path) != self.opened:
            raise Changed(
                f"{json_text(self.path)} changed on disk (or was removed) since the viewer "
                "opened it: nothing more is read from it (restart blocktrace view to see it "
                "as it is now)"
            )

    # -- provided by the kinds -----------------------------------------------------

    def tables(self) -> Tables | _MemoryTables:
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def verify(self) -> dict[str, Any]:
        raise NotImplementedError

    def window(self, start: int, count: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def values(self, step: int) -> dict[str, Any]:
        raise NotImplementedError

    def source(self, file: str) -> dict[str, Any]:
        raise NotImplementedError

    def search(self, name: str, text: str, limit: int, start: int = 0) -> dict[str, Any]:
        raise NotImplementedError

    def function_of(self, code: int) -> tuple[str, str]:
        raise NotImplementedError

    def thread_name(self, index: int) -> int | None:
        return None

    # -- shared ----------------------------------------------------------------------

    def _record(self, step: int) -> StepRecord:
        tables = self.tables()
        if not 0 <= step < tables.steps:
            raise BadRequest(f"no step {step} (the trace has {tables.steps})")
        return tables.step(step)

    def stack(self, step: int) -> dict[str, Any]:
        tables = self.tables()
        here = self._record(step)
        calls = tables.calls
        chain = calls.calls_of(calls.innermost(here.thread, step))
        frames = []
        lineno = here.lineno
        for index in chain:
            function, file = self.function_of(calls.code[index])
            start = calls.start[index]
            frames.append({
                "function": function, "file": file, "line": lineno,
                "depth": calls.depth[index], "thread": self.thread_name(calls.thread[index]),
                "callStep": start,
            })
            lineno = tables.step(start - 1).lineno if start > 0 else 0
        return {"step": step, "frames": frames}

    def nav(self, step: int, how: str, file: str | None = None, line: int | None = None,
            function: str | None = None) -> int | None:
        """The step a navigation leads to from ``step``, or None (nowhere to go)."""
        if how not in HOWS:
            raise BadRequest(f"unknown how={how!r} (one of {', '.join(HOWS)})")
        tables = self.tables()
        total = tables.steps
        if how in ("next", "prev"):
            target = step + 1 if how == "next" else step - 1
            return target if 0 <= target < total else None
        if how in ("next-exception", "prev-exception"):
            return _neighbour(self.exception_steps(), step, how.startswith("next"))
        if how in ("next-call", "prev-call"):
            if not function:
                raise BadRequest(f"how={how} needs function=")
            forward = how.startswith("next")
            found = [at for code in self.codes_named(function)
                     if (at := _neighbour(self.call_starts(code), step, forward)) is not None]
            if not found:
                return None
            return min(found) if forward else max(found)
        if how in ("next-hit", "prev-hit"):
            if not file or line is None:
                raise BadRequest(f"how={how} needs file= and line=")
            return self.find_line(file, line, step, how.startswith("next"))
        here = self._record(step)
        calls = tables.calls
        frame = calls.innermost(here.thread, step)
        if how == "out":
            if frame < 0:
                return None
            return self._forward(calls.end[frame] + 1, here.thread, here.depth - 1)
        if how == "back-out":
            if frame < 0 or calls.start[frame] == 0:
                return None
            return self._backward(calls.start[frame] - 1, here.thread, here.depth - 1)
        if how == "over":
            return self._forward(step + 1, here.thread, here.depth)
        return self._backward(step - 1, here.thread, here.depth)  # back-over

    def _forward(self, at: int, thread: int, depth: int) -> int | None:
        """The first step from ``at`` on ``thread`` at ``depth`` or shallower,
        jumping over the calls in between by the call table."""
        tables = self.tables()
        calls = tables.calls
        while at < tables.steps:
            rec = tables.step(at)
            if rec.thread != thread:
                at += 1
                continue
            if rec.depth <= depth:
                return at
            inner = calls.innermost(thread, at)
            inner = _outermost_below(calls, inner, depth)
            at = calls.end[inner] + 1 if inner >= 0 and calls.end[inner] >= at else at + 1
        return None

    def _backward(self, at: int, thread: int, depth: int) -> int | None:
        tables = self.tables()
        calls = tables.calls
        while at >= 0:
            rec = tables.step(at)
            if rec.thread != thread:
                at -= 1
                continue
            if rec.depth <= depth:
                return at
            inner = calls.innermost(thread, at)
            inner = _outermost_below(calls, inner, depth)
            at = calls.start[inner] - 1 if inner >= 0 and calls.start[inner] <= at else at - 1
        return None

    def exception_steps(self) -> list[int]:
        raise NotImplementedError

    def _call_levels(self) -> list[tuple[array[int], array[int]]]:
        return self.tables().call_levels

    def codes_named(self, function: str) -> list[int]:
        raise NotImplementedError

    def call_starts(self, code: int) -> array[int] | list[int]:
        raise NotImplementedError

    def find_line(self, file: str, line: int, step: int, forward: bool) -> int | None:
        return None

    def step_of_line(self, line: int) -> int | None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the model answers everything (its tables built)."""
        return True

    def timeline(self, start: int, end: int, buckets: int) -> dict[str, Any]:
        tables = self.tables()
        calls = tables.calls
        if end < start:
            raise BadRequest("timeline: to is before from")
        shortest = max(1, (end - start + 1) // max(1, buckets))
        chosen: list[int] = []
        for thread in calls.by_thread:  # the frames already open at `start`
            chosen.extend(reversed(calls.calls_of(calls.innermost(thread, start))))
        starts, ends = calls.start, calls.end
        found: list[int] = []
        for level_starts, indices in self._call_levels()[shortest.bit_length():]:
            first = bisect_left(level_starts, start)
            last = bisect_right(level_starts, end)
            found.extend(i for i in indices[first:last] if ends[i] - starts[i] + 1 >= shortest)
        found.sort()
        truncated = len(chosen) + len(found) > MAX_TIMELINE
        chosen.extend(found[:max(0, MAX_TIMELINE - len(chosen))])
        seen = set()
        out = []
        for index in chosen:
            if index in seen:
                continue
            seen.add(index)
            function, file = self.function_of(calls.code[index])
            out.append({
                "start": starts[index], "end": ends[index], "depth": calls.depth[index],
                "function": function, "file": file,
                "thread": self.thread_name(calls.thread[index]),
            })
        return {"from": start, "to": end, "shortest": shortest, "calls": out,
                "truncated": truncated}


def _merge_line(view: dict[str, Any], line: OpLine | ExceptionLine) -> None:
    """A line that belongs to the step of ``view`` (an exception line at its
    pc; an op line after the exception line that started the step)."""
    if isinstance(line, ExceptionLine):
        if view["event"] is None:
            view["error"] = line.error
            view["event"] = line.event
        view.setdefault("exceptions", []).append(
            {"event": line.event, "error": line.error, "pc": line.pc, "lineno": line.line})
        return
    if line.locals is not None or line.globals is not None:
        values = view["values"] or {}
        if line.locals is not None:
            values["locals"] = line.locals
        if line.globals is not None:
            values["globals"] = line.globals
        view["values"] = values


def _outermost_below(calls: CallTable, index: int, depth: int) -> int:
    """The outermost call of ``index``'s chain still deeper than ``depth``."""
    while index >= 0 and calls.parent[index] >= 0 and calls.depth[calls.parent[index]] > depth:
        index = calls.parent[index]
    return index


def _neighbour(sorted_steps: list[int] | array[int], step: int, forward: bool) -> int | None:
    if forward:
        at = bisect_right(sorted_steps, step)
        return sorted_steps[at] if at < len(sorted_steps) else None
    at = bisect_left(sorted_steps, step)
    return sorted_steps[at - 1] if at > 0 else None


# -- blocktrace traces ------------------------------------------------------------------


class TraceModel(Model):
    """A blocktrace trace (any version the reader knows)."""

    kind = "blocktrace"

    def __init__(self, path: str, *, background: bool = True) -> None:
        self.path = path
        self.opened = identity_or_none(path)
        self.reader = TraceReader(path)  # TraceError: not a usable trace
        self._progress = 0
        self._verify = _Background(self._check, "blocktrace-view-verify")
        self._tables = _Background(self._build, "blocktrace-view-tables")
        if not background:
            self._tables.done.wait()

    @property
    def _events(self) -> bool:
        """Calls and returns are steps (a call-level trace)."""
        return counts_events(self.reader)

    def _check(self) -> Verification:
        """What ``blocktrace verify`` says of the file; the same pass builds the
        reader's index (random access: windows read only what they show),
        stored when the trace did not change meanwhile."""
        result = check_chain(self.path, build_index=True)
        if result.index is not None:
            keep_index(self.path, result.index)
        return result

    def _build(self) -> Tables:
        """The tables, built by ``python -m blocktrace.view.build`` (a process
        of its own: the server stays responsive and small), then loaded from
        the cache; built here when that process cannot be run.  Tables already
        in the cache are loaded at once."""
        cached = load_cached(self.reader)
        if cached is not None:
            cached.call_levels  # noqa: B018 (the timeline's levels, computed before ready)
            return cached
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "blocktrace.view.build", self.path],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )
        except OSError:
            child = None
        if child is not None:
            assert child.stdout is not None and child.stderr is not None
            for line in child.stdout:
                if line.startswith("lines "):
                    self._progress = int(line.split()[1])
            problem = child.stderr.read().strip()
            if child.wait() == 2 and problem:
                raise BadRequest(problem.splitlines()[-1])
        tables = load_or_build(self.reader, self._on_progress)
        tables.call_levels  # noqa: B018 (the timeline's levels, computed before ready)
        return tables

    def _on_progress(self, line: int) -> None:
        self._progress = line

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the tables (tests, ``--html``); True once built."""
        return self._tables.done.wait(timeout)

    def tables(self) -> Tables:
        if not self._tables.done.is_set():
            raise NotReady({"building": True, "linesRead": self._progress})
        if self._tables.error is not None:
            raise BadRequest(f"{self.path}: {self._tables.error}")
        tables: Tables = self._tables.value
        return tables

    def _ready(self) -> Tables | None:
        try:
            return self.tables()
        except NotReady:
            return None

    def meta(self) -> dict[str, Any]:
        header = msgspec.structs.asdict(self.reader.header)
        header.pop("hash", None)
        failed = self._tables.done.is_set() and self._tables.error is not None
        tables = None if failed else self._ready()  # (failed: meta says why, as a 200)
        out: dict[str, Any] = {
            "path": json_text(self.path), "kind": self.kind, "dialect": "blocktrace",
            "version": self.reader.version, "level": self.reader.level,
            "stepNote": _STEP_NOTES.get(self.reader.level),
            "header": header, "ready": tables is not None,
            "lines": None, "steps": None, "summary": None, "hasValues": None, "threads": None,
            "files": None,
        }
        if failed:
            out["error"] = self._tables.error
        if tables is not None:
            meta = tables.meta
            out.update(
                lines=meta.lines, steps=meta.steps, hasValues=meta.has_values,
                threads=meta.threads if len(meta.threads) > 1 else [],
                files=sorted({file for _, file in meta.codes.values()}),
                calls=meta.calls, exceptions=len(meta.exceptions),
            )
            out["summary"] = meta.summary
        else:
            out["progress"] = {"linesRead": self._progress}
        return out

    def verify(self) -> dict[str, Any]:
        try:
            self.check_unchanged()
        except Changed as exc:
            return {"status": "unusable", "line": None, "head": None, "reason": str(exc)}
        if not self._verify.done.is_set():
            return {"status": "pending", "line": None, "head": None, "reason": ""}
        if self._verify.error is not None:
            return {"status": "unusable", "line": None, "head": None, "reason": self._verify.error}
        result = self._verify.value
        return {"status": result.status, "line": result.line, "head": result.head or None,
                "reason": result.reason, "lines": result.lines, "version": result.version}

    def function_of(self, code: int) -> tuple[str, str]:
        tables = self._ready()
        found = tables.meta.codes.get(code) if tables is not None else None
        return found if found is not None else ("?", "?")

    def thread_name(self, index: int) -> int | None:
        tables = self.tables()
        threads = tables.meta.threads
        return threads[index] if len(threads) > 1 and index < len(threads) else None

    # -- steps ------------------------------------------------------------------

    def window(self, start: int, count: int) -> list[dict[str, Any]]:
        if start < 0 or count < 0:
            raise BadRequest("from and count are not negative")
        count = min(count, MAX_WINDOW)
        tables = self._ready()
        if tables is None:
            if start + count <= EARLY_STEPS:
                return self._early_window(start, count)
            if self._events or self.reader.index(build=False) is None:
                # (verify's pass builds the index; it counts no call as a step)
                raise NotReady({"building": True, "linesRead": self._progress})
            try:
                first = self.reader.line_of_step(start)
            except IndexError:
                return []
            # The reader's index finds the step; names of functions wait for the tables.
            return self._steps_from(self.reader.lines(first), start, count, {}, threads=[])
        records = tables.records(start, count)
        if not records:
            return []
        first_line = records[0].line
        after = start + len(records)
        stop = tables.step(after).line if after < tables.steps else None
        codes = tables.meta.codes
        lines = self._lines(first_line, None if stop is None else stop - first_line)
        return self._steps_from(lines, start, len(records), codes)

    def _lines(self, first: int, count: int | None) -> Iterator[tuple[int, Any]]:
        """``reader.lines``; a read far into the trace waits (503) while verify's
        pass is still building the reader's index, without which it would read
        from the file's start (tens of seconds into a large trace)."""
        if (first > EARLY_LINES and not self._verify.done.is_set()
                and self.reader.index(build=False) is None):
            raise NotReady({"building": True, "linesRead": self._progress, "indexing": True})
        return self.reader.lines(first, count)

    def _early_window(self, start: int, count: int) -> list[dict[str, Any]]:
        codes: dict[int, tuple[str, str]] = {}
        return self._steps_from(self.reader.lines(2), start, count, codes, learn=True)

    def _steps_from(self, lines: Iterator[tuple[int, Any]], start: int, count: int,
                    codes: dict[int, tuple[str, str]], learn: bool = False,
                    threads: list[int] | None = None) -> list[dict[str, Any]]:
        """Steps ``start`` .. from parsed lines; the lines' first step is step
        ``start`` unless ``learn`` (counting from the trace's start).  As diff
        numbers steps: an exception line at the pc, depth, code and thread of
        the step before it belongs to that step; any other is a step itself.
        In a call-level trace each call and each return is a step too."""
        events = self._events
        out: list[dict[str, Any]] = []
        step = start if not learn else 0
        if threads is None:
            threads = self.tables().meta.threads if not learn else []
        last: tuple[int, int, int, int | None] | None = None
        last_gas = ""
        for number, line in lines:
            kind = type(line)
            if kind is not OpLine and kind is not ExceptionLine:
                if kind is CallLine and learn:
                    codes.setdefault(line.code, (line.name, line.file))
                if events and (kind is CallLine or kind is ReturnLine):
                    if step >= start + count:
                        break
                    last = None
                    if step >= start:
                        out.append(self._event_view(step, number, line, codes, threads))
                    step += 1
                continue
            where = (line.pc, line.depth, line.code, line.thread)
            if where == last and (kind is ExceptionLine or line.gas == last_gas):
                if out and step - 1 == out[-1]["step"]:
                    _merge_line(out[-1], line)
                continue
            if step >= start + count:
                break
            last, last_gas = where, line.gas
            if step >= start:
                out.append(self._op_view(step, number, line, codes, threads))
            step += 1
        return out

    @staticmethod
    def _event_view(step: int, number: int, line: CallLine | ReturnLine,
                    codes: dict[int, tuple[str, str]], threads: list[int],
                    ) -> dict[str, Any]:
        """A call or a return as a step of a call-level trace: no op; a call is
        on its function's first line, a return says its pc and gas."""
        function, file = codes.get(line.code, ("?", "?"))
        view: dict[str, Any] = {
            "step": step, "line": number, "opName": line.kind_, "depth": line.depth,
            "event": line.event, "error": None, "file": file, "function": function,
            "thread": 1 if line.thread is None and len(threads) > 1 else line.thread,
            "values": None,
        }
        if isinstance(line, CallLine):
            view["lineno"] = line.firstLine
        else:
            view.update(pc=line.pc, gas=line.gas, lineno=None, value=line.value)
        return view

    @staticmethod
    def _op_view(step: int, number: int, line: OpLine | ExceptionLine,
                 codes: dict[int, tuple[str, str]], threads: list[int],
                 ) -> dict[str, Any]:
        function, file = codes.get(line.code, ("?", "?"))
        values = None
        event = error = None
        exceptions = None
        if isinstance(line, ExceptionLine):
            event, error = line.event, line.error
            exceptions = [{"event": event, "error": error, "pc": line.pc, "lineno": line.line}]
        elif line.locals is not None or line.globals is not None:
            values = {}
            if line.locals is not None:
                values["locals"] = line.locals
            if line.globals is not None:
                values["globals"] = line.globals
        view = {
            "step": step, "line": number, "pc": line.pc, "op": line.op, "opName": line.opName,
            "gas": line.gas, "gasCost": line.gasCost, "depth": line.depth, "event": event,
            "error": error, "file": file, "lineno": line.line, "function": function,
            "thread": 1 if line.thread is None and len(threads) > 1 else line.thread,
            "values": values,
        }
        if exceptions is not None:
            view["exceptions"] = exceptions
        return view

    def _recorded(self, step: int) -> dict[str, dict[str, Any]]:
        """What the lines of ``step`` recorded: ``{"locals": ..., "globals": ...}``
        (an op line that belongs to an exception line's step included)."""
        tables = self.tables()
        first = tables.step(step).line
        count = tables.step(step + 1).line - first if step + 1 < tables.steps else 8
        out: dict[str, dict[str, Any]] = {}
        for _, line in self._lines(first, count):
            if isinstance(line, OpLine):
                if line.locals is not None:
                    out["locals"] = line.locals
                if line.globals is not None:
                    out["globals"] = line.globals
        return out

    def values(self, step: int) -> dict[str, Any]:
        tables = self.tables()
        here = self._record(step)
        calls = tables.calls
        frame = calls.innermost(here.thread, step)
        wanted: list[tuple[str, str, int]] = []
        if frame >= 0 and calls.values_count[frame]:
            for name, at in tables.changes_at(calls.values_at[frame], calls.values_count[frame],
                                              step).items():
                wanted.append(("locals", name, at))
        file = self.function_of(here.code)[1]
        block = tables.meta.globals_blocks.get(file)
        if block is not None:
            for name, at in tables.changes_at(block[0], block[1], step).items():
                wanted.append(("globals", name, at))
        recorded: dict[int, dict[str, dict[str, Any]]] = {}
        out = []
        for scope, name, at in wanted:
            got = recorded.get(at)
            if got is None:
                got = recorded[at] = self._recorded(at)
            members = got.get(scope)
            if members is None or name not in members:
                continue
            out.append({"scope": scope, "name": name, "value": members[name], "changedAt": at})
        out.sort(key=lambda item: (item["scope"] != "locals", item["name"]))
        return {"step": step, "frameStep": calls.start[frame] if frame >= 0 else None,
                "values": out}

    # -- sources ----------------------------------------------------------------

    def source(self, file: str) -> dict[str, Any]:
        tables = self.tables()
        meta = tables.meta
        hits: dict[int, int] = {}
        named = False
        for code, (_, code_file) in meta.codes.items():
            if code_file == file:
                named = True
                for lineno, count in meta.hits.get(code, {}).items():
                    hits[lineno] = hits.get(lineno, 0) + count
        if not named and file not in meta.sources:
            return {"file": file, "text": None, "hits": {},
                    "reason": "the trace names no such file"}
        at = meta.sources.get(file)
        entry: SourceLine | None = None
        if at is not None:
            for _, line in self._lines(at, 1):
                if isinstance(line, SourceLine):
                    entry = line
        got = read_source(entry)
        beside_trace = entry is not None and entry.text is None and not os.path.isabs(file)
        if got.text is None and beside_trace and entry is not None:
            beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), file)
            retry = read_source(msgspec.structs.replace(entry, file=beside))
            if retry.text is not None:
                got = retry
        return {"file": file, "text": got.text, "reason": got.reason,
                "embedded": entry is not None and entry.text is not None,
                "hits": {str(k): v for k, v in sorted(hits.items())}}

    # -- navigation helpers -------------------------------------------------------

    def exception_steps(self) -> list[int]:
        return self.tables().meta.exceptions

    def codes_named(self, function: str) -> list[int]:
        codes = self.tables().meta.codes
        return [code for code, (name, file) in codes.items()
                if function in (name, f"{file}:{name}")]

    def call_starts(self, code: int) -> array[int]:
        return self.tables().call_starts(code)

    def find_line(self, file: str, line: int, step: int, forward: bool) -> int | None:
        """The next (previous) entry into ``line`` of ``file``: a step on it
        whose frame's step before was on another line (what ``hits`` count)."""
        tables = self.tables()
        found: list[int] = []
        for code, (_, code_file) in tables.meta.codes.items():
            if code_file != file or line not in tables.meta.hits.get(code, {}):
                continue
            at: int | None = step + 1 if forward else step - 1
            while at is not None and at >= 0:
                at = tables.find(code, line, at, forward)
                if at is None or self._entry(tables, at):
                    break
                at = at + 1 if forward else at - 1
            if at is not None and at >= 0:
                found.append(at)
        if not found:
            return None
        return min(found) if forward else max(found)

    @staticmethod
    def _entry(tables: Tables, step: int) -> bool:
        """Whether ``step`` enters its line (the frame's previous step is on
        another line, or there is none)."""
        if step == 0:
            return True
        here = tables.step(step)
        before = tables.step(step - 1)
        if before.thread != here.thread or before.depth < here.depth:
            return True
        if before.depth > here.depth:  # a call returned: the frame's step before it
            calls = tables.calls
            inner = _outermost_below(calls, calls.innermost(here.thread, step - 1), here.depth)
            if inner < 0 or calls.start[inner] == 0:
                return True
            before = tables.step(calls.start[inner] - 1)
        return (before.code, before.lineno) != (here.code, here.lineno)

    def step_of_line(self, line: int) -> int | None:
        return self.tables().step_of_line(line)

    # -- search ---------------------------------------------------------------------

    def search(self, name: str, text: str, limit: int, start: int = 0) -> dict[str, Any]:
        """Steps (from ``start`` on) where ``name``'s recorded value changed to
        one whose text (JSON, or the string itself) contains ``text``: the
        tables list the steps where it changed; only those lines are read.
        At most ``limit`` matches, and ``next`` (the step to go on from) when
        the answer stopped early (the limit, or :data:`SEARCH_BUDGET` lines read)."""
        tables = self.tables()
        limit = max(1, min(limit, MAX_SEARCH))
        if not name:
            raise BadRequest("search needs name=")
        matches: list[dict[str, Any]] = []
        next_step = None
        for read, step in enumerate(tables.changes_of(name, max(0, start))):
            if len(matches) >= limit or read >= SEARCH_BUDGET:
                next_step = step
                break
            got = self._recorded(step)
            for scope in ("locals", "globals"):
                members = got.get(scope)
                if members and name in members:
                    value = members[name]
                    if text in _text(value):
                        matches.append({"step": step, "scope": scope, "name": name,
                                        "value": value})
                    break
        return {"name": name, "text": text, "matches": matches,
                "truncated": next_step is not None, "next": next_step}


# -- EIP-3155 client traces --------------------------------------------------------------


class _MemoryTables:
    """The step records and call table of a client trace, in memory (client
    traces are small: a transaction, not a program run)."""

    def __init__(self) -> None:
        self.line = array("Q")
        self.depth = array("I")
        self.pc = array("Q")
        self.calls = CallTable()
        self.steps = 0

    def step(self, step: int) -> StepRecord:
        return StepRecord(step, self.line[step], 0, 0, self.depth[step], 0)

    @functools.cached_property
    def call_levels(self) -> list[tuple[array[int], array[int]]]:
        return self.calls.levels()

    def records(self, start: int, count: int) -> list[StepRecord]:
        return [self.step(i) for i in range(max(0, start), min(self.steps, start + count))]


class _Memory(msgspec.Struct):
    memory: Any = None


_memory_decoder = msgspec.json.Decoder(_Memory)


class ClientModel(Model):
    """An EIP-3155 trace of an Ethereum client (geth, revm, besu, nethermind,
    evmone, nimbus, erigon, execution-specs), through the differ's normaliser."""

    kind = "eip3155"

    def __init__(self, path: str, dialect: str | None = None) -> None:
        self.path = path
        self.opened = identity_or_none(path)
        self.info = TraceInfo(path, forced_dialect=dialect)
        self._mem = _MemoryTables()
        self._errors: list[int] = []
        self._op_names: dict[str, int] = {}
        stack: list[int] = []
        calls = self._mem.calls
        previous: Step | None = None
        for step in normalise(path, self.info):  # ClientTraceError: not a trace
            self._mem.line.append(step.lineno)
            self._mem.depth.append(step.depth)
            self._mem.pc.append(step.pc)
            if step.error is not None:
                self._errors.append(step.index)
            while stack and calls.depth[stack[-1]] > step.depth:
                calls.end[stack.pop()] = step.index - 1
            if not stack or calls.depth[stack[-1]] < step.depth:
                name = (previous.opName or "call") if previous is not None else "transaction"
                code = self._op_names.setdefault(name, len(self._op_names))
                stack.append(calls.add(step.index, step.depth, code, 0,
                                       stack[-1] if stack else -1))
            previous = step
        self._mem.steps = self.info.steps
        for index in stack:
            calls.end[index] = self.info.steps - 1
        self._names = {code: name for name, code in self._op_names.items()}

    def tables(self) -> _MemoryTables:
        return self._mem

    def function_of(self, code: int) -> tuple[str, str]:
        return self._names.get(code, "?"), ""

    def stack(self, step: int) -> dict[str, Any]:
        """EVM call frames: the call's opcode (``transaction`` outermost), the
        frame's ``pc`` (for callers, the pc of their call), no file or line."""
        answer = super().stack(step)
        mem = self._mem
        pc = mem.pc[step]
        for frame in answer["frames"]:
            frame["file"] = frame["line"] = None
            frame["pc"] = pc
            start = frame["callStep"]
            pc = mem.pc[start - 1] if start > 0 else 0
        return answer

    def meta(self) -> dict[str, Any]:
        summary = self.info.summary
        return {
            "path": json_text(self.path), "kind": self.kind, "dialect": self.info.dialect,
            "version": None, "level": "op", "header": None, "ready": True,
            "lines": self.info.lines, "steps": self.info.steps,
            "summary": None if summary is None else {
                "output": summary.output, "gasUsed": summary.gasUsed, "pass": summary.passed,
                "error": summary.error, "stateRoot": summary.stateRoot,
                "gasUsedMeaning": self.info.gas_used,
            },
            "hasValues": False, "threads": [], "files": [],
            "calls": len(self._mem.calls), "exceptions": len(self._errors),
        }

    def verify(self) -> dict[str, Any]:
        return {"status": "unchained", "line": None, "head": None,
                "reason": f"an EIP-3155 trace written by {self.info.dialect} carries no hash "
                "chain: there is nothing to verify"}

    def window(self, start: int, count: int) -> list[dict[str, Any]]:
        if start < 0 or count < 0:
            raise BadRequest("from and count are not negative")
        count = min(count, MAX_WINDOW)
        steps = list(itertools.islice(normalise(self.path, TraceInfo(
            self.path, forced_dialect=self.info.forced_dialect or self.info.dialect)),
            start, start + count))
        memory = self._memory({step.lineno for step in steps})
        out = []
        for step in steps:
            stack = step.stack
            out.append({
                "step": step.index, "line": step.lineno, "pc": step.pc, "op": step.op,
                "opName": step.opName, "gas": hex(step.gas), "gasCost": step.gasCost,
                "depth": step.depth, "event": None, "error": step.error, "file": None,
                "lineno": None, "function": self.function_of(self._code_at(step.index))[0],
                "thread": None, "values": None,
                "stack": list(reversed(stack)) if isinstance(stack, list) else stack,
                "memory": memory.get(step.lineno), "returnData": step.returnData,
                "refund": step.refund, "memSize": step.memSize,
            })
        return out

    def step_of_line(self, line: int) -> int | None:
        at = bisect_left(self._mem.line, line)
        return at if at < len(self._mem.line) and self._mem.line[at] == line else None

    def _code_at(self, step: int) -> int:
        calls = self._mem.calls
        index = calls.innermost(0, step)
        return calls.code[index] if index >= 0 else -1

    def _memory(self, wanted: set[int]) -> dict[int, Any]:
        found: dict[int, Any] = {}
        if not wanted:
            return found
        last = max(wanted)
        with open_trace(self.path) as stream:
            for number, raw in enumerate(trace_lines(stream, self.path), 1):
                if number in wanted and b'"memory"' in raw:
                    try:
                        found[number] = _memory_decoder.decode(raw).memory
                    except (msgspec.DecodeError, RecursionError):
                        pass
                if number >= last:
                    break
        return found

    def values(self, step: int) -> dict[str, Any]:
        self._record(step)
        return {"step": step, "frameStep": None, "values": []}

    def source(self, file: str) -> dict[str, Any]:
        return {"file": file, "text": None, "hits": {},
                "reason": "an EIP-3155 client trace names no source files"}

    def search(self, name: str, text: str, limit: int, start: int = 0) -> dict[str, Any]:
        """Steps (from ``start``) where ``name`` -- ``stack``, ``memory``,
        ``returnData`` or ``refund`` -- changed to a value whose text contains
        ``text`` (for ``stack``: one of its words)."""
        if name not in CLIENT_SEARCHABLE:
            raise BadRequest(f"a client trace is searched by {', '.join(CLIENT_SEARCHABLE)}, "
                             f"not {name!r}")
        limit = max(1, min(limit, MAX_SEARCH))
        matches: list[dict[str, Any]] = []
        previous: Any = None
        next_step = None
        wanted = self._memory(set(self._mem.line)) if name == "memory" else {}
        for step in normalise(self.path, TraceInfo(
                self.path, forced_dialect=self.info.forced_dialect or self.info.dialect)):
            if name == "stack":
                value = step.stack
                value = list(reversed(value)) if isinstance(value, list) else value
            elif name == "memory":
                value = wanted.get(step.lineno)
            else:
                value = getattr(step, name)
            if value == previous:
                continue
            previous = value
            if step.index < start or value is None:
                continue
            if len(matches) >= limit:
                next_step = step.index
                break
            words = value if name == "stack" and isinstance(value, list) else [value]
            if any(text in _text(word) for word in words):
                matches.append({"step": step.index, "scope": "step", "name": name,
                                "value": value})
        return {"name": name, "text": text, "matches": matches,
                "truncated": next_step is not None, "next": next_step}

    def exception_steps(self) -> list[int]:
        return self._errors

    def codes_named(self, function: str) -> list[int]:
        return [code for name, code in self._op_names.items() if name == function]

    def call_starts(self, code: int) -> list[int]:
        calls = self._mem.calls
        return [calls.start[i] for i in range(len(calls)) if calls.code[i] == code]


def is_blocktrace(path: str) -> bool:
    """Whether ``path`` is a blocktrace trace, not a client's, as every command
    tells (:func:`blocktrace.format.blocktrace_header`: a blocktrace header on
    line 1, or a blocktrace line where it belongs); the format's ``TraceError``
    (with what ``verify`` says: tampered or unusable) for one that cannot be used."""
    return blocktrace_header(path) is not None


def open_model(path: str, dialect: str | None = None) -> Model:
    """The model of the trace at ``path``; TraceError (or the eip3155 reader's)
    when it is not a usable trace."""
    if os.path.isdir(path):
        raise TraceError(path, None, "is a directory, not a trace file")
    if not os.path.exists(path):
        raise TraceError(path, None, "no such file")
    if dialect is None and is_blocktrace(path):
        return TraceModel(path)
    return ClientModel(path, dialect)
