"""Recurses until the interpreter's limit, catches the RecursionError, goes on."""


def down(n: int) -> int:
    return down(n + 1)


def main() -> None:
    try:
        down(0)
    except RecursionError as exc:
        print("caught", type(exc).__name__)
    print(sum(range(10)))


if __name__ == "__main__":
    main()
