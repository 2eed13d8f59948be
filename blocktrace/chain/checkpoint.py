"""Checkpoints: a trace's tree size and root as a C2SP tlog-checkpoint.

A checkpoint is the note text ::

    blocktrace/trace/<trace id>
    <tree size>
    <base64 root>

optionally signed as a C2SP signed note (:mod:`blocktrace.chain.note`).  Each
trace is its own append-only log, so the *origin* names the trace: the trace id
is the ``hash`` of its header line, which commits to the genesis token, the
start time and the process.  (The tlog-checkpoint spec asks that a log never
sign two inconsistent checkpoints for one origin; with one origin per trace a
key can sign checkpoints of many traces and still keep that rule.  The key name
is therefore not the origin, which the spec allows: it is a SHOULD.)

:func:`check_against_trace` checks a checkpoint against a trace file and names
what is wrong: the signature, an unknown key, another trace, a trace shorter
than the checkpoint (rolled back or cut), or a trace whose lines differ from
what was checkpointed.  :func:`check_extends` checks, with a consistency proof,
that a trace (or a newer checkpoint) extends an older checkpoint, and names a
rollback or a fork.  :class:`Checkpointer` writes checkpoints next to a trace
while it is being written.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from blocktrace.chain.merkle import (
    HASH_SIZE,
    LINES_PER_LEAF,
    ProofError,
    consistency_ranges,
    verify_consistency,
)
from blocktrace.chain.note import (
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    NoteSignature,
    Signer,
    SigningUnavailableError,
    UnverifiedNoteError,
    Verifier,
    open_note,
    parse_note,
    sign_note,
)
from blocktrace.chain.proof import TraceError, TraceFile
from blocktrace.limits import (
    MAX_KEY_FILE_BYTES,
    FileInputError,
    InputTooLargeError,
    read_named_file,
    read_small_file,
)

__all__ = [
    "ORIGIN_PREFIX",
    "AnchorReport",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMatch",
    "Checkpointer",
    "ReadCheckpoint",
    "check_against_trace",
    "check_extends",
    "checkpoint_of_trace",
    "load_signer",
    "load_verifiers",
    "origin_for",
    "read_checkpoint",
    "verify_anchors",
]

ORIGIN_PREFIX = "blocktrace/trace/"

ErrorKind = Literal[
    "malformed",
    "unsigned",
    "signature-invalid",
    "unknown-key",
    "other-trace",
    "rolled-back",
    "mismatch",
    "fork",
]


class CheckpointError(ValueError):
    """A checkpoint is unusable or does not match; ``kind`` says which way.

    - ``malformed``: not a checkpoint (or not a signed note);
    - ``unsigned``: a key was given but the checkpoint carries no signature;
    - ``signature-invalid``: the trusted key's signature does not verify;
    - ``unknown-key``: signed, but by none of the trusted keys;
    - ``other-trace``: the checkpoint names a different trace;
    - ``rolled-back``: the trace (or newer checkpoint) is smaller than the checkpoint;
    - ``mismatch``: same trace and size within it, but a different root: the
      trace's lines are not the ones that were checkpointed;
    - ``fork``: two checkpoints (or a checkpoint and a trace) of one trace that
      no consistency proof joins: two different histories.
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


