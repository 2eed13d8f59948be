"""Calls and returns in C (``_chook.CallHook``): the stepper's PY_START/PY_RETURN
callbacks of the common case write the same bytes as the pure-Python reference
(``BLOCKTRACE_PURE=1``), on programs with recursion, generators, exceptions,
threads and odd return values, at every level and with the options that take
the Python path (a clock, values, a size limit); real processes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from blocktrace._native import extension
from blocktrace.format.callline import call_body, call_pieces, return_body
from tests.vm.processes import mode_env, run_in_mode

_chook = extension("blocktrace.vm._chook")

PROGRAM = r'''
import sys, threading

sys.setswitchinterval(100)  # threads take turns only where they block: one order
KEEP = []  # exceptions kept alive: object numbers are by id, which a dead one frees

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

class Thing:
    pass

class Str(str):
    pass

ODD = [None, True, False, 0, -1, 2**63 - 1, -(2**63) + 1, 2**63, -(2**63), 10**40,
       "", "plain", 'quote " and \\ and \n tab\t', "é\u2028\x7f\x00\udc80", "x" * 200,
       "y" * 201, "\x01" * 200, "\U0001f600" * 90, 1.5, -0.0, float("nan"), float("inf"),
       1e100, (1, "a"), [1, [2, [3, [4]]]], {"k": (1,)}, b"bytes", Thing(), Str("s"), 3j,
       range(3), {1, 2}]

def odd(i):
    return ODD[i]

def gen(n):
    for i in range(n):
        got = yield i
        if got:
            yield got

def deep(n):
    if n == 0:
        raise ValueError("bottom")
    return deep(n - 1)

def caught():
    try:
        deep(5)
    except ValueError as exc:
        KEEP.append(exc)
        return str(exc)

GATE = threading.Lock()

def worker(out):
    with GATE:  # runs once the main thread waits in join (untraced): one order
        out.append(fib(6))

def main():
    fib(10)
    for i in range(len(ODD)):
        odd(i)
    g = gen(3)
    next(g)
    g.send("hi")
    list(g)
    g2 = gen(5)
    next(g2)
    try:
        g2.throw(KeyError("k"))
    except KeyError as exc:
        KEEP.append(exc)
    caught()
    if len(sys.argv) > 1 and sys.argv[1] == "threads":
        out = []
        t = threading.Thread(target=worker, args=(out,))
        GATE.acquire()
        t.start()
        GATE.release()
        t.join()
        fib(5)
    print("done", fib(12))

main()
'''

GENERATORS = r'''
import asyncio, sys, threading

sys.setswitchinterval(100)  # threads take turns only where they block: one order
KEEP = []  # objects kept alive: object numbers are by id, which a dead one frees

class Thing:
    pass

def count(n):
    for i in range(n):
        yield i
    return "counted"

def relay(n):
    got = yield from count(n)
    yield got
    yield from (x * 2 for x in range(n))

def echo():
    got = None
    while True:
        try:
            got = yield got
        except KeyError as exc:
            KEEP.append(exc)
            got = "caught"

def failing():
    yield 1
    raise ValueError("out of a generator")

def values():
    for v in (None, True, 0, -1, 2**63, "s", 'q"\\', "x" * 300, 1.5, (1,), Thing()):
        KEEP.append(v)
        yield v

def stopping():
    yield 1
    raise StopIteration  # a RuntimeError from the generator

async def leaf(i):
    await asyncio.sleep(0)
    return i * 3

async def tree(n):
    total = 0
    for i in range(n):
        total += await leaf(i)
    return total

async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i

async def amain():
    got = await asyncio.gather(tree(3), tree(2))
    async for i in agen(3):
        got.append(i)
    return got

def resumed_in_a_thread(g):
    next(g)
    next(g)

def main():
    print(sum(x * x for x in range(20)), list(relay(3)), list(values())[:3])
    e = echo()
    next(e)
    e.send("hi")
    e.throw(KeyError("k"))
    e.send("again")
    e.close()
    g = count(10)
    next(g)
    next(g)
    del g  # abandoned mid-way: closed when it dies
    f = failing()
    next(f)
    try:
        next(f)
    except ValueError as exc:
        KEEP.append(exc)
    try:
        list(stopping())
    except RuntimeError as exc:
        KEEP.append(exc)
    print(asyncio.run(amain()))
    if len(sys.argv) > 1 and sys.argv[1] == "threads":
        g = count(5)
        next(g)
        t = threading.Thread(target=resumed_in_a_thread, args=(g,))
        t.start()
        t.join()
        print(list(g))
    print("done", list(relay(2)))

main()
'''

_HASH = re.compile(rb',"hash":"[0-9a-f]{64}"\}$')
_CLOCK = re.compile(rb',"clock":\d+')
_ADDRESS = re.compile(rb" at 0x[0-9a-f]+")  # --repr of an object: where it lives


def _lines(path: Path) -> list[bytes]:
    """The trace's lines without what differs between two runs of one program:
    hash members, the header's and summary's times and process, clock values."""
    out = []
    for raw in path.read_bytes().splitlines():
        body = _ADDRESS.sub(b" at 0x0", _CLOCK.sub(b',"clock":0', _HASH.sub(b"}", raw)))
        member = json.loads(body)
        if "blocktrace" in member or "gasUsed" in member:
            for key in ("start", "pid", "argv", "time"):
                member.pop(key, None)
            body = json.dumps(member, sort_keys=True).encode()
        out.append(body)
    return out


def _record(
    tmp_path: Path, pure: bool, options: list[str], argv: list[str], program: str = PROGRAM
) -> list[bytes]:
    script = tmp_path / "prog.py"
    script.write_text(program)
    out = tmp_path / ("pure.jsonl" if pure else "c.jsonl")
    printed = run_in_mode(
        [sys.executable, "-m", "blocktrace", "run", "--force", "-o", str(out),
         "--genesis", "00" * 16, *options, str(script), *argv],
        tmp_path, pure,
    )
    assert "done" in printed
    return _lines(out)


@pytest.mark.skipif(_chook is None, reason="the C hook is not built (or BLOCKTRACE_PURE is set)")
@pytest.mark.parametrize(
    ("options", "argv"),
    [
        ([], []),
        (["--level", "call"], []),
        (["--level", "line"], []),
        (["--level", "call"], ["threads"]),
        ([], ["threads"]),
        (["--clock", "--level", "call"], []),
        (["--locals", "changes", "--level", "line"], []),
        (["--max-size", "20K", "--level", "call"], []),
        (["--repr", "--level", "call"], []),
    ],
    ids=["op", "call", "line", "call-threads", "op-threads", "clock", "locals", "max-size",
         "repr"],
)
def test_the_c_calls_write_the_pure_paths_bytes(
    tmp_path: Path, options: list[str], argv: list[str]
) -> None:
    c = _record(tmp_path, False, options, argv)
    pure = _record(tmp_path, True, options, argv)
    assert len(c) == len(pure)
    for i, (a, b) in enumerate(zip(c, pure, strict=True)):
        assert a == b, f"line {i + 1}"
    assert sum(b'"event":"return"' in line for line in c) > 10


@pytest.mark.skipif(_chook is None, reason="the C hook is not built (or BLOCKTRACE_PURE is set)")
@pytest.mark.parametrize(
    ("options", "argv", "thread"),
    [
        (["--level", "call"], [], "1"),
        (["--level", "call"], [], "0"),
        (["--level", "line"], [], "1"),
        ([], [], "1"),
        (["--level", "call"], ["threads"], "1"),
        (["--locals", "changes", "--level", "call"], [], "1"),
        (["--clock", "--level", "call"], [], "1"),
        (["--repr", "--level", "call"], [], "0"),
    ],
    ids=["call", "call-inline", "line", "op", "call-threads", "locals", "clock", "repr"],
)
def test_generators_and_coroutines_in_c_write_the_pure_paths_bytes(
    tmp_path: Path, options: list[str], argv: list[str], thread: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Resumes and yields (``CallHook`` kinds 2 and 3) of generator expressions,
    ``yield from``, ``send``/``throw``/``close``, a generator abandoned mid-way,
    one ended by an exception or a ``StopIteration``, one resumed on another
    thread, coroutines and an async generator driven by asyncio: the same bytes
    as the pure path."""
    monkeypatch.setenv("BLOCKTRACE_WRITER_THREAD", thread)
    c = _record(tmp_path, False, options, argv, GENERATORS)
    pure = _record(tmp_path, True, options, argv, GENERATORS)
    assert len(c) == len(pure)
    for i, (a, b) in enumerate(zip(c, pure, strict=True)):
        assert a == b, f"line {i + 1}"
    assert sum(b'"kind":"yield"' in line for line in c) > 40
    assert sum(b'"kind":"resume"' in line for line in c) > 40
    if argv:
        assert any(b'"kind":"resume"' in line and b'"thread":2' in line for line in c)


