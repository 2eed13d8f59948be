"""The stepper's events for the shapes Python code takes, recorded in-process
with ``Recorder`` and ``blocktrace.trace``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import blocktrace
from blocktrace import CallStart, OpException, OpStart, Recorder, Return, Stop

Step = tuple[str, str, str, int]


def _steps(rec: Recorder) -> list[Step]:
    """Everything but op lines, as (event, kind, function name, depth)."""
    names: dict[int, str] = {}
    out: list[Step] = []
    for r in rec.records:
        e = r.event
        if type(e) is CallStart:
            names[e.code] = e.name.rsplit(".", 1)[-1]
            out.append(("call", e.kind, names[e.code], r.depth))
        elif type(e) is Return:
            out.append(("return", e.kind, names[e.code], r.depth))
        elif type(e) is OpException:
            out.append((e.kind, e.error_type, names[e.code], r.depth))
    return out


def _frames(rec: Recorder, name: str) -> list[Step]:
    return [s for s in _steps(rec) if s[2] == name]


def assert_balanced(rec: Recorder) -> None:
    """Every frame that starts (call or resume) stops (return, yield or unwind)
    at the same depth, on its own thread; op lines run at the depth of the frame
    they belong to; gas goes down by one per op; ``Stop`` comes last."""
    stacks: dict[int, list[tuple[int, int]]] = {}
    gas: dict[int, int] = {}
    entered: set[int] = set()
    for r in rec.records:
        e = r.event
        stack = stacks.setdefault(r.thread, [])
        if type(e) is CallStart:
            if e.kind == "enter":
                entered.add(r.thread)
            assert r.depth == len(stack) + 1, r
            stack.append((e.code, r.depth))
        elif type(e) is Return:
            code, depth = stack.pop()
            assert (e.code, r.depth) == (code, depth), r
        elif type(e) is OpStart:
            assert stack and stack[-1] == (e.code, r.depth), r
            if r.thread in gas:
                assert r.gas < gas[r.thread]
            gas[r.thread] = r.gas
    assert type(rec.events[-1]) is Stop
    for thread, stack in stacks.items():
        # Only the frame that entered ``trace()`` is still running at the end.
        assert [d for _, d in stack] == ([1] if thread in entered else []), (thread, stack)


def _traced(fn: Callable[[], object], **scope: Any) -> tuple[Recorder, object]:
    rec = Recorder()
    with blocktrace.trace(rec, **scope):
        result = fn()
    return rec, result


# -- plain calls ------------------------------------------------------------------


def _h(x: int) -> int:
    return x + 1


def _g(x: int) -> int:
    return _h(x) * 2


def _f(x: int) -> int:
    return _g(x) + _g(x + 1)


def test_plain_calls_and_depth() -> None:
    rec, result = _traced(lambda: _f(1))
    assert result == _f(1) == 10
    assert_balanced(rec)
    assert _steps(rec) == [
        ("call", "enter", "_traced", 1),
        ("call", "call", "<lambda>", 2),
        ("call", "call", "_f", 3),
        ("call", "call", "_g", 4),
        ("call", "call", "_h", 5),
        ("return", "return", "_h", 5),
        ("return", "return", "_g", 4),
        ("call", "call", "_g", 4),
        ("call", "call", "_h", 5),
        ("return", "return", "_h", 5),
        ("return", "return", "_g", 4),
        ("return", "return", "_f", 3),
        ("return", "return", "<lambda>", 2),
    ]
    returns = [e.value for e in rec.of_type(Return)]
    assert returns == [2, 4, 3, 6, 10, 10]
    stop = rec.events[-1]
    assert isinstance(stop, Stop) and stop.error is None
    ops = rec.of_type(OpStart)
    assert stop.gas_used == len(ops) > 20
    call = rec.of_type(CallStart)[2]
    assert call.file == __file__ and call.first_line == _f.__code__.co_firstlineno
    assert call.name == "_f"


def test_op_events_describe_the_instruction() -> None:
    rec, _ = _traced(lambda: _h(41))
    import dis

    code = _h.__code__
    index = next(e.code for e in rec.of_type(CallStart) if e.name == "_h")
    ops = [e for e in rec.of_type(OpStart) if e.code == index]
    by_offset = {i.offset: i for i in dis.get_instructions(code)}
    assert ops
    for op in ops:
        ins = by_offset[op.pc]
        assert op.op_name == ins.opname and op.op == dis.opmap[ins.opname]
        assert op.line == code.co_firstlineno + 1
    assert [op.op_name for op in ops][-1] == "RETURN_VALUE"
    # An op site is one object, reused every time the instruction runs.
    rec2 = Recorder()
    with blocktrace.trace(rec2):
        _h(1)
        _h(2)
    sites = [e for e in rec2.of_type(OpStart) if e.code == 2]
    assert len(sites) == 2 * len({id(e) for e in sites})


# -- generators and coroutines --------------------------------------------------------


def _gen() -> Generator[int, None, int]:
    yield 1
    sent = yield 2
    assert sent is None
    return 5


def _delegate() -> Generator[int, None, None]:
    result = yield from _gen()
    yield result


def test_generators_and_yield_from() -> None:
    rec, result = _traced(lambda: list(_delegate()))
    assert result == [1, 2, 5]
    assert_balanced(rec)
    steps = [s for s in _steps(rec) if s[2] in ("_gen", "_delegate")]
    assert steps == [
        ("call", "call", "_delegate", 3),
        ("call", "call", "_gen", 4),
        ("return", "yield", "_gen", 4),
        ("return", "yield", "_delegate", 3),
        ("call", "resume", "_delegate", 3),
        ("call", "resume", "_gen", 4),
        ("return", "yield", "_gen", 4),
        ("return", "yield", "_delegate", 3),
        ("call", "resume", "_delegate", 3),
        ("call", "resume", "_gen", 4),
        ("return", "return", "_gen", 4),
        ("return", "yield", "_delegate", 3),
        ("call", "resume", "_delegate", 3),
        ("return", "return", "_delegate", 3),
    ]
    yields = [e.value for e in rec.of_type(Return) if e.kind == "yield"]
    assert yields == [1, 1, 2, 2, 5]


def _thrown() -> Generator[int, None, None]:
    try:
        yield 1
    except KeyError:
        yield 2


def test_generator_throw_and_close() -> None:
    def run() -> list[int]:
        g = _thrown()
        out = [next(g), g.throw(KeyError("k"))]
        g.close()
        return out

    rec, result = _traced(run)
    assert result == [1, 2]
    assert_balanced(rec)
    steps = _frames(rec, "_thrown")
    assert ("call", "throw", "_thrown", 3) in steps
    assert ("handled", "KeyError", "_thrown", 3) in steps
    # close() throws GeneratorExit in: the frame unwinds.
    assert steps[-1] == ("return", "unwind", "_thrown", 3)


async def _coro(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


async def _agen() -> AsyncIterator[int]:
    for i in range(2):
        yield i
        await asyncio.sleep(0)


async def _amain() -> list[int]:
    out = [await _coro(1)]
    out += await asyncio.gather(_coro(2), _coro(3))
    async for v in _agen():
        out.append(v)
    return out


def test_coroutines_and_async_generators_under_asyncio() -> None:
    rec, result = _traced(lambda: asyncio.run(_amain()))
    assert result == [2, 4, 6, 0, 1]
    assert_balanced(rec)
    coro = _frames(rec, "_coro")
    assert [s[:2] for s in coro].count(("call", "call")) == 3
    assert [s[:2] for s in coro].count(("call", "resume")) == 3
    assert [s[:2] for s in coro].count(("return", "yield")) == 3
    assert [s[:2] for s in coro].count(("return", "return")) == 3
    agen = [s[:2] for s in _frames(rec, "_agen")]
    assert agen[0] == ("call", "call") and agen[-1] == ("return", "return")
    assert agen.count(("return", "yield")) == 4  # two values, two awaits
    assert ("call", "resume") in agen
    main = _frames(rec, "_amain")
    assert main[0] == ("call", "call", "_amain", 3) and main[-1][:2] == ("return", "return")
    # The event loop (stdlib, untraced) runs tasks from the lambda's depth: the
    # coroutine awaited directly is one deeper than _amain, the gathered tasks are not.
    assert coro[:2] == [("call", "call", "_coro", 4), ("return", "yield", "_coro", 4)]
    assert {s[3] for s in coro[4:]} == {3}


# -- exceptions ---------------------------------------------------------------------


def _inner() -> None:
    raise ValueError("boom")


def _middle() -> None:
    try:
        _inner()
    except ValueError:
        raise


def _outer() -> str:
    try:
        _middle()
    except ValueError as exc:
        return str(exc)
    return "unreachable"


def test_exceptions_caught_and_reraised() -> None:
    rec, result = _traced(_outer)
    assert result == "boom"
    assert_balanced(rec)
    assert _frames(rec, "_inner") == [
        ("call", "call", "_inner", 4),
        ("raise", "ValueError", "_inner", 4),
        ("return", "unwind", "_inner", 4),
    ]
    middle = _frames(rec, "_middle")
    assert middle[1] == ("raise", "ValueError", "_middle", 3)
    assert ("handled", "ValueError", "_middle", 3) in middle
    assert ("reraise", "ValueError", "_middle", 3) in middle
    assert middle[-1] == ("return", "unwind", "_middle", 3)
    assert _frames(rec, "_outer")[-2:] == [
        ("handled", "ValueError", "_outer", 2),
        ("return", "return", "_outer", 2),
    ]
    raised = next(e for e in rec.of_type(OpException) if e.kind == "raise")
    assert raised.message == "boom" and raised.op_name in ("RAISE_VARARGS", "CALL")
    assert raised.line == _inner.__code__.co_firstlineno + 1


def _divide(x: int) -> float:
    return 10 / x


def _passes_through() -> str:
    try:
        _divide(0)
    except ZeroDivisionError:
        return "caught"
    return "unreachable"


def _passes_through_two() -> None:
    _divide(0)


def _catches_two() -> str:
    try:
        _passes_through_two()
    except ZeroDivisionError:
        return "caught"
    return "unreachable"


@pytest.mark.parametrize("program", [_passes_through, _catches_two])
def test_the_raise_in_a_frame_an_exception_passes_through_names_the_call(
    program: Callable[[], str],
) -> None:
    """3.13's RAISE event names one code unit before the call in a frame an
    exception unwound into (the instruction loading the call's last argument);
    the trace names the call on every Python, as 3.12's event does."""
    rec, result = _traced(program)
    assert result == "caught"
    raised = [e for e in rec.of_type(OpException) if e.kind == "raise"]
    assert raised[0].op_name == "BINARY_OP"
    assert len(raised) >= 2 and all(e.op_name == "CALL" for e in raised[1:]), [
        (e.op_name, e.pc) for e in raised]


def test_uncaught_exception_ends_the_run_with_its_error() -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="boom"), blocktrace.trace(rec):
        _inner()
    assert_balanced(rec)
    stop = rec.events[-1]
    assert isinstance(stop, Stop) and stop.error == "ValueError: boom"
    assert _frames(rec, "_inner")[-1] == ("return", "unwind", "_inner", 2)