def origin_for(trace_id: str) -> str:
    """The checkpoint origin of the trace whose header hash is ``trace_id``."""
    return ORIGIN_PREFIX + trace_id


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The body of a tlog-checkpoint: origin, tree size, root, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text (each line with its newline)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        lines.extend(self.extensions)
        return "".join(line + "\n" for line in lines)

    @property
    def trace_id(self) -> str | None:
        """The trace id in a blocktrace origin, or None for a foreign origin."""
        if self.origin.startswith(ORIGIN_PREFIX):
            return self.origin[len(ORIGIN_PREFIX) :]
        return None

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text; raises ``CheckpointError("malformed")``."""
        if not text.endswith("\n"):
            raise CheckpointError("malformed", "checkpoint text does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                "malformed", "a checkpoint has at least three lines: origin, size, root"
            )
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise CheckpointError("malformed", "checkpoint origin line is empty")
        if not size_text.isascii() or not size_text.isdigit() or (
            size_text != "0" and size_text.startswith("0")
        ):
            raise CheckpointError(
                "malformed", f"checkpoint tree size {size_text!r} is not a decimal number"
            )
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise CheckpointError("malformed", "checkpoint root is not base64") from exc
        if len(root) != HASH_SIZE or base64.b64encode(root).decode() != root_text:
            raise CheckpointError(
                "malformed", f"checkpoint root is not a {HASH_SIZE}-byte hash in base64"
            )
        if any(not line for line in extensions):
            raise CheckpointError("malformed", "checkpoint has an empty extension line")
        return cls(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True, slots=True)
class ReadCheckpoint:
    """A checkpoint as read from a file, with what is known of its signatures."""

    checkpoint: Checkpoint
    signed: bool
    verified_by: tuple[str, ...] = ()
    """Names of the trusted keys whose signatures verified."""
    ignored: tuple[NoteSignature, ...] = ()
    """Signatures by keys not trusted here (ignored, as the spec says)."""

    @property
    def signature_state(self) -> str:
        if self.verified_by:
            return "signed by " + ", ".join(self.verified_by)
        if self.signed:
            return "signed, signature not checked (no public key given)"
        return "unsigned"


def read_checkpoint(data: bytes, verifiers: Sequence[Verifier] | None = None) -> ReadCheckpoint:
    """Read a checkpoint file: a signed note, or a bare checkpoint body.

    With ``verifiers``, the note must carry a valid signature from one of them
    (``unsigned``, ``unknown-key``, ``signature-invalid`` otherwise); without,
    signatures are parsed but not checked and the result says so.
    """
    is_note = b"\n\n" in data
    try:
        if not is_note:
            # Parsed before anything is said of signatures: a file that is not a
            # checkpoint at all (a trace given by mistake) is malformed, not unsigned.
            bare = Checkpoint.parse(data.decode("utf-8"))
            if verifiers:
                raise CheckpointError("unsigned", "checkpoint is not signed")
            return ReadCheckpoint(bare, signed=False)
        if verifiers:
            Checkpoint.parse(parse_note(data).text)
            note = open_note(data, verifiers)
            checkpoint = Checkpoint.parse(note.text)
            names = tuple(dict.fromkeys(s.name for s in note.verified))
            return ReadCheckpoint(checkpoint, True, names, note.unverified)
        note = parse_note(data)
        return ReadCheckpoint(Checkpoint.parse(note.text), signed=True)
    except UnicodeDecodeError as exc:
        raise CheckpointError("malformed", "checkpoint is not valid UTF-8") from exc
    except MalformedNoteError as exc:
        raise CheckpointError("malformed", f"checkpoint is not a signed note: {exc}") from exc
    except InvalidSignatureError as exc:
        raise CheckpointError("signature-invalid", f"signature invalid: {exc}") from exc
    except UnverifiedNoteError as exc:
        kind: ErrorKind = "unknown-key" if exc.signatures else "unsigned"
        raise CheckpointError(kind, str(exc)) from exc


def load_signer(path: str | os.PathLike[str]) -> Signer:
    """The private key in a ``PREFIX.key`` file written by ``blocktrace keygen``.

    Raises :class:`~blocktrace.chain.note.NoteError` with a message naming the
    file (:class:`~blocktrace.chain.note.SigningUnavailableError` when the
    ``cryptography`` package is missing).
    """
    try:
        data = read_small_file(path, MAX_KEY_FILE_BYTES, "a private key file")
    except OSError as exc:
        raise MalformedNoteError(
            f"{os.fspath(path)}: cannot read the private key: {exc.strerror or exc}"
        ) from exc
    except InputTooLargeError as exc:
        raise MalformedNoteError(str(exc)) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNoteError(
            f"{os.fspath(path)}: not a private key from blocktrace keygen (not UTF-8 text)"
        ) from exc
    try:
        return Signer.from_skey(text)
    except SigningUnavailableError:
        raise
    except NoteError as exc:
        raise MalformedNoteError(
            f"{os.fspath(path)}: not a private key from blocktrace keygen ({exc})"
        ) from exc


def load_verifiers(data: bytes, where: str = "public key file") -> list[Verifier]:
    """The trusted keys of a public key file: one verifier key per line
    (``NAME+KEYID+KEY``, as ``blocktrace keygen`` writes); blank lines and
    ``#`` comments are skipped.  Raises :class:`MalformedNoteError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNoteError(f"{where} is not UTF-8") from exc
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(Verifier.from_vkey(line))
        except MalformedNoteError as exc:
            raise MalformedNoteError(f"{where} line {number}: {exc}") from exc
    if not out:
        raise MalformedNoteError(f"{where} holds no public key")
    return out


