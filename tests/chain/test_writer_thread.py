"""The C line writer with its own thread (``LineWriter(threaded=True)``, issue 18
item 1): the same bytes, chain, tree and write behaviour as the inline C writer and
the pure-Python reference, whatever the interleaving; fork, exit, signals.

The thread makes the lines; the calls only queue records, and hand finished chunks
to ``write`` at points that depend only on the lines (never on the thread's
timing), so these tests compare whole outputs and states, not timings."""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blocktrace
from blocktrace import _native
from blocktrace.chain.verify import verify_file
from blocktrace.chain.writer import PyLineWriter as _PyLineWriter
from blocktrace.format import rules
from blocktrace.format.reader import check_chain
from blocktrace.format.versions import LINES_PER_LEAF, SUMMARY_PREFIX
from tests.chain.v4ref import V4Reference

if _native.PURE:  # the traced runs here would record with the pure writer: no thread
    pytest.skip("C line writer switched off (BLOCKTRACE_PURE is set)", allow_module_level=True)
_cwriter = pytest.importorskip(
    "blocktrace.chain._cwriter",
    reason="the C extension is not built (python setup.py build_ext --inplace)",
)
LineWriter: Any = functools.partial(_cwriter.LineWriter, version=3)
PyLineWriter: Any = functools.partial(_PyLineWriter, version=3)
"""Both writers pinned to format version 3 where a test does not say (its
``summary()`` is version 2's rule); ``version=`` overrides it."""

PREFIX = b'{"pc":12,"op":100,"gas":"0x'
SUFFIX = b',"opName":"LOAD_FAST","line":5,"code":3'
ROOT = Path(__file__).resolve().parents[2]

_step = st.one_of(
    st.tuples(st.just("op"), st.integers(0, 5), st.integers(-(2**63), 2**63 - 1),
              st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("line"), st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" "))),
    st.tuples(st.just("big"), st.integers(60_000, 200_000)),
    st.tuples(st.just("close_leaf")),
    st.tuples(st.just("flush")),
    st.tuples(st.just("state")),
)


def _pure_writers(version: int) -> list[Any]:
    """The Python writers of this version: PyLineWriter (version 4 once it takes a
    version), and for version 4 the reference made of ``rules.LeafChain`` alone."""
    takes_version = "version" in inspect.signature(PyLineWriter).parameters
    py = [functools.partial(PyLineWriter, version=version)] if takes_version else [PyLineWriter]
    if version == 4:
        return [V4Reference, *py] if takes_version else [V4Reference]
    return py


def _run(writer_args: dict[str, Any], steps: list[tuple[Any, ...]], *, pure: Any = None,
         ops_per_step: int = 1, seal: bool = True, file: Path | None = None
         ) -> tuple[bytes, list[Any]]:
    """The steps through a writer; its output and what it said.  pure: a Python
    writer to use instead of the C one (``_pure_writers``; ``writer_args``' version is
    its).  file: the C writer writes that file itself (fd=), and the output is the
    file's bytes."""
    version = writer_args.get("version", 3)
    if file is not None:
        with open(file, "wb", buffering=0) as f:
            _, seen = _steps(LineWriter(f.write, fd=f.fileno(), **writer_args), steps,
                             bytearray(), ops_per_step, seal, version)
        return file.read_bytes(), seen
    out = bytearray()
    if pure is not None:
        writer_args = {k: v for k, v in writer_args.items() if k != "version"}
    make = LineWriter if pure is None else pure
    return _steps(make(out.extend, **writer_args), steps, out, ops_per_step, seal, version)


def _steps(w: Any, steps: list[tuple[Any, ...]], out: bytearray, ops_per_step: int,
           seal: bool, version: int = 3) -> tuple[bytes, list[Any]]:
    events = [object() for _ in range(6)]
    for i, e in enumerate(events[:5]):  # the sixth has no site: the caller's to write
        w.add_site(id(e), PREFIX + b"%d" % i, SUFFIX, e)
    seen: list[Any] = []
    for step in steps:
        kind = step[0]
        if kind == "op":
            for k in range(ops_per_step):
                seen.append(w.op(events[step[1]], step[2] + k if step[2] < 2**62 else step[2],
                                 step[3]))
        elif kind == "line":
            w.line(b'{"x":' + step[1].hex().encode())
        elif kind == "big":
            w.line(b'{"big":"' + b"y" * step[1] + b'"')
        elif kind == "close_leaf":
            w.close_leaf()
        elif kind == "flush":
            w.flush()
        else:  # (buffered: the thread's writer holds up to LAG more chunks)
            seen.append((w.head, w.lines, w.tree_size, w.root()))
    if seal and version == 4:  # an ordinary line, the last of the last leaf
        w.line(b'{"output":""')
        w.close_leaf()
    elif seal:
        w.summary(b'{"output":""')
    w.flush()
    seen.append((w.head, w.lines, w.tree_size, w.root(), w.buffered))
    return bytes(out), seen


_runs = given(
    steps=st.lists(_step, max_size=40),
    buffer_size=st.sampled_from([1, 100, 4096, 65536]),
    per_leaf=st.sampled_from([0, 1, 3, 16]),
    ops_per_step=st.sampled_from([1, 50, 2000]),
    seal=st.booleans(),
    thread_ops=st.booleans(),
    ring_batch=st.sampled_from([1, 100, 2048, 16384]),
    thread_writes=st.booleans(),
    write_after=st.sampled_from([1, 2, 8, 16]),
)


