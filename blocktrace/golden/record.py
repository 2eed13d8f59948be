"""Recording one test call as a golden-form trace.

``Recording`` wraps the call phase of a test: a ``ChainTracer`` at the test's
level (the stepper produces only that level's events) writes the run to a
temporary file, which ``finish`` turns into golden bytes (``stabilise``). A
test that starts another process is noticed through an audit hook
(``subprocess.Popen``, ``os.fork``, ``os.exec*``, ``os.posix_spawn``,
``os.system``, ...): what the child does is in no trace, so such a test is
reported instead of compared.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import IO, Any

from blocktrace.golden.stabilise import GOLDEN_GENESIS, Normaliser, stabilise
from blocktrace.tracers import Tracer, set_tracer
from blocktrace.tracers.chain import ChainTracer, ValuesMode
from blocktrace.tracers.level import Level

__all__ = ["Recording", "RecordingError"]

_SPAWN_EVENTS = frozenset({
    "subprocess.Popen", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
    "os.system", "os.startfile", "pty.spawn",
})


class _SpawnWatch:
    """One process-wide audit hook (hooks cannot be removed); it only notes,
    while a recording is on, the first event that starts a process."""

    installed = False
    active = False
    seen: str | None = None

    @classmethod
    def arm(cls) -> None:
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True
        cls.seen = None
        cls.active = True

    @classmethod
    def disarm(cls) -> str | None:
        cls.active = False
        return cls.seen

    @staticmethod
    def _hook(event: str, args: tuple[Any, ...]) -> None:
        if _SpawnWatch.active and _SpawnWatch.seen is None and event in _SPAWN_EVENTS:
            what = args[1] if event == "subprocess.Popen" and len(args) > 1 else args[:1]
            _SpawnWatch.seen = f"{event} {what!r}"[:200]


class RecordingError(Exception):
    """The test could not be traced; ``str()`` says why."""


class _Against:
    """Where ``stabilise`` writes when there is a stored golden: the bytes are
    compared with the stored file's as they come, and written to ``fresh`` only
    from the first difference on (the common part before it copied from the
    stored file), so the same behaviour writes nothing and reads the golden once."""

    def __init__(self, stored: str, fresh: str) -> None:
        self._stored: IO[bytes] = open(stored, "rb")  # noqa: SIM115 (closed by close())
        self._fresh = fresh
        self._out: IO[bytes] | None = None
        self._matched = 0

    def write(self, data: bytes) -> int:
        if self._out is None:
            if self._stored.read(len(data)) == data:
                self._matched += len(data)
                return len(data)
            self._diverge()
        assert self._out is not None
        self._out.write(data)
        return len(data)

    def _diverge(self) -> None:
        self._out = out = open(self._fresh, "wb")  # noqa: SIM115 (closed by close())
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
                if not self._stored.read(1):
                    return True
                self._diverge()
            return False
        finally:
            self._stored.close()
            if self._out is not None:
                self._out.close()


_serial = itertools.count(1)


class Recording:
    """Trace the code run between ``start()`` and ``finish()`` into a golden-form file.

    ``workdir``: a directory for the recording's files (the plugin's one per
    session; default: a new temporary directory, removed by ``cleanup``)."""

    def __init__(
        self,
        *,
        level: Level,
        values: bool,
        include: Sequence[str] | None,
        exclude: Sequence[str] | None,
        rules: Normaliser,
        workdir: str | None = None,
    ) -> None:
        self.level = level
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
        self._chain: ChainTracer | None = None
        self._previous: Tracer | None = None

    def start(self) -> None:
        import blocktrace
        from blocktrace.vm.scope import ScopeError

        mode: ValuesMode = "changes" if self.values else "off"
        self._chain = ChainTracer(self.raw_path, genesis=GOLDEN_GENESIS, level=self.level,
                                  argv=list(self.rules.argv), locals=mode, force=True)
        self._previous = set_tracer(self._chain)  # the stepper produces only its level
        try:
            blocktrace.start(include=self.include, exclude=self.exclude, stacklevel=2)
        except (RuntimeError, ScopeError) as exc:
            set_tracer(self._previous)
            self._chain.close()
            raise RecordingError(str(exc)) from None
        _SpawnWatch.arm()

    def finish(self, error: str | None, *, against: str | None = None,
               fresh: str | None = None, write: bool = True) -> None:
        """Stop tracing (``error``: the test's exception, if any) and write ``path``
        (or ``fresh``, which then becomes ``path``).  ``against``: a stored golden
        to compare the golden form with as it is made: when every byte is the
        same, ``same`` is set and nothing is written.  ``write=False``: only stop
        (the golden form is not made).  Raises ``RecordingError`` when the test
        started a process."""
        import blocktrace

        spawned = _SpawnWatch.disarm()
        blocktrace.stop("", error)
        assert self._chain is not None and self._previous is not None
        set_tracer(self._previous)
        self._chain.close()
        if spawned:
            raise RecordingError(
                f"the test started another process ({spawned}); what a child process does "
                "is not in the trace, so its behaviour cannot be pinned -- leave it out with "
                "@pytest.mark.blocktrace_golden(enabled=False)"
            )
        if not write:
            return
        if fresh is not None:
            self.path = fresh
        sink: _Against | None = None
        if against is not None:
            try:
                sink = _Against(against, self.path)
            except OSError:
                sink = None  # unreadable: written in full, the comparison will say why
        with open(self.raw_path, "rb") as source:
            if sink is None:
                with open(self.path, "wb") as target:
                    stabilise(source, target, self.rules)
            else:
                complete = False
                try:
                    stabilise(source, sink, self.rules)
                    complete = True
                finally:
                    self.same = sink.close(complete)
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
