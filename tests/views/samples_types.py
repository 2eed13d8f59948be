# mypy: ignore-errors
# (deliberately unannotated: the annotations are what the type tracer infers)
"""Unannotated code for the type tracer tests (annotations are what we infer)."""

import decimal

SCALE = 3


class Account:
    def __init__(self, owner, balance=0):
        self.owner = owner
        self.balance = balance
        self.history = []

    def deposit(self, amount):
        self.balance += amount
        self.history.append(amount)
        return self.balance

    @staticmethod
    def parse(text):
        return decimal.Decimal(text)


def total(values, *extra, start=0, **named):
    result = start
    for v in values:
        result += v * SCALE
    for v in extra:
        result += v
    for v in named.values():
        result += v
    return result


def maybe(flag):
    if flag:
        return "yes"
    return None


def countdown(n):
    while n > 0:
        yield n
        n -= 1


def loop(n):
    acc = 0
    for i in range(n):
        acc += i
    return acc


def late_change(n):
    value = 0
    for i in range(n):
        value = i if i < n - 1 else str(i)
    return value