def _groups() -> list[str]:
    seen: list[str] = []
    try:
        raise ExceptionGroup("g", [KeyError("k"), TypeError("t")])
    except* KeyError as eg:
        seen.append(type(eg.exceptions[0]).__name__)
    except* TypeError as eg:
        seen.append(type(eg.exceptions[0]).__name__)
    try:
        try:
            raise ExceptionGroup("h", [OSError("o"), ValueError("v")])
        except* OSError:
            seen.append("OSError")
    except* ValueError:
        seen.append("ValueError left over")
    return seen


def test_except_star_groups() -> None:
    rec, result = _traced(_groups)
    assert result == ["KeyError", "TypeError", "OSError", "ValueError left over"]
    assert_balanced(rec)
    kinds = {(s[0], s[1]) for s in _frames(rec, "_groups")}
    assert ("raise", "ExceptionGroup") in kinds
    assert ("handled", "ExceptionGroup") in kinds
    assert _frames(rec, "_groups")[-1][:2] == ("return", "return")


def _recurse(n: int) -> int:
    return 0 if n == 0 else 1 + _recurse(n - 1)


def test_deep_recursion() -> None:
    rec, result = _traced(lambda: _recurse(900))
    assert result == 900
    assert_balanced(rec)
    calls = [
        r.depth for r in rec.records if type(r.event) is CallStart and r.event.name == "_recurse"
    ]
    assert calls == list(range(3, 904))
    assert max(r.depth for r in rec.records) == 903


