"""A program for the query tests: recursion, exceptions that unwind and are handled,
a generator, values that change."""


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def fails(x):
    if x > 2:
        raise ValueError(f"too big: {x}")
    return x


def squares(n):
    for i in range(n):
        yield i * i


def main():
    total = 0
    for i in range(5):
        try:
            total += fails(i)
        except ValueError:
            total -= 1
    total += fact(6)
    total += sum(squares(4))
    print(total)


main()
