"""An endless loop that tries to survive running out of gas: ``except
Exception`` must not swallow it, ``except BaseException`` must not continue."""

import sys


def spin() -> None:
    n = 0
    while True:
        try:
            n += 1
        except Exception:
            print("swallowed by except Exception")


def main() -> None:
    while True:
        try:
            spin()
        except BaseException:
            print("caught by except BaseException, carrying on")


if __name__ == "__main__":
    print("start", flush=True)
    main()
    sys.exit(0)
