"""Recording one test call as a golden-form trace.

``Recording`` wraps the call phase of a test.  Without masks, a
``ChainTracer`` at the test's level (the stepper produces only that level's
events) makes the golden form itself (``_GoldenTracer``: the golden header,
``file`` members relative to the root, every line it writes in Python
normalised, the golden summary) and hands its bytes to ``_Sink``, which
compares them with the stored golden as they come: one pass, one chain, and
the same behaviour writes no file.  A line written in C that may still hold a
volatile value (a returned string with an address or the root's path) makes
the sink keep what it got as a recording, which ``finish`` puts through
``stabilise`` as before; with masks that is the only way (any value may match).
A test that starts another process is noticed through an audit hook
(``subprocess.Popen``, ``os.fork``, ``os.exec*``, ``os.posix_spawn``,
``os.system``, ...): what the child does is in no trace, so such a test is
reported instead of compared.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, Any, cast

import msgspec

from blocktrace.events import CallStart, Return
from blocktrace.format.callline import return_body
from blocktrace.format.lines import HEADER_PREFIX, SUMMARY_PREFIX
from blocktrace.golden.stabilise import (
    _SEEN_BODIES,
    GOLDEN_GENESIS,
    Normaliser,
    golden_body,
    golden_header,
    golden_summary,
    known_form,
    stabilise,
)
from blocktrace.tracers import Tracer, VMState, set_tracer
from blocktrace.tracers.chain import ChainTracer, ValuesMode
from blocktrace.tracers.level import Level

__all__ = ["Recording", "RecordingError"]

_SPAWN_EVENTS = frozenset({
    "subprocess.Popen", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
    "os.system", "os.startfile", "pty.spawn",
})


class _SpawnWatch:
    """One process-wide audit hook (hooks cannot be removed); it only notes,
    while a recording is on, the first event that starts a process.  In C
    (``_cstabilise.spawn_watch``) when built: a Python hook is called for every
    audit event of the test (``builtins.id`` too: the stepper's Python path
    raises one per event)."""

    installed = False
    active = False
    seen: str | None = None
    native: Callable[[bool], str | None] | None = None

    @classmethod
    def arm(cls) -> None:
        if not cls.installed:
            from blocktrace import _native

            module = _native.extension("blocktrace.golden._cstabilise")
            cls.native = getattr(module, "spawn_watch", None)
            if cls.native is None:
                sys.addaudithook(cls._hook)
            cls.installed = True
        cls.seen = None
        if cls.native is not None:
            cls.native(True)
        cls.active = True

    @classmethod
    def disarm(cls) -> str | None:
        cls.active = False
        if cls.native is not None:
            seen = cls.native(False)
            return None if seen is None else seen[:200]
        return cls.seen

    @staticmethod
    def _hook(event: str, args: tuple[Any, ...]) -> None:
        if _SpawnWatch.active and _SpawnWatch.seen is None and event in _SPAWN_EVENTS:
            what = args[1] if event == "subprocess.Popen" and len(args) > 1 else args[:1]
            _SpawnWatch.seen = f"{event} {what!r}"[:200]


class RecordingError(Exception):
    """The test could not be traced; ``str()`` says why."""


class _Sink:
    """Where golden bytes go as they are made: compared with the ``stored``
    golden's as they come, and written to ``fresh`` only from the first
    difference on (the common part before it copied from the stored file), so
    the same behaviour writes nothing and reads the golden once.  Without a
    stored golden everything goes to ``fresh``.

    ``check``: ``Normaliser.unsettled`` when the bytes come from a
    ``_GoldenTracer``: once a piece may still hold a volatile value (a line
    written in C), all of them go to ``raw`` instead (``unsettled`` set; none
    to ``fresh``), and the caller makes the golden form of it with ``stabilise``."""

    def __init__(self, stored: str | None, fresh: str,
                 check: Callable[[bytes], bool] | None = None, raw: str = "") -> None:
        self._stored: IO[bytes] | None = None if stored is None else open(stored, "rb")  # noqa: SIM115
        self._fresh = fresh
        self._raw = raw
        self._out: IO[bytes] | None = None
        self._matched = 0
        self._check = check
        self._tail = b""
        self.unsettled = False
        if stored is None:
            self._diverge()

    def write(self, data: bytes) -> int:
        if type(data) is not bytes:  # (a memoryview compares with bytes item by item)
            data = bytes(data)
        if self._check is not None:
            # a value cut between two pieces is seen whole: the last bytes go again
            if self._check(self._tail + data):
                self._unsettle()
            else:
                self._tail = bytes(data[-_OVERLAP:])
        if self._out is None:
            assert self._stored is not None
            if self._stored.read(len(data)) == data:
                self._matched += len(data)
                return len(data)
            self._diverge()
        assert self._out is not None
        self._out.write(data)
        return len(data)

    def flush(self) -> None:
        """Nothing: bytes are handed on in ``write``."""

    def seekable(self) -> bool:
        return False

    def _unsettle(self) -> None:
        self.unsettled = True
        self._check = None
        if self._out is None:
            self._diverge(self._raw)
            return
        self._out.close()  # what went to fresh goes to raw, and on there
        shutil.copyfile(self._fresh, self._raw)
        os.unlink(self._fresh)
        self._out = open(self._raw, "ab")  # noqa: SIM115 (closed by close())

    def _diverge(self, path: str = "") -> None:
        self._out = out = open(path or self._fresh, "wb")  # noqa: SIM115 (closed by close())
        if self._stored is None:
            return
        self._stored.seek(0)
        left = self._matched
        while left:
            piece = self._stored.read(min(left, 1 << 20))
            if not piece:
                raise OSError(f"{self._stored.name} became shorter while it was read")
            out.write(piece)
            left -= len(piece)

    def close(self, complete: bool) -> bool:
        """``complete``: every byte was written.  True when they were the stored
        golden's, all of them (then ``fresh`` was not written)."""
        try:
            if self._out is None and complete:
                assert self._stored is not None
                if not self._stored.read(1):
                    return True
                self._diverge()
            return False
        finally:
            if self._stored is not None:
                self._stored.close()
            if self._out is not None:
                self._out.close()


