"""Verifying a trace file against docs/FORMAT.md, streaming, in constant memory.

The answer is one of four, each with its exit status for ``blocktrace verify``:

- ``sealed`` (0): every line's hash checks, the summary closes the chain;
- ``tampered`` (1): the first line where the file differs from what was
  written, and how (also: a head that does not match ``--head``);
- ``unusable`` (2): not a blocktrace trace at all (missing, empty, a directory,
  not JSON, an unknown format version);
- ``unsealed`` (3): every complete line checks but there is no summary -- the
  run was cut short (a crash, a kill, a full disk).  Never reported as valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from blocktrace.chain.hashing import KNOWN_VERSIONS, ChainHasher, LeafChain, split_hash
from blocktrace.chain.merkle import LINES_PER_LEAF, MerkleAccumulator
from blocktrace.limits import MAX_LINE_BYTES, size_text

__all__ = ["EXIT_STATUS", "MAX_LINE_BYTES", "Status", "Verification", "verify_file"]

Status = Literal["sealed", "tampered", "unusable", "unsealed"]
EXIT_STATUS: dict[Status, int] = {"sealed": 0, "tampered": 1, "unusable": 2, "unsealed": 3}

_decode = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass
class Verification:
    """What verifying one file found."""

    path: str
    status: Status
    reason: str = ""
    line: int | None = None
    """1-based line number the reason is about, when it is about one."""
    lines: int = 0
    """Complete lines whose hash checked."""
    head: str = ""
    """The hash of the last line that checked (the sealed head when sealed)."""
    genesis: str | None = None
    header: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    root: str = ""
    """The Merkle root recomputed over the lines before the summary (hex)."""
    tree_size: int = 0

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.status]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.path,
            "status": self.status,
            "valid": self.status == "sealed",
            "lines": self.lines,
            "head": self.head,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.line is not None:
            out["line"] = self.line
        if self.genesis is not None:
            out["genesis"] = self.genesis
        if self.summary is not None:
            out["summary"] = {k: v for k, v in self.summary.items() if k != "hash"}
        if self.root:
            out["root"] = self.root
            out["treeSize"] = self.tree_size
        return out


def verify_file(
    path: str | os.PathLike[str],
    *,
    head: str | None = None,
    genesis: str | None = None,
) -> Verification:
    """Verify the trace at ``path``.  ``head``: the anchored head to compare the
    file's final hash with; ``genesis``: the genesis token the trace must carry."""
    name = os.fspath(path)
    result = Verification(name, "unusable")
    if os.path.isdir(name):
        result.reason = "is a directory, not a trace file"
        return result
    try:
        stream = open(name, "rb")  # noqa: SIM115
    except OSError as exc:
        result.reason = f"cannot read: {exc.strerror or exc}"
        return result
    with stream:
        _walk(stream, result)
    if result.status in ("sealed", "unsealed"):
        _check_anchors(result, head, genesis)
    return result


def _walk(stream: Any, result: Verification) -> None:
    merkle = MerkleAccumulator()
    v1 = ChainHasher()  # version 1: one running hash; leaves hashed separately
    group: list[bytes] = []
    v2 = LeafChain(LINES_PER_LEAF, merkle.append_leaf_hash)  # version 2: one stream a leaf
    version = 0
    number = 0
    summary_at: int | None = None
    for raw in iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b""):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            _too_long(result, number)
            return
        if not raw.endswith(b"\n"):
            _torn(result, number, raw)
            return
        if summary_at is not None:
            _tampered(result, number, f"a line follows the summary (line {summary_at})")
            return
        line = raw[:-1]
        if number == 1:
            version = _header(result, line)
            if not version:
                return
        if line.endswith(b"\r"):
            _tampered(result, number, "carriage return at end of line (line endings changed)")
            return
        parts = split_hash(line)
        if parts is None:
            _tampered(result, number, "line does not end with a hash member")
            return
        body, stored = parts
        is_summary = body.startswith(b'{"output":')
        if version == 1:
            computed = v1.check(body)
        elif is_summary:
            computed = v2.check_summary(body)
        else:
            computed = v2.check(body, raw)
        if computed != stored:
            _tampered(
                result, number,
                "hash does not match: this line, or one before it, was edited, inserted, "
                "deleted or moved",
            )
            return
        if is_summary:
            if group:
                merkle.append_leaf_data(b"".join(group))
                group.clear()
            if not _summary(result, number, body, merkle):
                return
            summary_at = number
        elif version == 1:
            group.append(raw)
            if len(group) == LINES_PER_LEAF:
                merkle.append_leaf_data(b"".join(group))
                group.clear()
        result.lines = number
        result.head = stored
    if number == 0:
        result.reason = "empty file"
        return
    if summary_at is None:
        result.status = "unsealed"
        result.reason = "no summary line: the run was cut short (or the tail was removed)"
    else:
        result.status = "sealed"


