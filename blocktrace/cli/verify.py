"""``blocktrace verify``: check a trace's hash chain (and anchors)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

_TEXT = {
    "sealed": "valid and sealed",
    "unsealed": "valid but UNSEALED",
    "tampered": "TAMPERED",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="verify a trace: sealed (0), tampered (1), unusable (2), unsealed (3)",
        description="Verify a trace's hash chain, streaming. Exit 0 valid and sealed, 1 tampered "
        "(or not matching --head/--genesis), 2 unusable input, 3 valid but unsealed (cut short).",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--head", metavar="HEX",
                   help="the anchored head (kept elsewhere) the trace must end with")
    p.add_argument("--genesis", metavar="TOKEN", help="the genesis token the trace must carry")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=verify)


def verify(args: argparse.Namespace) -> int:
    from blocktrace.chain.verify import verify_file

    result = verify_file(args.file, head=args.head, genesis=args.genesis)
    if args.json:
        sys.stdout.write(msgspec.json.encode(result.as_json()).decode() + "\n")
        return result.exit_status
    if result.status == "unusable":
        sys.stderr.write(f"blocktrace verify: {args.file}: {result.reason}\n")
        return result.exit_status
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
            text += f"; run {'passed' if s.get('pass') else 'failed'}"
            text += f", {int(str(s.get('gasUsed', '0x0')), 16)} steps"
            if s.get("error"):
                text += f", error {s['error']!r}"
            if result.root:
                text += f"; Merkle root {result.root} over {result.tree_size} leaves"
        if result.status == "unsealed":
            text += f" ({result.reason})"
    sys.stdout.write(text + "\n")
    return result.exit_status