_OVERLAP = 4096
"""Bytes of one piece checked again with the next (longer than any path probed)."""


class _RawTracer(ChainTracer):
    """A ``ChainTracer`` recording for the golden form made after the test (masks)."""

    __call__ = ChainTracer.__call__  # (see _GoldenTracer)
    counts_gas = True
    """``Capabilities.counts_gas``: False for a calls-level golden."""
    return_values = True
    """``Capabilities.return_values``: False for a calls-level golden without values
    (return values are not compared there): its return lines have no ``value``."""

    def _return(self, vm: VMState, ev: Return) -> None:
        if self.return_values:
            super()._return(vm, ev)
            return
        self._line(return_body(ev.kind, vm.depth, ev.code, ev.pc, vm.gas, None, self._tail(vm)))


class _GoldenTracer(_RawTracer):
    """A ``ChainTracer`` whose lines are golden bytes as it makes them (the
    golden form of ``stabilise``, without a second pass and a second chain).

    Every line it writes in Python passes ``_line``: the header and summary get
    their golden form, a line that may hold a volatile value (``rules.probes``)
    its normalised values (each body once: calls repeat).  The pieces of the
    call lines that the stepper's C hook writes (``_call_pieces``) name the
    file as the golden form does.  What else C writes (return values, ops)
    holds no file; the sink's check catches a volatile value in it."""

    __call__ = ChainTracer.__call__
    """(In this class's own dict: the stepper then calls it as a bound method, not
    through the type's slot -- ``tracers.direct_call``.)"""

    def __init__(self, target: _Sink, *, rules: Normaliser, level: Level,
                 values: ValuesMode, counts_gas: bool = True,
                 return_values: bool = True) -> None:
        self.counts_gas = counts_gas  # (before the header is written)
        self.return_values = return_values
        probes = rules.probes()
        if probes is None:
            raise ValueError("golden lines are made in one pass only without masks")
        self._rules = rules
        self._probes = (*probes, HEADER_PREFIX)
        # golden bodies and call pieces made before, by any test with these rules:
        # a test suite's tests write the same source lines and call the same functions
        self._seen, self._pieces = _made_before(rules)
        self._header = True
        self._known = known_form()
        # (the sink has what ChainTracer asks of a caller's stream: write, flush, seekable)
        # The inline writer: no thread to start, hand lines to and join per test (a
        # test's lines are few; docs/PERFORMANCE.md, "Golden traces": 0-6% less CPU on
        # more-itertools' suite), and none to deadlock with tracemalloc's allocator hooks.
        super().__init__(cast("IO[bytes]", target), genesis=GOLDEN_GENESIS, level=level,
                         argv=list(rules.argv), locals=values, force=True, writer_thread=False)

    def _line(self, body: bytes) -> None:
        done = self._known(body, self._probes, self._seen)
        self._writer.line(self._golden(body) if done is None else done)

    def _golden(self, body: bytes) -> bytes:
        if self._header:
            self._header = False
            return golden_header(body, self._rules, counted=self.counts_gas)
        if body.startswith(SUMMARY_PREFIX):  # the summary: its count is already the golden's
            summary = golden_summary(body, self._rules, int(self._writer.lines))
            return msgspec.json.encode(summary)[:-1]
        done = self._known(body, self._probes, self._seen)
        if done is None:
            done = golden_body(body, self._rules)
            if len(self._seen) < _SEEN_BODIES:
                self._seen[body] = done
        return done

    def _call_pieces(self, ev: CallStart) -> tuple[bytes, bytes] | None:
        pieces = super()._call_pieces(ev)
        if pieces is None:
            return None
        known = self._pieces.get(pieces, pieces)
        if known is not pieces:
            return known
        # the golden form of a line with these pieces, cut again around the depth
        prefix, suffix = pieces
        done = self._golden(prefix + b"0" + suffix)
        # (another cut is not seen; None: the stepper gives every such call to _call)
        known = (prefix, done[len(prefix) + 1:]) if done.startswith(prefix + b"0") else None
        if len(self._pieces) < _SEEN_BODIES:
            self._pieces[pieces] = known
        return known


