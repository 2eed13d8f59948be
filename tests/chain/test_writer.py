"""The line writers (the Python reference and the C one) write the same bytes and
keep the same promises: partial writes, failed writes, re-entrant flushes."""

from __future__ import annotations

import io
from typing import Any

import pytest

from blocktrace import _native
from blocktrace.chain import merkle
from blocktrace.chain.hashing import LeafChain, split_hash
from blocktrace.chain.writer import ACCELERATED, LineWriter, PyLineWriter
from blocktrace.events import OpStart
from blocktrace.format.versions import FORMAT_VERSION

NO_C_WRITER = ("C line writer switched off (BLOCKTRACE_PURE is set)" if _native.PURE
               else "C line writer not built")
WRITERS: list[Any] = [pytest.param(PyLineWriter, id="python")]
if ACCELERATED:
    WRITERS.append(pytest.param(LineWriter, id="c"))
else:
    WRITERS.append(pytest.param(None, id="c", marks=pytest.mark.skip(NO_C_WRITER)))


def _bodies(n: int) -> list[bytes]:
    return [b'{"pc":%d,"op":1,"gas":"0x%x","gasCost":"0x1","depth":1' % (i, 1000 - i)
            for i in range(n)]


def _check(data: bytes, summary: bool, version: int = FORMAT_VERSION) -> list[bytes]:
    """Verify ``data`` with the reading side of the chain (``version``'s rules: what
    the writers write by default); return the leaf hashes."""
    leaves: list[bytes] = []
    chain = LeafChain(merkle.LINES_PER_LEAF, leaves.append, version)
    lines = data.split(b"\n")[:-1]
    for i, line in enumerate(lines):
        parts = split_hash(line)
        assert parts is not None, line
        if summary and i == len(lines) - 1:
            assert chain.check_summary(parts[0]) == parts[1]
        else:
            assert chain.check(parts[0], line + b"\n") == parts[1], i
    chain.close_leaf()
    return leaves


@pytest.mark.parametrize("cls", WRITERS)
def test_lines_sites_and_summary_are_the_documented_bytes(cls: Any) -> None:
    """Version 3's writer (``summary()``, version 2's summary rule, is not version 4's)."""
    out = io.BytesIO()
    w = cls(out.write, buffer_size=100, version=3)
    for body in _bodies(20):
        w.line(body)
    site = OpStart(4, 100, "LOAD_FAST", 3, 1)
    w.add_site(id(site), b'{"pc":4,"op":100,"gas":"0x', b',"opName":"LOAD_FAST","line":3', site)
    for gas in range(30):
        assert w.op(site, 10**12 + gas, 2) is True
    other = OpStart(6, 100, "LOAD_FAST", 3, 1)
    assert w.op(other, 5, 1) is False  # no site: nothing written, the caller's to do
    assert w.lines == 50
    w.close_leaf()
    assert w.tree_size == 4  # 16 + 16 + 16 + 2
    root = w.root()
    w.summary(b'{"output":"0","root":"%s"' % root.hex().encode())
    w.flush()
    data = out.getvalue()
    assert w.buffered == 0 and w.lines == 51
    leaves = _check(data, summary=True, version=3)
    lines = data.split(b"\n")[:-1]
    assert b'"gas":"0xe8d4a51000","gasCost":"0x1","depth":2,"opName":"LOAD_FAST","line":3,' \
        in lines[20]
    tree_lines = [line + b"\n" for line in lines[:-1]]
    expected = [b"".join(tree_lines[k : k + 16]) for k in range(0, 50, 16)]
    assert leaves == [merkle.leaf_hash(x) for x in expected]
    assert root == merkle.root(expected)
    assert w.head == split_hash(lines[-1])[1]  # type: ignore[index]
    with pytest.raises(ValueError):
        w.line(b'{"after":1')
    with pytest.raises(ValueError):
        cls(out.write).line(b'{"a":"\n"')


