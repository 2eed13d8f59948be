"""``keygen``, ``sign``, ``prove``, ``check-proof``: keys, checkpoints, proofs.

Exit status of ``check-proof``: 0 the proof verifies, 1 it or its checkpoint
is rejected, 2 unusable input.  The work is in ``blocktrace.chain``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from blocktrace.cli import CliError, one_line
from blocktrace.limits import (
    MAX_BUNDLE_BYTES,
    MAX_KEY_FILE_BYTES,
    FileInputError,
    read_named_file,
    size_text,
)

if TYPE_CHECKING:
    from blocktrace.chain.note import Signer, Verifier
    from blocktrace.chain.proof import TraceFile

# Each handler imports what it uses (a command's start is mostly its imports):
# ``prove`` never loads signatures, checkpoints only with --checkpoint.

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "keygen",
        help="make an Ed25519 key pair for signing checkpoints",
        description="Write PREFIX.key (private, mode 0600) and PREFIX.pub (public: give it to "
        "verifiers). Keys use the C2SP signed-note / Go sumdb note format.",
    )
    p.add_argument("name", metavar="NAME", help="key name, e.g. example.com/ci (no spaces or '+')")
    p.add_argument("--out", required=True, metavar="PREFIX", help="write PREFIX.key and PREFIX.pub")
    p.set_defaults(handler=_needs_crypto(_keygen))

    p = subparsers.add_parser(
        "sign",
        help="write a signed checkpoint (tree size and Merkle root) of a sealed trace",
        description="Sign the Merkle root of a sealed trace as a C2SP tlog-checkpoint note. "
        f"A key file is read up to {size_text(MAX_KEY_FILE_BYTES)}.",
    )
    p.add_argument("trace", metavar="TRACE")
    p.add_argument("--key", required=True, metavar="PREFIX.key", help="private key from keygen")
    p.add_argument("-o", "--output", metavar="CHECKPOINT", help="write here (default: stdout)")
    p.set_defaults(handler=_needs_crypto(_sign))

    p = subparsers.add_parser(
        "prove",
        help="print a proof that one line is in a trace (JSON bundle)",
        description="Print a JSON proof bundle for line LINE (1-based, the header is line 1): "
        "the line's exact text, the other lines of its Merkle leaf (up to 15), its index, "
        "the tree size, the root and the audit path. A bundle larger than "
        f"{size_text(MAX_BUNDLE_BYTES)} (what check-proof reads) is refused.",
    )
    p.add_argument("trace", metavar="TRACE")
    p.add_argument("line", metavar="LINE", type=_line_number)
    p.add_argument("--checkpoint", metavar="CP",
                   help="prove against this checkpoint's tree (it must match the trace)")
    p.add_argument("-o", "--output", metavar="BUNDLE", help="write here (default: stdout)")
    p.set_defaults(handler=_prove)

    p = subparsers.add_parser(
        "check-proof",
        help="verify a proof bundle without the trace",
        description="Verify a proof bundle from `blocktrace prove`. With --checkpoint (and "
        "--pubkey for its signature) the bundle's root is checked against the checkpoint; "
        "without, the root is only the bundle's own claim. Exit status: 0 valid, 1 rejected, "
        f"2 unusable input. A bundle is read up to {size_text(MAX_BUNDLE_BYTES)}, checkpoint "
        f"and key files up to {size_text(MAX_KEY_FILE_BYTES)}.",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="the bundle's file, or - for standard input")
    p.add_argument("--checkpoint", metavar="CP", help="checkpoint the root must match")
    p.add_argument("--pubkey", metavar="PUB", help="trusted public key(s), one per line")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_needs_crypto(_check_proof))


_Handler = Callable[[argparse.Namespace], int]


def _needs_crypto(handler: _Handler) -> _Handler:
    """Report a missing ``cryptography`` package as one line, naming the extra."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except Exception as exc:
            # (the signing module is imported only here: check-proof without a
            # signature never loads it)
            from blocktrace.chain.note import SigningUnavailableError

            if isinstance(exc, SigningUnavailableError):
                raise CliError(str(exc)) from exc
            raise

    return run


def _line_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a line number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"line numbers start at 1, not {value}")
    return value


def _read(path: str, what: str, limit: int = MAX_KEY_FILE_BYTES) -> bytes:
    try:
        return read_named_file(path, limit, what)
    except FileInputError as exc:
        raise CliError(str(exc)) from exc


