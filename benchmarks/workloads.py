"""Workloads for bench_tracers.py: user code (in scope by default)."""

from __future__ import annotations

import json
import re
import textwrap


def arithmetic(n: int = 20_000) -> int:
    """A tight loop of integer arithmetic."""
    total = 0
    for i in range(n):
        total += (i * 7 + 3) % 11
    return total


class Account:
    def __init__(self, owner: str, balance: int) -> None:
        self.owner = owner
        self.balance = balance
        self.history: list[int] = []

    def deposit(self, amount: int) -> None:
        self.balance += amount
        self.history.append(amount)

    def total(self) -> int:
        return self.balance


def objects(n: int = 2_000) -> int:
    """Calls, attribute access, object creation."""
    accounts = [Account(f"a{i}", i) for i in range(10)]
    for i in range(n):
        accounts[i % 10].deposit(i)
    return sum(a.total() for a in accounts)


_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
) * 6
_WORD = re.compile(r"\b\w{5,}\b")


def stdlib(n: int = 30) -> int:
    """Most of the time in the standard library's Python code (textwrap, json, re)."""
    size = 0
    for _ in range(n):
        wrapped = textwrap.fill(_LOREM, 40)
        words = _WORD.findall(wrapped)
        size += len(json.loads(json.dumps({"w": words})))
    return size


def _fib(n: int) -> int:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


def fib(n: int = 20) -> int:
    """Recursive calls: a call and a return every few instructions (issue 18)."""
    return _fib(n)


WORKLOADS = {"arithmetic": arithmetic, "objects": objects, "stdlib": stdlib, "fib": fib}
