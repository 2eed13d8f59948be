"""Local-variable corner cases that reading ``f_locals`` must not disturb:
nonlocal, del, inlined comprehensions, ``locals()`` writes, exec, class
bodies, generators receiving values."""

from collections.abc import Generator


def f() -> int:
    x = 1

    def g() -> int:
        nonlocal x
        x += 10
        return x

    g()
    y = x
    del x
    try:
        print(x)  # type: ignore[misc]
    except NameError as e:
        print("deleted:", e)
    z = [y for y in range(3)]
    loc = locals()
    loc["w"] = 5
    print(sorted(k for k in locals() if k != "loc"), y, z)
    exec("q = 7")
    print("q" in locals())
    return y


class C:
    a = 1
    b = a + 1
    print(sorted(k for k in locals() if not k.startswith("__")))


def gen() -> Generator[int, int, None]:
    v = 0
    while True:
        got = yield v
        v = got * 2


print(f(), C.b)
it = gen()
next(it)
print(it.send(4), it.send(5))