def _write_new(path: str, data: bytes, mode: int = 0o644) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CliError(f"{path} exists; not overwriting it") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _emit(data: bytes, output: str | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        _write_new(output, data)


def _keygen(args: argparse.Namespace) -> int:
    from blocktrace.chain.note import NoteError, generate_key

    try:
        signer = generate_key(args.name)
    except NoteError as exc:
        raise CliError(str(exc)) from exc
    key_path, pub_path = f"{args.out}.key", f"{args.out}.pub"
    if os.path.exists(pub_path):
        raise CliError(f"{pub_path} exists; not overwriting it")
    _write_new(key_path, (signer.skey + "\n").encode(), 0o600)
    _write_new(pub_path, (signer.verifier().vkey + "\n").encode())
    print(f"wrote {key_path} (private, keep it secret) and {pub_path}:")
    print(signer.verifier().vkey)
    return 0


def _load_signer(path: str) -> Signer:
    from blocktrace.chain.checkpoint import load_signer
    from blocktrace.chain.note import NoteError, SigningUnavailableError

    try:
        return load_signer(path)
    except SigningUnavailableError:
        raise
    except NoteError as exc:
        raise CliError(str(exc)) from exc


def _load_verifiers(path: str) -> list[Verifier]:
    from blocktrace.chain.checkpoint import load_verifiers
    from blocktrace.chain.note import NoteError

    try:
        return load_verifiers(_read(path, "a public key file"), path)
    except NoteError as exc:
        raise CliError(str(exc)) from exc


def _trace(path: str, fresh: bool = False) -> TraceFile:
    """The trace at ``path``, once its hash chain has verified: nothing is signed
    or proven about a file that was edited after it was written.  The chain
    check is the one that built the trace's index (built now when there is
    none: one pass; with ``fresh``, built again whatever is kept); roots and
    proofs then come from the index."""
    from blocktrace.chain.proof import TraceFile
    from blocktrace.format import TraceError, TraceReader
    from blocktrace.progress import Progress

    try:
        reader = TraceReader(path)
        with Progress(os.path.getsize(path), f"indexing {path}") as progress:
            index = reader.index(progress=progress, fresh=fresh)
    except TraceError as exc:
        raise CliError(str(exc), exc.exit_status) from exc
    if index is None:
        from blocktrace.chain.verify import verify_file

        raise CliError(f"{path}: {verify_file(path).reason}")
    if index.status == "tampered":
        where = f" at line {index.line}" if index.line is not None else ""
        raise CliError(f"{path} is TAMPERED{where}: {index.reason}", status=1)
    try:
        return TraceFile(path, index=index)
    except TraceError as exc:
        raise CliError(str(exc), exc.exit_status) from exc


def _rebuilt(path: str) -> TraceFile:
    """After :class:`StaleIndexError` (the lines read were not those the index
    was built from): the index built again through the reader, which checks the
    chain again and keeps it where a reader finds it next (beside the trace, or
    in the cache when the trace's directory does not take it), then the trace."""
    return _trace(path, fresh=True)


def _sign(args: argparse.Namespace) -> int:
    from blocktrace.chain.checkpoint import checkpoint_of_trace
    from blocktrace.chain.note import NoteError, sign_note
    from blocktrace.chain.proof import StaleIndexError, TraceError

    signer = _load_signer(args.key)
    trace = _trace(args.trace)
    try:
        trace.root()
    except StaleIndexError:
        trace = _rebuilt(args.trace)
    if not trace.sealed:
        raise CliError(
            f"{args.trace} is unsealed (no summary line): only a finished trace can be signed; "
            "use the checkpoints written during the run"
        )
    try:
        checkpoint = checkpoint_of_trace(trace)
        note = sign_note(checkpoint.text(), [signer])
    except (TraceError, NoteError) as exc:
        raise CliError(str(exc)) from exc
    _emit(note, args.output)
    return 0


def _prove(args: argparse.Namespace) -> int:
    from blocktrace.chain.proof import (
        BundleError,
        StaleIndexError,
        TraceError,
        encode_bundle,
        make_bundle,
    )

    trace = _trace(args.trace)
    size = None
    refused: tuple[type[Exception], ...] = (TraceError, BundleError)
    if args.checkpoint is not None:
        from blocktrace.chain.checkpoint import (
            CheckpointError,
            check_against_trace,
            read_checkpoint,
        )

        refused += (CheckpointError,)
        try:
            read = read_checkpoint(_read(args.checkpoint, "a checkpoint"))
        except CheckpointError as exc:
            raise CliError(f"{args.checkpoint}: {exc}") from exc
        size = read.checkpoint.size
    try:
        try:
            if args.checkpoint is not None:
                check_against_trace(read.checkpoint, trace)
            bundle = make_bundle(trace, args.line, size)
        except (StaleIndexError, BundleError):
            # The lines read are not those the kept index was built from (or do not
            # make a proof that checks: an index written for another file's lines):
            # the index is built again by a chain check, which says TAMPERED where
            # verify does.
            trace = _rebuilt(args.trace)
            if args.checkpoint is not None:
                check_against_trace(read.checkpoint, trace)
            bundle = make_bundle(trace, args.line, size)
    except refused as exc:
        raise CliError(str(exc)) from exc
    data = encode_bundle(bundle)
    if len(data) > MAX_BUNDLE_BYTES:
        raise CliError(f"the proof of line {args.line} would be larger than "
                       f"{size_text(MAX_BUNDLE_BYTES)}, more than check-proof reads: its leaf's "
                       "lines are too long")
    _emit(data, args.output)
    return 0


def _check_proof(args: argparse.Namespace) -> int:
    from blocktrace.chain.proof import BundleError, NotABundleError, check_bundle

    if args.pubkey and not args.checkpoint:
        raise CliError("--pubkey checks a checkpoint's signature: give --checkpoint too")
    if args.bundle == "-":  # `blocktrace prove ... | blocktrace check-proof -`
        data = sys.stdin.buffer.read(MAX_BUNDLE_BYTES + 1)
        if len(data) > MAX_BUNDLE_BYTES:
            raise CliError(
                f"standard input is larger than {size_text(MAX_BUNDLE_BYTES)}: too big for a "
                "proof bundle")
    else:
        data = _read(args.bundle, "a proof bundle", MAX_BUNDLE_BYTES)
    verifiers = _load_verifiers(args.pubkey) if args.pubkey else None
    cp_data = _read(args.checkpoint, "a checkpoint") if args.checkpoint else None
    result: dict[str, Any] = {"valid": False, "bundle": args.bundle}
    try:
        checked = check_bundle(data)
        b = checked.bundle
        result.update(line=b.line, treeSize=b.treeSize, root=b.root, version=b.version,
                      anchored=False)
        rules = "versions 1-3" if b.version is None else f"version {b.version}"
        message = (
            f"proof valid: line {b.line} is leaf {b.leafIndex} (line {b.indexInLeaf + 1} of "
            f"{len(b.leafLines)}) of the tree of {b.treeSize} leaves with root {b.root} "
            f"(format {rules})"
        )
        if cp_data is not None:
            from blocktrace.chain.checkpoint import CheckpointError, read_checkpoint

            read = read_checkpoint(cp_data, verifiers)
            cp = read.checkpoint
            if cp.size != b.treeSize:
                raise CheckpointError(
                    "mismatch",
                    f"bundle is for a tree of {b.treeSize} leaves, the checkpoint for "
                    f"{cp.size}: make the bundle with `blocktrace prove --checkpoint`",
                )
            if cp.root != checked.root:
                raise CheckpointError(
                    "mismatch",
                    f"bundle root {b.root} is not the checkpoint's root {cp.root.hex()}",
                )
            result.update(anchored=read.verified_by != (), origin=cp.origin,
                          signature=read.signature_state, signedBy=list(read.verified_by))
            message += (
                f"\ncheckpoint {args.checkpoint} ({cp.origin}) matches: {read.signature_state}"
            )
            if not read.verified_by:
                message += "\nnot anchored: the checkpoint's signature was not verified (--pubkey)"
        else:
            message += (
                "\nnot anchored: the root is the bundle's own claim; check it against a "
                "trusted checkpoint (--checkpoint CP --pubkey PUB)"
            )
        result["valid"] = True
    except NotABundleError as exc:
        return _fail(args, result, "unusable", f"{args.bundle}: {exc}")
    except BundleError as exc:
        return _fail(args, result, "proof-invalid", f"{args.bundle}: {exc}")
    except Exception as exc:
        if cp_data is None:  # then nothing raised a CheckpointError: its module is not loaded
            raise
        from blocktrace.chain.checkpoint import CheckpointError

        if not isinstance(exc, CheckpointError):
            raise
        return _fail(args, result, exc.kind, f"{args.checkpoint}: {exc}")
    if args.json:
        _print_json(result)
    else:
        print(message)
    return 0


def _fail(args: argparse.Namespace, result: dict[str, Any], kind: str, message: str) -> int:
    """Report a proof that fails (1), or input that is no proof at all (2)."""
    result.update(valid=False, kind=kind, error=message)
    if args.json:
        _print_json(result)
    elif kind == "unusable":
        sys.stderr.write(f"blocktrace check-proof: {one_line(message)}\n")
    else:
        sys.stderr.write(f"blocktrace check-proof: REJECTED ({kind}): {one_line(message)}\n")
    return 2 if kind == "unusable" else 1


def _print_json(result: dict[str, Any]) -> None:
    import msgspec

    from blocktrace.format.callline import json_safe

    sys.stdout.buffer.write(msgspec.json.encode(json_safe(result)) + b"\n")
