"""Site tables are built once per code object and index, across runs."""

from __future__ import annotations

import dis
from types import CodeType

import pytest

import blocktrace
from blocktrace import Recorder
from blocktrace.events import OpStart
from blocktrace.vm import sites


def _work(n: int) -> int:
    return sum(i * i for i in range(n))


def _ops(rec: Recorder) -> list[OpStart]:
    return [e for e in rec.events if type(e) is OpStart]


def test_a_second_run_reuses_the_sites_and_records_the_same() -> None:
    first, second = Recorder(), Recorder()
    with blocktrace.trace(first):
        _work(3)
    with blocktrace.trace(second):
        _work(3)
    # The frame that entered the trace runs other instructions the second time;
    # _work and its generator run the same ones.
    a = [e for e in _ops(first) if e.code != 1]
    b = [e for e in _ops(second) if e.code != 1]
    assert len(a) == len(b) > 10
    assert all(x is y for x, y in zip(a, b, strict=True))  # the very same site objects


def test_another_index_or_a_dead_code_object_is_not_reused() -> None:
    code = compile("x = 1\ny = x + 1\n", "<cache-test>", "exec")
    one = sites.sites_for(code, 7)
    assert sites.sites_for(code, 7) is one
    other = sites.sites_for(code, 8)
    assert other is not one
    assert {s.code for s in other if s is not None} == {8}
    key = id(code)
    assert key in sites.SITE_CACHE
    del code, one, other
    import gc

    gc.collect()
    assert key not in sites.SITE_CACHE  # forgotten with the code object


def _codes() -> list[CodeType]:
    """Code objects with loops, handlers, comprehensions, generators, extended args."""
    import json.decoder
    import textwrap

    source = textwrap.dedent("""
        def f(xs):
            try:
                return [x * 2 for x in xs if x]
            except TypeError:
                return None
        def g(n):
            for i in range(n):
                yield i
        big = [%s]
    """) % ", ".join(f"v{i}" for i in range(300))  # names past 255: EXTENDED_ARG
    module = compile(source, "<shape-test>", "exec")
    nested = [c for c in module.co_consts if isinstance(c, CodeType)]
    found = [module, *nested]
    for obj in vars(json.decoder).values():
        code = getattr(obj, "__code__", None)
        if isinstance(code, CodeType):
            found.append(code)
    return found


def test_tables_below_op_are_the_sites_as_the_level_reports_them() -> None:
    for code in _codes():
        reference = sites.build_sites(code, 9)
        for level in ("line", "call"):
            table = sites.code_info(code, 11).table(level)
            expected = sites.level_table(sites.build_sites(code, 11), level)
            assert table == expected, (code.co_qualname, level)
        assert sites.code_info(code, 12).table("op") == sites.build_sites(code, 12)
        assert [s is None for s in reference] == [s is None for s in sites.build_sites(code, 13)]


def test_a_code_objects_instructions_are_read_once_whatever_the_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A test suite's tests learn the same code objects at other indices each time:
    # co_code must not be read again for each, and dis (slow) not at all.
    code = compile("def h(a):\n    b = a + 1\n    return b\n", "<once-test>", "exec")
    read: list[CodeType] = []
    real = dis.get_instructions

    def counted(c: CodeType, **kw: object) -> object:
        read.append(c)
        return real(c, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(dis, "get_instructions", counted)
    first = sites.code_info(code, 21).table("call")
    offsets = sites.SITE_CACHE[id(code)].offsets
    for index in (22, 23, 24):
        assert sites.code_info(code, index).table("call") == first
        assert sites.SITE_CACHE[id(code)].offsets is offsets
    assert sites.code_info(code, 25).table("line")
    instructions = sites.SITE_CACHE[id(code)].instructions
    assert {s.code for s in sites.sites_for(code, 26) if s is not None} == {26}
    assert sites.SITE_CACHE[id(code)].instructions is instructions is not None
    assert read == []


def test_the_instructions_are_those_dis_lists() -> None:
    """``co_code`` read directly (instructions, inline caches, ``EXTENDED_ARG``) gives
    what ``dis.get_instructions`` does, on the standard library's code objects."""
    import asyncio
    import email.parser
    import gc
    import http.client
    import json
    import types

    assert asyncio and email.parser and http.client and json  # (their code objects)
    found = [f.__code__ for f in gc.get_objects() if isinstance(f, types.FunctionType)]
    found += _codes()
    seen: set[int] = set()
    count = 0
    while found:
        code = found.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        found.extend(c for c in code.co_consts if isinstance(c, CodeType))
        assert sites._instructions(code)[0] == sites._dis_instructions(code), code.co_qualname
        count += 1
    assert count > 1000


def test_a_call_level_table_builds_no_sites() -> None:
    code = compile("x = 1\n", "<lazy-test>", "exec")
    info = sites.code_info(code, 31)
    info.table("call")
    assert info._sites is None  # built only when the op level asks
    for code in _codes():
        made = sites.build_sites(code, 32)
        info, other = sites.CodeInfo(code, 32), sites.CodeInfo(code, 32, made)
        for offset in range(len(code.co_code) + 2):
            assert info.site_at(offset) == other.site_at(offset)  # one OpStart, or all
        assert info._sites is None and other.site_at(len(code.co_code)) in made
