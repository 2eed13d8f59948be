"""What the reader fuzz tests share: running a command in-process with a
watchdog, mutating real inputs, re-chaining them, and the settings profile.

The property every reader holds (issue 11): whatever the input, the command
answers with one of its documented exit statuses and at most one line on
stderr -- never a traceback, never a hang.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import signal
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st

from blocktrace.chain.hashing import split_hash
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.cli import main

# -- the settings profile --------------------------------------------------------------

settings.register_profile(
    "blocktrace-fuzz",
    # Deterministic by default (CI): the same examples every run, no example database.
    # 20 (was 40): every damage class of ``mutated`` still reaches every reader of
    # test_fuzz_readers.py (``--hypothesis-show-statistics`` counts them); the
    # repetitions are the deep search's.
    derandomize=True,
    database=None,
    max_examples=int(os.environ.get("BLOCKTRACE_FUZZ_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.register_profile(
    "blocktrace-fuzz-deep",
    # BLOCKTRACE_FUZZ=deep: a long random search, to look for new bugs (not for CI).
    parent=settings.get_profile("blocktrace-fuzz"),
    derandomize=False,
    max_examples=int(os.environ.get("BLOCKTRACE_FUZZ_EXAMPLES", "2000")),
)
FUZZ = settings.get_profile(
    "blocktrace-fuzz-deep" if os.environ.get("BLOCKTRACE_FUZZ") == "deep" else "blocktrace-fuzz"
)
"""The decorator every fuzz test takes: ``@FUZZ``."""

WATCHDOG_SECONDS = 30.0
"""One in-process command on a fuzz input taking longer than this is a hang."""

MEMORY_HEADROOM = 1 << 30
"""Memory one in-process command may add to the test process's (its writable
private memory, ``RLIMIT_DATA``): the inputs are kilobytes, so needing more is
unbounded memory (a ``MemoryError``)."""

ARROW_POOL = {"ARROW_DEFAULT_MEMORY_POOL": "system"}
"""The environment the fuzz worker processes get (worker.Worker): pyarrow's default
allocator (mimalloc) reserves a whole GiB at its first allocation, writable (so
counted by RLIMIT_DATA too), which is not memory used: under the cap, with the
headroom above, ``export parquet`` then failed with ``ArrowMemoryError: malloc of
size 256 failed`` whenever that first allocation came under the cap (CI, 3.12,
test_fuzz_one_answer's worker).  The system allocator asks for what it uses.  Only
the workers' environment: the test process keeps pyarrow's default, so a file's
tests see the allocator they see in a whole-suite run, and :func:`memory_cap`
switches pyarrow to the system allocator for the capped command only."""

# -- running a command in-process ------------------------------------------------------


class Hang(Exception):
    """A command ran past the watchdog."""


KNOWN_BUGS: dict[str, Callable[[BaseException], bool]] = {
    # Crashes with a strict-xfail regression test in test_corpus.py, tolerated here
    # until they are fixed (then the entry goes, and the fuzz tests hold them too).
}


@dataclass
class Answer:
    status: int
    stdout: bytes
    stderr: str
    known_bug: str | None = None

    def check(self, allowed: Sequence[int], what: str) -> None:
        """The reader property: a documented status, at most one line on stderr."""
        if self.known_bug is not None:
            _event(f"known bug: {self.known_bug}")
            return
        _event(f"exit {self.status}")
        assert self.status in allowed, f"{what}: exit {self.status}, not one of {allowed}\n{self}"
        assert "Traceback" not in self.stderr, f"{what}: traceback\n{self.stderr}"
        assert self.stderr.count("\n") <= 1, f"{what}: more than one line on stderr\n{self.stderr}"
        assert not self.stderr or self.stderr.endswith("\n"), f"{what}: {self.stderr!r}"
        if self.status != 0 and self.stderr:
            assert self.stderr.startswith("blocktrace "), f"{what}: no prefix: {self.stderr!r}"


def _event(text: str) -> None:
    """Count an outcome in hypothesis's statistics (when inside a hypothesis test)."""
    if currently_in_test_context():
        event(text)


def _stream(data: bytes = b"", errors: str = "strict") -> io.TextIOWrapper:
    # What a real process has: UTF-8 stdout, strict (a lone surrogate is an error there
    # too), and stderr with backslashreplace.
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors=errors,
                            write_through=True)


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds``."""

    def fire(signum: int, frame: types.FrameType | None) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _data_size() -> int:
    """What ``RLIMIT_DATA`` counts now: the private writable memory (``VmData``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmData in /proc/self/status")


@contextlib.contextmanager
def memory_cap(headroom: int) -> Iterator[None]:
    """Cap this process's writable private memory at its current size plus
    ``headroom`` (the soft limit only, so it can be put back).

    ``RLIMIT_DATA``, not ``RLIMIT_AS``: address space counts what is reserved,
    not used, and how much is reserved depends on timing.  glibc gives each new
    thread its own 64 MiB malloc arena (up to 8 a core) and each thread an 8 MiB
    stack: DuckDB's first connection, with its 9 threads, took ~650 MiB of
    address space, and a fresh worker's ``query`` peaked at 892-952 MiB of the
    GiB; 16 threads that allocate a few bytes each did not fit (test_harness_cap.py).
    What the threads write is counted either way."""
    arrow = _pyarrow()
    pool = arrow.default_memory_pool() if arrow is not None else None
    if arrow is not None and pool.backend_name != "system":
        arrow.set_memory_pool(arrow.system_memory_pool())
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = _data_size() + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
        if arrow is not None:
            arrow.set_memory_pool(pool)


def _pyarrow() -> Any:
    """pyarrow, imported before the cap (its default pool made there, so the cap
    can switch it, see :data:`ARROW_POOL`), or None when it is not installed."""
    try:
        import pyarrow
    except ImportError:
        return None
    return pyarrow


def run_cli(*argv: str | Path, stdin: bytes = b"", tolerate_known_bugs: bool = True) -> Answer:
    """``blocktrace ARGV`` in this process (``blocktrace.cli.main``), stdout and
    stderr captured as a real process's, under the watchdog.  An exception out
    of ``main`` is not caught: it is the bug (a traceback in a real process)."""
    out, err, inp = _stream(), _stream(errors="backslashreplace"), _stream(stdin)
    status: int | str | None
    with (contextlib.redirect_stdout(out), contextlib.redirect_stderr(err),
          _stdin(inp), watchdog(WATCHDOG_SECONDS), memory_cap(MEMORY_HEADROOM)):
        try:
            status = main([os.fspath(a) for a in argv])
        except SystemExit as exc:  # argparse: usage errors and --help
            status = exc.code
        except Exception as exc:
            for name, matches in KNOWN_BUGS.items():
                if tolerate_known_bugs and matches(exc):
                    return Answer(-1, b"", "", known_bug=name)
            raise
    out.flush()
    err.flush()
    assert isinstance(status, int), f"exit status {status!r}"
    buffer = out.buffer
    assert isinstance(buffer, io.BytesIO)
    err_buffer = err.buffer
    assert isinstance(err_buffer, io.BytesIO)
    return Answer(status, buffer.getvalue(), err_buffer.getvalue().decode("utf-8"))


@contextlib.contextmanager
def _stdin(stream: io.TextIOWrapper) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = stream
    try:
        yield
    finally:
        sys.stdin = saved


# -- mutations -------------------------------------------------------------------------

DEEP = 10_000
"""Nesting depth of the deep-JSON token (issue 11: 10,000 levels, 20 KB)."""

TOKENS: tuple[bytes, ...] = (
    b"\n", b"\r\n", b"\r", b"\x00", b"\xff", b"\xef\xbb\xbf", b"{", b"}", b"[", b"]", b'"', b"\\",
    b",", b":", b"null", b"true", b"-0", b"1e999", b"-1", b"0x", b'"0xzz"', b"18446744073709551616",
    b"9" * 400, b'"\\ud800"', b'"\\u0000"', b"\xed\xa0\x80", b"\xc0\xaf", b" " * 64,
    b"[" * 64, b"{" * 64, b'{"a":' * 64, b'"hash":"' + b"0" * 64 + b'"', b"NaN", b"Infinity",
)

KEYS: tuple[str, ...] = (
    # header, op, event, summary and EIP-3155 members
    "blocktrace", "hashAlg", "genesis", "level", "python", "argv", "pid", "start",
    "pc", "op", "gas", "gasCost", "memSize", "stack", "depth", "refund", "opName", "error",
    "line", "code", "event", "file", "name", "firstLine", "thread", "locals", "globals",
    "sha256", "size", "text", "output", "gasUsed", "pass", "time", "lines", "head", "root",
    "treeSize", "stateRoot", "returnData", "memory", "storage", "section", "functionDepth",
    "format", "leafIndex", "indexInLeaf", "auditPath", "leafLines",
)

_PLACEHOLDER = "\x00deep\x00"
_SURROGATE = "\x00surrogate\x00"
_RAW_JSON = {
    # Python strings msgspec cannot (or should not) encode, spliced in as raw JSON text
    msgspec.json.encode(_PLACEHOLDER): b"[" * DEEP + b"]" * DEEP,
    msgspec.json.encode(_SURROGATE): b'"\\ud800"',
}

json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63, 2**64, 2**64 - 1, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "0x", "0xzz", "zz", "0x" + "f" * 70, "-0x1", "0x-1", " 0x1", "1e3",
                     _SURROGATE, "/dev/zero", "/dev/stdin", "/etc/passwd", "<string>",
                     "call", "return", "source", "raise", "exception", "sha256", _PLACEHOLDER]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=8,
)


