"""For --include/--exclude/--target: a main script that uses a helper module."""

import sys

import scopelib


def local(x: int) -> int:
    return x - 1


print(scopelib.target(local(5)), scopelib.apply(local, 3))
sys.exit(0)