def test_both_writers_write_the_same_bytes() -> None:
    if not ACCELERATED:
        pytest.skip(NO_C_WRITER)
    outs = []
    for cls in (PyLineWriter, LineWriter):
        out = io.BytesIO()
        w = cls(out.write, buffer_size=64, version=3)  # summary(): version 2's rule
        for body in _bodies(70):
            w.line(body)
        w.close_leaf()
        w.summary(b'{"output":"","treeSize":%d' % w.tree_size)
        w.flush()
        outs.append((out.getvalue(), w.root(), w.head))
    assert outs[0] == outs[1]


@pytest.mark.parametrize("cls", WRITERS)
def test_partial_writes_lose_and_repeat_nothing(cls: Any) -> None:
    out = io.BytesIO()

    def one_byte(data: bytes) -> int:
        return out.write(data[:1])

    w = cls(one_byte, buffer_size=50)
    for body in _bodies(40):
        w.line(body)
    w.flush()
    _check(out.getvalue(), summary=False)
    assert out.getvalue().count(b"\n") == 40


@pytest.mark.parametrize("cls", WRITERS)
def test_a_failed_write_keeps_the_bytes_and_the_line_is_not_sealed(cls: Any) -> None:
    out = io.BytesIO()
    fail = [False]

    def write(data: bytes) -> int:
        if fail[0]:
            raise OSError(28, "No space left on device")
        return out.write(data)

    w = cls(write, buffer_size=200)
    bodies = _bodies(30)
    sealed = 0
    for i, body in enumerate(bodies):
        fail[0] = i % 7 == 3
        try:
            w.line(body)
            sealed += 1
        except OSError:
            pass
    fail[0] = False
    w.flush()
    data = out.getvalue()
    assert data.count(b"\n") == sealed == w.lines
    _check(data, summary=False)


@pytest.mark.parametrize("cls", WRITERS)
def test_an_interruption_that_says_what_it_wrote(cls: Any) -> None:
    """A handler's exception after the stream took the bytes: ``characters_written``."""
    out = io.BytesIO()
    calls = [0]

    def write(data: bytes) -> int:
        calls[0] += 1
        n = out.write(data)
        if calls[0] == 3:
            exc = KeyboardInterrupt()
            exc.characters_written = n  # type: ignore[attr-defined]
            raise exc
        return n

    w = cls(write, buffer_size=150)
    interrupted = 0
    for body in _bodies(40):
        try:
            w.line(body)
        except KeyboardInterrupt:
            interrupted += 1
    w.flush()
    assert interrupted == 1
    data = out.getvalue()
    assert data.count(b"\n") == w.lines == 39
    _check(data, summary=False)


@pytest.mark.parametrize("cls", WRITERS)
def test_a_flush_reentered_from_write_writes_each_line_once(cls: Any) -> None:
    """A signal handler runs inside write() and its traced code writes a line."""
    out = io.BytesIO()
    box: list[Any] = []
    depth = [0]

    nested = [0]

    def write(data: bytes) -> int:
        if depth[0] == 0 and nested[0] < 3:
            nested[0] += 1
            depth[0] += 1
            try:
                box[0].line(b'{"event":"nested"')
            finally:
                depth[0] -= 1
        return out.write(data)

    w = cls(write, buffer_size=120)
    box.append(w)
    for body in _bodies(25):
        w.line(body)
    w.flush()
    data = out.getvalue()
    assert data.count(b"\n") == w.lines
    assert data.count(b'"event":"nested"') == w.lines - 25 == 3
    _check(data, summary=False)


@pytest.mark.parametrize("cls", WRITERS)
def test_lines_per_leaf_zero_is_one_stream_without_a_tree(cls: Any) -> None:
    out = io.BytesIO()
    w = cls(out.write, lines_per_leaf=0)
    for body in _bodies(40):
        w.line(body)
    w.flush()
    assert w.tree_size == 0 and w.root() == merkle.EMPTY_ROOT
    chain = LeafChain(0, version=FORMAT_VERSION)
    for line in out.getvalue().split(b"\n")[:-1]:
        parts = split_hash(line)
        assert parts is not None and chain.check(parts[0], line + b"\n") == parts[1]


