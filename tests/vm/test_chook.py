"""The C instruction hook does exactly what the Python closure it replaces does.

Every test runs the same inputs through ``reference`` (the stepper's fast-path
closure, verbatim from the hook's contract) and through
``blocktrace.vm._chook.InstructionHook``, directly and as a real
``sys.monitoring`` INSTRUCTION callback on real code, and compares what each
did: the calls made, in order, the values they saw, the gas left, the result
or the exception.
"""

from __future__ import annotations

import dis
import gc
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import CodeType
from typing import Any

import pytest

from blocktrace.vm.hook import python_instruction_hook

_chook = pytest.importorskip(
    "blocktrace.vm._chook",
    reason="the C extension is not built (python setup.py build_ext --inplace)",
)
InstructionHook: Any = _chook.InstructionHook

M = sys.monitoring
DISABLE = M.DISABLE
Hook = Callable[[CodeType, int], object]
Factory = Callable[..., Hook]


# The contract: the stepper's per-instruction callback in Python.
reference: Factory = python_instruction_hook


IMPLEMENTATIONS: dict[str, Factory] = {"python": reference, "c": InstructionHook}


class Halt(BaseException):
    """What out_of_gas raises (the stepper's OutOfGas is a BaseException too)."""


class TracerError(Exception):
    pass


class FailedError(Exception):
    pass


class Event:
    """A stand-in OpStart: only identity matters to the hook."""

    def __init__(self, pc: int) -> None:
        self.pc = pc

    def __repr__(self) -> str:
        return f"Event({self.pc})"


class VM:
    """Plain attributes, as the stepper has."""

    def __init__(self, gas: object) -> None:
        self.gas = gas
        self.site: object = None


class LoggingVM:
    """Records every read and write of ``gas`` and ``site``, to compare order."""

    def __init__(self, log: list[tuple[object, ...]], gas: object) -> None:
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "gas", gas)
        object.__setattr__(self, "site", None)

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name in ("gas", "site"):
            object.__getattribute__(self, "log").append(("get", name, value))
        return value

    def __setattr__(self, name: str, value: object) -> None:
        object.__getattribute__(self, "log").append(("set", name, value))
        object.__setattr__(self, name, value)


class Gas(int):
    """An int subclass whose comparisons and subtraction are logged."""

    log: list[tuple[object, ...]] = []

    def __le__(self, other: object) -> bool:
        Gas.log.append(("le", int(self), other))
        return int(self) <= other  # type: ignore[operator]

    def __sub__(self, other: object) -> Gas:
        Gas.log.append(("sub", int(self), other))
        return Gas(int(self) - other)  # type: ignore[operator]


def _code() -> CodeType:
    def f() -> None:
        pass

    return f.__code__


CODE = _code()
OTHER_CODE = reference.__code__


class Scenario:
    """Fresh inputs for one run, with a log of everything the callables saw."""

    def __init__(
        self,
        gas: object = 10,
        tracer_raises: BaseException | None = None,
        failed_raises: bool = False,
        missing_gives: object = "event",
        out_of_gas_raises: bool = True,
        logging_vm: bool = True,
    ) -> None:
        self.log: list[tuple[object, ...]] = []
        self.events = [Event(0), None, Event(4), None]
        self.sites: Any = {id(CODE): self.events}
        self.vm: Any = LoggingVM(self.log, gas) if logging_vm else VM(gas)
        self.tracer_raises = tracer_raises
        self.failed_raises = failed_raises
        self.missing_gives = missing_gives
        self.out_of_gas_raises = out_of_gas_raises

    def tracer(self, vm: object, event: object) -> None:
        self.log.append(("tracer", vm is self.vm, event))
        if self.tracer_raises is not None:
            raise self.tracer_raises

    def missing(self, code: CodeType, offset: int) -> object:
        self.log.append(("missing", code is CODE, offset))
        if self.missing_gives == "event":
            event = self.events[offset] = Event(offset)
            return event
        return self.missing_gives

    def out_of_gas(self, code: CodeType, offset: int) -> str:
        self.log.append(("out_of_gas", code is CODE, offset))
        if self.out_of_gas_raises:
            raise Halt(f"out of gas at {offset}")
        return "ignored"

    def failed(self, exc: BaseException) -> None:
        self.log.append(
            ("failed", type(exc), exc.args, exc.__traceback__ is not None, sys.exception() is exc)
        )
        if self.failed_raises:
            raise FailedError("failed failed")

    def hook(self, factory: Factory) -> Hook:
        return factory(
            self.sites, self.vm, self.tracer, self.missing, self.out_of_gas, self.failed, DISABLE
        )


def outcome(call: Callable[[], object]) -> tuple[object, ...]:
    """The result, or the exception (type, args, and its context's type)."""
    try:
        result = call()
    except BaseException as exc:
        context = exc.__context__
        return ("raised", type(exc), exc.args, type(context) if context is not None else None)
    return ("returned", result)


