"""A sink's C entries (blocktrace/events/csrc/sink.h): the stepper's C hooks call the
line writer's ``op`` and ``line`` without a Python call when they are handed its
bound methods, and the trace has the bytes the reference writer (PyLineWriter)
makes from the same calls made from Python.  Real writers, real hooks."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocktrace._native import extension
from blocktrace.chain.writer import PyLineWriter
from blocktrace.format.callline import call_pieces
from tests.vm.test_op_line import Event as Op
from tests.vm.test_op_line import _code

_chook = extension("blocktrace.vm._chook")
_cwriter = extension("blocktrace.chain._cwriter")
pytestmark = pytest.mark.skipif(
    _chook is None or _cwriter is None,
    reason="the C hook or writer is not built (or BLOCKTRACE_PURE is set)",
)

DISABLE = sys.monitoring.DISABLE


class VM:
    def __init__(self, depth: object = 1) -> None:
        self.depth = depth
        self.site: object = None


def _writer(kind: str, out: list[bytes]) -> Any:
    write = out.append
    if kind == "pure":  # version 3: the tests end with summary(), version 2's rule
        return PyLineWriter(write, buffer_size=300, lines_per_leaf=4, version=3)
    assert _cwriter is not None
    return _cwriter.LineWriter(write, buffer_size=300, lines_per_leaf=4,
                               threaded=kind == "threaded", version=3)


def _hook(writer: Any, via: str, vm: VM, sites: dict[int, list[Any]], limit: int,
          tracer: Any, failed: Any) -> Any:
    assert _chook is not None
    op_line = writer.op if via == "entry" else (lambda e, g, d: writer.op(e, g, d))
    return _chook.InstructionHook(
        sites, vm, tracer, lambda c, o: None, lambda c, o: None, failed, DISABLE,
        op_line=op_line, meter=_chook.Meter(limit),
    )


def _run(kind: str, via: str, steps: list[tuple[int, int]], limit: int) -> tuple[bytes, list[Any]]:
    """Each step (offset, depth) through a hook; the bytes written and what the
    tracer was given (the sites it has no pieces for)."""
    out: list[bytes] = []
    writer = _writer(kind, out)
    code = _code()
    ops = [Op(0), Op(2), Op(4)]
    for op, pieces in zip(ops[:2], [(b'{"pc":0,"gas":"0x', b',"x":1}'),
                                    (b'{"pc":2,"gas":"0x', b"")], strict=True):
        writer.add_site(id(op), pieces[0], pieces[1], op)
    sites = {id(code): [ops[0], None, ops[1], None, ops[2]]}
    vm = VM()
    told: list[Any] = []
    hook = _hook(writer, via, vm, sites, limit,
                 lambda v, e: told.append((e.pc, v.depth)), told.append)
    if kind != "pure" and via == "entry":
        assert hook.sink is writer
    for offset, depth in steps:
        vm.depth = depth
        assert hook(code, offset) is None
        assert vm.site is sites[id(code)][offset]
    writer.summary(b'{"end":1')
    writer.flush()
    return b"".join(out), told


_STEPS = st.lists(st.tuples(st.sampled_from([0, 2, 4]),
                            st.integers(min_value=-(2**63), max_value=2**63 - 1)),
                  max_size=40)


@settings(max_examples=60, deadline=None)
@given(steps=_STEPS, limit=st.sampled_from([0, 5, 2**63 - 1, 2**63, 2**64 - 1]))
def test_the_c_entry_writes_what_the_reference_writes(
    steps: list[tuple[int, int]], limit: int
) -> None:
    """Inline and threaded, through the C entry: what a Python call of the same op
    writes and leaves to the tracer (a site without pieces; gas past 64 bits, which
    the C writer's op declines), also after gas ran out; within 64 bits, the bytes
    of the reference writer."""
    want = _run("inline", "call", steps, limit)
    if limit < 2**63:
        assert _run("pure", "call", steps, limit) == want
    for kind in ("inline", "threaded"):
        for via in ("entry", "call"):
            assert _run(kind, via, steps, limit) == want, (kind, via)


def test_only_a_writers_own_op_is_its_entry() -> None:
    assert _chook is not None and _cwriter is not None
    writer = _cwriter.LineWriter(lambda b: None)
    py = PyLineWriter(lambda b: None)
    cases = [(writer.op, writer, None), (writer.line, None, writer), (py.op, None, None),
             (py.line, None, None), (len, None, None), (lambda e, g, d: True, None, None),
             (None, None, None)]
    for method, op_sink, line_sink in cases:
        hook = _chook.InstructionHook({}, VM(), print, print, print, print, DISABLE,
                                      op_line=method, meter=_chook.Meter(9))
        assert hook.sink is op_sink, method
        for kind in (0, 1):
            calls = _chook.CallHook(kind, VM(), _chook.Meter(9), {}, print, print, line=method)
            assert calls.sink is line_sink, method


@pytest.mark.parametrize("kind", ["inline", "threaded"])
def test_a_failing_entry_goes_to_failed_and_gas_is_charged(kind: str) -> None:
    """A sealed writer refuses the line: failed(exc) gets the writer's error."""
    out: list[bytes] = []
    writer = _writer(kind, out)
    op = Op(0)
    writer.add_site(id(op), b'{"gas":"0x', b"", op)
    writer.summary(b'{"end":1')
    code = _code()
    errors: list[BaseException] = []
    told: list[Any] = []
    meter = _chook.Meter(10)  # type: ignore[union-attr]
    hook = _chook.InstructionHook(  # type: ignore[union-attr]
        {id(code): [op]}, VM(), lambda v, e: told.append(e), print, print, errors.append,
        DISABLE, op_line=writer.op, meter=meter)
    assert hook(code, 0) is None
    assert told == [] and meter.used == 1
    assert len(errors) == 1 and "sealed" in str(errors[0])


def _call_lines(kind: str, via: str, depths: list[int]) -> bytes:
    """Calls and returns through the C call hooks with a writer's line (its C entry,
    or a Python call), then the bytes written."""
    assert _chook is not None
    out: list[bytes] = []
    writer = _writer(kind, out)
    code = _code()
    pre, suf = call_pieces("call", 3, code.co_name, code.co_filename, code.co_firstlineno)
    entries = {id(code): (object(), pre, suf, 3)}
    vm = VM()
    meter = _chook.Meter(2**40)
    line = writer.line if via == "entry" else (lambda b: writer.line(b))
    hooks = [_chook.CallHook(k, vm, meter, entries, print, print, line=line,
                             render=lambda v: b'"%s"' % (b"x" * (v[0] % 700)),  # past 512 too
                             thread=threading.get_ident())
             for k in (0, 1)]
    if via == "entry" and kind != "pure":
        assert hooks[0].sink is writer and hooks[1].sink is writer
    for d in depths:
        vm.depth = d
        hooks[0](code, 0)
        meter.used += 7
        hooks[1](code, 12, [d] if d % 3 else d)
    writer.summary(b'{"end":1')
    writer.flush()
    return b"".join(out)


@settings(max_examples=40, deadline=None)
@given(depths=st.lists(st.integers(min_value=1, max_value=2**40), max_size=30))
def test_the_call_hooks_entry_writes_what_the_reference_writes(depths: list[int]) -> None:
    want = _call_lines("pure", "call", depths)
    for kind in ("inline", "threaded"):
        for via in ("entry", "call"):
            assert _call_lines(kind, via, depths) == want, (kind, via)


def test_the_call_hooks_see_an_entry_replaced() -> None:
    """The call hooks keep the last code object's entry: a replaced entry is used."""
    assert _chook is not None and _cwriter is not None
    out: list[bytes] = []
    writer = _cwriter.LineWriter(out.append)
    code = _code()
    entries = {id(code): (object(), b'{"a":', b"}", 3)}
    vm = VM(2)
    fell_back: list[object] = []
    start = _chook.CallHook(0, vm, _chook.Meter(99), entries,
                            lambda c, o: fell_back.append(c), print, line=writer.line,
                            thread=threading.get_ident())
    start(code, 0)
    entries[id(code)] = (object(), b'{"b":', b"}", 3)
    start(code, 0)
    del entries[id(code)]
    start(code, 0)  # no entry: the Python callback
    writer.flush()
    assert [line.split(b',"hash"')[0] for line in b"".join(out).splitlines()] == [
        b'{"a":3}', b'{"b":4}']
    assert fell_back == [code] and vm.depth == 4


def test_call_hooks_makes_the_four_a_run_registers() -> None:
    """``call_hooks`` (one call at a start) makes the hooks ``CallHook`` would, each
    kind with its own fallback and entries: the start and the return write through
    ``entries``, the resume through ``resumes``, the start alone answers code out of
    scope by its file with ``disable``, and the same lines come out as from four
    ``CallHook``s."""
    assert _chook is not None and _cwriter is not None
    code = _code()
    pre, suf = call_pieces("call", 3, code.co_name, code.co_filename, code.co_firstlineno)
    rpre, rsuf = call_pieces("resume", 3, code.co_name, code.co_filename, code.co_firstlineno)
    other = compile("pass", "elsewhere.py", "exec")
    fell: list[tuple[str, object]] = []

    def fallback(name: str) -> Any:
        return lambda c, *rest: fell.append((name, c))

    def run(make: Any) -> tuple[bytes, list[tuple[str, object]]]:
        out: list[bytes] = []
        writer = _cwriter.LineWriter(out.append)
        entries = {id(code): (object(), pre, suf, 3)}
        resumes = {id(code): (object(), rpre, rsuf, 3)}
        vm = VM(0)
        meter = _chook.Meter(2**40)
        start, leave, resume, suspend = make(vm, meter, entries, resumes, writer.line)
        assert start.entries is entries and leave.entries is entries
        assert resume.entries is resumes and suspend.entries is entries
        fell.clear()
        assert start(other, 0) is sys.monitoring.DISABLE  # out of scope by its file
        start(code, 0)
        meter.used += 5
        leave(code, 10, 7)
        resume(code, 12)
        suspend(code, 14, 8)  # a yield: no entry kind of its own, through entries
        leave(other, 0, None)  # not known: the return's fallback
        assert ("return", other) in fell and ("start", other) not in fell
        writer.flush()
        return b"".join(out), list(fell)

    common: dict[str, Any] = dict(render=None, room=0, thread=threading.get_ident(),
                                  max_str=200, values=True)
    outside = {"elsewhere.py": False}
    disable = sys.monitoring.DISABLE

    def one_by_one(vm: Any, meter: Any, entries: Any, resumes: Any, line: Any) -> Any:
        return (
            _chook.CallHook(0, vm, meter, entries, fallback("start"), print, line=line,
                            outside=outside, disable=disable, **common),
            _chook.CallHook(1, vm, meter, entries, fallback("return"), print, line=line,
                            **common),
            _chook.CallHook(2, vm, meter, resumes, fallback("resume"), print, line=line,
                            **common),
            _chook.CallHook(3, vm, meter, entries, fallback("yield"), print, line=line,
                            **common),
        )

    def at_once(vm: Any, meter: Any, entries: Any, resumes: Any, line: Any) -> Any:
        return _chook.call_hooks(
            vm, meter, entries, resumes, fallback("start"), fallback("return"),
            fallback("resume"), fallback("yield"), print, line, None, 0, threading.get_ident(),
            200, True, outside, disable, None)

    want = run(one_by_one)
    assert want[0].count(b"\n") >= 2  # the call and the resume at least
    assert run(at_once) == want
    with pytest.raises(TypeError, match="takes 18 arguments"):
        _chook.call_hooks(1, 2, 3)
