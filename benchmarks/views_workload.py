"""The workload every view benchmark traces (imported by bench_views.py and, in
the old tools' own virtual environment, by views_old_tools.py: plain Python,
no blocktrace imports)."""

from __future__ import annotations


def fib(n: int) -> int:
    i, f1, f2 = 1, 1, 1
    while i < n:
        f1, f2 = f2, f1 + f2
        i += 1
    return f1


def stats(values: list[float]) -> tuple[float, float]:
    total = 0.0
    squares = 0.0
    for v in values:
        total += v
        squares += v * v
    mean = total / len(values)
    return mean, squares / len(values) - mean * mean


def work(n: int) -> float:
    acc = 0.0
    for k in range(n):
        acc += fib(k % 20)
    data = [float(x % 7) for x in range(n)]
    mean, var = stats(data)
    return acc + mean + var
