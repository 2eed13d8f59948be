"""Timelines of blocktrace traces: Chrome trace-event JSON (Perfetto) and speedscope.

Both are written streaming, from one pass over the trace's lines, in memory that
does not grow with the trace (speedscope's per-thread event lists go through
temporary files).  The clock: by default the **instruction clock** -- one traced
instruction is one microsecond of display time, so a slice's width is the
number of instructions it ran (``ts`` is the step); when the run was recorded
with ``blocktrace run --clock`` and every call, return and exception line
carries ``clock``, the wall clock (nanoseconds since the run started, shown in
microseconds).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from blocktrace.format import CallLine, ExceptionLine, OpLine, ReturnLine, Summary, TraceReader
from blocktrace.format.callline import json_safe
from blocktrace.query.columns import Tick, skim
from blocktrace.query.lines import blocktrace_header, json_text

__all__ = ["Clock", "TimelineError", "write_perfetto", "write_speedscope"]

_encode = msgspec.json.Encoder().encode


class TimelineError(Exception):
    """A trace that cannot be shown on a timeline; ``str()`` is the one line to print."""


Clock = str
"""``"auto"`` (wall clock when recorded, else instructions), ``"steps"`` or ``"wall"``."""


@dataclass
class _Source:
    """One trace on the timeline: its process, and what verify said."""

    path: str
    pid: int
    status: str
    name: str
    header: dict[str, Any] = field(default_factory=dict)


def _has_clock(path: str) -> bool:
    """Whether the run recorded wall-clock times (its first call line says)."""
    for _, line in TraceReader(path).lines():
        if type(line) is CallLine:
            return line.clock is not None
    return False


def _sources(paths: Sequence[str], statuses: Sequence[str]) -> list[_Source]:
    out: list[_Source] = []
    used: set[int] = set()
    for index, (path, status) in enumerate(zip(paths, statuses, strict=True)):
        first = blocktrace_header(path)
        if first is None:
            raise TimelineError(
                f"{path}: not a blocktrace trace (an EIP-3155 client trace has no call lines "
                "to put on a timeline)"
            )
        given = first.get("pid")
        pid: int = given if isinstance(given, int) else index + 1
        while pid in used:  # two traces of one pid (two machines): keep them apart
            pid += 1_000_000
        used.add(pid)
        argv = first.get("argv")
        argv = argv if isinstance(argv, list) else []
        name = " ".join(str(a) for a in argv) or json_safe(os.path.basename(path))
        out.append(_Source(path, pid, status, f"{name} (pid {first.get('pid')})", first))
    return out


def _wall(sources: list[_Source], clock: Clock) -> bool:
    if clock == "steps":
        return False
    recorded = all(_has_clock(s.path) for s in sources)
    if clock == "wall" and not recorded:
        raise TimelineError("--clock wall: the run was not recorded with blocktrace run --clock")
    return recorded


def write_perfetto(
    paths: Sequence[str], statuses: Sequence[str], out: IO[bytes], *, clock: Clock = "auto",
    tick: Tick | None = None,
) -> None:
    """Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing): a process per
    trace, a track per thread, calls as nested slices, exceptions as instant
    events.  ``statuses``: what verify said of each trace (shown in the
    process name when it is not ``sealed``, and in ``otherData``).  ``tick``:
    called from the reading loop once per piece read (``Progress.look``)."""
    sources = _sources(paths, statuses)
    wall = _wall(sources, clock)
    out.write(b'{"displayTimeUnit":"ns",' if wall else b"{")
    out.write(b'"traceEvents":[\n')
    first = True

    def emit(event: dict[str, Any]) -> None:
        nonlocal first
        out.write((b"" if first else b",\n") + _encode(event))
        first = False

    for source in sources:
        label = source.name if source.status == "sealed" else f"{source.name} [{source.status}]"
        emit({"ph": "M", "name": "process_name", "pid": source.pid, "args": {"name": label}})
        for ev in _events(source, wall, tick):
            emit(ev)
    other = {
        "exporter": "blocktrace",
        "clock": "wall clock, ns since the run started" if wall
        else "instruction clock: 1 step = 1 us",
        "traces": [{"path": json_safe(s.path), "status": s.status} for s in sources],
    }
    out.write(b"\n],\"otherData\":" + _encode(other) + b"}\n")


def _frame_lines(
    path: str, wall: bool, tick: Tick | None = None
) -> Iterator[tuple[int, int, float, Any]]:
    """(trace line number, step, time, line) of each call, return and exception
    line and the summary, in trace order (op lines counted, not decoded), then
    (0, step, time, None) at the end.  The time is the step, or with ``wall`` the
    last clock a line gave (microseconds; the summary's ``time`` ends the run)."""
    step = 0
    now = 0.0
    for line_no, ops, line in skim(path, tick):
        step += ops
        d: Any = line
        kind = type(d)
        if kind is OpLine:
            step += 1
            continue
        if kind is Summary:
            if wall:  # the run's end
                now = max(now, d.time / 1000)
        elif kind not in (CallLine, ReturnLine, ExceptionLine):
            continue
        elif wall and d.clock is not None:
            now = d.clock / 1000
        yield line_no, step, now if wall else step, d
    yield 0, step, now if wall else step, None


def _events(source: _Source, wall: bool, tick: Tick | None = None) -> Any:
    """The trace-event dicts of one trace, in trace order."""
    pid = source.pid
    end: float = 0
    threads: dict[int, list[tuple[str, float]]] = {}
    names: dict[int, tuple[str, str]] = {}
    for line_no, step, ts, d in _frame_lines(source.path, wall, tick):
        kind = type(d)
        if kind is not CallLine and kind is not ReturnLine and kind is not ExceptionLine:
            end = ts  # the summary, or the trace's end
            continue
        tid = d.thread or 1
        stack = threads.get(tid)
        if stack is None:
            stack = threads[tid] = []
            yield {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                   "args": {"name": f"thread {tid}"}}
        if kind is ExceptionLine:
            function, file = names.get(d.code, (None, None))
            error, _, message = d.error.partition(": ")
            yield {"ph": "i", "s": "t", "name": f"{d.event} {error}", "cat": "exception",
                   "pid": pid, "tid": tid, "ts": ts,
                   "args": {"message": message, "function": function, "file": file,
                            "line": d.line, "step": step, "traceLine": line_no}}
        elif kind is CallLine:
            names[d.code] = (d.name, d.file)
            stack.append((d.name, ts))
            yield {"ph": "B", "name": d.name, "cat": d.kind_, "pid": pid, "tid": tid,
                   "ts": ts, "args": {"file": d.file, "firstLine": d.firstLine,
                                      "depth": d.depth, "step": step, "traceLine": line_no}}
        elif stack:
            name, _ = stack.pop()
            yield {"ph": "E", "name": name, "pid": pid, "tid": tid, "ts": ts,
                   "args": {"ended": d.kind_, "value": json_text(d.value), "step": step}}
    for tid, stack in threads.items():  # frames still open when the trace ends
        while stack:
            name, _ = stack.pop()
            yield {"ph": "E", "name": name, "pid": pid, "tid": tid, "ts": end,
                   "args": {"ended": None}}


def write_speedscope(
    paths: Sequence[str], statuses: Sequence[str], out: IO[bytes], *, clock: Clock = "steps",
    tick: Tick | None = None,
) -> None:
    """A speedscope file (www.speedscope.app): a flame graph per thread of each
    trace, weighted by instructions (or, with ``clock="wall"``, wall time).
    ``tick``: as :func:`write_perfetto`'s."""
    sources = _sources(paths, statuses)
    wall = _wall(sources, clock if clock != "auto" else "steps")
    frames: dict[tuple[str, str, int], int] = {}
    out.write(b'{"$schema":"https://www.speedscope.app/file-format-schema.json",'
              b'"exporter":"blocktrace","activeProfileIndex":0,"profiles":[')
    first_profile = True
    for source in sources:
        spools: dict[int, IO[bytes]] = {}
        ends: dict[int, float] = {}
        stacks: dict[int, list[int]] = {}
        try:
            for _, _, at, d in _frame_lines(source.path, wall, tick):
                kind = type(d)
                if kind is not CallLine and kind is not ReturnLine:
                    continue
                tid = d.thread or 1
                spool = spools.get(tid)
                if spool is None:
                    spool = spools[tid] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                        max_size=8 << 20)  # closed in the finally below
                stack = stacks.setdefault(tid, [])
                if kind is CallLine:
                    key = (d.name, d.file, d.firstLine)
                    index = frames.setdefault(key, len(frames))
                    stack.append(index)
                    mark = b"O"
                elif stack:
                    index = stack.pop()
                    mark = b"C"
                else:
                    continue
                spool.write(b'{"type":"%b","frame":%d,"at":%b},' % (mark, index, _num(at)))
                ends[tid] = at
            for tid, spool in sorted(spools.items()):
                end = ends[tid]
                for index in reversed(stacks[tid]):  # frames still open
                    spool.write(b'{"type":"C","frame":%d,"at":%b},' % (index, _num(end)))
                label = json_safe(os.path.basename(source.path)) + (
                    "" if source.status == "sealed" else f" [{source.status}]")
                head = {
                    "type": "evented", "name": f"{label} thread {tid}",
                    "unit": "microseconds" if wall else "none",
                    "startValue": 0, "endValue": end,
                }
                out.write((b"" if first_profile else b",") + _encode(head)[:-1] + b',"events":[')
                first_profile = False
                spool.seek(0)
                tail = b""
                for chunk in iter(lambda s=spool: s.read(1 << 20), b""):  # type: ignore[misc]
                    out.write(tail + chunk[:-1])
                    tail = chunk[-1:]
                out.write(tail.rstrip(b",") + b"]}")
        finally:
            for spool in spools.values():
                spool.close()
    shared = [{"name": name, "file": file, "line": line} for (name, file, line) in frames]
    out.write(b'],"shared":{"frames":' + _encode(shared) + b'}}\n')


def _num(value: float) -> bytes:
    return b"%d" % value if float(value).is_integer() else repr(float(value)).encode()
