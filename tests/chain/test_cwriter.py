"""The C line writer (``blocktrace.chain._cwriter``) against an independent reference.

The reference below is written from docs/FORMAT.md ("The hash chain", "Merkle
tree") with ``hashlib`` only; the writer's output is compared with it byte for
byte.  The portable SHA-256 is exercised in a subprocess started with
``BLOCKTRACE_SHA_PORTABLE=1`` (the choice is made when the module is imported).
"""

from __future__ import annotations

import functools
import gc
import hashlib
import os
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocktrace.chain import merkle
from blocktrace.events import OpStart

_cwriter = pytest.importorskip(
    "blocktrace.chain._cwriter",
    reason="the C extension is not built (python setup.py build_ext --inplace)",
)
LineWriter: Any = functools.partial(_cwriter.LineWriter, version=3)
"""The tests up to "format version 4" check version 3's rules (the ``Reference``
below): the writer pinned to 3 (``version=`` overrides it); version 4 at the end."""

MID = b'","gasCost":"0x1","depth":'
PREFIX = b'{"pc":12,"op":100,"gas":"0x'
SUFFIX = b',"opName":"LOAD_FAST","line":5,"code":3'


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# -- the reference, from docs/FORMAT.md ------------------------------------------


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 Merkle Tree Hash of leaf data, by its recursive definition."""
    if not leaves:
        return _sha(b"")
    if len(leaves) == 1:
        return _sha(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _sha(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:]))


class Reference:
    """Version 2 chain and tree; ``per_leaf=0``: one stream for the whole file, no tree."""

    def __init__(self, per_leaf: int = 16) -> None:
        self.per_leaf = per_leaf
        self.prev = _sha(b"blocktrace-chain/2\n")
        self.group: list[bytes] = []  # lines of the open leaf (or of the file, per_leaf=0)
        self.leaves: list[bytes] = []
        self.out = bytearray()
        self.lines = 0
        self.sealed = False

    def _seal(self, body: bytes, link: bool) -> bytes:
        if link:
            h = _sha(b"\x02" + self.prev + body)
        else:
            h = _sha(b"\x00" + b"".join(self.group) + body)
        self.prev = h
        self.lines += 1
        line = body + b',"hash":"' + h.hex().encode() + b'"}\n'
        self.out += line
        return line

    def line(self, body: bytes) -> None:
        self.group.append(self._seal(body, not self.group))
        if self.per_leaf and len(self.group) == self.per_leaf:
            self.close_leaf()

    def close_leaf(self) -> None:
        if self.per_leaf and self.group:
            self.leaves.append(b"".join(self.group))
            self.group = []

    def summary(self, body: bytes) -> None:
        self.close_leaf()
        self._seal(body, True)
        self.sealed = True

    @property
    def head(self) -> str:
        return self.prev.hex()

    def root(self) -> bytes:
        return _mth(self.leaves)


def verify_reference(data: bytes, per_leaf: int, sealed: bool) -> list[bytes]:
    """Check a whole output by the format alone; return the bodies in order.

    (Leaves closed early by ``close_leaf`` other than before the summary are
    not in the format: such outputs are compared with a ``Reference`` instead.)
    """
    assert data.endswith(b"\n") or not data
    lines = data.split(b"\n")[:-1]
    ref = Reference(per_leaf)
    bodies = []
    for i, line in enumerate(lines):
        body, sep, rest = line.rpartition(b',"hash":"')
        assert sep and len(rest) == 66 and rest.endswith(b'"}'), line
        if sealed and i == len(lines) - 1:
            ref.summary(body)
        else:
            ref.line(body)
        assert ref.out.endswith(line + b"\n"), f"line {i + 1} does not verify"
        bodies.append(body)
    assert bytes(ref.out) == data
    return bodies


def _bodies(max_len: int = 3000) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_len).map(lambda b: b.replace(b"\n", b"\x0b"))


class VM:
    """A stepper state, which the writer must not take (it takes plain values)."""

    def __init__(self, gas: object = 1000, depth: object = 1) -> None:
        self.gas = gas
        self.depth = depth


def _op_body(gas: int, depth: int) -> bytes:
    return PREFIX + format(gas, "x").encode() + MID + str(depth).encode() + SUFFIX


def _event(pc: int = 12) -> OpStart:
    return OpStart(pc=pc, op=100, op_name="LOAD_FAST", line=5, code=3)


def _check_same(w: Any, ref: Reference, out: bytearray) -> None:
    w.flush()
    assert bytes(out) == bytes(ref.out)
    assert w.head == ref.head
    assert w.lines == ref.lines
    assert w.tree_size == len(ref.leaves)
    assert w.root() == ref.root()
    assert w.buffered == 0


# -- SHA-256 -----------------------------------------------------------------------


def test_sha256_matches_hashlib_for_every_short_length_and_large_inputs() -> None:
    data = os.urandom(300)
    for n in range(301):
        assert _cwriter.sha256(data[:n]) == _sha(data[:n]), n
    for n in (1 << 20, (1 << 20) + 55, 3_000_017):
        big = os.urandom(n)
        assert _cwriter.sha256(big) == _sha(big)
        assert _cwriter.sha256(bytearray(big)) == _sha(big)
        assert _cwriter.sha256(memoryview(big)[7:]) == _sha(big[7:])


def test_sha256_known_vectors() -> None:  # FIPS 180-4 examples
    assert _cwriter.sha256(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert _cwriter.sha256(b"").hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert _cwriter.sha256(b"a" * 1_000_000).hex() == (
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    )


def test_sha256_rejects_what_is_not_bytes() -> None:
    for bad in ("text", 3, None, [1, 2]):
        with pytest.raises(TypeError):
            _cwriter.sha256(bad)


def test_implementation_is_sha_ni_exactly_when_the_cpu_has_it() -> None:
    if os.environ.get("BLOCKTRACE_SHA256"):
        assert os.environ["BLOCKTRACE_SHA256"] == _cwriter.IMPLEMENTATION
        return
    if os.environ.get("BLOCKTRACE_SHA_PORTABLE", "") not in ("", "0"):
        assert _cwriter.IMPLEMENTATION == "portable"
        return
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for row in cpuinfo.read_text().splitlines():
            if row.startswith("flags"):
                flags = set(row.split(":", 1)[1].split())
                break
    import platform

    x86 = platform.machine() in ("x86_64", "AMD64")
    try:  # without the SHA extensions OpenSSL's compression is the faster one (issue 12)
        _cwriter.sha256_with("openssl", b"")
        without = "openssl"
    except ValueError:
        without = "portable"
    expected = "sha-ni" if x86 and {"sha_ni", "sse4_1", "ssse3"} <= flags else without
    assert expected == _cwriter.IMPLEMENTATION


_PORTABLE_SCRIPT = textwrap.dedent(
    """
    import os, sys, msgspec
    from blocktrace.chain import _cwriter
    seed = bytes(range(256)) * 4
    data = [seed[:n] for n in range(301)] + [os.urandom(n) for n in (1 << 20, 100_003)]
    out = bytearray()
    w = _cwriter.LineWriter(out.extend, buffer_size=200, lines_per_leaf=3, version=3)
    bodies = [b'{"n":%d,"pad":"%s"' % (i, b"x" * (i * 37 % 300)) for i in range(40)]
    for b in bodies:
        w.line(b)
    w.close_leaf()
    root = w.root()
    w.summary(b'{"output":""')
    w.flush()
    sys.stdout.buffer.write(msgspec.json.encode({
        "impl": _cwriter.IMPLEMENTATION,
        "data": [d.hex() for d in data],
        "digests": [_cwriter.sha256(d).hex() for d in data],
        "bodies": [b.hex() for b in bodies],
        "out": out.hex(), "root": root.hex(),
    }))
    """
)


@pytest.fixture(scope="module")
def portable_run() -> dict[str, Any]:
    env = {**os.environ, "BLOCKTRACE_SHA_PORTABLE": "1"}  # the older spelling of
    env.pop("BLOCKTRACE_SHA256", None)  # BLOCKTRACE_SHA256=portable, which would win
    proc = subprocess.run(
        [sys.executable, "-c", _PORTABLE_SCRIPT], env=env, capture_output=True, timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, Any] = msgspec.json.decode(proc.stdout)
    return result


def test_portable_sha256_matches_hashlib(portable_run: dict[str, Any]) -> None:
    assert portable_run["impl"] == "portable"
    for data, digest in zip(portable_run["data"], portable_run["digests"], strict=True):
        assert bytes.fromhex(digest) == _sha(bytes.fromhex(data))


def test_portable_writer_matches_the_reference(portable_run: dict[str, Any]) -> None:
    ref = Reference(3)
    for body in portable_run["bodies"]:
        ref.line(bytes.fromhex(body))
    ref.close_leaf()
    assert bytes.fromhex(portable_run["root"]) == ref.root()
    ref.summary(b'{"output":""')
    assert bytes.fromhex(portable_run["out"]) == bytes(ref.out)


# -- the chain and the tree ---------------------------------------------------------


def _writer_runs(test: Callable[..., None]) -> Callable[..., None]:
    """Runs of lines (None: close a partial leaf there), sealed or not."""
    return settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])(given(
        per_leaf=st.sampled_from([0, 1, 2, 3, 16]),
        steps=st.lists(st.one_of(_bodies(), st.just(None)), max_size=45),
        buffer_size=st.sampled_from([1, 100, 4096, 65536]),
        seal=st.booleans(),
    )(test))


def test_a_fresh_writer() -> None:
    w = LineWriter(bytearray().extend)
    assert w.head == _sha(b"blocktrace-chain/2\n").hex()
    assert (w.lines, w.tree_size, w.buffered) == (0, 0, 0)
    assert w.root() == _sha(b"")


@_writer_runs
def test_matches_the_reference_byte_for_byte(
    per_leaf: int, steps: list[bytes | None], buffer_size: int, seal: bool
) -> None:
    out = bytearray()
    w = LineWriter(out.extend, buffer_size=buffer_size, lines_per_leaf=per_leaf)
    ref = Reference(per_leaf)
    for step in steps:
        if step is None:  # close a partial leaf here
            w.close_leaf()
            ref.close_leaf()
        else:
            w.line(step)
            ref.line(step)
        assert w.head == ref.head
        assert w.tree_size == len(ref.leaves)
        assert w.buffered <= max(buffer_size, 3000 + 77)  # the buffer, or one line
    if seal:
        w.summary(b'{"output":"","lines":%d' % ref.lines)
        ref.summary(b'{"output":"","lines":%d' % ref.lines)
    _check_same(w, ref, out)
    if None not in steps:
        verify_reference(bytes(out), per_leaf, seal)
    if per_leaf:  # the same root as the project's own Merkle module
        assert w.root() == merkle.root(ref.leaves)
    else:
        assert w.root() == _sha(b"") and w.tree_size == 0


def test_roots_of_every_size_up_to_70_leaves() -> None:
    out = bytearray()
    w = LineWriter(out.extend, lines_per_leaf=1)
    ref = Reference(1)
    for i in range(70):
        assert w.root() == ref.root() == merkle.root(ref.leaves)
        body = b'{"i":%d' % i
        w.line(body)
        ref.line(body)
    assert w.tree_size == 70
    _check_same(w, ref, out)


def test_summary_closes_the_partial_leaf_and_is_not_in_the_tree() -> None:
    out = bytearray()
    w = LineWriter(out.extend, lines_per_leaf=16)
    for i in range(20):
        w.line(b'{"i":%d' % i)
    assert w.tree_size == 1
    w.summary(b'{"output":"x"')
    assert w.tree_size == 2 and w.lines == 21
    ref = Reference(16)
    for i in range(20):
        ref.line(b'{"i":%d' % i)
    ref.summary(b'{"output":"x"')
    _check_same(w, ref, out)
    assert len(ref.leaves) == 2  # the summary is in neither


def test_nothing_follows_the_summary() -> None:
    w = LineWriter(bytearray().extend)
    ev = _event()
    w.add_site(id(ev), PREFIX, SUFFIX, ev)
    w.line(b"{")
    w.summary(b'{"output":""')
    with pytest.raises(ValueError):
        w.line(b"{")
    with pytest.raises(ValueError):
        w.summary(b"{")
    with pytest.raises(ValueError):
        w.op(ev, 1000, 1)
    with pytest.raises(ValueError):
        w.op(object(), 1000, 1)
    w.close_leaf()  # no partial leaf: nothing to do
    assert w.lines == 2


def test_on_leaf_is_called_after_each_leaf_and_its_error_propagates() -> None:
    seen: list[tuple[int, int]] = []
    fail = [False]
    w: Any = None

    def on_leaf() -> None:
        seen.append((w.tree_size, w.lines))
        if fail[0]:
            raise KeyboardInterrupt

    out = bytearray()
    w = LineWriter(out.extend, lines_per_leaf=2, on_leaf=on_leaf)
    ref = Reference(2)
    for i in range(5):
        w.line(b"%d" % i)
        ref.line(b"%d" % i)
    assert seen == [(1, 2), (2, 4)]
    fail[0] = True
    with pytest.raises(KeyboardInterrupt):
        w.line(b"5")  # completes leaf 3: written, chained and in the tree
    ref.line(b"5")
    assert seen[-1] == (3, 6) and w.lines == 6
    fail[0] = False
    w.line(b"6")
    ref.line(b"6")
    w.close_leaf()  # a partial leaf closed is a leaf like any other
    ref.close_leaf()
    assert seen[-1] == (4, 7)
    w.close_leaf()
    assert len(seen) == 4
    _check_same(w, ref, out)


# -- the per-instruction call -------------------------------------------------------


def test_call_on_a_site_writes_the_op_line_as_line_would() -> None:
    out = bytearray()
    w = LineWriter(out.extend, lines_per_leaf=3)
    ref = Reference(3)
    ev = _event()
    w.add_site(id(ev), PREFIX, SUFFIX, ev)
    cases = [(0, 1), (1, 0), (2**63 - 1, 7), (9_999_999_990, 123456789), (255, 2**62),
             (-26, -3), (-(2**63), 5)]
    for gas, depth in cases:
        assert w.op(ev, gas, depth) is True
        ref.line(_op_body(gas, depth))
    assert w.lines == len(cases)
    _check_same(w, ref, out)
    assert b'"gas":"0x7fffffffffffffff","gasCost":"0x1","depth":7,' in out
    assert b'"gas":"0x-1a","gasCost":"0x1","depth":-3,' in out  # format(-26, "x")


def test_unknown_events_and_odd_values_are_left_to_the_caller() -> None:
    """op() writes nothing and says False for an event without a site, and for gas
    or depth that are not exact ints fitting 64 bits (the caller formats those)."""
    w = LineWriter(bytearray().extend)
    ev = _event()
    w.add_site(id(ev), PREFIX, SUFFIX, ev)
    other = _event(14)
    assert w.op(other, 1000, 1) is False
    for gas, depth in [(2**63, 1), (True, 1), (1.0, 1), (None, 1), (1, False), (1, 2**70),
                       (1, "1"), (-(2**63) - 1, 1)]:
        assert w.op(ev, gas, depth) is False, (gas, depth)
    assert w.lines == 0
    w.clear_sites()
    assert w.op(ev, 1000, 1) is False
    assert w.lines == 0


def test_add_site_replaces_and_keeps_the_event_alive() -> None:
    class Event:
        pass

    w = LineWriter(bytearray().extend)
    ev = Event()
    ref = weakref.ref(ev)
    key = id(ev)
    w.add_site(key, b"{a", b"}", ev)
    w.add_site(key, PREFIX, SUFFIX, ev)  # replaced, not added twice
    out = bytearray()
    del ev
    gc.collect()
    assert ref() is not None  # held by the writer: its id cannot be reused
    w2 = LineWriter(out.extend, lines_per_leaf=0)
    w2.add_site(key, PREFIX, SUFFIX, ref())
    w2.op(ref(), 5, 2)
    w2.flush()
    assert out.startswith(_op_body(5, 2) + b',"hash":"')
    w.clear_sites()
    w2.clear_sites()
    gc.collect()
    assert ref() is None


def test_many_sites() -> None:
    out = bytearray()
    w = LineWriter(out.extend, lines_per_leaf=16)
    ref = Reference(16)
    events = [_event(pc) for pc in range(2000)]
    for ev in events:
        w.add_site(id(ev), b'{"pc":%d,"gas":"0x' % ev.pc, SUFFIX, ev)
    for i, ev in enumerate(events * 2):
        w.op(ev, i, 1 + i % 5)
        ref.line(b'{"pc":%d,"gas":"0x%x' % (ev.pc, i) + MID + b"%d" % (1 + i % 5) + SUFFIX)
    _check_same(w, ref, out)


def test_site_dropped_by_the_flush_it_triggers() -> None:
    """``write`` (run by the flush before a site's line) clears the sites."""
    out = bytearray()
    w: Any = None

    def write(data: bytes) -> None:
        out.extend(data)
        w.clear_sites()
        gc.collect()

    w = LineWriter(write, buffer_size=300, lines_per_leaf=2)
    ref = Reference(2)
    ev = _event()
    for i in range(6):
        w.add_site(id(ev), PREFIX + b"%d" % i, SUFFIX + b"%d" % i, _event(i))
        w.add_site(id(ev), PREFIX + b"%d" % i, SUFFIX + b"%d" % i, ev)
        w.op(ev, i, i)
        ref.line(PREFIX + b"%d%x" % (i, i) + MID + b"%d" % i + SUFFIX + b"%d" % i)
    _check_same(w, ref, out)


# -- writing ----------------------------------------------------------------------------


def test_writes_to_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    ref = Reference()
    with open(path, "wb", buffering=0) as f:
        w = LineWriter(f.write, buffer_size=1000)
        ev = _event()
        w.add_site(id(ev), PREFIX, SUFFIX, ev)
        for i in range(500):
            w.op(ev, 10_000 - i, 1)
            ref.line(_op_body(10_000 - i, 1))
        w.close_leaf()
        ref.close_leaf()
        w.summary(b'{"output":"done"')
        ref.summary(b'{"output":"done"')
        w.flush()
    assert path.read_bytes() == bytes(ref.out)
    verify_reference(path.read_bytes(), 16, True)


def test_partial_writes_of_one_byte() -> None:
    out = bytearray()
    chunks: list[int] = []

    def write(data: bytes) -> int:
        assert isinstance(data, bytes)
        chunks.append(len(data))
        out.extend(data[:1])
        return 1

    w = LineWriter(write, buffer_size=64, lines_per_leaf=2)
    ref = Reference(2)
    for i in range(12):
        body = b'{"i":%d,"x":"%s"' % (i, b"y" * (i * 7))
        w.line(body)
        ref.line(body)
    _check_same(w, ref, out)
    assert len(chunks) == len(out)


@pytest.mark.parametrize("returned", [None, 10**30, -5, "all", 3.5])
def test_write_returning_no_count_took_everything(returned: object) -> None:
    out = bytearray()

    def write(data: bytes) -> object:
        out.extend(data)
        return returned

    w = LineWriter(write, buffer_size=50)
    ref = Reference()
    for i in range(10):
        w.line(b"%d" % i)
        ref.line(b"%d" % i)
    _check_same(w, ref, out)


def test_a_failing_write_loses_nothing_and_writes_nothing_twice() -> None:
    out = bytearray()
    plan = iter(["ok", "raise", "half", "raise", "raise", "ok", "interrupt", "half"] * 50)

    def write(data: bytes) -> int:
        step = next(plan, "ok")
        if step == "raise":
            raise OSError(28, "No space left on device")
        if step == "interrupt":
            raise KeyboardInterrupt
        n = len(data) // 2 if step == "half" else len(data)
        out.extend(data[:n])
        return n

    w = LineWriter(write, buffer_size=120, lines_per_leaf=3)
    ref = Reference(3)
    ev = _event()
    w.add_site(id(ev), PREFIX, SUFFIX, ev)
    failures = 0
    for i in range(60):
        body = _op_body(i, 1) if i % 2 else b'{"i":%d' % i
        while True:
            before = (w.head, w.lines, w.tree_size, w.buffered)
            try:
                if i % 2:
                    w.op(ev, i, 1)
                else:
                    w.line(body)
            except (OSError, KeyboardInterrupt):
                failures += 1
                # not sealed: chain and tree unchanged; the buffer may only have shrunk
                assert (w.head, w.lines, w.tree_size) == before[:3]
                assert w.buffered <= before[3]
                continue
            break
        ref.line(body)
    assert failures > 10
    while True:
        try:
            w.flush()
            break
        except (OSError, KeyboardInterrupt):
            pass
    assert bytes(out) == bytes(ref.out)
    assert w.head == ref.head and w.root() == ref.root()


def test_an_exception_that_says_how_much_was_written() -> None:
    """``characters_written`` on the exception (BlockingIOError's convention, also
    what ChainTracer's stream wrapper sets when Ctrl-C interrupts after the data
    went in): exactly those bytes are dropped, the rest stays buffered."""
    out = bytearray()
    plan = iter(["block", "interrupt", "bad", "huge", "ok", "block", "zero"] * 30)

    class Odd(Exception):
        characters_written = "many"

    def write(data: bytes) -> None:
        step = next(plan, "ok")
        if step == "block":  # took a third of it
            n = len(data) // 3
            out.extend(data[:n])
            raise BlockingIOError(11, "try again", n)
        if step == "interrupt":  # took all of it, then Ctrl-C
            out.extend(data)
            exc = KeyboardInterrupt()
            exc.characters_written = len(data)  # type: ignore[attr-defined]
            raise exc
        if step == "bad":
            raise Odd  # a count that is not an int: nothing taken
        if step == "huge":
            exc2 = OSError(5, "I/O error")
            exc2.characters_written = len(data) + 1  # type: ignore[attr-defined]
            raise exc2  # more than it was given: nothing taken
        if step == "zero":
            raise BlockingIOError(11, "try again", 0)
        out.extend(data)

    w = LineWriter(write, buffer_size=100, lines_per_leaf=2)
    ref = Reference(2)
    for i in range(40):
        body = b'{"i":%d,"pad":"%s"' % (i, b"q" * (i % 7 * 9))
        while True:
            try:
                w.line(body)
                break
            except (OSError, KeyboardInterrupt, Odd):
                pass
        ref.line(body)
    while w.buffered:
        try:
            w.flush()
        except (OSError, KeyboardInterrupt, Odd):
            pass
    assert bytes(out) == bytes(ref.out)


def test_reentrant_lines_during_a_flush() -> None:
    """``write`` (a signal handler, say) adds lines to the writer it is flushing."""
    out = bytearray()
    nested: list[bytes] = []
    w: Any = None
    ev = _event()

    def write(data: bytes) -> int:
        if len(nested) < 40:
            body = b'{"nested":%d' % len(nested)
            nested.append(body)
            w.line(body)  # buffered behind: never flushed from in here
            w.op(ev, len(nested), 9)
            nested.append(_op_body(len(nested), 9))
            w.flush()  # nested flush: does nothing
        n = max(1, len(data) // 3)
        out.extend(data[:n])
        return n

    w = LineWriter(write, buffer_size=200, lines_per_leaf=4)
    w.add_site(id(ev), PREFIX, SUFFIX, ev)
    outer = []
    for i in range(30):
        body = b'{"outer":%d,"pad":"%s"' % (i, b"p" * (i * 5))
        outer.append(body)
        w.line(body)
    w.summary(b'{"output":""')
    w.flush()
    bodies = verify_reference(bytes(out), 4, True)
    assert sorted(bodies[:-1]) == sorted(outer + nested)
    assert len(bodies) == w.lines == 30 + len(nested) + 1
    assert [b for b in bodies if b.startswith(b'{"outer"')] == outer


def test_lines_longer_than_the_buffer() -> None:
    out = bytearray()
    writes: list[int] = []

    def write(data: bytes) -> None:
        writes.append(len(data))
        out.extend(data)

    w = LineWriter(write, buffer_size=1000, lines_per_leaf=2)
    ref = Reference(2)
    for n in (10, 500_000, 20, 3_000_000, 999, 1000, 5):
        body = b"{" + os.urandom(n).replace(b"\n", b" ")
        w.line(body)
        ref.line(body)
        assert w.buffered <= max(1000, n + 1 + 77)
    _check_same(w, ref, out)
    assert max(writes) >= 3_000_000


def test_bytes_like_bodies() -> None:
    out = bytearray()
    w = LineWriter(out.extend)
    ref = Reference()
    w.line(bytearray(b'{"a":1'))
    w.line(memoryview(b'xx{"b":2')[2:])
    ref.line(b'{"a":1')
    ref.line(b'{"b":2')
    _check_same(w, ref, out)


# -- bad arguments ----------------------------------------------------------------------------


def test_bad_arguments_raise() -> None:
    sink = bytearray().extend
    bad_new: list[tuple[tuple[Any, ...], dict[str, Any], type[Exception]]] = [
        ((), {}, TypeError),
        ((3,), {}, TypeError),
        ((sink, 10), {}, TypeError),  # buffer_size is keyword-only
        ((sink,), {"buffer_size": 0}, ValueError),
        ((sink,), {"lines_per_leaf": -1}, ValueError),
        ((sink,), {"buffer_size": "big"}, TypeError),
        ((sink,), {"slow": print}, TypeError),  # the writer has no slow path any more
        ((sink,), {"on_leaf": "x"}, TypeError),
        ((sink,), {"nope": 1}, TypeError),
    ]
    for args, kwargs, exc in bad_new:
        with pytest.raises(exc):
            LineWriter(*args, **kwargs)
    w = LineWriter(sink)
    for body, exc2 in [("text", TypeError), (None, TypeError), (5, TypeError),
                       (b"a\nb", ValueError), (b"\n", ValueError)]:
        with pytest.raises(exc2):
            w.line(body)
        with pytest.raises(exc2):
            w.summary(body)
    ev = _event()
    bad_sites: list[tuple[tuple[Any, ...], type[Exception]]] = [
        ((id(ev), "pre", SUFFIX, ev), TypeError),
        ((id(ev), PREFIX, None, ev), TypeError),
        (("key", PREFIX, SUFFIX, ev), TypeError),
        ((-1, PREFIX, SUFFIX, ev), ValueError),
        ((2**70, PREFIX, SUFFIX, ev), ValueError),
        ((id(ev), b"a\n", SUFFIX, ev), ValueError),
        ((id(ev), PREFIX), TypeError),
    ]
    for args, exc in bad_sites:
        with pytest.raises(exc):
            w.add_site(*args)
    bad_calls: list[Callable[[], object]] = [
        lambda: w.op(), lambda: w.op(ev), lambda: w.op(ev, 1), lambda: w.op(ev, 1, 1, 1),
        lambda: w.op(ev, 1, depth=1), lambda: w(VM(), ev),  # the writer reads no vm
    ]
    for call in bad_calls:
        with pytest.raises(TypeError):
            call()
    assert w.lines == 0 and w.buffered == 0
    w.line(b"{")
    assert w.lines == 1


def test_reference_cycles_are_collected() -> None:
    class Sink:
        def __init__(self) -> None:
            self.data = bytearray()
            self.writer: Any = LineWriter(self.write, on_leaf=self.leaf)
            ev = _event()
            self.writer.add_site(id(ev), PREFIX, SUFFIX, (ev, self))

        def write(self, data: bytes) -> None:
            self.data.extend(data)

        def leaf(self) -> None:
            pass

    sink = Sink()
    sink.writer.line(b"{")
    alive = weakref.ref(sink)
    del sink
    gc.collect()
    assert alive() is None


def test_pure_python_writer_agrees_when_both_are_there() -> None:
    from blocktrace.chain.writer import PyLineWriter

    outs = []
    for cls in (LineWriter, PyLineWriter):
        out = bytearray()
        w = cls(out.extend, buffer_size=333, lines_per_leaf=16, version=3)
        ev = _event()
        w.add_site(id(ev), PREFIX, SUFFIX, ev)
        for i in range(100):
            if i % 3:
                w.op(ev, i * 977, i % 4)
            else:
                w.line(b'{"i":%d' % i)
        w.close_leaf()
        root = w.root()
        w.summary(b'{"output":""')
        w.flush()
        outs.append((bytes(out), w.head, root, w.tree_size, w.lines))
    assert outs[0] == outs[1]



def _workload() -> int:
    total = 0
    for i in range(300):
        total += i * 3 if i % 2 else i
    return total


def test_a_real_trace_through_chain_tracer(tmp_path: Path) -> None:
    """The stepper drives ChainTracer, whose writer is this module: the file
    verifies with blocktrace's verifier and with the reference above."""
    import blocktrace
    from blocktrace.chain import writer
    from blocktrace.chain.verify import verify_file

    if not writer.ACCELERATED:
        pytest.skip("BLOCKTRACE_PURE is set: ChainTracer uses the Python writer")
    path = tmp_path / "t.jsonl"
    tracer = blocktrace.ChainTracer(path, format_version=3)  # the Reference is v3
    assert isinstance(tracer.op_line.__self__, _cwriter.LineWriter)  # the stepper passes gas, depth
    with blocktrace.trace(tracer):
        assert _workload() == sum(i * 3 if i % 2 else i for i in range(300))
    data = path.read_bytes()
    result = verify_file(path)
    assert result.status == "sealed", result.reason
    # Format version 3: the summary is an ordinary line (in the last leaf).
    bodies = verify_reference(data, 16, False)
    assert len(bodies) > 1000
    assert sum(b'"opName":' in b for b in bodies) > 1000


# -- format version 4 ------------------------------------------------------------------


def test_the_version_written_by_default_is_the_formats() -> None:
    from blocktrace.format.versions import FORMAT_VERSION

    assert _cwriter.LineWriter(bytearray().extend).version == FORMAT_VERSION
    for version in (2, 3, 4):
        assert LineWriter(bytearray().extend, version=version).version == version
    for version in (0, 1, 5):
        with pytest.raises(ValueError, match="not one this writer writes"):
            LineWriter(bytearray().extend, version=version)


@_writer_runs
def test_version_4_matches_the_reference_byte_for_byte(
    per_leaf: int, steps: list[bytes | None], buffer_size: int, seal: bool
) -> None:
    """Version 4 (a leaf's stream 0x00, the hash before it, each body and a newline; the
    leaf hash is its last line's hash) against ``rules.LeafChain(version=4)``: bytes,
    head, tree and root after every step."""
    from tests.chain.v4ref import V4Reference

    out, ref_out = bytearray(), bytearray()
    w = LineWriter(out.extend, buffer_size=buffer_size, lines_per_leaf=per_leaf, version=4)
    ref = V4Reference(ref_out.extend, lines_per_leaf=per_leaf)
    assert w.head == ref.head == _sha(b"blocktrace-chain/4\n").hex()
    for step in steps:
        if step is None:
            w.close_leaf()
            ref.close_leaf()
        else:
            w.line(step)
            ref.line(step)
        assert (w.head, w.lines, w.tree_size) == (ref.head, ref.lines, ref.tree_size)
    if seal:
        w.line(b'{"output":"","lines":%d' % ref.lines)
        w.close_leaf()
        ref.seal(b'{"output":"","lines":%d' % ref.lines)
    w.flush()
    ref.flush()
    assert bytes(out) == bytes(ref_out)
    assert (w.head, w.lines, w.tree_size, w.root()) == (ref.head, ref.lines, ref.tree_size,
                                                        ref.root())
    if per_leaf == 0:
        assert w.tree_size == 0 and w.root() == _sha(b"")
    if None not in steps and per_leaf == 16:  # as rechain writes the same bodies
        bodies = [s for s in steps if s is not None]
        if seal:
            bodies.append(b'{"output":"","lines":%d' % len(bodies))
        from blocktrace.format import rules

        assert bytes(out) == rules.rechain(bodies, 4)


def test_version_4_has_no_summary_rule_of_its_own() -> None:
    out = bytearray()
    w = LineWriter(out.extend, version=4)
    w.line(b'{"a":1')
    with pytest.raises(ValueError, match="no summary rule"):
        w.summary(b'{"output":""')
    assert w.lines == 1
    w.flush()
    assert out.count(b"\n") == 1


def test_version_4_on_leaf_and_ops() -> None:
    """on_leaf after each leaf (the tree then holds it: its hash is the leaf's last
    line's), and op lines from a site as line would write them."""
    from tests.chain.v4ref import V4Reference

    seen: list[tuple[int, bytes, str]] = []
    w: Any = None

    def on_leaf() -> None:
        seen.append((w.tree_size, w.root(), w.head))

    out, ref_out = bytearray(), bytearray()
    w = LineWriter(out.extend, lines_per_leaf=3, on_leaf=on_leaf, version=4)
    ref = V4Reference(ref_out.extend, lines_per_leaf=3)
    event = _event()
    w.add_site(id(event), PREFIX, SUFFIX, event)
    ref.add_site(id(event), PREFIX, SUFFIX, event)
    for i in range(7):
        assert w.op(event, 1000 - i, 1 + i % 3)
        ref.op(event, 1000 - i, 1 + i % 3)
        if i in (2, 5):
            assert seen[-1] == (ref.tree_size, ref.root(), ref.head)
            assert bytes.fromhex(ref.head) == ref.leaves[-1]
    w.close_leaf()
    ref.close_leaf()
    assert len(seen) == 3 and seen[-1] == (3, ref.root(), ref.head)
    w.flush()
    ref.flush()
    assert bytes(out) == bytes(ref_out)
