"""Golden bytes: a recorded trace with its volatile values replaced, re-chained.

A golden file is an ordinary blocktrace trace (``blocktrace verify``, ``diff``,
``lines`` read it) whose bytes -- hashes included -- are the same whenever the
test behaves the same.  What changes from run to run although the behaviour
does not is replaced, never a key:

- header: ``genesis`` (a fixed token), ``start`` (the epoch), ``pid`` (0),
  ``python`` (major.minor only), ``argv`` (the test's id);
- summary: ``time`` (0); the chain members are recomputed;
- every string value: the project root's absolute path (a ``file`` becomes
  relative to the root; paths elsewhere under it lose the prefix), object
  addresses (`` at 0x7f...`` -> `` at 0x?``), pytest's temporary directory
  (``<tmp>``), and whatever the user's value patterns match (``<masked>``).

Per-trace object numbers (``<T #n>``) and code numbers are already stable: they
count first sightings in the run.  The lines are re-sealed with the chain
writer, so the file verifies.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from blocktrace.chain.merkle import LINES_PER_LEAF
from blocktrace.chain.writer import LineWriter
from blocktrace.format.lines import SUMMARY_PREFIX
from blocktrace.format.linesource import BufferedLines, Readable
from blocktrace.format.rules import HASH_FIELD, LINE_TAIL_LEN

__all__ = [
    "EPOCH", "GOLDEN_GENESIS", "UNCOUNTED", "Normaliser", "golden_body", "golden_header",
    "golden_summary", "stabilise",
]

GOLDEN_GENESIS = "blocktrace-golden"
"""The genesis token of every golden trace (a golden proves no time of making)."""
EPOCH = "1970-01-01T00:00:00.000000Z"
UNCOUNTED = "uncounted"
"""The header's ``gas`` of a calls-level golden: recorded without counting
instructions (gas is not compared at calls level), so every ``gas`` is the
limit's and ``gasUsed`` 0."""

_TAIL = LINE_TAIL_LEN - 1  # ,"hash":"<64 hex>"} (without the newline)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_HEX = frozenset(bytes([c]) for c in b"0123456789abcdefABCDEF")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


@functools.cache
def _library_places() -> tuple[tuple[str, str], ...]:
    """This interpreter's library directories and their names in golden form (asked
    of ``sysconfig`` once: about a millisecond each time, for every test)."""
    places = []
    for key, name in (("purelib", "<site-packages>"), ("platlib", "<site-packages>"),
                      ("stdlib", "<stdlib>"), ("platstdlib", "<stdlib>")):
        try:
            places.append((os.path.realpath(sysconfig.get_path(key)), name))
        except KeyError:
            pass
    return tuple(places)


