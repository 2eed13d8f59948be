"""Runs until killed: for the test that SIGKILLs a traced process mid-run."""

import sys


def step(n: int) -> int:
    return (n * 7 + 3) % 1_000_003


def main() -> None:
    n = 0
    print("running", flush=True)
    while True:
        n = step(n)


if __name__ == "__main__":
    main()
    sys.exit(0)