def both(
    make: Callable[[], Scenario], calls: list[tuple[CodeType, int]]
) -> dict[str, tuple[list[tuple[object, ...]], list[tuple[object, ...]], Scenario]]:
    """Run ``calls`` through each implementation on a fresh scenario."""
    out = {}
    for name, factory in IMPLEMENTATIONS.items():
        sc = make()
        hook = sc.hook(factory)
        results = [outcome(lambda c=c, o=o, h=hook: h(c, o)) for c, o in calls]  # type: ignore[misc]
        out[name] = (sc.log, results, sc)
    return out


def same(
    make: Callable[[], Scenario], calls: list[tuple[CodeType, int]]
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Both implementations did the same; returns what they did (log, results).

    Events are compared by position in the sites list (each run has its own)."""
    runs = both(make, calls)
    seen: dict[str, tuple[Any, ...]] = {}
    for name, (log, results, sc) in runs.items():
        def norm(x: object, sc: Scenario = sc) -> object:
            if isinstance(x, Event):
                return ("event", x.pc, any(x is e for e in sc.events))
            if isinstance(x, tuple | list):
                return tuple(norm(i) for i in x)
            return x

        site, gas = (vars(sc.vm).get(a) for a in ("site", "gas"))
        seen[name] = (norm(log), norm(results), norm(site), gas)
    assert seen["c"] == seen["python"]
    log, results, _, _ = seen["c"]
    return list(log), list(results)


# -- direct calls, compared with the Python closure ------------------------------


def test_events_gas_and_site_in_order() -> None:
    log, results = same(Scenario, [(CODE, 0), (CODE, 2), (CODE, 0)])
    assert results == [("returned", None)] * 3
    assert [e for e in log if e[0] == "set"] == [
        ("set", "site", ("event", 0, True)), ("set", "gas", 9),
        ("set", "site", ("event", 4, True)), ("set", "gas", 8),
        ("set", "site", ("event", 0, True)), ("set", "gas", 7),
    ]


def test_missing_site_is_filled_in() -> None:
    log, results = same(Scenario, [(CODE, 1), (CODE, 1)])
    assert results == [("returned", None)] * 2
    assert sum(1 for e in log if e[0] == "missing") == 1  # the list was mutated in place


@pytest.mark.parametrize("gives", [None, 0, ""])
def test_missing_returning_none_disables(gives: object) -> None:
    log, results = same(lambda: Scenario(missing_gives=gives), [(CODE, 3), (CODE, 0)])
    if gives is None:
        assert results[0] == ("returned", DISABLE)
        assert not any(e[0] == "tracer" and e[2] is None for e in log)
    else:  # only None disables: a falsy event is still traced
        assert results[0] == ("returned", None)


def test_out_of_gas_raises_with_gas_unchanged() -> None:
    log, results = same(lambda: Scenario(gas=1), [(CODE, 0), (CODE, 2), (CODE, 0)])
    assert results[0] == ("returned", None)
    assert results[1] == ("raised", Halt, ("out of gas at 2",), None)
    assert log[-1] == ("get", "gas", 0) or log[-1][0] == "out_of_gas"
    runs = both(lambda: Scenario(gas=1), [(CODE, 0), (CODE, 2)])
    assert runs["c"][2].vm.gas == 0


def test_out_of_gas_returning_carries_on_below_zero() -> None:
    _, results = same(lambda: Scenario(gas=0, out_of_gas_raises=False), [(CODE, 0), (CODE, 2)])
    assert results == [("returned", None)] * 2
    runs = both(lambda: Scenario(gas=0, out_of_gas_raises=False), [(CODE, 0), (CODE, 2)])
    assert runs["c"][2].vm.gas == -2


@pytest.mark.parametrize("exc", [TracerError("boom"), KeyboardInterrupt(), Halt("tracer halt")])
def test_tracer_raising_calls_failed_then_charges_gas(exc: BaseException) -> None:
    log, results = same(lambda: Scenario(tracer_raises=exc), [(CODE, 0), (CODE, 2)])
    assert results == [("returned", None)] * 2
    failed = [e for e in log if e[0] == "failed"]
    # the exception object itself, with its traceback, as the handled exception
    assert failed == [("failed", type(exc), exc.args, True, True)] * 2
    i = log.index(failed[0])
    assert log[i - 1][0] == "tracer" and log[i + 1] == ("set", "gas", 9)


def test_failed_raising_propagates_with_context_and_gas_unchanged() -> None:
    make = lambda: Scenario(tracer_raises=TracerError("boom"), failed_raises=True)  # noqa: E731
    log, results = same(make, [(CODE, 0)])
    assert results == [("raised", FailedError, ("failed failed",), TracerError)]
    assert not any(e[:2] == ("set", "gas") for e in log)
    assert both(make, [(CODE, 0)])["c"][2].vm.gas == 10


def test_handled_exception_is_restored_after_failed() -> None:
    sc = Scenario(tracer_raises=TracerError("boom"))
    hook = sc.hook(InstructionHook)
    try:
        raise LookupError("outer")
    except LookupError as outer:
        hook(CODE, 0)
        assert sys.exception() is outer
    assert sys.exception() is None


def test_unknown_code_and_offsets_raise_like_python() -> None:
    calls = [(OTHER_CODE, 0), (CODE, 99), (CODE, -2), (CODE, 2**70), (CODE, -(2**70))]
    _, results = same(Scenario, calls)
    assert results[0] == ("raised", KeyError, (id(OTHER_CODE),), None)
    assert results[1] == ("raised", IndexError, ("list index out of range",), None)
    assert results[2] == ("returned", None)  # a negative index counts from the end, as in Python
    assert results[3][:2] == ("raised", IndexError)
    assert results[4][:2] == ("raised", IndexError)


class SitesMapping(dict[int, Any]):
    """A dict subclass (no fast path, no cache)."""

    def __getitem__(self, key: int) -> Any:
        return super().__getitem__(key)


def test_other_containers() -> None:
    def make() -> Scenario:
        sc = Scenario()
        sc.sites = SitesMapping({id(CODE): tuple(sc.events)})
        return sc

    _, results = same(make, [(CODE, 0), (CODE, 2), (OTHER_CODE, 0), (CODE, 9)])
    assert [r[:2] for r in results] == [
        ("returned", None), ("returned", None), ("raised", KeyError), ("raised", IndexError),
    ]


@pytest.mark.parametrize(
    "gas",
    [2**63 - 1, 2**63, 2**80, -(2**70), 1.5, 0.5, True, False, Gas(2), Gas(0), 2**63 + 1],
    ids=repr,
)
def test_gas_that_is_not_a_small_exact_int(gas: object) -> None:
    Gas.log.clear()
    runs = both(lambda: Scenario(gas=gas, out_of_gas_raises=False), [(CODE, 0), (CODE, 2)])
    py, c = runs["python"][2].vm.gas, runs["c"][2].vm.gas
    assert type(py) is type(c) and py == c
    assert [r for r in runs["c"][1]] == [r for r in runs["python"][1]]
    same(lambda: Scenario(gas=gas, out_of_gas_raises=False), [(CODE, 0), (CODE, 2)])


def test_gas_subclass_operations_in_the_same_order() -> None:
    logs = {}
    for name, factory in IMPLEMENTATIONS.items():
        Gas.log.clear()
        sc = Scenario(gas=Gas(1), out_of_gas_raises=False)
        hook = sc.hook(factory)
        hook(CODE, 0)
        hook(CODE, 2)
        logs[name] = list(Gas.log)
    assert logs["c"] == logs["python"] == [("le", 1, 0), ("sub", 1, 1), ("le", 0, 0), ("sub", 0, 1)]


@pytest.mark.parametrize("gas", ["ten", None])
def test_gas_that_is_not_a_number(gas: object) -> None:
    _, results = same(lambda: Scenario(gas=gas), [(CODE, 0)])
    assert results[0][:2] == ("raised", TypeError)


def test_vm_without_gas() -> None:
    class Bare:
        pass

    def make() -> Scenario:
        sc = Scenario()
        sc.vm = Bare()
        return sc

    _, results = same(make, [(CODE, 0)])
    assert results[0][:2] == ("raised", AttributeError)


def test_plain_vm_same_as_logging_vm() -> None:
    same(lambda: Scenario(logging_vm=False), [(CODE, 0), (CODE, 1), (CODE, 2), (CODE, 3)])


# -- vm attributes: plain instance attributes fast, anything else exactly as Python --


Step = Callable[[Any, list[object]], None]


def _attr_one(
    factory: Factory,
    make_vm: Callable[[list[object]], Any],
    steps: Sequence[Step],
    out_of_gas: Callable[[Any], None] | None,
) -> tuple[list[object], list[tuple[object, ...]]]:
    log: list[object] = []
    vm = make_vm(log)
    calls = iter(steps)

    def oog(code: CodeType, offset: int) -> None:
        log.append("oog")
        if out_of_gas is not None:
            out_of_gas(vm)

    def tracer(vm: Any, event: object) -> None:
        log.append(("tracer", event))
        next(calls)(vm, log)

    hook = factory(
        {id(CODE): ["e0", "e1", "e2", "e3"]}, vm, tracer, lambda c, o: None, oog,
        lambda e: log.append(("failed", e)), DISABLE,
    )
    results = [outcome(lambda i=i: hook(CODE, i % 4)) for i in range(len(steps))]  # type: ignore[misc]
    state = vars(vm) if hasattr(vm, "__dict__") else {}
    kept = sorted((k, state[k]) for k in ("gas", "site") if k in state)
    log.append(("final", type(vm).__name__, kept))
    return log, results


def _attr_run(
    make_vm: Callable[[list[object]], Any],
    steps: Sequence[Step],
    out_of_gas: Callable[[Any], None] | None = None,
) -> dict[str, tuple[list[object], list[tuple[object, ...]]]]:
    """Call each hook once per step; ``steps[i](vm, log)`` runs inside the tracer
    of call i (it may change vm, its dict, its class...); ``out_of_gas(vm)``
    inside out_of_gas, which returns."""
    out = {name: _attr_one(f, make_vm, steps, out_of_gas) for name, f in IMPLEMENTATIONS.items()}
    assert out["c"] == out["python"]
    return out


def _nothing(vm: Any, log: list[object]) -> None:
    pass


def test_class_attribute_default_gas() -> None:
    class Defaults:
        gas = 3

    out = _attr_run(lambda log: Defaults(), [_nothing] * 5)
    assert out["c"][0][-1] == ("final", "Defaults", [("gas", -2), ("site", "e0")])


def test_properties_on_the_vm_type() -> None:
    class Props:
        def __init__(self, log: list[object]) -> None:
            self.log = log
            self._gas = 2

        @property
        def gas(self) -> int:
            self.log.append(("get gas", self._gas))
            return self._gas

        @gas.setter
        def gas(self, value: int) -> None:
            self.log.append(("set gas", value))
            self._gas = value

        @property
        def site(self) -> None:
            return None

        @site.setter
        def site(self, value: object) -> None:
            self.log.append(("set site", value))

    log, _ = _attr_run(Props, [_nothing] * 4)["c"]
    assert ("set site", "e1") in log and ("set gas", -1) in log


class Plain:
    def __init__(self, log: list[object]) -> None:
        self.gas = 5
        self.site: object = None


def test_class_changed_between_calls() -> None:
    """A property appears on the class, then goes: the hook must notice both."""
    created: list[type] = []

    def make(log: list[object]) -> Any:
        class Changing(Plain):
            pass

        created.append(Changing)
        return Changing(log)

    def add_property(vm: Any, log: list[object]) -> None:
        def setter(self: Any, value: object, log: list[object] = log) -> None:
            log.append(("property set site", value))

        type(vm).site = property(lambda self: "from property", setter)

    def remove_property(vm: Any, log: list[object]) -> None:
        del type(vm).site

    def add_gas_class_attr_on_base(vm: Any, log: list[object]) -> None:
        type(vm).__bases__[0].gas = property(lambda self: 100)  # type: ignore[attr-defined]

    steps = [_nothing, add_property, _nothing, remove_property, _nothing]
    log, _ = _attr_run(make, steps)["c"]
    # set in call 1's tracer, deleted in call 3's (after call 3 set its site)
    assert [e for e in log if e[0] == "property set site"] == [  # type: ignore[index]
        ("property set site", "e2"), ("property set site", "e3"),
    ]
    assert log[-1] == ("final", "Changing", [("gas", 0), ("site", "e0")])
    def make_with_own_base(log: list[object]) -> Any:
        class Base(Plain):
            pass

        class Derived(Base):
            pass

        return Derived(log)

    steps = [_nothing, add_gas_class_attr_on_base, _nothing]
    log, results = _attr_run(make_with_own_base, steps)["c"]
    # gas became a read-only property of the base class: setting it fails, as in Python
    assert results[1][:2] == ("raised", AttributeError)


def test_vm_dict_and_class_replaced_by_the_tracer() -> None:
    class Other:
        @property
        def gas(self) -> int:
            return 42

        @gas.setter
        def gas(self, value: int) -> None:
            vars(self)["set_by_property"] = value

    def new_dict(vm: Any, log: list[object]) -> None:
        vm.__dict__ = {"gas": 1000, "marker": True}

    def new_class(vm: Any, log: list[object]) -> None:
        vm.__class__ = Other

    def back(vm: Any, log: list[object]) -> None:
        vm.__class__ = Plain

    steps = [_nothing, new_dict, _nothing, new_class, _nothing, back, _nothing]
    log, _ = _attr_run(Plain, steps)["c"]
    # the new dict got gas 3, then 2; Other's property read 42 and stored 41 as
    # set_by_property; back to Plain in call 5 (gas read as 42): 41, then 40.
    assert log[-1] == ("final", "Plain", [("gas", 40), ("site", "e2")])


def test_out_of_gas_returning_after_changing_the_vm() -> None:
    class Low(Plain):
        def __init__(self, log: list[object]) -> None:
            self.gas = 0
            self.site = None

    class Recording:
        @property
        def site(self) -> str:
            return "recording"

        @site.setter
        def site(self, value: object) -> None:
            vars(self)["recorded"] = value

    def new_dict(vm: Any) -> None:
        vm.__dict__ = {"gas": -50}

    def new_class(vm: Any) -> None:
        vm.__class__ = Recording

    log, _ = _attr_run(Low, [_nothing] * 2, out_of_gas=new_dict)["c"]
    assert log[-1] == ("final", "Low", [("gas", -2), ("site", "e1")])
    log, _ = _attr_run(Low, [_nothing] * 2, out_of_gas=new_class)["c"]
    assert log[-1] == ("final", "Recording", [("gas", -2), ("site", None)])  # set: "recorded"


def test_vm_with_slots_or_custom_getattr() -> None:
    class Slotted:
        __slots__ = ("gas", "site")

        def __init__(self, log: list[object]) -> None:
            self.gas = 2

    class Hooked(Plain):
        def __getattr__(self, name: str) -> int:
            return 7

    def without_gas(log: list[object]) -> Plain:
        vm = Plain(log)
        del vm.gas
        return vm

    def delete_gas(vm: Any, log: list[object]) -> None:
        del vm.gas

    _attr_run(Slotted, [_nothing] * 3)
    _, results = _attr_run(lambda log: Hooked(log), [delete_gas, _nothing])["c"]
    assert results == [("returned", None)] * 2
    _, results = _attr_run(Plain, [delete_gas, _nothing])["c"]
    assert results == [("returned", None)] * 2  # deleted, then set again
    _, results = _attr_run(without_gas, [_nothing])["c"]
    assert results[0][:2] == ("raised", AttributeError)


# -- the one-entry cache never serves a stale list ---------------------------------


def _hook_pair(
    sites: dict[int, Any],
) -> tuple[dict[str, Hook], dict[str, list[object]]]:
    seen: dict[str, list[object]] = {}
    hooks = {}
    for name, factory in IMPLEMENTATIONS.items():
        got = seen[name] = []
        hooks[name] = factory(
            sites, VM(100), lambda vm, ev, got=got: got.append(ev),
            lambda c, o: None, lambda c, o: None, lambda e: None, DISABLE,
        )
    return hooks, seen


def _call(hooks: dict[str, Hook], code: CodeType, offset: int) -> None:
    results = {}
    for name, hook in hooks.items():
        results[name] = outcome(lambda hook=hook: hook(code, offset))  # type: ignore[misc]
    assert results["c"] == results["python"]


@pytest.mark.parametrize(
    "change",
    ["replace", "delete_readd", "clear_readd", "update", "pop_readd", "setdefault_other"],
)
def test_cache_follows_changes_to_sites(change: str) -> None:
    first, second = ["a1", "a2"], ["b1", "b2"]
    sites: dict[int, Any] = {id(CODE): first}
    hooks, seen = _hook_pair(sites)
    _call(hooks, CODE, 0)
    _call(hooks, OTHER_CODE, 0) if False else None
    if change == "replace":
        sites[id(CODE)] = second
    elif change == "delete_readd":
        del sites[id(CODE)]
        sites[id(CODE)] = second
    elif change == "clear_readd":
        sites.clear()
        sites[id(CODE)] = second
    elif change == "update":
        sites.update({id(CODE): second})
    elif change == "pop_readd":
        sites.pop(id(CODE))
        sites[id(OTHER_CODE)] = first
        sites[id(CODE)] = second
    else:
        sites.setdefault(id(OTHER_CODE), first)
        sites[id(CODE)] = second
    _call(hooks, CODE, 1)
    _call(hooks, OTHER_CODE, 1)
    _call(hooks, CODE, 0)
    del sites[id(CODE)]
    _call(hooks, CODE, 0)  # KeyError from both
    assert seen["c"] == seen["python"]
    assert seen["c"][:2] == ["a1", "b2"]


def test_cache_alternating_codes_and_several_hooks_on_one_dict() -> None:
    sites: dict[int, Any] = {id(CODE): ["c0", "c1"], id(OTHER_CODE): ["o0", "o1"]}
    hooks, seen = _hook_pair(sites)
    more, more_seen = _hook_pair(sites)
    for i in range(6):
        _call(hooks, CODE if i % 2 else OTHER_CODE, i % 2)
        _call(more, CODE, 1)
    del more  # a hook going away must not turn the others' staleness checks off
    gc.collect()
    sites[id(CODE)] = ["n0", "n1"]
    _call(hooks, CODE, 1)
    assert seen["c"] == seen["python"]
    assert seen["c"][-1] == "n1"
    assert more_seen["c"] == more_seen["python"] == ["c1"] * 6


def test_cache_replacing_the_entry_before_the_last() -> None:
    """The cache keeps two code objects (a call and its return switch between
    them): replacing the one used before the last is seen too."""
    sites: dict[int, Any] = {id(CODE): ["c0", "c1"], id(OTHER_CODE): ["o0", "o1"]}
    hooks, seen = _hook_pair(sites)
    _call(hooks, CODE, 0)
    _call(hooks, OTHER_CODE, 0)
    _call(hooks, CODE, 1)  # from the second entry
    sites[id(OTHER_CODE)] = ["n0", "n1"]  # now the entry before the last
    _call(hooks, OTHER_CODE, 1)
    sites[id(CODE)] = ["m0", "m1"]
    _call(hooks, CODE, 0)
    assert seen["c"] == seen["python"] == ["c0", "o0", "c1", "n1", "m0"]


def test_a_copy_of_sites_is_independent() -> None:
    sites: dict[int, Any] = {id(CODE): ["a0"]}
    hooks, seen = _hook_pair(sites)
    _call(hooks, CODE, 0)
    copy = dict(sites)
    copy[id(CODE)] = ["z0"]
    _call(hooks, CODE, 0)
    assert seen["c"] == seen["python"] == ["a0", "a0"]


# -- the object itself ---------------------------------------------------------------


def test_construction_and_calling_errors() -> None:
    args: tuple[Any, ...] = ({}, VM(1), print, print, print, print, DISABLE)
    hook = InstructionHook(*args)
    assert InstructionHook(
        sites={}, vm=VM(1), tracer=print, missing=print, out_of_gas=print, failed=print,
        disable=DISABLE,
    ).tracer is print
    assert hook.sites is args[0] and hook.vm is args[1] and hook.disable is DISABLE
    for i in (2, 3, 4, 5):
        bad = list(args)
        bad[i] = 42
        with pytest.raises(TypeError, match="must be callable"):
            InstructionHook(*bad)
    with pytest.raises(TypeError):
        InstructionHook(*args[:6])
    with pytest.raises(TypeError, match="exactly 2"):
        hook(CODE)
    with pytest.raises(TypeError, match="exactly 2"):
        hook(CODE, 0, 1)
    with pytest.raises(TypeError, match="exactly 2"):
        hook(code=CODE, offset=0)
    with pytest.raises(TypeError):
        class Sub(InstructionHook):  # type: ignore[misc]
            pass
    assert type(hook).__flags__ & (1 << 11)  # Py_TPFLAGS_HAVE_VECTORCALL
    assert "InstructionHook" in repr(hook)


def test_no_reference_leaks() -> None:
    event = Event(0)
    vm = VM(2**62)
    got: list[object] = []

    def tracer(vm: object, ev: object) -> None:
        pass

    def failing(vm: object, ev: object) -> None:
        raise TracerError("boom")

    def missing(code: CodeType, offset: int) -> object:
        return None if offset == 1 else event

    def failed(exc: BaseException) -> None:
        got.append(exc)
        got.clear()

    sites_list = [event, None, None]
    sites = {id(CODE): sites_list}
    objects = [event, vm, tracer, failing, missing, failed, sites_list, CODE, DISABLE]
    gc.collect()  # what tests before left in cycles (frames of CODE's tracebacks) goes first
    before = [sys.getrefcount(o) for o in objects]
    for t in (tracer, failing):
        hook = InstructionHook(sites, vm, t, missing, tracer, failed, DISABLE)
        for _ in range(100_000):
            hook(CODE, 0)
        for _ in range(1_000):
            hook(CODE, 1)
            hook(CODE, 2)
            try:
                hook(OTHER_CODE, 0)
            except KeyError:
                pass
        vm.gas = Gas(2**62)  # the generic path too
        for _ in range(1_000):
            hook(CODE, 0)
        vm.gas = 2**62
        del hook
    del t
    vm.site = None
    gc.collect()
    after = [sys.getrefcount(o) for o in objects]
    assert after == before
    assert vm.gas == 2**62


def test_collected_once_dropped_even_in_a_cycle() -> None:
    class Stepper:
        def __init__(self) -> None:
            self.gas = 10
            self.site: object = None
            self.hook: object = None

    vm = Stepper()
    hook = InstructionHook({id(CODE): [Event(0)]}, vm, print, print, print, print, DISABLE)
    vm.hook = hook  # the stepper references its hook, which references the stepper
    hook(CODE, 0) if False else None
    ref_hook, ref_vm = weakref.ref(hook), weakref.ref(vm)
    quiet = InstructionHook(
        {id(CODE): [Event(0)]}, vm, lambda v, e: None, print, print, print, DISABLE
    )
    quiet(CODE, 0)  # fills the cache: it holds the code object and its list
    ref_quiet = weakref.ref(quiet)
    del hook, vm, quiet
    gc.collect()
    assert ref_hook() is None and ref_vm() is None and ref_quiet() is None


# -- through sys.monitoring, on real code ------------------------------------------------


@contextmanager
def monitoring(hook: Hook, *codes: CodeType) -> Iterator[int]:
    """``hook`` as the INSTRUCTION callback of a free tool id, on ``codes`` only."""
    tool = next((t for t in (1, 2, 3, 4, 5) if M.get_tool(t) is None), None)
    if tool is None:
        pytest.skip("no free sys.monitoring tool id")
    M.use_tool_id(tool, "test_chook")
    try:
        M.register_callback(tool, M.events.INSTRUCTION, hook)
        for code in codes:
            M.set_local_events(tool, code, M.events.INSTRUCTION)
        yield tool
    finally:
        for code in codes:
            M.set_local_events(tool, code, 0)
        M.register_callback(tool, M.events.INSTRUCTION, None)
        M.free_tool_id(tool)
        M.restart_events()


def work(n: int) -> int:
    total = 0
    for i in range(n):
        total += helper(i) if i % 3 else -i
    return total


def helper(i: int) -> int:
    return (i * 7 + 3) % 11


def fragile(n: int) -> list[str]:
    done = []
    for i in range(n):
        try:
            done.append(str(i))
        except Exception:
            done.append("swallowed")
    return done


class Traced:
    """A stepper-like harness: sites for real code objects, RESUME left None."""

    def __init__(self, gas: int, codes: tuple[CodeType, ...], tracer_error_at: int = -1) -> None:
        self.vm = VM(gas)
        self.events: list[tuple[bool, int, int]] = []
        self.missing_calls: list[tuple[str, int]] = []
        self.failures: list[BaseException] = []
        self.tracer_error_at = tracer_error_at
        self.sites: dict[int, list[Any]] = {}
        self.codes = codes
        for code in codes:
            table: list[Any] = [None] * (len(code.co_code) + 2)
            real = [i for i in dis.get_instructions(code) if i.opname != "RESUME"]
            for ins in real:
                table[ins.offset] = (id(code) == id(codes[0]), ins.offset, ins.opname)
            if code is helper.__code__:
                table[real[0].offset] = None  # a hole: missing() says None, DISABLE
            self.sites[id(code)] = table

    def tracer(self, vm: VM, event: tuple[bool, int, str]) -> None:
        assert vm.site is event
        self.events.append((event[0], event[1], vm.gas))  # type: ignore[arg-type]
        if len(self.events) == self.tracer_error_at:
            raise TracerError("tracer broke")

    def missing(self, code: CodeType, offset: int) -> None:
        self.missing_calls.append((code.co_name, offset))
        return None

    def out_of_gas(self, code: CodeType, offset: int) -> None:
        raise Halt(f"{code.co_name} at {offset}")

    def failed(self, exc: BaseException) -> None:
        self.failures.append(exc)
        if isinstance(exc, Halt):
            raise exc

    def run(self, factory: Factory, call: Callable[[], object]) -> tuple[Any, ...]:
        hook = factory(
            self.sites, self.vm, self.tracer, self.missing, self.out_of_gas, self.failed, DISABLE
        )
        with monitoring(hook, *self.codes):
            first = outcome(call)
            again = outcome(call)
        return first, again


def traced_both(
    gas: int, call: Callable[[], object], *codes: CodeType, tracer_error_at: int = -1
) -> dict[str, Traced]:
    out = {}
    results = {}
    for name, factory in IMPLEMENTATIONS.items():
        t = out[name] = Traced(gas, codes, tracer_error_at)
        results[name] = t.run(factory, call)
    assert results["c"] == results["python"]
    c, py = out["c"], out["python"]
    assert c.events == py.events
    assert c.vm.gas == py.vm.gas
    assert c.missing_calls == py.missing_calls
    assert [repr(e) for e in c.failures] == [repr(e) for e in py.failures]
    return out


def test_monitoring_events_match_the_closure() -> None:
    runs = traced_both(10**9, lambda: work(40), work.__code__, helper.__code__)
    t = runs["c"]
    assert work(40) == sum(helper(i) if i % 3 else -i for i in range(40))
    assert len(t.events) > 600
    assert t.vm.gas == 10**9 - len(t.events)
    gases = [g for _, _, g in t.events]
    assert gases == list(range(10**9, 10**9 - len(gases), -1))
    # the hole in helper: missing is asked once, then the site is DISABLEd for good
    hole = next(i.offset for i in dis.get_instructions(helper) if i.opname != "RESUME")
    assert t.missing_calls == [("helper", hole)]
    assert not any(pc == hole for first, pc, _ in t.events if not first)
    assert any(pc == hole for first, pc, _ in t.events if first)  # work's own offset


def test_monitoring_out_of_gas_halts_the_traced_code() -> None:
    runs = traced_both(100, lambda: work(1000), work.__code__, helper.__code__)
    t = runs["c"]
    assert len(t.events) == 100
    assert t.vm.gas == 0  # unchanged by the halting instruction
    first = Traced(100, (work.__code__, helper.__code__)).run(InstructionHook, lambda: work(1000))
    assert first[0][:2] == ("raised", Halt)


def test_monitoring_tracer_failure_goes_to_failed_and_the_program_goes_on() -> None:
    runs = traced_both(10**6, lambda: fragile(20), fragile.__code__, tracer_error_at=7)
    t = runs["c"]
    assert [type(e) for e in t.failures] == [TracerError]
    assert t.failures[0].__traceback__ is not None
    assert t.vm.gas == 10**6 - len(t.events)  # the failing instruction was charged too
    assert ("returned", [str(i) for i in range(20)]) in [
        outcome(lambda: fragile(20))
    ]


def test_monitoring_failed_raising_propagates_into_the_program() -> None:
    class HaltingTraced(Traced):
        def tracer(self, vm: VM, event: tuple[bool, int, str]) -> None:
            super().tracer(vm, event)
            if len(self.events) == 30:
                raise Halt("tracer halts")

    results = {}
    for name, factory in IMPLEMENTATIONS.items():
        t = HaltingTraced(10**6, (fragile.__code__,))
        results[name] = (t.run(factory, lambda: fragile(50)), t.events, t.vm.gas)
    assert results["c"] == results["python"]
    (first, again), events, gas = results["c"]
    assert first[:3] == ("raised", Halt, ("tracer halts",))  # not swallowed by `except Exception`
    assert again == ("returned", [str(i) for i in range(50)])
    assert gas == 10**6 - len(events) + 1  # the halting instruction was not charged


_DROP_SCRIPT = """
import gc, sys
from blocktrace.vm._chook import InstructionHook

M = sys.monitoring
tool = next(t for t in (1, 2, 3, 4, 5) if M.get_tool(t) is None)
WHERE = sys.argv[1]


class VM:
    def __init__(self):
        self.gas = 1000
        self.site = None


def work():
    total = 0
    for i in range(20):
        total += i
    return total


def drop():
    # the registration is the hook's only reference: this frees it mid-call
    M.register_callback(tool, M.events.INSTRUCTION, None)
    gc.collect()


calls = []


def tracer(vm, event):
    calls.append(event)
    if len(calls) == 3:
        if WHERE == "tracer":
            drop()
        else:
            raise ValueError("tracer broke")


def failed(exc):
    drop()


vm = VM()
table = [None] * (len(work.__code__.co_code) + 2)
for i in range(2, len(table), 2):
    table[i] = i
M.use_tool_id(tool, "drop")
M.register_callback(
    tool, M.events.INSTRUCTION,
    InstructionHook({id(work.__code__): table}, vm, tracer, lambda c, o: None, print, failed,
                    M.DISABLE),
)
M.set_local_events(tool, work.__code__, M.events.INSTRUCTION)
result = work()
M.set_local_events(tool, work.__code__, 0)
M.free_tool_id(tool)
print(result, len(calls), vm.gas, vm.site)
"""


@pytest.mark.parametrize("where", ["tracer", "failed"])
def test_hook_unregistered_from_inside_its_own_call(tmp_path: Any, where: str) -> None:
    """The stepper re-registers its callbacks from inside the hook's calls (a
    failing tracer is detached, a halt swaps in the general callback): the hook
    must outlive the call that dropped the last reference to it.  Debug malloc
    poisons freed memory, so a use after free crashes the subprocess."""
    import os
    import subprocess

    script = tmp_path / "drop.py"
    script.write_text(_DROP_SCRIPT)
    env = dict(os.environ, PYTHONMALLOC="debug")
    done = subprocess.run(
        [sys.executable, str(script), where], capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # three events (offsets 2, 4, 6 after RESUME), the third charged after the
    # hook was dropped; then untraced
    assert done.stdout.split() == ["190", "3", "997", "6"]


def test_discard_is_the_default_tracer_without_a_frame() -> None:
    """The stepper calls ``_chook.discard`` in place of ``discard_trace``: the same
    no-op, so a run with the default tracer records nothing and changes nothing."""
    import blocktrace
    from blocktrace.vm import _chook

    assert _chook.discard(object(), object()) is None
    with pytest.raises(TypeError):
        _chook.discard(1)  # type: ignore[call-arg]
    assert blocktrace.get_tracer() is blocktrace.discard_trace
    with blocktrace.trace(blocktrace.discard_trace) as stepper:
        total = sum(i * i for i in range(50))
    assert total == 40425 and stepper.gas_used > 50



@pytest.mark.parametrize("may_disable", [False, True])
def test_a_tracers_disable_is_passed_on_only_when_it_may(may_disable: bool) -> None:
    """``may_disable=True`` (a tracer with ``may_disable``): the tracer's DISABLE
    for an op is the hook's answer, after gas is paid; otherwise it is ignored."""
    sc = Scenario()
    answers: list[object] = []

    def tracer(vm: object, event: object) -> object:
        answers.append(event)
        return DISABLE

    hook = InstructionHook(
        sc.sites, sc.vm, tracer, sc.missing, sc.out_of_gas, sc.failed, DISABLE,
        may_disable=may_disable,
    )
    gas = sc.vm.gas
    assert hook(CODE, 0) is (DISABLE if may_disable else None)
    assert sc.vm.gas == gas - 1 and len(answers) == 1
    sc.vm.gas = 10**30  # the generic number path passes it on too
    assert hook(CODE, 0) is (DISABLE if may_disable else None)
    assert sc.vm.gas == 10**30 - 1

# -- isolation ------------------------------------------------------------------
# Each test runs on a fresh thread, whose handled-exception state starts empty:
# several tests check what ``sys.exception()`` and ``__context__`` are, and an
# earlier test's run halted by OutOfGas at a ``PUSH_EXC_INFO`` leaves the
# interpreter's handled exception set on the main thread (CPython's cleanup
# handler pops a value that instruction never pushed; docs/FORMAT.md, gas).


def _in_fresh_thread(fn: Callable[..., None]) -> Callable[..., None]:
    import functools
    import threading

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        failure: list[BaseException] = []

        def target() -> None:
            try:
                fn(*args, **kwargs)
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]

    return run


for _name, _fn in list(globals().items()):
    if _name.startswith("test_") and callable(_fn):
        globals()[_name] = _in_fresh_thread(_fn)