@dataclass
class Normaliser:
    """The value rules of one golden: ``root`` (the project root, absolute),
    ``argv`` (written in the header), ``temp`` (pytest's base temporary
    directory, if any), ``masks`` (the user's value patterns)."""

    root: str
    argv: Sequence[str]
    temp: str | None = None
    masks: Sequence[str] = ()
    _masks: list[re.Pattern[str]] = field(default_factory=list, init=False)
    _probes: list[bytes] = field(default_factory=list, init=False)
    _paths: dict[str, str] = field(default_factory=dict, init=False)
    _places: list[tuple[str, str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.root = os.path.realpath(self.root)
        self._masks = [re.compile(m) for m in self.masks]
        self._probes = [b'"file":', b" at 0x", self.root.encode()]
        if self.temp:
            self.temp = os.path.realpath(self.temp)
            self._probes.append(self.temp.encode())
        # The longest prefix first: a virtual environment may live inside the project.
        self._places = sorted([(self.root, ""), *_library_places()],
                              key=lambda place: -len(place[0]))

    def probes(self) -> tuple[bytes, ...] | None:
        """What a line body that may hold a volatile value contains (one of these byte
        strings: a file, an address, the root or temporary path, a summary line), or
        None when any body may (there are masks)."""
        if self._masks:
            return None
        return (*self._probes, SUMMARY_PREFIX)

    def unsettled(self, data: bytes) -> bool:
        """Whether ``data`` (golden-form lines, or a piece of them) may still hold a
        value the golden form changes, outside ``file`` members (which a writer of
        golden lines normalises itself): an address, the root's or the temporary
        directory's path; always True with masks (any value may match one)."""
        if self._masks:
            return True
        return _unsettled()(data, tuple(self._probes[2:]))

    def path(self, value: str) -> str:
        """A ``file`` value: relative to the root when under it, else to the
        library directory it is in (``<stdlib>/...``, ``<site-packages>/...``)."""
        known = self._paths.get(value)
        if known is not None:
            return known
        result = value
        if os.path.isabs(value):
            real = os.path.realpath(value)
            for prefix, name in self._places:
                if real == prefix or real.startswith(prefix + os.sep):
                    rel = os.path.relpath(real, prefix).replace(os.sep, "/")
                    result = rel if name == "" else f"{name}/{rel}"
                    break
            else:
                result = self.text(real)
        if len(self._paths) < 10_000:
            self._paths[value] = result
        return result

    def text(self, value: str) -> str:
        """Any other string value."""
        if " at 0x" in value:
            value = _ADDRESS.sub(" at 0x?", value)
        if self.temp and self.temp in value:
            value = value.replace(self.temp, "<tmp>")
        if self.root in value:
            value = value.replace(self.root + os.sep, "").replace(self.root, ".")
        for mask in self._masks:
            value = mask.sub("<masked>", value)
        return value

    def value(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, str):
            return self.path(value) if key == "file" else self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def golden_header(body: bytes, rules: Normaliser, *, counted: bool = True) -> bytes:
    """The golden form of a header line's ``body`` (up to its hash member);
    ``counted`` False: recorded without counting gas (``"gas":"uncounted"``)."""
    header = _decode(body + b"}")
    header["genesis"] = GOLDEN_GENESIS
    if "start" in header:
        header["start"] = EPOCH
    if "pid" in header:
        header["pid"] = 0
    if "python" in header:
        header["python"] = ".".join(platform.python_version_tuple()[:2])
    header["argv"] = list(rules.argv)
    if not counted:
        header["gas"] = UNCOUNTED
    return _encode(header)[:-1]


def golden_body(body: bytes, rules: Normaliser) -> bytes:
    """The golden form of any other line's ``body`` (but the summary's): its
    values normalised (``Normaliser.value``), keys and order kept."""
    return _encode(rules.value(_decode(body + b"}")))[:-1]


def golden_summary(body: bytes, rules: Normaliser, lines: int) -> dict[str, Any]:
    """The golden form of a summary line's ``body``, as a dict (``time`` 0,
    ``lines`` the golden's count before it)."""
    summary: dict[str, Any] = rules.value(_decode(body + b"}"))
    summary["time"] = 0
    if "lines" in summary:
        summary["lines"] = lines
    return summary


_SEEN_BODIES = 1 << 16
"""Rewritten line bodies kept for reuse (a call line recurs byte for byte each time
the same function is called at the same depth)."""

_CHUNK = 1 << 22
"""Bytes of the recorded trace read at a time."""


class Writable(Protocol):
    """Where golden bytes go (a binary file, or anything with its ``write``)."""

    def write(self, data: bytes, /) -> object: ...


class StabiliseError(ValueError):
    """The recorded trace is not one this module can rewrite (a bug or a torn file)."""


def _py_scan(data: bytes | memoryview, start: int, probes: tuple[bytes, ...] | None,
             seen: dict[bytes, bytes], add: Callable[[bytes], object]) -> tuple[int, int]:
    """Hand the bodies of ``data``'s complete lines from ``start`` to ``add`` while
    Python has nothing to do for them; ``(offset, why)`` where it stopped (the
    reference of ``_cstabilise.scan``, whose comment says it in full): why 0, all
    complete lines done (``offset``: the incomplete rest); 1, the line at ``offset``
    needs Python (a summary, or a body that may hold a volatile value and was not
    rewritten yet); 2, the line at ``offset`` has no hash member."""
    data = bytes(data)  # (the reference: a copy of the piece is no matter)
    pos = start
    size = len(data)
    find = data.find
    search = None if probes is None else re.compile(b"|".join(map(re.escape, probes))).search
    while pos < size:
        end = find(b"\n", pos)
        if end < 0:
            break
        if end - pos < _TAIL or data[end - _TAIL:end - _TAIL + 9] != HASH_FIELD or \
                data[end - 2:end] != b'"}':
            return pos, 2
        body = data[pos:end - _TAIL]
        if body.startswith(SUMMARY_PREFIX):
            return pos, 1
        if search is None or search(body) is not None:
            done = seen.get(body)
            if done is None:
                return pos, 1
            add(done)
        else:
            add(body)
        pos = end + 1
    return pos, 0


def _py_unsettled(data: bytes, probes: tuple[bytes, ...]) -> bool:
    """Whether one of ``probes`` occurs in ``data``, or an address not in golden
    form (the reference of ``_cstabilise.unsettled``)."""
    if any(probe in data for probe in probes):
        return True
    at = data.find(b" at 0x")
    while at >= 0:  # " at 0x?" is the golden form of an address
        if data[at + 6:at + 7] in _HEX:
            return True
        at = data.find(b" at 0x", at + 6)
    return False


def _py_known(body: bytes, probes: tuple[bytes, ...], seen: dict[bytes, bytes]) -> bytes | None:
    """The golden form of ``body`` when Python has nothing to do for it: itself
    when no probe occurs in it, ``seen[body]`` when it was rewritten before; else
    None (the reference of ``_cstabilise.known``)."""
    if not any(probe in body for probe in probes):
        return body
    return seen.get(body)


@functools.cache
def known_form() -> Callable[[bytes, tuple[bytes, ...], dict[bytes, bytes]], bytes | None]:
    """``_cstabilise.known``, or its Python reference."""
    from blocktrace import _native

    native = _native.extension("blocktrace.golden._cstabilise")
    return _py_known if native is None else native.known


@functools.cache
def _unsettled() -> Callable[[bytes, tuple[bytes, ...]], bool]:
    from blocktrace import _native

    native = _native.extension("blocktrace.golden._cstabilise")
    return _py_unsettled if native is None else native.unsettled


def _scanner() -> Callable[..., tuple[int, int]]:
    from blocktrace import _native

    native = _native.extension("blocktrace.golden._cstabilise")
    return _py_scan if native is None else native.scan


def stabilise(source: Readable, target: Writable, rules: Normaliser, *, counted: bool = True,
              chunk: int = _CHUNK) -> int:
    """Copy the trace ``source`` to ``target`` as golden bytes; returns the lines written.

    ``source`` is a trace this process just wrote, so its lines are taken as well
    formed (a line without its hash member is a ``StabiliseError``).  It is read in
    large pieces; the lines that hold nothing volatile, or whose golden form was
    made before (calls repeat), go from a C loop to the C writer (``scan``); Python
    rewrites the others, each body once.  ``chunk``: bytes read at a time."""
    writer = LineWriter(target.write, buffer_size=1 << 20, lines_per_leaf=LINES_PER_LEAF)
    add = writer.line
    probes = rules.probes()
    scan = _scanner()
    tail = -_TAIL - 1  # ,"hash":"<64 hex>"}\n
    seen: dict[bytes, bytes] = {}
    summary_prefix = SUMMARY_PREFIX
    lines = BufferedLines(source, chunk)
    first = lines.line()
    if first is None or not first.endswith(b'"}\n') or first[tail:tail + 9] != HASH_FIELD:
        raise StabiliseError("the recorded trace has no header line")
    add(golden_header(first[:tail], rules, counted=counted))
    while True:
        data = lines.view()
        pos = lines.pos
        while True:
            pos, why = scan(data, pos, probes, seen, add)
            if why == 0:
                break
            if why == 2:
                raise StabiliseError(f"line {writer.lines + 1} has no hash member")
            end = lines.buf.index(b"\n", pos, lines.n)
            body = bytes(data[pos:end - _TAIL])
            if body.startswith(summary_prefix):
                _seal(writer, body, rules)
                writer.flush()
                return int(writer.lines)
            # the golden form is a function of the body: calls repeat
            done = golden_body(body, rules)
            if len(seen) < _SEEN_BODIES:
                seen[body] = done
            add(done)
            pos = end + 1
        lines.pos = lines.start = pos
        if not lines.more():
            break
    if lines.rest():
        raise StabiliseError(f"line {writer.lines + 1} has no hash member")
    raise StabiliseError("the recorded trace has no summary line")


def _seal(writer: Any, body: bytes, rules: Normaliser) -> None:
    """Write the summary line ``body`` in golden form and close the chain."""
    summary = golden_summary(body, rules, writer.lines)
    if "head" in summary:  # format version 2: the chain before the summary
        writer.close_leaf()
        summary["head"] = writer.head
        summary["root"] = writer.root().hex()
        summary["treeSize"] = writer.tree_size
        writer.summary(_encode(summary)[:-1])
    else:  # version 3: an ordinary line, the last of the tree
        writer.line(_encode(summary)[:-1])
        writer.close_leaf()