_Made = tuple[dict[bytes, bytes], dict[tuple[bytes, bytes], tuple[bytes, bytes] | None]]
_MADE: dict[tuple[str, str | None], _Made] = {}
"""(root, temporary directory) -> the golden bodies (recorded body -> golden form,
``golden_body``) and call-line pieces made in this process: without masks these
depend on the line and those two paths alone."""


def _made_before(rules: Normaliser) -> _Made:
    key = (rules.root, rules.temp)
    made = _MADE.get(key)
    if made is None:
        made = _MADE[key] = ({}, {})
    return made


_serial = itertools.count(1)


class Recording:
    """Trace the code run between ``start()`` and ``finish()`` into a golden-form file.

    ``workdir``: a directory for the recording's files (the plugin's one per
    session; default: a new temporary directory, removed by ``cleanup``).
    ``one_pass=False``: record, then make the golden form (as with masks; the
    reference the one pass is compared with)."""

    def __init__(
        self,
        *,
        level: Level,
        values: bool,
        include: Sequence[str] | None,
        exclude: Sequence[str] | None,
        rules: Normaliser,
        workdir: str | None = None,
        one_pass: bool = True,
    ) -> None:
        self.level = level
        self.counts_gas = level != "call"
        """Whether instructions are counted: not for a calls-level golden, which does
        not compare gas (its header says ``"gas":"uncounted"``)."""
        self.return_values = level != "call" or values
        """Whether return lines carry the value: not in a calls-level golden without
        values, which does not compare them."""
        self.one_pass = one_pass and rules.probes() is not None
        """The golden form is made as the test runs (no masks); else recorded, then
        made (``stabilise``) by ``finish``."""
        self.second_pass = False
        """``finish`` made the golden form from a recording (``stabilise``)."""
        self.values = values
        self.include = list(include) if include else None
        self.exclude = list(exclude) if exclude else None
        self.rules = rules
        self._own_dir = workdir is None
        self._dir = tempfile.mkdtemp(prefix="blocktrace-golden-") if workdir is None else workdir
        name = f"{os.getpid()}-{next(_serial)}"
        self.raw_path = os.path.join(self._dir, f"raw-{name}.jsonl")
        self.path = os.path.join(self._dir, f"golden-{name}.jsonl")
        """The golden form (written by ``finish`` unless it is the stored golden's bytes)."""
        self.same = False
        """``finish`` found the golden form byte for byte the stored golden's."""
        self._chain: _RawTracer | None = None
        self._previous: Tracer | None = None
        self._sink: _Sink | None = None
        self._against: str | None = None

    def start(self, *, against: str | None = None, fresh: str | None = None) -> None:
        """Start tracing.  ``against``: a stored golden to compare the golden form
        with as it is made (``finish`` sets ``same`` when every byte is the same,
        and then nothing is written); ``fresh``: where the golden form goes
        otherwise (default: ``path`` in the work directory), then ``path``."""
        import blocktrace
        from blocktrace.vm.scope import ScopeError

        if fresh is not None:
            self.path = fresh
        self._against = against
        mode: ValuesMode = "changes" if self.values else "off"
        if not self.one_pass:  # masks: recorded, then put in golden form
            self._chain = _RawTracer(self.raw_path, genesis=GOLDEN_GENESIS, level=self.level,
                                      argv=list(self.rules.argv), locals=mode, force=True)
        else:  # the golden form made as the test runs
            self._sink = self._open_sink(against, self.rules.unsettled)
            self._chain = _GoldenTracer(self._sink, rules=self.rules, level=self.level,
                                        values=mode, counts_gas=self.counts_gas,
                                        return_values=self.return_values)
        self._chain.counts_gas = self.counts_gas
        self._chain.return_values = self.return_values
        self._previous = set_tracer(self._chain)  # the stepper produces only its level
        try:
            blocktrace.start(include=self.include, exclude=self.exclude, stacklevel=2)
        except (RuntimeError, ScopeError) as exc:
            set_tracer(self._previous)
            self._chain.close()
            self._close_sink(False)
            raise RecordingError(str(exc)) from None
        _SpawnWatch.arm()

    def _open_sink(self, against: str | None,
                   check: Callable[[bytes], bool] | None = None) -> _Sink:
        try:
            return _Sink(against, self.path, check, self.raw_path)
        except OSError:  # an unreadable golden: written in full, the comparison says why
            return _Sink(None, self.path, check, self.raw_path)

    def _close_sink(self, complete: bool) -> bool:
        sink, self._sink = self._sink, None
        return sink is not None and sink.close(complete)

    def finish(self, error: str | None, *, write: bool = True) -> None:
        """Stop tracing (``error``: the test's exception, if any) and complete
        ``path`` (unless it has the stored golden's bytes: ``same``).
        ``write=False``: only stop (the golden form is not made).  Raises
        ``RecordingError`` when the test started a process."""
        import blocktrace

        spawned = _SpawnWatch.disarm()
        blocktrace.stop("", error)
        assert self._chain is not None and self._previous is not None
        set_tracer(self._previous)
        self._chain.close()
        sink = self._sink
        self.same = self._close_sink(write and not spawned)
        if spawned:
            raise RecordingError(
                f"the test started another process ({spawned}); what a child process does "
                "is not in the trace, so its behaviour cannot be pinned -- leave it out with "
                "@pytest.mark.blocktrace_golden(enabled=False)"
            )
        if not write or (sink is not None and not sink.unsettled):
            return
        # a recording (masks, or a value C wrote): its golden form in a second pass
        self.second_pass = True
        target = self._open_sink(self._against)
        with open(self.raw_path, "rb") as source:
            complete = False
            try:
                stabilise(source, target, self.rules, counted=self.counts_gas)
                complete = True
            finally:
                self.same = target.close(complete)
        try:  # the recorded trace is not needed any more: its disk space is freed at once
            os.unlink(self.raw_path)
        except OSError:
            pass

    def cleanup(self) -> None:
        for name in (self.raw_path, self.path):
            try:
                os.unlink(name)
            except OSError:
                pass
        if self._own_dir:
            try:
                os.rmdir(self._dir)
            except OSError:
                pass