@pytest.mark.parametrize("version", [3, 4])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_runs
def test_threaded_matches_inline_and_the_reference(
    version: int, steps: list[tuple[Any, ...]], buffer_size: int, per_leaf: int,
    ops_per_step: int, seal: bool, thread_ops: bool, ring_batch: int, thread_writes: bool,
    write_after: int
) -> None:
    """ring_batch: the records reach the thread in batches of that many bytes, and
    before every wait for it (a drain, a full ring, a chunk due to write)."""
    args = {"buffer_size": buffer_size, "lines_per_leaf": per_leaf, "version": version}
    threaded = _run({**args, "threaded": True, "thread_ops": thread_ops,
                     "ring_batch": ring_batch, "thread_writes": thread_writes,
                     "write_after": write_after}, steps,
                    ops_per_step=ops_per_step, seal=seal)
    assert threaded == _run(args, steps, ops_per_step=ops_per_step, seal=seal)
    for pure in _pure_writers(version):
        assert threaded == _run(args, steps, pure=pure, ops_per_step=ops_per_step, seal=seal)


@pytest.mark.parametrize("version", [3, 4])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_runs
def test_threaded_with_a_file_of_its_own_matches_the_reference(
    version: int, steps: list[tuple[Any, ...]], buffer_size: int, per_leaf: int,
    ops_per_step: int, seal: bool, thread_ops: bool, ring_batch: int, thread_writes: bool,
    write_after: int
) -> None:
    """fd=: the chunks the thread closes are written by whichever thread gets to them
    (the program's where its count closes one or the ring is full, the writer's when
    they pile up or it has nothing else to do; with thread_writes the writer's once
    write_after of them wait, several in one writev), in order: the file is the
    reference's bytes, and the chain's state the same at every point."""
    import tempfile

    args = {"buffer_size": buffer_size, "lines_per_leaf": per_leaf, "version": version}
    with tempfile.TemporaryDirectory(prefix="bt-writer-fd-") as tmp:
        threaded = _run({**args, "threaded": True, "thread_ops": thread_ops,
                         "ring_batch": ring_batch, "thread_writes": thread_writes,
                         "write_after": write_after}, steps,
                        ops_per_step=ops_per_step, seal=seal, file=Path(tmp) / "t.jsonl")
    for pure in _pure_writers(version):
        assert threaded == _run(args, steps, pure=pure, ops_per_step=ops_per_step, seal=seal)


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("per_leaf", [0, 16])
def test_every_body_length_and_stream_offset_matches_the_reference(
    per_leaf: int, version: int, tmp_path: Path
) -> None:
    """Bodies of every length from 1 to 320 bytes, each after lines that leave the leaf's
    stream at another offset in its 64-byte block: the thread's copy of each body into its
    chunk, and the stream's pending bytes, go by 16-byte moves and the 8/4/2/1-byte ones
    below that (sha256_copy_narrow, not memcpy) -- every length class, each way."""
    steps: list[tuple[Any, ...]] = []
    for n in range(1, 321):
        steps.append(("body", b"{" + bytes(97 + (i * 7 + n) % 26 for i in range(n - 1))))
        steps.append(("op", n % 5, n * 977, n % 9))
    args: dict[str, Any] = {"buffer_size": 4096, "lines_per_leaf": per_leaf}

    def run(w: Any, out: bytearray) -> bytes:
        events = [object() for _ in range(5)]
        for i, e in enumerate(events):
            w.add_site(id(e), PREFIX + b"%d" % i, SUFFIX, e)
        for step in steps:
            if step[0] == "body":
                w.line(step[1])
            else:
                w.op(events[step[1]], step[2], step[3])
        if version == 4:
            w.line(b'{"output":""')
            w.close_leaf()
        else:
            w.summary(b'{"output":""')
        w.flush()
        return bytes(out)

    wants = set()
    for pure in _pure_writers(version):
        reference = bytearray()
        wants.add(run(pure(reference.extend, **args), reference))
    assert len(wants) == 1
    (want,) = wants
    args["version"] = version
    threaded = bytearray()
    assert run(LineWriter(threaded.extend, threaded=True, **args), threaded) == want
    path = tmp_path / "t.jsonl"
    with open(path, "wb", buffering=0) as f:
        run(LineWriter(f.write, fd=f.fileno(), threaded=True, **args), bytearray())
    assert path.read_bytes() == want
    inline = bytearray()
    assert run(LineWriter(inline.extend, **args), inline) == want


def test_write_is_called_at_points_that_depend_on_the_lines_only() -> None:
    """Chunks are handed on by the calls, LAG chunks behind the thread's closing
    of them: the same calls get the same writes, run after run."""
    def calls() -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = []
        n = [0]
        w = LineWriter(lambda b: got.append((n[0], len(b))), buffer_size=1000, threaded=True)
        e = object()
        w.add_site(id(e), PREFIX, SUFFIX, e)
        for n[0] in range(20_000):
            w.op(e, n[0], 1)
        w.flush()
        return got

    first = calls()
    assert len(first) > 100
    for _ in range(3):
        assert calls() == first


