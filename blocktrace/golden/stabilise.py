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

import os
import platform
import re
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from blocktrace.chain.hashing import HASH_HEX_LEN
from blocktrace.chain.merkle import LINES_PER_LEAF
from blocktrace.chain.writer import LineWriter

__all__ = ["EPOCH", "GOLDEN_GENESIS", "Normaliser", "stabilise"]

GOLDEN_GENESIS = "blocktrace-golden"
"""The genesis token of every golden trace (a golden proves no time of making)."""
EPOCH = "1970-01-01T00:00:00.000000Z"

_TAIL = len(b',"hash":""}') + HASH_HEX_LEN
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


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
        places = [(self.root, "")]
        for key, name in (("purelib", "<site-packages>"), ("platlib", "<site-packages>"),
                          ("stdlib", "<stdlib>"), ("platstdlib", "<stdlib>")):
            try:
                places.append((os.path.realpath(sysconfig.get_path(key)), name))
            except KeyError:
                pass
        # The longest prefix first: a virtual environment may live inside the project.
        self._places = sorted(places, key=lambda place: -len(place[0]))

    def probe(self) -> Callable[[bytes], object]:
        """``search(body)``: not None when a line body may hold a volatile value (one
        byte search: a file, an address, the root or temporary path, a summary line,
        anything at all when there are masks)."""
        if self._masks:
            return lambda body: True
        alternatives = [re.escape(p) for p in (*self._probes, b'{"output":')]
        return re.compile(b"|".join(alternatives)).search

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


_SEEN_BODIES = 1 << 16
"""Rewritten line bodies kept for reuse (a call line recurs byte for byte each time
the same function is called at the same depth)."""


class StabiliseError(ValueError):
    """The recorded trace is not one this module can rewrite (a bug or a torn file)."""


def stabilise(source: IO[bytes], target: IO[bytes], rules: Normaliser) -> int:
    """Copy the trace ``source`` to ``target`` as golden bytes; returns the lines written.

    ``source`` is a trace this process just wrote, so its lines are taken as well
    formed (a line without its hash member is a ``StabiliseError``); the loop does
    one byte search per line and hands the line to the C writer."""
    writer = LineWriter(target.write, buffer_size=1 << 20, lines_per_leaf=LINES_PER_LEAF)
    add = writer.line
    volatile = rules.probe()
    tail = -_TAIL - 1  # ,"hash":"<64 hex>"}\n
    sealed = False
    seen: dict[bytes, bytes] = {}
    lines = iter(source)
    first = next(lines, b"")
    if not first.endswith(b'"}\n') or first[tail:tail + 9] != b',"hash":"':
        raise StabiliseError("the recorded trace has no header line")
    header = _decode(first[:tail] + b"}")
    header["genesis"] = GOLDEN_GENESIS
    if "start" in header:
        header["start"] = EPOCH
    if "pid" in header:
        header["pid"] = 0
    if "python" in header:
        header["python"] = ".".join(platform.python_version_tuple()[:2])
    header["argv"] = list(rules.argv)
    add(_encode(header)[:-1])
    for line in lines:
        if line[tail:tail + 9] != b',"hash":"':
            raise StabiliseError(f"line {writer.lines + 1} has no hash member")
        body = line[:tail]
        if volatile(body) is None:
            add(body)
            continue
        if body.startswith(b'{"output":'):
            summary = rules.value(_decode(body + b"}"))
            summary["time"] = 0
            if "lines" in summary:
                summary["lines"] = writer.lines
            if "head" in summary:  # format version 2: the chain before the summary
                writer.close_leaf()
                summary["head"] = writer.head
                summary["root"] = writer.root().hex()
                summary["treeSize"] = writer.tree_size
                writer.summary(_encode(summary)[:-1])
            else:  # version 3: an ordinary line, the last of the tree
                writer.line(_encode(summary)[:-1])
                writer.close_leaf()
            sealed = True
            break
        done = seen.get(body)
        if done is None:  # the golden form is a function of the body: calls repeat
            done = _encode(rules.value(_decode(body + b"}")))[:-1]
            if len(seen) < _SEEN_BODIES:
                seen[body] = done
        add(done)
    if not sealed:
        raise StabiliseError("the recorded trace has no summary line")
    writer.flush()
    return int(writer.lines)
