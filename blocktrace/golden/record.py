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

import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

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


class Recording:
    """Trace the code run between ``start()`` and ``finish()`` into a golden-form file."""

    def __init__(
        self,
        *,
        level: Level,
        values: bool,
        include: Sequence[str] | None,
        exclude: Sequence[str] | None,
        rules: Normaliser,
    ) -> None:
        self.level = level
        self.values = values
        self.include = list(include) if include else None
        self.exclude = list(exclude) if exclude else None
        self.rules = rules
        self._dir = tempfile.mkdtemp(prefix="blocktrace-golden-")
        self.raw_path = os.path.join(self._dir, "raw.jsonl")
        self.path = os.path.join(self._dir, "golden.jsonl")
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

    def finish(self, error: str | None) -> None:
        """Stop tracing (``error``: the test's exception, if any) and write ``path``.
        Raises ``RecordingError`` when the test started a process."""
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
        with open(self.raw_path, "rb") as source, open(self.path, "wb") as target:
            stabilise(source, target, self.rules)

    def cleanup(self) -> None:
        for name in (self.raw_path, self.path):
            try:
                os.unlink(name)
            except OSError:
                pass
        try:
            os.rmdir(self._dir)
        except OSError:
            pass
