"""Functions traced by test_tracefunc.py (the tracefunc README examples and more).

Line numbers matter to the tests: add new functions at the end.
"""

from __future__ import annotations

import json


def demo(n: int) -> int:
    total = 0
    for i in range(n): total += i  # noqa: E701
    return total


def one_liner() -> int: x = 1; y = 2; return x + y  # noqa: E702


def target(x: int) -> int:
    return x + 1


def another(x: int) -> int: return target(x)


def wrapper(n: int) -> list[int]:
    out: list[int] = []
    for i in range(n): out.append(target(i))  # noqa: E701
    out.append(another(10))
    return out


def outer(x: int) -> int:
    def inner(y: int) -> int:
        return x + y
    return inner(5)


def comp(n: int) -> tuple[list[int], int, dict[str, int] | None, int]:
    a = [i * i for i in range(n) if i % 2]
    b = sum(j for j in range(n))
    if a:
        c: dict[str, int] | None = {k: v for k, v in zip("ab", a, strict=False)}
    else:
        c = None
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        d = 1
    return a, b, c, d


def crash(n: int) -> float:
    x = n * 2
    return x / 0


def fact(n: int) -> int:
    if n <= 1:
        return 1
    return n * fact(n - 1)


class Loud:
    """An object whose repr has a side effect: tracing must not call it."""

    calls = 0

    def __repr__(self) -> str:
        Loud.calls += 1
        return "Loud()"


def uses_loud() -> Loud:
    thing = Loud()
    return thing


def uses_library(n: int) -> int:
    text = json.dumps(list(range(n)))
    return len(text)


def long_loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def sort_desc(values: list[int]) -> list[int]:
    ordered = sorted(values, key=lambda v: -v)
    return ordered
