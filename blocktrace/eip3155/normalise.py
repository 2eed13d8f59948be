"""From a trace file to the stream of normalised op steps (streaming).

Implements the actions of ``dialects.LINE_RULES`` in that order.  Memory is
independent of the trace's length: one pending step (a faulting op's second
line may follow it), the summary, and for blocktrace traces the table of code
numbers to function names.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import msgspec

from blocktrace.eip3155.dialects import (
    DIALECTS,
    Evidence,
    gas_used_meaning,
    guess_client,
    halt_not_error,
)
from blocktrace.eip3155.numbers import parse_int
from blocktrace.eip3155.reader import TraceError, open_trace, raw_decoder, trace_lines
from blocktrace.eip3155.records import RawLine, Step, Summary, decode_member
from blocktrace.format import TraceReader, blocktrace_header

__all__ = [
    "EventSteps", "LineSource", "TraceInfo", "blocktrace_reader", "member_file", "normalise",
    "read_all", "steps_of",
]

_BOM = b"\xef\xbb\xbf"
def _text(line: bytes) -> bool:
    """Whether a line that is not JSON is text, as a client's start-up chatter and
    error dumps are (asked of those lines only, never of op lines)."""
    if b"\x00" in line:
        return False
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_NOISE_BEFORE_JSON = 100
"""Non-JSON lines tolerated before the first JSON object (startup chatter)."""


class TraceInfo(msgspec.Struct):
    """Everything about one input except its steps; complete once they are consumed."""

    path: str
    forced_dialect: str | None = None
    dialect: str = "evm"
    gas_used: str = "unknown"
    python: str | None = None
    lines: int = 0
    noise: int = 0
    op_lines: int = 0
    steps: int = 0
    stops_dropped: int = 0
    merged: int = 0
    frame_exits: int = 0
    ignored: int = 0
    halts_not_errors: int = 0
    """``error`` values that name a normal halt (revm's ``Stop``, ``Return``), read
    as no error."""
    summary: Summary | None = None
    level: str = "op"
    """A blocktrace trace's header ``level`` (op, line, call), once ``diff`` has read it."""
    evidence: Evidence = msgspec.field(default_factory=Evidence)
    functions: dict[int | str, tuple[str, str]] = msgspec.field(default_factory=dict)
    done: bool = False


def _error_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _num(value: int | str, path: str, lineno: int, name: str) -> int:
    if type(value) is int:
        return value
    try:
        return parse_int(value)
    except ValueError:
        raise TraceError(path, lineno, f"`{name}` is not a number: {value!r}") from None


def normalise(path: str, info: TraceInfo | None = None) -> Iterator[Step]:
    """Yield the normalised op steps of the trace at ``path``.

    ``info`` (if given) is filled in as the stream is consumed: counts, dialect,
    summary.  Raises ``TraceError`` for input that is not a trace.
    """
    return steps_of(path, TraceInfo(path) if info is None else info, None)


class EventSteps(Protocol):
    """What :func:`steps_of` makes of a trace's call, return and exception lines
    when it gives those instead of op steps (``levels.CallSteps``: a ``call``-level
    comparison)."""

    pending: Step | None
    """The op step held (one a next op line may merge into) when the last step was given."""

    def step(self, raw: RawLine, lineno: int) -> Step | None:
        """The step of the line just decoded (``raw``; its ``event`` is not None),
        or None when it makes none."""

    def passed(self, steps: int) -> None:
        """That many of its steps were passed over unread (``skip``)."""


class LineSource(Protocol):
    """Where :func:`steps_of` reads a trace's lines from, when not from the file
    itself (``blocktrace.eip3155.skip``: a buffer the diff can pass over in bulk)."""

    def numbered(self) -> AbstractContextManager[Iterator[tuple[int, bytes]]]: ...

    def called(self, code: int | str, line: bytes) -> None:
        """A call line naming ``code`` was read (``line``: its bytes)."""


def steps_of(
    path: str, info: TraceInfo, source: LineSource | None, events: EventSteps | None = None
) -> Generator[Step, int | tuple[int, int] | None, None]:
    """:func:`normalise` with the lines from ``source`` (None: the file).

    While suspended after a step, the generator holds the op line of the next
    one (already read: the last line ``source`` gave).  ``send(n)`` says that
    line and the lines after it up to where ``source`` now stands were passed
    over as ``n`` steps (see ``blocktrace.eip3155.skip``); it answers None and
    reads on from there.

    ``events``: the steps given are ``events.step``'s, of the lines that start
    ``{"`` and name an ``event`` (each given once the line after it is read: the
    last line ``source`` gave), not the op steps; ``info`` is filled as before.
    ``send((n, ops))`` then says that line and those after it were passed over as
    ``n`` of those steps and ``ops`` op steps, the first op line passed (if any)
    one that merges with none before it.
    """
    forced = DIALECTS[info.forced_dialect] if info.forced_dialect else None
    python = forced.python if forced else False
    ev = info.evidence
    functions = info.functions
    decode = raw_decoder().decode
    pending: Step | None = None
    summary: Summary | None = None
    summary_open = False
    index = 0
    lineno = 0
    seen_json = False
    op_lines = 0
    held: Step | None = None
    marked = 0
    with _trace_lines(path) if source is None else source.numbered() as numbered:
        for lineno, line in numbered:
            if held is not None:
                events.pending = pending  # type: ignore[union-attr]
                passed = yield held
                held = None
                if passed is not None:  # this line and what follows were passed over
                    assert events is not None and not isinstance(passed, int)
                    events.passed(passed[0])
                    index += passed[1]
                    op_lines += passed[1]
                    if passed[1]:
                        pending = None  # (its op line merges with none before it)
                    yield None  # type: ignore[misc]
                    continue
            if not line or line[0] != 123:  # b"{"
                if line.startswith(_BOM) and line[3:4] == b"{":
                    line = line[3:]  # a byte-order mark (files saved by some editors)
                    marked = lineno  # (no ``events`` step: the line does not start {")
                else:
                    if not line.strip():
                        continue
                    if not _text(line):  # a client's chatter is text; this is no trace
                        raise TraceError(path, lineno, "binary data (NUL bytes or bytes that "
                                         "are not UTF-8): not an EIP-3155 trace")
                    info.noise += 1
                    if not seen_json and info.noise >= _NOISE_BEFORE_JSON:
                        raise TraceError(path, 1, "not an EIP-3155 trace (no JSON object "
                                         f"in the first {_NOISE_BEFORE_JSON} lines)")
                    continue
            try:
                raw: RawLine = decode(line)
            except msgspec.ValidationError as exc:
                raise TraceError(path, lineno, f"not an EIP-3155 line: {exc}") from None
            except RecursionError:
                raise TraceError(path, lineno, "JSON nested too deeply") from None
            except msgspec.DecodeError:
                info.noise += 1
                continue
            seen_json = True
            if (events is not None and raw.event is not None and line[1:2] == b'"'
                    and lineno != marked):
                held = events.step(raw, lineno)
            pc = raw.pc
            op = raw.op
            if pc is not None and op is not None:
                # rule "op" (after "implicit-stop" and "fault-duplicate")
                op_lines += 1
                if summary_open and not python:
                    info.frame_exits += 1
                    ev.frame_exit = True
                    summary_open = False
                    summary = None
                if type(pc) is not int:
                    pc = _num(pc, path, lineno, "pc")
                if type(op) is not int:
                    op = _num(op, path, lineno, "op")
                gas = raw.gas
                if gas is None:
                    raise TraceError(path, lineno, "op line without `gas`")
                if isinstance(gas, str):
                    if gas.startswith("0x"):
                        try:
                            gas = int(gas, 16)
                        except ValueError:
                            gas = _num(gas, path, lineno, "gas")
                    else:
                        gas = _num(gas, path, lineno, "gas")
                depth = raw.depth
                if depth is None:
                    depth = 1
                elif type(depth) is not int:
                    depth = _num(depth, path, lineno, "depth")
                if op == 0 and not python:
                    info.stops_dropped += 1
                    continue
                if (
                    pending is not None
                    and (gas == pending.gas or (python and raw.event is not None))
                    and pc == pending.pc
                    and depth == pending.depth
                    and raw.code == pending.raw.code
                    and raw.thread == pending.raw.thread
                ):
                    error = _error_text(raw.error)
                    if error is not None:
                        pending.error = error
                    if raw.event is not None:
                        pending.event = raw.event
                    info.merged += 1
                    ev.fault_duplicate = True
                    if error is not None and error.startswith("Opcode Dispatch Error"):
                        ev.nimbus_error = True
                    continue
                if pending is not None and events is None:
                    skipped = yield pending
                    if skipped is not None:  # this line and what follows were passed over
                        assert isinstance(skipped, int)
                        index += skipped
                        op_lines += skipped - 1
                        pending = None
                        yield None  # type: ignore[misc]
                        continue
                if index == 0:
                    _first_op_evidence(ev, raw, line)
                code = raw.code
                name = file = None
                if code is not None:
                    known = functions.get(code)
                    if known is not None:
                        name, file = known
                error = raw.error
                if error is not None:
                    error = _error_text(error)
                    if error is not None and not python and halt_not_error(error):
                        info.halts_not_errors += 1
                        error = None
                    if error is not None:
                        if raw.gasCost is None:
                            ev.fault_without_cost = True
                        if error.startswith("Opcode Dispatch Error"):
                            ev.nimbus_error = True
                pending = Step(
                    index, lineno, pc, op, gas, depth, raw.stack, raw, error, raw.event, name, file
                )
                index += 1
                continue
            if raw.blocktrace is not None:
                ev.header = True
                ev.gas_uncounted = raw.gas == "uncounted"
                if forced is None:
                    python = True
                info.python = raw.python
                continue
            if raw.event is not None:
                if raw.event == "call" and raw.code is not None:
                    functions[raw.code] = (raw.name or "?", raw.file or "?")
                    if source is not None:
                        source.called(raw.code, line)
                else:
                    info.ignored += 1
                continue
            if raw.output is not None or raw.gasUsed is not None or raw.passed is not None:
                if summary is None:
                    summary = Summary()
                _fill_summary(summary, raw, lineno, path, ev)
                summary_open = True
                continue
            if raw.stateRoot is not None:
                if summary is None:
                    summary = Summary(lineno=lineno)
                summary.stateRoot = raw.stateRoot
                ev.separate_state_root = True
                continue
            info.ignored += 1
    if held is not None:
        yield held
    elif pending is not None and events is None:
        yield pending
    info.lines = lineno
    info.op_lines += op_lines  # (a pass over common steps adds the STOP lines it took)
    info.steps = index
    if summary is not None:
        summary.frame_exits = info.frame_exits
    info.summary = summary
    if index == 0 and summary is None and not ev.header:
        if lineno == 0:
            raise TraceError(path, None, "empty file: not a trace")
        raise TraceError(path, 1, "not an EIP-3155 trace (no op lines and no summary)")
    client = forced.name if forced else guess_client(ev)
    info.dialect = client
    info.gas_used = "uncounted" if ev.gas_uncounted else gas_used_meaning(ev, DIALECTS[client])
    info.done = True


@contextmanager
def _trace_lines(path: str) -> Iterator[Iterator[tuple[int, bytes]]]:
    """``(number, line)`` of the trace at ``path``: a blocktrace trace's through the
    format's reader (:class:`blocktrace.format.TraceReader`: its bounds, its end at a
    torn line, compressed traces), a client's through the EIP-3155 reader.  A file
    whose header the format does not take is read as any client's would be."""
    reader = blocktrace_reader(path)
    if reader is not None:
        yield reader.raw_lines()
        return
    with open_trace(path) as stream:
        yield enumerate(trace_lines(stream, path), 1)


def member_file(paths: Iterator[str] | tuple[str, ...], lineno: int, member: str) -> str | None:
    """The first of ``paths`` whose line ``lineno`` holds ``member`` and it is no JSON
    (``records.MemberError``: a step knows its line, not its file), else None.  Read
    again from the start, once, when such an error ends a command."""
    decode = raw_decoder().decode
    for path in paths:  # (a line that is no JSON at all is not a step's: no member)
        try:
            with _trace_lines(path) as numbered:
                for number, line in numbered:
                    if number < lineno:
                        continue
                    if number == lineno:
                        if line.startswith(_BOM):
                            line = line[3:]
                        decode_member(getattr(decode(line), member), lineno, member)
                    break
        except ValueError as exc:  # (msgspec's errors and the format's are ValueErrors)
            if getattr(exc, "member", None) == member:
                return path
        except OSError:
            pass
    return None


def blocktrace_reader(path: str) -> TraceReader | None:
    """The format's reader of the blocktrace trace at ``path``, or None when the
    file is no blocktrace trace (a client's: read as one).  A blocktrace trace
    that cannot be used is the format's ``TraceError`` (tampered or unusable, as
    ``verify`` says), not a client trace."""
    if blocktrace_header(path) is None:
        return None
    return TraceReader(path)


def _first_op_evidence(ev: Evidence, raw: RawLine, line: bytes) -> None:
    if b'"reservoir"' in line or isinstance(raw.memSize, str):
        ev.reservoir = True
    if b'"memory"' in line:
        ev.memory_field = True
    if raw.opName is None and raw.code is None:
        ev.no_op_name = True


def _fill_summary(summary: Summary, raw: RawLine, lineno: int, path: str, ev: Evidence) -> None:
    summary.lineno = lineno
    if raw.output is not None:
        summary.output = raw.output if isinstance(raw.output, str) else str(raw.output)
        ev.summary_has_output = True
    if raw.gasUsed is not None:
        summary.gasUsed = _num(raw.gasUsed, path, lineno, "gasUsed")
    if raw.passed is not None:
        summary.passed = raw.passed
    error = _error_text(raw.error)
    if error is not None:
        summary.error = error
    if raw.stateRoot is not None:
        summary.stateRoot = raw.stateRoot
        ev.summary_with_root = True
    if raw.test is not None and raw.fork is not None:
        ev.summary_has_test = True
    if raw.logsRoot is not None:
        ev.summary_has_logs_root = True


def read_all(path: str, dialect: str | None = None) -> tuple[list[Step], TraceInfo]:
    """The whole normalised trace in memory (tests and small files only)."""
    info = TraceInfo(path, forced_dialect=dialect)
    steps = list(normalise(path, info))
    return steps, info