def checkpoint_of_trace(trace: TraceFile) -> Checkpoint:
    """The checkpoint of a whole trace (its summary's tree)."""
    return Checkpoint(origin_for(trace.trace_id), trace.tree_size, trace.root())


@dataclass(frozen=True, slots=True)
class CheckpointMatch:
    """A checkpoint that matches a trace: it covers ``size`` of its leaves."""

    checkpoint: Checkpoint
    trace_size: int
    lines_covered: int
    whole: bool
    """The checkpoint covers the trace's whole tree."""
    details: list[str] = field(default_factory=list)


def _same_trace(cp: Checkpoint, trace: TraceFile, what: str = "checkpoint") -> None:
    if cp.trace_id != trace.trace_id:
        raise CheckpointError(
            "other-trace",
            f"{what} is for another trace: origin {cp.origin!r}, this trace is "
            f"{origin_for(trace.trace_id)!r}",
        )


def check_against_trace(cp: Checkpoint, trace: TraceFile) -> CheckpointMatch:
    """Check that ``cp`` commits to exactly the first ``cp.size`` leaves of
    ``trace``.  Raises :class:`CheckpointError` (``other-trace``,
    ``rolled-back``, ``mismatch``) or :class:`~blocktrace.chain.proof.TraceError`."""
    _same_trace(cp, trace)
    if cp.size == 0:
        raise CheckpointError("mismatch", "checkpoint of size 0 commits to no line of the trace")
    available = trace.tree_size if trace.sealed else trace.full_leaves
    if cp.size > available:
        state = "sealed" if trace.sealed else "unsealed"
        raise CheckpointError(
            "rolled-back",
            f"checkpoint covers {cp.size} leaves (lines 1-{cp.size * LINES_PER_LEAF} at least), "
            f"the {state} trace has only {available}: the trace was cut or rolled back "
            f"after the checkpoint",
        )
    actual = trace.root(cp.size)
    if actual != cp.root:
        raise CheckpointError(
            "mismatch",
            f"checkpoint does not match this trace: its root at {cp.size} leaves is "
            f"{cp.root.hex()}, the trace's is {actual.hex()} (lines changed after the "
            f"checkpoint, or a different history was checkpointed)",
        )
    whole = cp.size == trace.tree_size
    covered = trace.tree_lines if whole else cp.size * LINES_PER_LEAF
    return CheckpointMatch(cp, trace.tree_size, covered, whole)


def check_extends(
    old: Checkpoint, trace: TraceFile, new: Checkpoint | None = None
) -> tuple[int, int, list[bytes]]:
    """Check with a consistency proof that the trace's tree (or ``new``, a
    checkpoint of it already checked against it) extends ``old``.

    Returns ``(old size, new size, proof)``.  Raises :class:`CheckpointError`:
    ``other-trace``, ``rolled-back`` (the newer tree is smaller), ``fork``
    (same size and different roots, or a consistency proof that fails).
    """
    _same_trace(old, trace, "earlier checkpoint")
    if new is not None:
        _same_trace(new, trace)
        size2, root2 = new.size, new.root
    else:
        size2 = trace.tree_size if trace.sealed else trace.full_leaves
        root2 = trace.root(size2)
    if old.size > size2:
        raise CheckpointError(
            "rolled-back",
            f"rolled back: the earlier checkpoint has {old.size} leaves, the "
            f"{'checkpoint' if new is not None else 'trace'} now has {size2}",
        )
    if old.size == size2 and old.root != root2:
        raise CheckpointError(
            "fork",
            f"fork: two different roots for the same size {size2}: "
            f"{old.root.hex()} (earlier) and {root2.hex()}",
        )
    proof = trace.range_hashes(consistency_ranges(old.size, size2), size2)
    try:
        verify_consistency(old.size, size2, proof, old.root, root2)
    except ProofError as exc:
        raise CheckpointError(
            "fork",
            f"fork: the trace does not extend the earlier checkpoint of {old.size} leaves "
            f"({exc})",
        ) from exc
    return old.size, size2, proof


