"""Functions traced by test_blocktrace_compat.py.  Line numbers matter to the
tests: add new functions at the end."""

from __future__ import annotations

from collections.abc import Iterator

SECRET = "s3cr3t"


# Demo Fibonacci function to trace (the 0.0.16 README example)
def fib(n: int) -> int:
    i, f1, f2 = 1, 1, 1
    while i < n:
        f1, f2 = f2, f1 + f2
        i += 1
    return f1


def divide(a: int, b: int) -> float:
    return a / b


def safe_divide(a: int, b: int) -> float | None:
    try:
        return divide(a, b)
    except ZeroDivisionError:
        return None


class Opaque:
    def __repr__(self) -> str:
        raise RuntimeError("repr must not be called")


def odd_return() -> Opaque:
    return Opaque()


def hidden(n: int) -> int:
    #*BTC IGNORELOCAL password
    password = SECRET + str(n)
    #*BTC IGNORENEXT
    total = len(password) + n
    return total


def counter(n: int) -> list[int]:
    seen = []
    for i in range(n): seen.append(i)  # noqa: E701
    return seen


def mutate() -> list[object]:
    items: list[object] = [1, 2]
    items[0] = 1.0
    items.append(3)
    items[1] = True
    return items


def mutate_long() -> int:
    items = list(range(50))
    items[5] = -5
    items.append(50)
    return len(items)


COUNTER = 0
SEEN: list[int] = []


def bump() -> int:
    global COUNTER
    COUNTER += 1
    SEEN.append(COUNTER)
    return COUNTER


def hidden_late(n: int) -> int:
    secret = SECRET + str(n)
    #*BTC IGNORELOCAL secret
    total = len(secret) + n
    return total


def reraises() -> int:
    try:
        return 10 // 0
    except ZeroDivisionError:
        raise


def cleans_up() -> None:
    try:
        reraises()
    finally:
        done = True  # noqa: F841


def raises_on() -> str:
    try:
        cleans_up()
    except ZeroDivisionError:
        pass
    try:
        return str(safe_divide(1, 0)) + str(divide(1, 0))
    except ZeroDivisionError as e:
        return str(e)


def evens(n: int) -> Iterator[int]:
    for i in range(n):
        got = yield i * 2
        if got:
            i += got


def takes_evens() -> int:
    g = evens(4)
    total = next(g) + g.send(0)
    total += sum(g)
    return total
