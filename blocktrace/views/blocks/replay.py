"""A recorded run replayed into the standard ``ChainTracer`` (``BlockTrace.save``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blocktrace.events import OpStart

__all__ = ["replay"]


class _ReplayFrame:
    """What ChainTracer reads from a frame, from the record."""

    __slots__ = ("f_globals", "f_locals")

    def __init__(self, values: dict[str, Any]) -> None:
        self.f_locals = values
        self.f_globals = values


class _Identity:
    """The record holds renderings already: rendering them again is identity."""

    @staticmethod
    def render(value: object) -> object:
        return value


class _ReplayVM:
    """The ``vm`` of a recorded run, replayed into the standard ChainTracer."""

    def __init__(self, gas_used: int) -> None:
        self.gas = 0
        self.gas_limit = 0
        self.depth = 0
        self.thread = 1
        self.threads_seen = 1
        self.code = None
        self.offset = 0
        self.values: dict[str, Any] | None = None
        self.renderer = _Identity()
        self._gas_used = gas_used

    @property
    def gas_used(self) -> int:
        return self._gas_used

    @property
    def frame(self) -> _ReplayFrame | None:
        return _ReplayFrame(self.values) if self.values is not None else None

    def restart_events(self) -> None:
        """Nothing to restart in a replay."""


def replay(record: list[Any], chain: Callable[[Any, Any], object], gas_used: int) -> None:
    """Call ``chain`` with every event of a BlockTrace record and the ``vm``
    state it had.  An entry is an ``OpStart`` alone (the same frame as the
    entry before, gas one less), ``(OpStart, values)`` (a line start in the
    same frame) or ``(event, gas, depth, thread, values)``."""
    vm = _ReplayVM(gas_used)
    gas = 0
    for entry in record:
        if type(entry) is OpStart:  # same frame as before: only gas moved on
            vm.gas = gas
            vm.values = None
            chain(vm, entry)
            gas -= 1
            continue
        if len(entry) == 2:  # a line start in the same frame: gas one less
            vm.gas = gas
            vm.values = entry[1]
            chain(vm, entry[0])
            gas -= 1
            continue
        event, vm.gas, vm.depth, thread, vm.values = entry
        vm.thread = thread
        if thread > vm.threads_seen:
            vm.threads_seen = thread
        chain(vm, event)
        # the stepper charges an instruction after its OpStart, nothing else
        gas = vm.gas - 1 if type(event) is OpStart else vm.gas
