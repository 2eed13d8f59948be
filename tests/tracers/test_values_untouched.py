"""Values are rendered bounded and without running the program's code: objects
whose ``__repr__`` raises, mutates state or is huge change nothing."""

from __future__ import annotations

import io
from typing import Any

import msgspec
import pytest

import blocktrace
from blocktrace import Renderer

_decode = msgspec.json.Decoder(dict[str, Any]).decode
CALLS: list[str] = []


class Raises:
    def __repr__(self) -> str:
        CALLS.append("Raises.__repr__")
        raise RuntimeError("repr must not be called")

    def __str__(self) -> str:
        CALLS.append("Raises.__str__")
        raise RuntimeError("str must not be called")


class Mutates:
    def __init__(self) -> None:
        self.seen = 0

    def __repr__(self) -> str:
        CALLS.append("Mutates.__repr__")
        self.seen += 1
        return f"Mutates({self.seen})"

    def __eq__(self, other: object) -> bool:
        CALLS.append("Mutates.__eq__")
        return self is other

    def __hash__(self) -> int:
        CALLS.append("Mutates.__hash__")
        return 1

    def __len__(self) -> int:
        CALLS.append("Mutates.__len__")
        return 1


class Huge:
    def __repr__(self) -> str:
        CALLS.append("Huge.__repr__")
        return "h" * 5_000_000


class SneakyList(list[int]):
    def __iter__(self):  # type: ignore[no-untyped-def]
        CALLS.append("SneakyList.__iter__")
        return super().__iter__()

    def __repr__(self) -> str:
        CALLS.append("SneakyList.__repr__")
        return "sneaky"


class LoudError(Exception):
    def __str__(self) -> str:
        CALLS.append("LoudError.__str__")
        raise RuntimeError("no")


class Meta(type):
    def __getattribute__(cls, name: str) -> Any:
        CALLS.append(f"Meta.__getattribute__({name})")
        return super().__getattribute__(name)


class Weird(metaclass=Meta):
    pass


def _program() -> tuple[int, int]:
    r, m, h, s, w = Raises(), Mutates(), Huge(), SneakyList([1, 2]), Weird()
    big = "y" * 1_000_000
    deep: list[Any] = []
    for _ in range(50):
        deep = [deep, {"k": (1, 2.5, None, True, b"x" * 500)}]
    values = {r: 1} if False else {"m": m, "h": h}
    try:
        raise LoudError("loud")
    except LoudError as exc:
        caught = exc
    items = (r, m, h, s, w, big, deep, values, caught, 2**200, float("nan"))
    return len(items), m.seen


@pytest.mark.parametrize("mode", ["on", "changes"])
def test_locals_and_globals_run_no_program_code(mode: str) -> None:
    CALLS.clear()
    out = io.BytesIO()
    tracer = blocktrace.ChainTracer(out, locals=mode, globals=mode)  # type: ignore[arg-type]
    with blocktrace.trace(tracer):
        result = _program()
    assert result == (11, 0)
    assert CALLS == []
    data = out.getvalue()
    assert len(data) < 1_000_000  # a million characters are not copied into the trace
    lines = [_decode(line) for line in data.splitlines()]
    shown = [line["locals"] for line in lines if "locals" in line]
    assert shown
    last: dict[str, Any] = {}
    for values in shown:
        last.update(values)
    assert last["r"].startswith("<Raises #") and last["m"].startswith("<Mutates #")
    assert last["s"].startswith("<SneakyList #") and last["w"].startswith("<")
    assert last["big"].endswith("…") and len(last["big"]) < 1000
    assert last["caught"].startswith("<LoudError #")
    exceptions = [line for line in lines if line.get("event") == "raise"]
    assert any("LoudError" in line["error"] for line in exceptions)


def test_opt_in_repr_is_bounded_and_guarded() -> None:
    CALLS.clear()
    out = io.BytesIO()
    tracer = blocktrace.ChainTracer(out, locals="on")
    with blocktrace.trace(tracer, use_repr=True):
        result = _program()
    assert result[0] == 11  # the program still completes normally
    assert "Raises.__repr__" in CALLS and "Huge.__repr__" in CALLS  # opted in: repr runs
    data = out.getvalue()
    assert b"repr failed" in data
    assert len(data) < 2_000_000


def test_renderer_direct() -> None:
    CALLS.clear()
    r = Renderer()
    assert r.render(None) is None and r.render(True) is True
    assert r.render(5) == 5 and r.render(2.5) == 2.5
    assert r.render(2**70) == str(2**70)
    assert r.render(float("inf")) == "inf"
    assert r.render("abc") == "'abc'"
    assert r.render([1, "a", (2,)]) == "[1, 'a', (2,)]"
    assert r.render({"k": {1, 2}}) in ("{'k': {1, 2}}", "{'k': {2, 1}}")
    long_list = r.render(list(range(100)))
    assert isinstance(long_list, str) and "more" in long_list and len(long_list) < 200
    a, b = Raises(), Raises()
    first = r.render(a)
    assert first == r.render(a) != r.render(b)
    assert isinstance(first, str) and first.startswith("<Raises #")
    assert r.render(Weird()) == "<Weird #3>"
    nested: list[Any] = []
    nested.append(nested)  # self-reference: bounded by depth
    assert isinstance(r.render(nested), str)
    assert CALLS == []


def _assigns() -> list[int]:
    a = 1
    b = 2
    a = 3
    c = [a, b]
    c.append(4)
    return c


def _locals_by_line(mode: str) -> list[tuple[int, dict[str, Any]]]:
    out = io.BytesIO()
    with blocktrace.trace(blocktrace.ChainTracer(out, locals=mode)):  # type: ignore[arg-type]
        _assigns()
    lines = [_decode(line) for line in out.getvalue().splitlines()]
    code = next(e["code"] for e in lines if e.get("name") == "_assigns")
    first = _assigns.__code__.co_firstlineno
    return [
        (e["line"] - first, e["locals"])
        for e in lines
        if e.get("code") == code and "locals" in e
    ]


def test_locals_on_and_changes() -> None:
    """``on``: every name at each line start; ``changes``: only what changed."""
    assert _locals_by_line("on") == [
        (1, {}),
        (2, {"a": 1}),
        (3, {"a": 1, "b": 2}),
        (4, {"a": 3, "b": 2}),
        (5, {"a": 3, "b": 2, "c": "[3, 2]"}),
        (6, {"a": 3, "b": 2, "c": "[3, 2, 4]"}),
    ]
    assert _locals_by_line("changes") == [
        (1, {}),
        (2, {"a": 1}),
        (3, {"b": 2}),
        (4, {"a": 3}),
        (5, {"c": "[3, 2]"}),
        (6, {"c": "[3, 2, 4]"}),  # mutated in place: its rendering changed
    ]
    out = io.BytesIO()
    with blocktrace.trace(blocktrace.ChainTracer(out)):
        _assigns()
    assert b'"locals"' not in out.getvalue()
