"""The hook's ``op_line``: an ``OpStart`` goes to ``op_line(event, gas, depth)`` with
plain values (the line writer never reads the stepper), and to the tracer only when
``op_line`` says it did not handle it.  The C hook and the Python closure alike."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType
from typing import Any

import pytest

from blocktrace._native import extension
from blocktrace.vm.hook import python_instruction_hook

DISABLE = sys.monitoring.DISABLE

IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {"python": python_instruction_hook}
_c = extension("blocktrace.vm._chook")
if _c is not None:
    IMPLEMENTATIONS["c"] = _c.InstructionHook


class VM:
    def __init__(self, gas: object, depth: object = 3) -> None:
        self.gas = gas
        self.depth = depth
        self.site: object = None


class Event:
    def __init__(self, pc: int) -> None:
        self.pc = pc


def _code() -> CodeType:
    def f() -> int:
        return 1

    return f.__code__


def _make(impl: str, vm: Any, tracer: Any, op_line: Any, failed: Any = None) -> Any:
    code = _code()
    events = [Event(0), Event(2)]
    sites = {id(code): [events[0], None, events[1]]}  # by offset
    errors: list[BaseException] = []
    hook = IMPLEMENTATIONS[impl](
        sites, vm, tracer, lambda c, o: None, lambda c, o: None,
        failed if failed is not None else errors.append, DISABLE, op_line=op_line,
    )
    return hook, code, events, errors


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_op_line_gets_plain_values_and_the_tracer_only_what_it_leaves(impl: str) -> None:
    vm = VM(100)
    seen: list[tuple[str, object, object, object]] = []

    def op_line(event: object, gas: int, depth: int) -> bool:
        seen.append(("op_line", event, gas, depth))
        assert vm.site is event  # set before, as for the tracer
        return bool(gas % 2)  # handles odd gas only

    def tracer(v: object, event: object) -> None:
        assert v is vm
        seen.append(("tracer", event, vm.gas, None))

    hook, code, events, errors = _make(impl, vm, tracer, op_line)
    for offset in (0, 2, 0, 2):
        assert hook(code, offset) is None
    assert seen == [
        ("op_line", events[0], 100, 3), ("tracer", events[0], 100, None),
        ("op_line", events[1], 99, 3),
        ("op_line", events[0], 98, 3), ("tracer", events[0], 98, None),
        ("op_line", events[1], 97, 3),
    ]
    assert vm.gas == 96 and errors == []


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_op_line_failing_goes_to_failed_and_gas_is_charged(impl: str) -> None:
    vm = VM(10)
    boom = ValueError("boom")

    def op_line(event: object, gas: int, depth: int) -> bool:
        raise boom

    calls: list[object] = []
    hook, code, _, errors = _make(impl, vm, lambda v, e: calls.append(e), op_line)
    assert hook(code, 0) is None
    assert errors == [boom] and calls == [] and vm.gas == 9


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_a_vm_without_depth_goes_to_failed(impl: str) -> None:
    vm = VM(10)
    del vm.depth
    hook, code, _, errors = _make(impl, vm, lambda v, e: None, lambda e, g, d: True)
    assert hook(code, 0) is None
    assert len(errors) == 1 and isinstance(errors[0], AttributeError) and vm.gas == 9


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_big_gas_reaches_op_line_as_it_is(impl: str) -> None:
    """Gas beyond 64 bits takes the hook's generic path: op_line still gets it."""
    vm = VM(2**70)
    got: list[object] = []
    hook, code, _, errors = _make(impl, vm, lambda v, e: None,
                                  lambda e, g, d: got.append((g, d)) or True)
    hook(code, 0)
    assert got == [(2**70, 3)] and vm.gas == 2**70 - 1 and errors == []


def test_the_c_hook_says_its_op_line() -> None:
    if "c" not in IMPLEMENTATIONS:
        pytest.skip("the C hook is not built, or BLOCKTRACE_PURE is set")
    hook = IMPLEMENTATIONS["c"]({}, VM(1), print, print, print, print, DISABLE)
    assert hook.op_line is None
    with pytest.raises(TypeError):
        IMPLEMENTATIONS["c"]({}, VM(1), print, print, print, print, DISABLE, op_line=3)


def test_chain_tracer_lines_are_the_same_with_and_without_op_line(tmp_path: Any) -> None:
    """A run through the hook's op_line writes the bytes the tracer's own
    __call__ writes (its op_line hidden from the stepper)."""
    import blocktrace
    from blocktrace.chain.verify import verify_file

    def work() -> int:
        total = 0
        for i in range(200):
            total += i % 7
        return total

    outs = []
    for hide in (False, True):
        path = tmp_path / f"t{hide}.jsonl"
        tracer = blocktrace.ChainTracer(path, genesis="same", argv=["x"])
        if hide:
            del tracer.op_line  # the stepper calls the tracer for every event
        with blocktrace.trace(tracer):
            work()
        assert verify_file(path, genesis="same").status == "sealed"
        lines = path.read_bytes().splitlines()
        # header (start time, pid) and summary (time) differ from run to run
        outs.append([ln.rsplit(b',"hash":', 1)[0] for ln in lines[1:-1]])
    assert outs[0] == outs[1]
    assert sum(b'"opName":' in ln for ln in outs[0]) > 1000