def test_the_thread_ends_with_stop_thread_and_the_writer_goes_on_inline() -> None:
    out = bytearray()
    w = LineWriter(out.extend, buffer_size=500, lines_per_leaf=3, threaded=True)
    ref_out = bytearray()
    ref = PyLineWriter(ref_out.extend, buffer_size=500, lines_per_leaf=3)
    e = object()
    for x in (w, ref):
        x.add_site(id(e), PREFIX, SUFFIX, e)
    assert w.threaded
    for i in range(3000):
        w.op(e, i, 2)
        ref.op(e, i, 2)
    w.stop_thread()
    assert not w.threaded
    assert w.buffered < 500  # the finished chunks went to write: what the inline path holds
    for i in range(100):
        w.op(e, i, 3)
        ref.op(e, i, 3)
    w.summary(b'{"output":""')
    ref.summary(b'{"output":""')
    w.flush()
    ref.flush()
    assert bytes(out) == bytes(ref_out)
    assert w.head == ref.head


@pytest.mark.parametrize("batch", [0, -2, 16385])
def test_ring_batch_out_of_range_is_refused(batch: int) -> None:
    with pytest.raises(ValueError, match="ring_batch must be 1 to 16384"):
        LineWriter(bytearray().extend, threaded=True, ring_batch=batch)


def test_on_leaf_needs_the_inline_writer() -> None:
    with pytest.raises(ValueError, match="threaded"):
        LineWriter(bytearray().extend, on_leaf=lambda: None, threaded=True)


def test_a_failing_write_loses_nothing_and_writes_nothing_twice() -> None:
    out = bytearray()
    fail = [False]

    def write(data: bytes) -> None:
        if fail[0]:
            fail[0] = False
            raise OSError(28, "No space left on device")
        out.extend(data)

    w = LineWriter(write, buffer_size=300, lines_per_leaf=2, threaded=True)
    e = object()
    w.add_site(id(e), PREFIX, SUFFIX, e)
    done = 0
    failures = 0
    while done < 5000:
        if done % 997 == 0:
            fail[0] = True
        try:
            w.op(e, done, 1)
        except OSError:
            failures += 1
            continue  # the line was not added: added again
        done += 1
    w.summary(b'{"output":""')
    w.flush()
    assert failures >= 4
    ref_out = bytearray()
    ref = PyLineWriter(ref_out.extend, buffer_size=300, lines_per_leaf=2)
    ref.add_site(id(e), PREFIX, SUFFIX, e)
    for i in range(5000):
        ref.op(e, i, 1)
    ref.summary(b'{"output":""')
    ref.flush()
    assert bytes(out) == bytes(ref_out)


def _status(path: Path | str, version: int = 3) -> str:
    """verify_file's status; for version 4 the trace checked line by line by the
    reference alone, ``rules.LeafChain(version=4)`` (every whole line -- a torn last one
    is not part of the prefix -- must carry its hash), and by the readers."""
    if version != 4:
        return verify_file(str(path)).status
    complete = Path(path).read_bytes().split(b"\n")[:-1]
    assert complete and b'"blocktrace":4,' in complete[0]
    chain = rules.LeafChain(LINES_PER_LEAF, version=4)
    for n, raw in enumerate(complete, 1):
        split = rules.split_hash(raw)
        assert split is not None, n
        assert chain.check(split[0], raw + b"\n") == split[1], f"line {n} does not verify"
    status = "sealed" if complete[-1].startswith(SUMMARY_PREFIX) else "unsealed"
    # and the readers agree
    assert check_chain(path).status == status
    return status


def _python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


@pytest.mark.parametrize("buffer_size,per_leaf", [(4096, 16), (1 << 30, 2)])
def test_fork_the_child_and_the_parent_go_on(
    tmp_path: Path, buffer_size: int, per_leaf: int
) -> None:
    """A fork while lines are queued: the child (no thread) goes on inline from the
    same state, the parent with its thread; both end with the reference's bytes and
    tree.  With a buffer this large no chunk closes, so the finished leaves wait in
    the thread's queue until the fork pushes them into the tree."""
    result = _python(
        f"""
        import os, sys
        import functools
        from blocktrace.chain._cwriter import LineWriter
        from blocktrace.chain.writer import PyLineWriter
        LineWriter = functools.partial(LineWriter, version=3)
        PyLineWriter = functools.partial(PyLineWriter, version=3)
        PRE = b'{{"pc":1,"op":2,"gas":"0x'; SUF = b',"opName":"NOP","line":1,"code":1'
        e = object()
        def run(make, who):
            out = bytearray()
            w = make(out.extend, buffer_size={buffer_size}, lines_per_leaf={per_leaf},
                     **({{"threaded": True}} if make is LineWriter else {{}}))
            w.add_site(id(e), PRE, SUF, e)
            for i in range(30000):
                w.op(e, i, 1)
            return w, out
        w, out = run(LineWriter, "c")
        pid = os.fork()
        who = b"child" if pid == 0 else b"parent"
        for i in range(20000):
            w.op(e, i, 2)
        w.line(b'{{"who":"' + who + b'"')
        state = (w.tree_size, w.root())
        w.summary(b'{{"output":""'); w.flush()
        ref, ref_out = run(PyLineWriter, "r")
        for i in range(20000):
            ref.op(e, i, 2)
        ref.line(b'{{"who":"' + who + b'"')
        ok = state == (ref.tree_size, ref.root())
        ref.summary(b'{{"output":""'); ref.flush()
        ok = ok and bytes(out) == bytes(ref_out) and w.head == ref.head and w.root() == ref.root()
        if pid == 0:
            os._exit(0 if ok and not w.threaded else 3)
        _, status = os.waitpid(pid, 0)
        print(ok, w.threaded, os.waitstatus_to_exitcode(status))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "0"]


def test_fork_with_a_file_of_its_own_leaves_the_child_no_closed_chunk(tmp_path: Path) -> None:
    """fd=: at a fork every chunk the thread closed is written first, so the child's
    writer (inline) holds only the open chunk's bytes -- none the parent writes too --
    and the parent's file is the reference's."""
    trace = tmp_path / "t.jsonl"
    result = _python(
        f"""
        import os
        import functools
        from blocktrace.chain._cwriter import LineWriter
        from blocktrace.chain.writer import PyLineWriter
        LineWriter = functools.partial(LineWriter, version=3)
        PyLineWriter = functools.partial(PyLineWriter, version=3)
        PRE = b'{{"pc":1,"op":2,"gas":"0x'; SUF = b',"opName":"NOP","line":1,"code":1'
        e = object()
        f = open({str(trace)!r}, "wb", buffering=0)
        w = LineWriter(f.write, buffer_size=1024, lines_per_leaf=16, threaded=True,
                       fd=f.fileno())
        w.add_site(id(e), PRE, SUF, e)
        for i in range(40000):
            w.op(e, i, 1)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if w.buffered < 1024 else 3)  # the open chunk only
        _, status = os.waitpid(pid, 0)
        for i in range(1000):
            w.op(e, i, 2)
        w.summary(b'{{"output":""'); w.flush(); w.stop_thread(); f.close()
        out = bytearray()
        ref = PyLineWriter(out.extend, buffer_size=1024, lines_per_leaf=16)
        ref.add_site(id(e), PRE, SUF, e)
        for i in range(40000):
            ref.op(e, i, 1)
        for i in range(1000):
            ref.op(e, i, 2)
        ref.summary(b'{{"output":""'); ref.flush()
        print(os.waitstatus_to_exitcode(status), open({str(trace)!r}, "rb").read() == bytes(out))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True"]