def _header(result: Verification, line: bytes) -> int:
    """The header's format version, or 0 (with the reason set) when it is unusable."""
    if line.startswith(b"\xef\xbb\xbf"):
        _tampered(result, 1, "byte-order mark before the header")
        return 0
    try:
        header = _decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        result.reason = "line 1 is not a JSON object: not a blocktrace trace"
        return 0
    version = header.get("blocktrace")
    if version is None:
        result.reason = "line 1 is not a blocktrace header: not a blocktrace trace"
        return 0
    if (
        type(version) is not int
        or version not in KNOWN_VERSIONS
        or header.get("hashAlg") != "sha256"
    ):
        result.reason = (
            f"format version {version!r} with hash {header.get('hashAlg')!r} "
            f"is not one this blocktrace knows (1 or 2, sha256)"
        )
        return 0
    result.header = {k: v for k, v in header.items() if k != "hash"}
    genesis = header.get("genesis")
    result.genesis = genesis if isinstance(genesis, str) else None
    return version


def _summary(result: Verification, number: int, body: bytes, merkle: MerkleAccumulator) -> bool:
    try:
        summary = _decode(body + b"}")
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        _tampered(result, number, "summary line is not valid JSON")
        return False
    if summary.get("lines") != number - 1:
        _tampered(result, number, f"summary counts {summary.get('lines')} lines, not {number - 1}")
        return False
    if summary.get("head") != result.head:
        _tampered(result, number, "summary head is not the hash of the line before it")
        return False
    result.root = merkle.root().hex()
    result.tree_size = merkle.size
    if "root" in summary and (
        summary["root"] != result.root or summary.get("treeSize") != merkle.size
    ):
        _tampered(result, number, "summary Merkle root does not match the lines before it")
        return False
    result.summary = summary
    return True


def _too_long(result: Verification, number: int) -> None:
    reason = f"line {number} is longer than {size_text(MAX_LINE_BYTES)}"
    if number == 1:
        result.reason = reason + ": not a blocktrace trace"
    else:
        _tampered(result, number, reason + ": no blocktrace line is that long")


def _torn(result: Verification, number: int, raw: bytes) -> None:
    if number == 1:
        result.reason = "the only line is incomplete (no newline): not a complete trace"
        return
    if result.summary is not None:
        _tampered(result, number, "bytes after the summary line")
        return
    result.status = "unsealed"
    result.line = number
    result.reason = (
        f"line {number} is torn ({len(raw)} bytes without a newline): the run was cut "
        "short mid-line; the lines before it check"
    )


def _tampered(result: Verification, number: int, reason: str) -> None:
    result.status = "tampered"
    result.line = number
    result.reason = reason


def _check_anchors(result: Verification, head: str | None, genesis: str | None) -> None:
    if genesis is not None and result.genesis != genesis:
        result.status = "tampered"
        result.line = 1
        result.reason = f"genesis is {result.genesis!r}, not the expected {genesis!r}"
        return
    if head is not None and result.head != head.strip().lower():
        result.status = "tampered"
        result.line = None
        result.reason = (
            f"head {result.head} does not match the anchored head {head.strip().lower()}: "
            "the file was rewritten, extended or cut, or is another trace"
        )