@dataclass
class AnchorReport:
    """What ``blocktrace verify --checkpoint/--since`` found beyond the chain.

    ``status``: ``ok``; ``rejected`` (``kind`` is a :class:`CheckpointError`
    kind: signature invalid, unknown key, other trace, rolled back, mismatch,
    fork, malformed, unsigned); ``unusable`` (a file could not be read, a key
    file is not a key).
    """

    status: Literal["ok", "rejected", "unusable"] = "ok"
    kind: str = "match"
    messages: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def _fail(self, status: Literal["rejected", "unusable"], kind: str, message: str) -> None:
        self.status, self.kind = status, kind
        self.messages.append(message)
        self.data["anchor"] = {"status": status, "kind": kind, "error": message}


def verify_anchors(
    trace_path: str | os.PathLike[str],
    *,
    checkpoint: str | None = None,
    pubkey: str | None = None,
    since: str | None = None,
) -> AnchorReport:
    """Check a trace (whose chain already verified) against a checkpoint file,
    trusted public keys, and an earlier checkpoint (consistency).

    Never raises for bad input: everything is in the report.
    """
    report = AnchorReport()
    try:
        verifiers = None
        if pubkey:
            key = read_named_file(pubkey, MAX_KEY_FILE_BYTES, "a public key file")
            verifiers = load_verifiers(key, pubkey)
        cp_data = old_data = None
        if checkpoint:
            cp_data = read_named_file(checkpoint, MAX_KEY_FILE_BYTES, "a checkpoint")
        if since:
            old_data = read_named_file(since, MAX_KEY_FILE_BYTES, "a checkpoint")
        trace = TraceFile(trace_path)
    except (FileInputError, MalformedNoteError, TraceError) as exc:
        report._fail("unusable", "unusable", str(exc))
        return report
    name = checkpoint
    try:
        new: Checkpoint | None = None
        if cp_data is not None:
            read = read_checkpoint(cp_data, verifiers)
            match = check_against_trace(read.checkpoint, trace)
            new = read.checkpoint
            covers = (
                f"the whole tree ({match.checkpoint.size} leaves, {match.lines_covered} lines)"
                if match.whole
                else f"the first {match.checkpoint.size} of {match.trace_size} leaves "
                f"(lines 1-{match.lines_covered})"
            )
            outcome = _outcome_coverage(trace, match)
            text = (
                f"checkpoint {checkpoint}: matches {covers}; {read.signature_state}; {outcome}"
            )
            if read.ignored:
                text += f" ({len(read.ignored)} signature(s) by other keys ignored)"
            report.messages.append(text)
            report.data["checkpoint"] = {
                "file": checkpoint,
                "origin": new.origin,
                "size": new.size,
                "root": new.root.hex(),
                "whole": match.whole,
                "outcomeCovered": trace.sealed and trace.outcome_in_tree and match.whole,
                "linesCovered": match.lines_covered,
                "signature": read.signature_state,
                "signedBy": list(read.verified_by),
            }
        if old_data is not None:
            name = since
            old = read_checkpoint(old_data, verifiers)
            size1, size2, proof = check_extends(old.checkpoint, trace, new)
            target = "the checkpoint" if new is not None else "the trace"
            report.messages.append(
                f"since {since}: {target} extends the earlier checkpoint "
                f"({size1} -> {size2} leaves; consistency proof of {len(proof)} hashes "
                f"verified); earlier checkpoint {old.signature_state}"
            )
            report.data["since"] = {
                "file": since,
                "size1": size1,
                "size2": size2,
                "root1": old.checkpoint.root.hex(),
                "proof": [h.hex() for h in proof],
                "signature": old.signature_state,
            }
    except CheckpointError as exc:
        report._fail("rejected", exc.kind, f"checkpoint {name}: {_KIND_TEXT[exc.kind]}: {exc}")
    except TraceError as exc:
        report._fail("unusable", "unusable", str(exc))
    return report