# -- the other shapes of code ---------------------------------------------------------


def _shapes() -> dict[str, object]:
    out: dict[str, object] = {}
    out["listcomp"] = [x * x for x in range(4)]
    out["genexpr"] = sum(x for x in range(4))
    out["dictcomp"] = {k: v for k, v in zip("ab", range(2), strict=True)}

    def outer(k: int) -> Callable[[int], int]:
        def inner(x: int) -> int:
            return x + k

        return inner

    out["closure"] = outer(10)(5)

    def deco(fn: Callable[[int], int]) -> Callable[[int], int]:
        @functools.wraps(fn)
        def wrapper(x: int) -> int:
            return fn(x) * 100

        return wrapper

    @deco
    def decorated(x: int) -> int:
        return x + 1

    out["decorated"] = decorated(1)

    class Meta(type):
        def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Meta:
            ns["tag"] = name.lower()
            return super().__new__(mcs, name, bases, ns)

    class Thing(metaclass=Meta):
        size = 3

        def area(self) -> int:
            return self.size * self.size

    out["class"] = (Thing.tag, Thing().area())  # type: ignore[attr-defined]

    @dataclass
    class Point:
        x: int
        y: int

    def where(p: object) -> str:
        match p:
            case Point(x=0, y=0):
                return "origin"
            case Point(x=0):
                return "y-axis"
            case [a, b, *rest]:
                return f"seq {a} {b} {len(rest)}"
            case {"k": v}:
                return f"map {v}"
            case _:
                return "other"

    out["match"] = [where(Point(0, 0)), where(Point(0, 1)), where([1, 2, 3]), where({"k": 9}),
                    where(7)]

    class Managed:
        def __enter__(self) -> str:
            return "entered"

        def __exit__(self, *exc: object) -> bool:
            return True  # swallows

    with Managed() as m:
        out["with"] = m
        raise KeyError("swallowed by __exit__")

    @contextlib.contextmanager
    def cm() -> Iterator[int]:
        yield 7

    with cm() as seven:
        out["contextmanager"] = seven
    out["lambda"] = sorted([3, 1, 2], key=lambda v: -v)
    return out