@pytest.mark.parametrize("own_file", [False, True])
def test_leaves_finished_by_the_thread_reach_the_tree_in_order(
    tmp_path: Path, own_file: bool
) -> None:
    """The thread queues each finished leaf's stream; its hash and the tree's nodes
    are made by whoever gets there: the program's thread where a chunk closes (never,
    with a buffer this large) or before the tree is read, the thread itself once
    LEAF_CAP (1024) wait.  One line per leaf, 5000 lines: the thread makes room
    itself several times; the state read midway and at the end, the bytes and the
    root are the reference's."""
    def run(make: Any, file: Path | None) -> tuple[bytes, list[Any]]:
        out = bytearray()
        e = object()
        kw: dict[str, Any] = {} if make is PyLineWriter else {"threaded": True}
        seen: list[Any] = []
        with contextlib.ExitStack() as stack:
            write: Any = out.extend
            if file is not None:
                f = stack.enter_context(open(file, "wb", buffering=0))
                write, kw["fd"] = f.write, f.fileno()
            w = make(write, buffer_size=1 << 30, lines_per_leaf=1, **kw)
            w.add_site(id(e), PREFIX, SUFFIX, e)
            for n in (3000, 2000, 1):
                for i in range(n):
                    w.op(e, i, 1)
                seen.append((w.head, w.lines, w.tree_size, w.root()))
            w.summary(b'{"output":""')
            w.flush()
            seen.append((w.head, w.lines, w.tree_size, w.root()))
        return (file.read_bytes() if file is not None else bytes(out)), seen

    got = run(LineWriter, tmp_path / "t.jsonl" if own_file else None)
    assert got == run(PyLineWriter, None)
    assert got[1][0][2] == 3000


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("prefix_len,thread_ops", [(10, False), (10, True), (70_000, False)])
def test_op_bodies_made_by_the_program_s_thread_or_the_writer_s(
    prefix_len: int, thread_ops: bool, version: int
) -> None:
    """An op line's body is made by the program's thread into the ring (the thread
    copies and seals it), unless it is longer than a quarter of the ring (a site with a
    huge prefix) or the writer was asked (thread_ops): then the record names the site's
    pieces and the thread makes it.  Either way, with every width of gas and depth: the
    reference's bytes."""
    prefix = b'{"pc":12,"op":100,"x":"' + b"p" * prefix_len + b'","gas":"0x'
    values = [0, 1, 15, 16, 2**32, 2**63 - 1, -1, -(2**63)]

    def run(make: Any, **kw: Any) -> tuple[bytes, str, bytes]:
        out = bytearray()
        e = object()
        w = make(out.extend, buffer_size=4096, lines_per_leaf=3, version=version, **kw)
        w.add_site(id(e), prefix, SUFFIX, e)
        for gas in values:
            for depth in values:
                assert w.op(e, gas, depth)
        w.line(b'{"output":""')
        w.close_leaf()
        w.flush()
        return bytes(out), w.head, w.root()

    want = run(PyLineWriter)
    assert run(LineWriter, threaded=True, thread_ops=thread_ops) == want
    assert run(LineWriter, thread_ops=thread_ops) == want  # (inline: no ring, no matter)


