"""A program that behaves differently by its first argument, for comparing
``blocktrace run`` with plain ``python``: output, argv, stdin, exit status."""

import atexit
import sys


def _bye() -> None:
    print("atexit handler ran")


def deep(n: int, then: str) -> None:
    if n > 0:
        deep(n - 1, then)
        return
    if then == "exit3":
        sys.exit(3)
    if then == "exitmsg":
        sys.exit("leaving with a message")
    if then == "raise":
        raise ValueError("deep failure")
    if then == "exit0":
        sys.exit(0)
    if then == "exitnone":
        sys.exit()


def main() -> None:
    atexit.register(_bye)
    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    print(f"argv={sys.argv[1:]!r}")
    print(f"name={__name__}")
    print("to stderr", file=sys.stderr)
    if mode == "stdin":
        data = sys.stdin.read()
        print(f"stdin={data!r}")
    deep(5, mode)
    print("done")


if __name__ == "__main__":
    main()
