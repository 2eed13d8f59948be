"""A small program whose trace seeds the reader fuzz tests: calls, a loop, a
generator, a handled exception, and locals of many types (run with --locals)."""


def squares(n):
    for i in range(n):
        yield i * i


def risky(x):
    if x == 3:
        raise ValueError(f"bad value {x}")
    return {"x": x, "half": x / 2, "name": "é\u2603", "items": [x, None, True]}


def main():
    total = sum(squares(5))
    seen = []
    for x in range(5):
        try:
            seen.append(risky(x))
        except ValueError as exc:
            seen.append(str(exc))
    big = 2**70
    print(total, len(seen), big > 0)


main()