@pytest.mark.parametrize("own_file", [False, True])
def test_start_thread_after_stop_thread_goes_on_with_the_same_chain(
    tmp_path: Path, own_file: bool
) -> None:
    """stop_thread, lines inline, start_thread (or start_thread_later and a line): the
    thread goes on from the chain's state (what was buffered is written first); the
    bytes are the reference's, the line count goes on."""
    path = tmp_path / "t.jsonl"
    f = open(path, "wb", buffering=0)  # noqa: SIM115
    w = LineWriter(f.write, buffer_size=4096, lines_per_leaf=16, threaded=True,
                   **({"fd": f.fileno()} if own_file else {}))
    ref_out = bytearray()
    ref = PyLineWriter(ref_out.extend, buffer_size=4096, lines_per_leaf=16)
    e = object()
    for x in (w, ref):
        x.add_site(id(e), PREFIX, SUFFIX, e)
    for rounds in range(3):
        for x in (w, ref):
            for i in range(7_000):
                x.op(e, i, rounds)
        w.stop_thread()
        assert not w.threaded
        for x in (w, ref):
            x.line(b'{"round":%d' % rounds)
        if rounds == 1:  # at the next line (where only a file of its own may be flushed)
            w.flush()
            w.start_thread_later()
            assert not w.threaded
            for x in (w, ref):
                x.op(e, -1, 0)
        else:
            w.start_thread()
        assert w.threaded
        assert (w.head, w.lines, w.tree_size) == (ref.head, ref.lines, ref.tree_size)
    for x in (w, ref):
        x.summary(b'{"output":""')
        x.flush()
    w.stop_thread()
    w.start_thread()  # after the summary: nothing more to make, no thread
    assert not w.threaded
    f.close()
    assert path.read_bytes() == bytes(ref_out)


_WORKS = """
import os, signal, sys, time
import blocktrace
from blocktrace.tracers.chain import ChainTracer
version = os.environ.get("BT_TEST_FORMAT_VERSION")  # (else the default)
tracer = ChainTracer(sys.argv[1], **({"format_version": int(version)} if version else {}))
assert tracer._writer.threaded, "not threaded"
def work(n):
    total = 0
    for i in range(n):
        total += i * 2
    return total
"""
"""A traced program's start: ChainTracer on the file named by argv[1], threaded."""


FORKS = """
with blocktrace.trace(tracer):
    work(int(sys.argv[2]))
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    work(5)
    short = tracer._writer.threaded
    work(5000)
    after = tracer._writer.threaded
print(short, after)
"""
"""After _WORKS: argv[2] lines of work, a fork, then whether the writer's thread runs
after a few lines and after many (tests/tracers/test_thread_later.py too)."""