@pytest.mark.skipif(_chook is None, reason="the C hook is not built (or BLOCKTRACE_PURE is set)")
@pytest.mark.parametrize("options", [[], ["--level", "call"]], ids=["op", "call"])
def test_the_inline_writers_c_entries_write_the_pure_paths_bytes(
    tmp_path: Path, options: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the writer's thread (one CPU's default) the hooks call the inline
    writer's C entries (events/csrc/sink.h): the same bytes."""
    monkeypatch.setenv("BLOCKTRACE_WRITER_THREAD", "0")
    c = _record(tmp_path, False, options, [])
    assert c == _record(tmp_path, True, options, [])
    assert sum(b'"event":"return"' in line for line in c) > 10


INCODE = r'''
import sys, blocktrace
from blocktrace.vm.stepper import active_stepper

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def count(n):
    yield from range(n)

tracer = blocktrace.ChainTracer(sys.argv[1], force=True, level="call")
with blocktrace.trace(tracer):
    fib(6)
    list(count(3))
    entries = active_stepper()._call_entries
    resumes = active_stepper()._resume_entries
    print("entries", None if entries is None else len(entries))
    print("resumes", None if resumes is None else len(resumes))
'''


@pytest.mark.parametrize("pure", [False, True], ids=["c", "pure"])
def test_the_c_calls_are_used_where_built(tmp_path: Path, pure: bool) -> None:
    if not pure and _chook is None:
        pytest.skip("the C hook is not built (or BLOCKTRACE_PURE is set here)")
    script = tmp_path / "incode.py"
    script.write_text(INCODE)
    printed = run_in_mode([sys.executable, str(script), str(tmp_path / "t.jsonl")], tmp_path, pure)
    want = ["None", "None"] if pure else ["2", "1"]
    assert printed.split() == ["entries", want[0], "resumes", want[1]]