def _outcome_coverage(trace: TraceFile, match: CheckpointMatch) -> str:
    """Whether the checkpoint covers the run's outcome (the summary line)."""
    if not trace.sealed:
        return "the trace is unsealed: there is no outcome to cover"
    if not trace.outcome_in_tree:
        return (
            f"the outcome is not covered: format version {trace.version} keeps the summary "
            f"(pass, output, error, gasUsed, time) outside the Merkle tree, so only the "
            f"steps are signed"
        )
    if match.whole:
        return "the run's outcome (the summary line) is covered"
    return (
        "the outcome is not covered: the checkpoint covers only a prefix of the trace, "
        "not its summary line"
    )


_KIND_TEXT: dict[ErrorKind, str] = {
    "malformed": "MALFORMED",
    "unsigned": "NOT SIGNED",
    "signature-invalid": "SIGNATURE INVALID",
    "unknown-key": "UNKNOWN KEY",
    "other-trace": "FROM ANOTHER TRACE",
    "rolled-back": "ROLLED BACK",
    "mismatch": "DOES NOT MATCH THIS TRACE",
    "fork": "FORK",
}


class Checkpointer:
    """Writes checkpoints of a trace while it is written (``TRACE.cp.<size>``).

    The trace writer calls :meth:`maybe_write` once per completed leaf with the
    tree size so far and the root (bytes, or a callable such as
    ``MerkleAccumulator.root`` so the O(log n) root is only computed when a
    checkpoint is due).  A checkpoint is written when ``every_lines`` lines
    (rounded up to whole leaves) or ``every_seconds`` seconds have passed since
    the last one.  ``flush`` (the trace's own flush) is called first, so the
    lines a checkpoint covers are on disk before it.  Each checkpoint is signed
    when a ``signer`` is given, and written under a temporary name then renamed,
    so a reader never sees half a file.  :meth:`write` writes one now.
    """

    def __init__(
        self,
        trace_path: str | os.PathLike[str],
        trace_id: str,
        *,
        every_lines: int | None = None,
        every_seconds: float | None = None,
        signer: Signer | None = None,
        flush: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every_lines is not None and every_lines < 1:
            raise ValueError("every_lines must be at least 1")
        if every_seconds is not None and every_seconds <= 0:
            raise ValueError("every_seconds must be positive")
        self.trace_path = Path(trace_path)
        self.origin = origin_for(trace_id)
        self.signer = signer
        self._flush = flush
        self._step = None if every_lines is None else -(-every_lines // LINES_PER_LEAF)
        self._next_size = self._step
        self._seconds = every_seconds
        self._clock = clock
        self._last_time = clock()
        self.last_size = 0
        self.written: list[Path] = []

    def path_for(self, size: int) -> Path:
        return self.trace_path.with_name(f"{self.trace_path.name}.cp.{size}")

    def due(self, size: int) -> bool:
        """Whether a checkpoint of ``size`` leaves is due now."""
        if size <= self.last_size:
            return False
        if self._next_size is not None and size >= self._next_size:
            return True
        return self._seconds is not None and self._clock() - self._last_time >= self._seconds

    def maybe_write(self, size: int, root: bytes | Callable[[], bytes]) -> Path | None:
        """Called once per completed leaf; writes a checkpoint when one is due."""
        if not self.due(size):
            return None
        return self.write(size, root if isinstance(root, bytes) else root())

    def write(self, size: int, root: bytes) -> Path:
        """Write the checkpoint of the tree of ``size`` leaves with ``root``."""
        if self._flush is not None:
            self._flush()
        text = Checkpoint(self.origin, size, root).text()
        data = sign_note(text, [self.signer]) if self.signer else text.encode("utf-8")
        path = self.path_for(size)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        self.last_size = size
        self._last_time = self._clock()
        if self._step is not None:
            self._next_size = size + self._step
        self.written.append(path)
        return path