@pytest.mark.parametrize("version", [3, 4])
def test_after_a_fork_the_parent_s_writer_thread_starts_again(
    tmp_path: Path, version: int
) -> None:
    """ChainTracer ends its writer's thread before os.fork (no thread of ours in the
    child; Python warns of a fork with threads) and starts it again in the parent at
    the next line (after os.fork's count of threads): the lines after the fork are
    made off the program's thread again, and the trace verifies sealed."""
    trace = tmp_path / "t.jsonl"
    script = tmp_path / "forks.py"  # a file: code from -c is not in the default scope
    script.write_text(_WORKS + FORKS)
    result = subprocess.run(
        [sys.executable, str(script), str(trace), "5000"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT),
                                     "BLOCKTRACE_WRITER_THREAD": "1",
                                     "BT_TEST_FORMAT_VERSION": str(version),
                                     "PYTHONWARNINGS": "error::DeprecationWarning"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning of a fork with threads (3.12+)
    assert result.stdout.split() == ["True", "True"]
    assert _status(trace, version) == "sealed"


_TRACED = _WORKS + """
cm = blocktrace.trace(tracer)
cm.__enter__()
work(20000)
how = sys.argv[2]
if how == "exit":
    sys.exit(0)  # the stepper's atexit stop seals
elif how == "_exit":
    os._exit(0)
elif how == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("how,status", [("exit", "sealed"), ("_exit", "unsealed"),
                                        ("kill", "unsealed")])
def test_exits_leave_a_sealed_trace_or_a_verifiable_prefix(
    how: str, status: str, version: int, tmp_path: Path
) -> None:
    path = tmp_path / "t.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", _TRACED, str(path), how], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BLOCKTRACE_WRITER_THREAD": "1",
             "BT_TEST_FORMAT_VERSION": str(version)},
    )
    assert "not threaded" not in result.stderr
    assert path.exists(), result.stderr
    assert _status(path, version) == status


def test_signals_reach_the_main_thread_not_the_writers(tmp_path: Path) -> None:
    """The writer's thread blocks every signal: SIGALRM interrupts the program's
    sleep in the main thread at once (a thread that took it would let the sleep
    run its course)."""
    result = _python(
        """
        import signal, time, blocktrace
        from blocktrace.chain._cwriter import LineWriter
        writers = [LineWriter(bytearray().extend, threaded=True) for _ in range(8)]
        class Alarm(Exception):
            pass
        def handler(signum, frame):
            raise Alarm
        signal.signal(signal.SIGALRM, handler)
        t = time.monotonic()
        for _ in range(5):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            try:
                time.sleep(30)
            except Alarm:
                pass
        print(round(time.monotonic() - t, 1), all(w.threaded for w in writers))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    elapsed, threaded = result.stdout.split()
    assert threaded == "True"
    assert float(elapsed) < 10


@pytest.mark.parametrize("version", [3, 4])
def test_chain_tracer_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    """BLOCKTRACE_WRITER_THREAD=1: a plain trace's lines are made on the thread
    (ended at the seal); checkpoints and a size limit keep the inline writer; the
    trace is the one the inline writer makes, in the format version asked for."""
    from blocktrace.tracers.chain import ChainTracer

    def traced(path: Path, **kw: Any) -> tuple[bool, ChainTracer]:
        tracer = ChainTracer(path, genesis="g", argv=["x"], format_version=version, **kw)
        threaded = bool(getattr(tracer._writer, "threaded", False))
        with blocktrace.trace(tracer):
            sum(i * i for i in range(3000))
        return threaded, tracer

    monkeypatch.setenv("BLOCKTRACE_WRITER_THREAD", "1")
    threaded, tracer = traced(tmp_path / "a.jsonl")
    assert threaded and not tracer._writer.threaded  # ended at the seal
    assert not traced(tmp_path / "b.jsonl", max_size=10**7)[0]
    assert not traced(tmp_path / "c.jsonl", checkpoint_every=1000)[0]
    monkeypatch.setenv("BLOCKTRACE_WRITER_THREAD", "0")
    assert not traced(tmp_path / "d.jsonl")[0]
    for name in "abcd":
        assert _status(tmp_path / f"{name}.jsonl", version) == "sealed"
    a = (tmp_path / "a.jsonl").read_bytes().splitlines()
    d = (tmp_path / "d.jsonl").read_bytes().splitlines()
    # the same program, the same lines but for the header's start and the summary's
    # time (so every hash differs)
    def bodies(lines: list[bytes]) -> list[bytes]:
        return [line.rsplit(b',"hash":', 1)[0] for line in lines[1:-1]]

    assert len(a) == len(d) > 3000
    assert bodies(a) == bodies(d)


def interrupted(argv: list[str], env: dict[str, str]) -> str:
    """The stderr of a program that prints "go" and runs on until Ctrl-C (SIGINT
    from outside, 0.3 s after "go").  However the test ends, the program does not
    outlive it (killed)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "go"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("version", [3, 4])
def test_a_signal_during_a_threaded_trace_seals_it(tmp_path: Path, version: int) -> None:
    """Ctrl-C (SIGINT from outside) while a threaded trace is written: the program
    gets KeyboardInterrupt, the trace is sealed with it."""
    path = tmp_path / "t.jsonl"
    err = interrupted([sys.executable, "-c", textwrap.dedent(
        f"""
        import sys, blocktrace
        from blocktrace.tracers.chain import ChainTracer
        tracer = ChainTracer(sys.argv[1], format_version={version})
        assert tracer._writer.threaded
        with blocktrace.trace(tracer):
            print("go", flush=True)
            while True:
                pass
        """), str(path)],
        {**os.environ, "PYTHONPATH": str(ROOT), "BLOCKTRACE_WRITER_THREAD": "1"})
    assert "KeyboardInterrupt" in err
    assert _status(path, version) == "sealed"
    result = check_chain(path)
    assert result.status == "sealed", result.reason
    assert result.summary is not None and result.summary["error"] == "KeyboardInterrupt"


def test_with_a_file_of_its_own_the_thread_writes_it(tmp_path: Path) -> None:
    """fd: the thread writes the chunks to its own copy of the descriptor; the file
    is the reference's bytes.  (Closed under the writer, the caller's file makes it
    go on inline, where `write` fails as it would have: tests/tracers'
    test_failing_chain_writer_detached_and_program_unchanged.)"""
    path = tmp_path / "t.jsonl"
    f = open(path, "wb", buffering=0)  # noqa: SIM115
    w = LineWriter(f.write, buffer_size=4096, lines_per_leaf=16, threaded=True, fd=f.fileno())
    e = object()
    w.add_site(id(e), PREFIX, SUFFIX, e)
    for i in range(50_000):
        w.op(e, i, 1)
    w.line(b'{"big":"' + b"z" * 300_000 + b'"')
    assert w.threaded
    for i in range(1000):
        w.op(e, i, 2)
    w.summary(b'{"output":""')
    w.flush()
    w.stop_thread()
    f.close()
    ref_out = bytearray()
    ref = PyLineWriter(ref_out.extend, buffer_size=4096, lines_per_leaf=16)
    ref.add_site(id(e), PREFIX, SUFFIX, e)
    for i in range(50_000):
        ref.op(e, i, 1)
    ref.line(b'{"big":"' + b"z" * 300_000 + b'"')
    for i in range(1000):
        ref.op(e, i, 2)
    ref.summary(b'{"output":""')
    ref.flush()
    assert path.read_bytes() == bytes(ref_out)


@pytest.mark.parametrize("write_after", [1, 8, 16])
def test_closed_chunks_reach_the_file_once_the_thread_is_idle(
    tmp_path: Path, write_after: int
) -> None:
    """The writer's thread lets up to write_after closed chunks wait (to write them in
    one writev), but never while it has nothing else to do: once it has made every
    queued line, every closed chunk is in the file -- without a flush -- and only the
    open one is not."""
    path = tmp_path / "t.jsonl"
    f = open(path, "wb", buffering=0)  # noqa: SIM115
    w = LineWriter(f.write, buffer_size=4096, lines_per_leaf=16, threaded=True,
                   fd=f.fileno(), write_after=write_after)
    ref_out = bytearray()
    ref = PyLineWriter(ref_out.extend, buffer_size=4096, lines_per_leaf=16)
    e = object()
    for x in (w, ref):
        x.add_site(id(e), PREFIX, SUFFIX, e)
    for i in range(150):  # ~160 bytes a line: five chunks closed (fewer than 8), one open
        w.op(e, i, 1)
        ref.op(e, i, 1)
    closed = bytes(ref_out)
    assert 3 <= len(closed) // 4096 < 8
    # (records reach the thread per 2 KiB: reading the head has it make them all, and
    # writes nothing itself)
    assert w.head == ref.head
    deadline = time.monotonic() + 30
    while path.stat().st_size < len(closed) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert path.read_bytes() == closed
    w.flush()
    ref.flush()
    assert path.read_bytes() == bytes(ref_out)
    w.stop_thread()
    f.close()


def test_the_inline_writer_s_left_digests_with_lines_added_during_a_flush() -> None:
    """Version 4 inline: an op line's digest is taken with the next line's first blocks
    (as on the writer's thread), so it must be settled before anything reads the buffer,
    prev or the stream -- here a ``write`` that adds lines and op lines to the writer it
    is flushing (a signal handler, say), takes a third of each chunk, and reads the head:
    every line verifies, every body is there, the head is the last line's hash."""
    out = bytearray()
    nested: list[bytes] = []
    heads: list[str] = []
    w: Any = None
    e = object()

    def write(data: bytes) -> int:
        if len(nested) < 60:
            body = b'{"nested":%d' % len(nested)
            nested.append(body)
            w.line(body)
            w.op(e, len(nested), 9)
            nested.append(b"op")
            if len(nested) % 6 == 0:  # (each of these settles the digest left)
                heads.append(w.head)
                w.flush()  # nested: does nothing else
        n = max(1, len(data) // 3)
        out.extend(data[:n])
        return n

    w = LineWriter(write, buffer_size=300, lines_per_leaf=4, version=4)
    w.add_site(id(e), PREFIX, SUFFIX, e)
    for i in range(200):
        w.op(e, i, 1)
        if i % 7 == 0:
            w.line(b'{"outer":%d' % i)
        if i % 31 == 0:
            heads.append(w.head)
    w.line(b'{"output":""')
    w.close_leaf()
    w.flush()
    chain = rules.LeafChain(4, version=4)
    raws = bytes(out).split(b"\n")
    assert raws[-1] == b""
    seen = []
    for n, raw in enumerate(raws[:-1], 1):
        split = rules.split_hash(raw)
        assert split is not None, n
        assert chain.check(split[0], raw + b"\n") == split[1], f"line {n} does not verify"
        seen.append(split[1])
    assert len(seen) == w.lines == 200 + 29 + 1 + len(nested)
    assert seen[-1] == w.head
    assert set(heads) <= set(seen)
    assert sum(raw.startswith(b'{"nested"') for raw in raws) == len(nested) // 2


def test_write_after_is_one_to_sixteen_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """write_after out of range is refused; BLOCKTRACE_WRITE_AFTER out of range (or not a
    number) is ignored, as BLOCKTRACE_RING_BATCH is."""
    for bad in (0, 17, -2):
        with pytest.raises(ValueError, match="write_after must be 1 to 16"):
            LineWriter(bytearray().extend, write_after=bad)
    for env in ("0", "17", "x", ""):
        monkeypatch.setenv("BLOCKTRACE_WRITE_AFTER", env)
        LineWriter(bytearray().extend, threaded=True).stop_thread()


def test_a_write_cut_short_keeps_the_rest_in_order(tmp_path: Path) -> None:
    """A writev of several chunks that the file takes only part of (RLIMIT_FSIZE: a
    short write up to the limit, then EFBIG): the file is the reference's first bytes up
    to the limit, the writer goes on inline holding every byte after them, in order."""
    result = _python(
        """
        import errno, functools, resource, signal
        from blocktrace.chain._cwriter import LineWriter
        from blocktrace.chain.writer import PyLineWriter
        LIMIT = 100_003
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))
        PREFIX = b'{"pc":12,"op":100,"gas":"0x'
        SUFFIX = b',"opName":"LOAD_FAST","line":5,"code":3'
        f = open("t.jsonl", "wb", buffering=0)
        w = LineWriter(f.write, buffer_size=4096, lines_per_leaf=4, threaded=True,
                       fd=f.fileno(), write_after=16, version=3)
        ref_out = bytearray()
        ref = PyLineWriter(ref_out.extend, buffer_size=4096, lines_per_leaf=4, version=3)
        e = object()
        for x in (w, ref):
            x.add_site(id(e), PREFIX, SUFFIX, e)
        try:
            for i in range(1_000_000):
                w.op(e, i, 1)
                ref.op(e, i, 1)
        except OSError as exc:
            assert exc.errno == errno.EFBIG, exc
        else:
            raise SystemExit("no EFBIG")
        assert not w.threaded
        ref.flush()
        on_disk = open("t.jsonl", "rb").read()
        assert len(on_disk) == LIMIT, len(on_disk)
        assert on_disk == bytes(ref_out[:LIMIT])
        assert w.lines == ref.lines
        assert w.buffered == len(ref_out) - LIMIT, (w.buffered, len(ref_out) - LIMIT)
        assert w.head == ref.head
        print("ok")
        """,
        tmp_path,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_a_failed_write_of_the_thread_is_raised_and_nothing_is_lost() -> None:
    """/dev/full: the thread's write fails (ENOSPC); the next call raises it, the
    writer goes on inline holding every byte not written."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb", buffering=0) as f:
        w = LineWriter(f.write, buffer_size=1000, lines_per_leaf=4, threaded=True,
                       fd=f.fileno())
        e = object()
        w.add_site(id(e), PREFIX, SUFFIX, e)
        ref_out = bytearray()
        ref = PyLineWriter(ref_out.extend, buffer_size=1000, lines_per_leaf=4)
        ref.add_site(id(e), PREFIX, SUFFIX, e)
        with pytest.raises(OSError) as raised:
            for i in range(1_000_000):
                w.op(e, i, 1)
                ref.op(e, i, 1)
        assert raised.value.errno == errno.ENOSPC
        assert not w.threaded
        assert w.lines == ref.lines
        assert w.buffered == len(ref_out) + ref.buffered  # nothing was written, nothing lost
        assert w.head == ref.head


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks here")
def test_by_default_the_thread_is_used_with_two_cpus_or_more(tmp_path: Path) -> None:
    """Unset BLOCKTRACE_WRITER_THREAD: a thread when the process may run on two
    CPUs or more (once the trace has filled its first buffer); pinned to one, the
    inline writer (cheaper there)."""
    env = {k: v for k, v in os.environ.items() if k != "BLOCKTRACE_WRITER_THREAD"}
    code = textwrap.dedent(
        """
        import os, sys, blocktrace
        from blocktrace.tracers.chain import ChainTracer
        if sys.argv[1] == "one":
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        tracer = ChainTracer(sys.argv[2])
        with blocktrace.trace(tracer):
            total = 0
            for i in range(5000):
                total += i
            threaded = tracer._writer.threaded
        print(threaded, len(os.sched_getaffinity(0)))
        """
    )
    script = tmp_path / "default.py"  # a file: code from -c is not in the default scope
    script.write_text(code)
    for cpus in ("one", "all"):
        result = subprocess.run(
            [sys.executable, str(script), cpus, str(tmp_path / f"{cpus}.jsonl")],
            capture_output=True, text=True, timeout=120,
            env={**env, "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == 0, result.stderr
        threaded, n = result.stdout.split()
        assert threaded == str(int(n) >= 2)
        assert verify_file(tmp_path / f"{cpus}.jsonl").status == "sealed"


def test_inline_with_a_file_of_its_own_write_is_not_called_until_the_file_goes(
    tmp_path: Path,
) -> None:
    """fd= without a thread: the inline writer writes the file itself (no bytes
    object, no Python call per buffer); once the caller's file is closed under
    it, `write` is called again and says what is wrong, as without fd."""
    path = tmp_path / "t.jsonl"
    f = open(path, "wb", buffering=0)  # noqa: SIM115
    calls: list[int] = []

    def write(data: bytes) -> int:
        calls.append(len(data))
        return f.write(data)

    w = LineWriter(write, buffer_size=1000, lines_per_leaf=3, fd=f.fileno())
    e = object()
    w.add_site(id(e), PREFIX, SUFFIX, e)
    for i in range(5000):
        w.op(e, i, 1)
    w.flush()
    assert calls == []
    ref_out = bytearray()
    ref = PyLineWriter(ref_out.extend, buffer_size=1000, lines_per_leaf=3)
    ref.add_site(id(e), PREFIX, SUFFIX, e)
    for i in range(5000):
        ref.op(e, i, 1)
    ref.flush()
    assert path.read_bytes() == bytes(ref_out)
    f.close()
    with pytest.raises(ValueError, match="closed file"):
        for i in range(5000):
            w.op(e, i, 2)
    assert calls  # the caller's write said it


def test_stop_thread_from_inside_write_leaves_the_thread_to_the_end() -> None:
    """Code that write runs (a signal handler, another thread while write let the GIL
    go) asks to stop the thread while a chunk of the writer's is being written: the
    thread stays, nothing is lost."""
    out = bytearray()
    calls = [0]

    def write(data: bytes) -> None:
        out.extend(data)
        calls[0] += 1
        if calls[0] == 3:
            w.stop_thread()
            assert w.threaded

    w = LineWriter(write, buffer_size=500, lines_per_leaf=3, threaded=True)
    ref_out = bytearray()
    ref = PyLineWriter(ref_out.extend, buffer_size=500, lines_per_leaf=3)
    e = object()
    for x in (w, ref):
        x.add_site(id(e), PREFIX, SUFFIX, e)
        for i in range(5000):
            x.op(e, i, 1)
        x.summary(b'{"output":""')
        x.flush()
    assert calls[0] > 3
    w.stop_thread()
    assert not w.threaded
    assert bytes(out) == bytes(ref_out)


# tracemalloc hooks the PyMem_Raw allocators, which then take the GIL
_TRACEMALLOC = "import tracemalloc\ntracemalloc.start()\n" + _WORKS + """
with blocktrace.trace(tracer):
    print(work(20000))
"""


def test_a_program_using_tracemalloc_does_not_deadlock_with_the_writers_thread(
    tmp_path: Path,
) -> None:
    """The writer's thread, which runs without the GIL, allocates with the C
    library's allocator: through PyMem_Raw* under tracemalloc it waited for the
    GIL while the program's thread, holding it, waited for the writer (a hang
    at the first buffers, every run)."""
    path = tmp_path / "t.jsonl"
    try:
        result = subprocess.run(
            [sys.executable, "-c", _TRACEMALLOC, str(path)], cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT), "BLOCKTRACE_WRITER_THREAD": "1"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the traced program hung (a deadlock with the writer's thread)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "399980000\n"
    assert verify_file(path).status == "sealed"


def test_chain_tracer_writes_format_version_3_or_4(tmp_path: Path) -> None:
    from blocktrace.tracers.chain import ChainTracer

    for version in (1, 2, 5):
        with pytest.raises(ValueError, match="format version 3 or 4"):
            ChainTracer(tmp_path / f"{version}.jsonl", format_version=version)
    assert not (tmp_path / "2.jsonl").exists()
