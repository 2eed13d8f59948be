"""``blocktrace verify``: check a trace's hash chain (and anchors)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from blocktrace.cli import CliError, one_line
from blocktrace.limits import MAX_KEY_FILE_BYTES, MAX_LINE_BYTES, size_text

if TYPE_CHECKING:
    from blocktrace.chain.checkpoint import AnchorReport
    from blocktrace.format import Verification

EXIT_STATUS = {"sealed": 0, "tampered": 1, "unusable": 2, "unsealed": 3}
"""``blocktrace verify``'s exit status for each chain status."""
ANCHOR_EXIT_STATUS = {"ok": 0, "rejected": 4, "unusable": 2}
"""... and for each checkpoint status (used when the anchors are not ok)."""


def exit_status(result: Verification, anchors: AnchorReport | None = None) -> int:
    """The verify exit status: the chain's, unless the anchors are not fine."""
    if anchors is None or anchors.status == "ok":
        return EXIT_STATUS[result.status]
    return ANCHOR_EXIT_STATUS[anchors.status]


_TEXT = {
    "sealed": "valid and sealed",
    "unsealed": "valid but UNSEALED",
    "tampered": "TAMPERED",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="verify a trace: sealed (0), tampered (1), unusable (2), unsealed (3), "
        "checkpoint rejected (4)",
        description="Verify a trace's hash chain, streaming. Exit 0 valid and sealed, 1 tampered "
        "(or not matching --head/--genesis), 2 unusable input, 3 valid but unsealed (cut short), "
        "4 checkpoint rejected (signature invalid, unknown key, other trace, rolled back, fork). "
        f"A trace line over {size_text(MAX_LINE_BYTES)} is refused; checkpoint and key files "
        f"are read up to {size_text(MAX_KEY_FILE_BYTES)}.",
    )
    p.add_argument("file", metavar="TRACE")
    p.add_argument("--head", metavar="HEX", type=_head,
                   help="the anchored head (kept elsewhere) the trace must end with: "
                   "64 hex digits")
    p.add_argument("--genesis", metavar="TOKEN", help="the genesis token the trace must carry")
    p.add_argument("--checkpoint", metavar="CP",
                   help="a checkpoint (blocktrace sign, or TRACE.cp.N from the run) that must "
                   "match the trace")
    p.add_argument("--pubkey", metavar="PUB",
                   help="trusted public key(s) for checkpoint signatures (keygen's PREFIX.pub)")
    p.add_argument("--since", metavar="OLD_CP",
                   help="an earlier checkpoint the trace (or --checkpoint) must extend, "
                   "checked with a consistency proof")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-index", dest="index", action="store_false",
                   help="do not keep the trace's index (TRACE.idx, or in the cache), which "
                   "verify otherwise writes in the same pass for show, prove, view and exports")
    p.set_defaults(handler=verify)


def _head(text: str) -> str:
    """An argparse type: a chain head, 64 hex digits (any case, spaces around)."""
    head = text.strip().lower()
    if len(head) != 64 or any(c not in "0123456789abcdef" for c in head):
        raise argparse.ArgumentTypeError(f"not a head (64 hex digits): {text!r}")
    return head