def _encode(value: Any) -> bytes:
    """JSON of ``value``, placeholders replaced by raw JSON (10,000 nested lists, a
    lone surrogate's escape)."""
    text = msgspec.json.encode(value)
    for placeholder, raw in _RAW_JSON.items():
        text = text.replace(placeholder, raw)
    return text


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


Draw = Callable[[st.SearchStrategy[Any]], Any]


def _index(draw: Draw, n: int) -> int:
    return int(draw(st.integers(min_value=0, max_value=max(n - 1, 0))))


def _line_index(draw: Draw, lines: Sequence[bytes]) -> int:
    """A line to edit: often the header or the last line (the summary), whose
    members every reader interprets, else any line."""
    where = draw(st.sampled_from(["first", "last", "any", "any"]))
    if where == "first":
        return 0
    if where == "last":
        return len(lines) - 1
    return _index(draw, len(lines))


def _flip(draw: Draw, data: bytes) -> bytes:
    if not data:
        return data
    i = _index(draw, len(data))
    return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]


def _insert(draw: Draw, data: bytes) -> bytes:
    i = _index(draw, len(data) + 1)
    token = draw(st.one_of(st.sampled_from(TOKENS), st.binary(min_size=1, max_size=16)))
    return data[:i] + token + data[i:]


def _delete(draw: Draw, data: bytes) -> bytes:
    i = _index(draw, len(data))
    return data[:i] + data[i + draw(st.integers(1, 64)) :]