@pytest.mark.parametrize("cls", WRITERS)
def test_a_stream_that_takes_nothing_is_an_error_not_a_hang(cls: Any) -> None:
    w = cls(lambda data: 0, buffer_size=10)
    w.line(b'{"a":1')
    with pytest.raises(OSError, match="took no bytes"):
        w.flush()
    assert w.buffered > 0 and w.lines == 1  # kept, for a flush that works


def _takes_version_4(cls: Any) -> bool:
    try:
        cls(io.BytesIO().write, version=4)
    except TypeError:  # the C writer before it took ``version``
        return False
    return True


V4_WRITERS = [
    p if p.values[0] is None or _takes_version_4(p.values[0])
    else pytest.param(None, id=p.id, marks=pytest.mark.skip("this C writer has no version 4"))
    for p in WRITERS
]


@pytest.mark.parametrize("cls", V4_WRITERS)
def test_version_4_lines_and_sites_are_the_reference_bytes(cls: Any) -> None:
    """Lines, op lines from sites (the per-instruction path), leaf ends, small
    buffers: version 4's bytes are ``rules.rechain(bodies, 4)``'s, its leaf
    hashes the leaves' last lines' hashes."""
    from blocktrace.format import rules

    out = io.BytesIO()
    leaves_seen = [0]
    w = cls(out.write, buffer_size=90, version=4, on_leaf=lambda: leaves_seen.__setitem__(
        0, leaves_seen[0] + 1))
    site = OpStart(4, 100, "LOAD_FAST", 3, 1)
    w.add_site(id(site), b'{"pc":4,"op":100,"gas":"0x', b',"opName":"LOAD_FAST","line":3', site)
    for i, body in enumerate(_bodies(45)):
        w.line(body)
        if i % 3 == 0:
            assert w.op(site, 10**9 + i, 1 + i % 4) is True
    w.line(b'{"output":"","gasUsed":"0x1","lines":%d' % (w.lines + 1))
    w.close_leaf()
    w.flush()
    data = out.getvalue()
    lines = data.splitlines(keepends=True)
    bodies = []
    for line in lines:
        parts = split_hash(line[:-1])
        assert parts is not None
        bodies.append(parts[0])
    leaves: list[bytes] = []
    assert data == rules.rechain(bodies, 4, leaves.append)
    assert len(lines) == w.lines == 61 and w.tree_size == len(leaves) == 4
    assert leaves_seen[0] == 4
    assert leaves[-1].hex() == w.head == split_hash(lines[-1][:-1])[1]  # type: ignore[index]
    assert w.root() == merkle.root_from_hashes(leaves)
    assert b'"gas":"0x3b9aca00","gasCost":"0x1","depth":1,"opName":"LOAD_FAST"' in data


@pytest.mark.parametrize("cls", V4_WRITERS)
def test_version_4_partial_and_failed_writes_lose_nothing(cls: Any) -> None:
    from blocktrace.format import rules

    out = io.BytesIO()
    calls = [0]

    def write(data: bytes) -> int:
        calls[0] += 1
        if calls[0] % 5 == 2:
            raise OSError(28, "No space left on device")
        return out.write(data[:7])

    w = cls(write, buffer_size=120, version=4)
    sealed = []
    for body in _bodies(40):
        try:
            w.line(body)
            sealed.append(body)
        except OSError:
            pass
    while True:
        try:
            w.flush()
            break
        except OSError:
            pass
    assert out.getvalue() == rules.rechain(sealed, 4) and len(sealed) == w.lines


def test_the_python_writer_refuses_a_version_2_summary_in_version_4() -> None:
    w = PyLineWriter(io.BytesIO().write, version=4)
    w.line(b'{"a":1')
    with pytest.raises(ValueError, match="version 4"):
        w.summary(b'{"output":""')
    with pytest.raises(ValueError, match="versions 2, 3 and 4"):
        PyLineWriter(io.BytesIO().write, version=1)