def verify(args: argparse.Namespace) -> int:
    from blocktrace.chain.verify import verify_file
    from blocktrace.progress import Progress, size_of

    with Progress(size_of(args.file), f"verify {args.file}") as progress:
        result = verify_file(args.file, head=args.head, genesis=args.genesis,
                             progress=progress, keep_index=args.index)
    anchors = _anchors(args, result.status)
    if anchors is not None and anchors.status == "unusable" and not args.json:
        # a checkpoint or key file that cannot be used is an input error, not a verdict
        raise CliError(anchors.messages[-1])
    if args.json:
        out = result.as_json()
        if anchors is not None:
            out.update(anchors.data)
            out["valid"] = out["valid"] and anchors.status == "ok"
        import msgspec

        from blocktrace.format.callline import json_safe

        sys.stdout.write(msgspec.json.encode(json_safe(out)).decode() + "\n")
        return exit_status(result, anchors)
    if result.status == "unusable":
        sys.stderr.write(f"blocktrace verify: {one_line(f'{args.file}: {result.reason}')}\n")
        return exit_status(result)
    where = f" at line {result.line}" if result.line is not None else ""
    text = f"{args.file}: {_TEXT[result.status]}{where}"
    if result.status == "tampered":
        text += f": {result.reason}"
    else:
        text += f": {result.lines} lines, head {result.head}"
        if result.genesis is not None:
            text += f", genesis {result.genesis!r}"
        if result.summary is not None:
            s = result.summary
            if s.get("error") == "TraceSizeLimit":  # the recording stopped, not the run
                text += (f"; recording stopped {_stopped_at(result)} (TraceSizeLimit: the "
                         f"trace reached its size limit, {s.get('maxSize')} bytes); the run "
                         f"went on to its end: {int(s['gasUsed'], 16)} instructions, output "
                         f"{s.get('output')!r}")
            else:
                text += f"; run {'passed' if s.get('pass') else 'failed'}"
                text += _count(result)
                if s.get("error"):
                    text += f", error {s['error']!r}"
            if result.root:
                text += f"; Merkle root {result.root} over {result.tree_size} leaves"
            if not result.outcome_in_tree:
                text += (
                    f" (format version {result.version}: the summary is outside the tree, "
                    "so no checkpoint covers this outcome; only the head does)"
                )
        if result.status == "unsealed":
            text += f" ({result.reason})"
    sys.stdout.write(text + "\n")
    if anchors is None:
        return exit_status(result)
    sys.stdout.write("".join(m + "\n" for m in anchors.messages))
    return exit_status(result, anchors)


def _count(result: Verification) -> str:
    """The run's length: its steps as ``diff``, ``show`` and ``view`` number them
    (from the index verify built: an op-level trace's op lines, an exception
    line that follows its op merged into it, docs/FORMAT.md), and the
    instructions the summary's ``gasUsed`` counts where that differs (an
    exception passing up into a caller is a step of its own there, executing
    nothing) or where no index was built (``--no-index``, line/call level)."""
    assert result.summary is not None
    header = result.header
    uncounted = header.get("gas") == "uncounted"
    instructions = f"{int(result.summary['gasUsed'], 16)} instructions"
    if result.index is None or header.get("level", "op") != "op":
        return "" if uncounted else f", {instructions}"
    steps = result.index.steps
    if uncounted or int(result.summary["gasUsed"], 16) == steps:
        return f", {steps} steps"
    return f", {steps} steps ({instructions})"


def _stopped_at(result: Verification) -> str:
    """Where a size-limited recording stopped, counted as ``_count`` counts: the
    summary's ``step`` is the instructions run before it (docs/FORMAT.md), so an
    op-level trace with an index says the step ``show``, ``diff`` and ``view``
    would give the first one not recorded (0-based: the trace holds steps 0 to
    N-1), and the instructions too where they differ (an exception passing up
    into a caller is a step of its own, executing nothing)."""
    assert result.summary is not None
    step = result.summary.get("step")
    instructions = f"after {step} instructions"
    if result.index is None or result.header.get("level", "op") != "op":
        return instructions
    steps = result.index.steps
    return f"at step {steps}" + ("" if steps == step else f", {instructions}")


def _anchors(args: argparse.Namespace, status: str) -> AnchorReport | None:
    """Checkpoint checks (blocktrace.chain.checkpoint), once the chain is sound."""
    if args.checkpoint is None and args.since is None:
        if args.pubkey is not None:
            raise CliError("--pubkey checks the signatures of --checkpoint or --since")
        return None
    if status not in ("sealed", "unsealed"):
        return None
    from blocktrace.chain.checkpoint import verify_anchors
    from blocktrace.chain.note import SigningUnavailableError

    try:
        return verify_anchors(args.file, checkpoint=args.checkpoint, pubkey=args.pubkey,
                              since=args.since)
    except SigningUnavailableError as exc:  # no [sign]: one line naming the extra
        raise CliError(str(exc)) from None