def _duplicate(draw: Draw, data: bytes) -> bytes:
    i = _index(draw, len(data))
    j = i + draw(st.integers(1, 256))
    return data[:j] + data[i:j] + data[j:]


def _truncate(draw: Draw, data: bytes) -> bytes:
    return data[: _index(draw, len(data))]


def _line_op(draw: Draw, data: bytes) -> bytes:
    lines = _lines(data)
    if not lines:
        return data
    i = _line_index(draw, lines)
    how = draw(st.sampled_from(["delete", "duplicate", "swap", "replace"]))
    if how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    elif how == "swap":
        j = _index(draw, len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = _encode(draw(json_values)) + b"\n"
    return b"".join(lines)


def _json_edit(draw: Draw, data: bytes) -> bytes:
    """Change, drop or add one member of one line that is a JSON object."""
    lines = _lines(data)
    if not lines:
        return data
    i = _line_index(draw, lines)
    try:
        obj = msgspec.json.decode(lines[i])
    except (msgspec.DecodeError, RecursionError):
        return data
    if not isinstance(obj, dict):
        return data
    keys = sorted(obj)
    how = draw(st.sampled_from(["set", "drop", "add"]))
    if how == "drop" and keys:
        del obj[draw(st.sampled_from(keys))]
    elif how == "set" and keys:
        obj[draw(st.sampled_from(keys))] = draw(json_values)
    else:
        obj[draw(st.sampled_from(KEYS))] = draw(json_values)
    ending = b"\n" if lines[i].endswith(b"\n") else b""
    lines[i] = _encode(obj) + ending
    return b"".join(lines)


BYTE_OPS = (_flip, _insert, _delete, _duplicate, _truncate)
LINE_OPS = (_line_op, _json_edit, _json_edit)


class Inputs(tuple[bytes, ...]):
    """Seed inputs, shown short in hypothesis's reports."""

    def __repr__(self) -> str:
        return f"<{len(self)} seed inputs of {sum(map(len, self))} bytes>"


@st.composite
def mutated(draw: Draw, seeds: Sequence[bytes], rechain_share: float = 0.5) -> bytes:
    """A real input with one to three byte- or line-level mutations; about
    ``rechain_share`` of them re-chained afterwards (every hash recomputed), so
    the mutation reaches the parsers behind the hash check."""
    data = draw(st.sampled_from(list(seeds)))  # (``Inputs`` keeps the report short)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(BYTE_OPS + LINE_OPS))
        _event(f"damage {op.__name__.strip('_')}")
        data = op(draw, data)
    if rechain_share and draw(st.floats(0, 1)) < rechain_share:
        _event("damage re-chained")
        data = rechain(data)
    return bytes(data)


# -- re-chaining -----------------------------------------------------------------------

_NO_HASH = b',"hash":"' + b"0" * 64 + b'"}'


def _with_hash_member(line: bytes) -> bytes:
    """A line as ``rechain_trace`` takes it: one without a hash member gets a
    placeholder (its body: the line without a closing brace, if any)."""
    if split_hash(line) is not None:
        return line
    return (line[:-1] if line.endswith(b"}") else line) + _NO_HASH


def rechain(data: bytes) -> bytes:
    """What a forger who knows docs/FORMAT.md does after an edit: recompute every
    line's hash (and the summary's count, and for versions 1 and 2 its head and
    root) by the format's rules (``blocktrace.chain.rewrite``), so the chain
    checks again.  Works on anything it can: a line that is not JSON is hashed
    as it is, a torn last line stays torn; when even the header is unreadable
    the input is returned as it is."""
    lines = data.splitlines(keepends=True)
    torn = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
    if not lines:
        return data
    whole = b"".join(_with_hash_member(line.rstrip(b"\r\n")) + b"\n" for line in lines)
    for fix_summary in (True, False):
        try:
            return rechain_trace(whole, fix_summary=fix_summary) + torn
        except (ValueError, TypeError, KeyError, RecursionError, msgspec.DecodeError):
            continue
    return data
