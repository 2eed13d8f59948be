"""A program for the query tables' odd lines: threads, generators resumed and
thrown into, exceptions that unwind several frames, names and values with
escapes and non-ASCII text, return values of every JSON form."""

import threading


def café(n):
    return f"naïve {n} \"quoted\" back\\slash\ttab"


def values():
    for v in (None, True, False, 0, -7, 12345678901234567890, 1.5, -0.0, "plain", "é",  # noqa: UP028 (a yield each)
              [1, "two"], {"k": None}):
        yield v


def deep(n):
    if n == 0:
        raise KeyError("the 'key' \"here\"")
    return deep(n - 1)


def catcher():
    try:
        deep(3)
    except KeyError:
        pass
    try:
        raise ValueError()
    except ValueError:
        pass


def gen():
    try:
        while True:
            yield 1
    except RuntimeError:
        yield "thrown"


def worker(k):
    return sum(i * k for i in range(20))


def main():
    café(1)
    for _ in values():
        pass
    catcher()
    g = gen()
    next(g)
    g.throw(RuntimeError("in"))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


main()