def test_comprehensions_closures_decorators_classes_match_with_lambdas() -> None:
    expected = _shapes()
    rec, result = _traced(_shapes)
    assert result == expected
    assert result["match"] == ["origin", "y-axis", "seq 1 2 1", "map 9", "other"]
    assert_balanced(rec)
    names = {e.name for e in rec.of_type(CallStart)}
    # List and dict comprehensions are inlined (PEP 709); generator expressions are frames.
    assert "_shapes.<locals>.<genexpr>" in names
    assert "_shapes.<locals>.outer.<locals>.inner" in names
    assert "_shapes.<locals>.deco.<locals>.wrapper" in names
    assert "_shapes.<locals>.decorated" in names
    assert "_shapes.<locals>.Meta.__new__" in names
    assert "_shapes.<locals>.Thing" in names  # the class body
    assert "_shapes.<locals>.Thing.area" in names
    assert "_shapes.<locals>.where" in names
    assert "_shapes.<locals>.Managed.__enter__" in names
    assert "_shapes.<locals>.Managed.__exit__" in names
    assert "_shapes.<locals>.cm" in names  # the generator behind @contextmanager
    assert "_shapes.<locals>.<lambda>" in names
    # The dataclass-generated __init__ is exec'd by the stdlib: not the user's code.
    assert not any(n.endswith("Point.__init__") for n in names)
    genexpr = [s for s in _steps(rec) if s[2] == "<genexpr>"]
    assert genexpr.count(("return", "yield", "<genexpr>", 3)) == 4
    ops = {e.op_name for e in rec.of_type(OpStart)}
    assert {"MATCH_CLASS", "MATCH_SEQUENCE", "MATCH_MAPPING"} <= ops
    handled = [e for e in rec.of_type(OpException) if e.error_type == "KeyError"]
    assert [e.kind for e in handled][:1] == ["raise"]


def test_exec_of_user_code_is_traced() -> None:
    namespace: dict[str, Any] = {}

    def run() -> int:
        exec("def made(x):\n    return x * 3\n", namespace)
        return int(namespace["made"](4))

    rec, result = _traced(run)
    assert result == 12
    made = [e for e in rec.of_type(CallStart) if e.name == "made"]
    assert made and made[0].file == "<string>"


def test_python_version_supported() -> None:
    assert sys.version_info >= (3, 12)
