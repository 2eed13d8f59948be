"""Objects whose ``__repr__``/``__str__``/``__eq__``/``__hash__`` raise, mutate
the program's state or are huge: tracing with locals on must change nothing."""

import sys

CALLS: list[str] = []


class Raises:
    def __repr__(self) -> str:
        raise RuntimeError("repr must not be called")

    def __str__(self) -> str:
        raise RuntimeError("str must not be called")


class Mutates:
    def __repr__(self) -> str:
        CALLS.append("repr")
        return "Mutates()"

    def __eq__(self, other: object) -> bool:
        CALLS.append("eq")
        return self is other

    def __hash__(self) -> int:
        CALLS.append("hash")
        return 1


class Huge:
    def __repr__(self) -> str:
        CALLS.append("huge")
        return "x" * 10_000_000


class SneakyList(list[int]):
    def __iter__(self):  # type: ignore[no-untyped-def]
        CALLS.append("iter")
        return super().__iter__()


class BadError(Exception):
    def __str__(self) -> str:
        CALLS.append("error str")
        raise RuntimeError("str of the exception must not be called")


def work() -> int:
    r, m, h, s = Raises(), Mutates(), Huge(), SneakyList([1, 2, 3])
    big = "y" * 1_000_000
    nested = [[[[[1]]]]] * 100
    total = len(big) + len(nested)
    try:
        raise BadError("bad")
    except BadError:
        total += 1
    del r, m, h, s
    return total


if __name__ == "__main__":
    result = work()
    print(f"result={result} calls={CALLS}")
    sys.exit(0 if not CALLS else 5)