FAILING = r'''
import sys, blocktrace

class Stream:
    """Takes argv[2] writes (one a line), then fails: a line the C hooks write."""
    def __init__(self):
        self.calls = 0
    def write(self, data):
        self.calls += 1
        if self.calls > int(sys.argv[2]):
            raise OSError("disk gone")
        return len(data)
    def flush(self):
        pass
    def seekable(self):
        return False

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def countdown(n):
    while n:
        yield n
        n -= 1

tracer = blocktrace.ChainTracer(Stream(), level="call", buffer_size=1)
with blocktrace.trace(tracer):
    print(fib(10) if sys.argv[1] == "fib" else sum(countdown(10)))
'''


@pytest.mark.parametrize(("program", "writes"), [("fib", 8), ("generator", 8), ("generator", 9)],
                         ids=["return", "resume", "yield"])
def test_a_failing_line_detaches_the_tracer_as_in_python(
    tmp_path: Path, program: str, writes: int
) -> None:
    """A line after the first few fails: a return, resume or yield line (written in C)."""
    import subprocess

    script = tmp_path / "failing.py"
    script.write_text(FAILING)
    seen = []
    for pure in (False, True):
        proc = subprocess.run([sys.executable, str(script), program, str(writes)], cwd=tmp_path,
                              env=mode_env(pure), capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "55\n"
        seen.append(proc.stderr)
    assert "failed at" in seen[0] and "detached" in seen[0]
    assert seen[0] == seen[1]


def test_call_and_return_bodies() -> None:
    pre, suf = call_pieces("call", 3, "f", "/x/a.py", 7)
    assert call_body(pre, 2, suf) == (
        b'{"event":"call","kind":"call","depth":2,"code":3,"name":"f","file":"/x/a.py",'
        b'"firstLine":7')
    assert return_body("return", 2, 3, 10, 255, b"null") == (
        b'{"event":"return","kind":"return","depth":2,"code":3,"pc":10,"gas":"0xff",'
        b'"value":null')
    assert return_body("yield", 2, 3, 10, 255, None) == (  # a tracer without return values
        b'{"event":"return","kind":"yield","depth":2,"code":3,"pc":10,"gas":"0xff"')


class _Leaving:
    def __init__(self) -> None:
        self.exit_exception: BaseException | None = None


@pytest.mark.skipif(_chook is None, reason="the C hook is not built (or BLOCKTRACE_PURE is set)")
def test_the_scope_filter_passes_code_in_scope_and_the_exits_only() -> None:
    def inside() -> None:
        pass

    def outside() -> None:
        pass

    infos = {id(inside.__code__): object()}
    vm = _Leaving()
    seen: list[tuple[object, int, BaseException]] = []

    def fallback(code: object, offset: int, exc: BaseException) -> str:
        seen.append((code, offset, exc))
        return "handled"

    plain = _chook.ScopeFilter(infos, fallback, vm)
    raising = _chook.ScopeFilter(infos, fallback, vm, 1)
    handling = _chook.ScopeFilter(infos, fallback, vm, 2)
    error, leave, leave_sub = ValueError("v"), SystemExit(3), type("Sub", (SystemExit,), {})()
    assert plain(inside.__code__, 4, error) == "handled"
    assert plain(outside.__code__, 4, error) is None
    assert plain(outside.__code__, 4, leave) is None  # RERAISE, PY_UNWIND, PY_THROW
    assert raising(outside.__code__, 6, leave) == "handled"  # RAISE keeps a SystemExit
    assert raising(outside.__code__, 6, leave_sub) is None  # as the stepper: exact type only
    assert handling(outside.__code__, 8, error) is None
    vm.exit_exception = error
    assert handling(outside.__code__, 8, error) == "handled"  # the exit being handled
    assert seen == [(inside.__code__, 4, error), (outside.__code__, 6, leave),
                    (outside.__code__, 8, error)]
    with pytest.raises(TypeError):
        plain(inside.__code__, 4)


LIBRARY_EXIT = r'''
import argparse, sys
parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int)
try:
    parser.parse_args(["--n", "x"])  # argparse (out of scope) raises SystemExit(2)
except SystemExit as exc:
    print("caught", exc.code)
raise SystemExit(5)
'''


@pytest.mark.parametrize("pure", [False, True], ids=["c", "pure"])
def test_a_systemexit_from_library_code_is_the_programs_exit(tmp_path: Path, pure: bool) -> None:
    import subprocess

    script = tmp_path / "leave.py"
    script.write_text(LIBRARY_EXIT)
    out = tmp_path / "t.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "-o", str(out), "--level", "call", str(script)],
        cwd=tmp_path, env=mode_env(pure), capture_output=True, text=True, timeout=120,
        check=False)
    assert proc.returncode == 5, proc.stderr
    assert "caught 2" in proc.stdout
    summary = json.loads(out.read_bytes().splitlines()[-1])
    assert summary["output"] == "5" and summary["error"] == "SystemExit: 5"
