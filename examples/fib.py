"""A small program to trace: recursion, a loop, a caught exception."""

import sys


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def safe_div(a: int, b: int) -> float | None:
    try:
        return a / b
    except ZeroDivisionError:
        return None


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    total = sum(fib(i) for i in range(n))
    print(f"sum of the first {n} Fibonacci numbers: {total}")
    print(f"1/0 -> {safe_div(1, 0)}")
