"""The readers' chain check by format version: the same lines chained as version 3
and as version 4, read side by side in one run (issue 18 items 1 and 3).

    python benchmarks/bench_verify.py [--fib 22] [--repeat 3] [--tmp /tmp/x]
    python benchmarks/bench_verify.py --trace A.jsonl --trace B.jsonl

Records two runs of ``examples/fib.py N`` (or takes two traces), writes each one's
bodies chained by version 3's rules and by version 4's (``rules.LeafChain``:
only the hash members differ), then measures, interleaved, CPU time of this
process (one core: a plain file's check is single-threaded), best of
``--repeat``:

- **scan**: the C scanner alone (``_cscan.ChainScan``) over 1 MiB buffers of
  the file, hashes, JSON test and leaf hashes, as ``verify`` drives it;
- **verify**: ``format.reader.check_chain`` with a Merkle tree (what
  ``blocktrace verify`` does, less the process start);
- **verify .zst**: the same of the trace written as compact ``.jsonl.zst`` frames
  (the expander computes the hashes, the scanner checks the compact lines; CPU of
  all the process's threads: decompressing runs on a second one);
- **diff**: ``eip3155.diff_files`` of the two runs (it does not check the chain:
  the same work whatever the version, for the record);
- **show**: wall milliseconds to read one line near the end through the index
  (``TraceReader.raw_lines(start, 1)``, the index built before), ``.jsonl`` and
  compact ``.jsonl.zst`` (where the reader starts at a head frame).

Lines per second of one input.  The traces are deleted at the end.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from blocktrace._native import extension
from blocktrace.chain.merkle import MerkleAccumulator
from blocktrace.format import TraceReader, reader
from blocktrace.format.compressed import FrameWriter
from blocktrace.format.rules import LeafChain, split_hash
from blocktrace.format.versions import LINES_PER_LEAF, MAX_LINE_BYTES

FIB = Path(__file__).resolve().parent.parent / "examples" / "fib.py"


def rechained(source: Path, out: Path, version: int) -> int:
    """``source``'s bodies chained by ``version``'s rules into ``out``, streaming; the
    number of lines."""
    chain = LeafChain(LINES_PER_LEAF, None, version)
    n = 0
    with source.open("rb") as src, out.open("wb") as dst:
        for line in src:
            parts = split_hash(line[:-1])
            if parts is None:
                raise SystemExit(f"{source}: line {n + 1} has no hash member")
            body = parts[0]
            if n == 0:  # the header names the version (whichever the recording wrote)
                body = re.sub(rb'^\{"blocktrace":[0-9]+,', b'{"blocktrace":%d,' % version, body)
            dst.write(chain.seal(body))
            n += 1
    return n


def scan_only(native: object, path: Path, version: int) -> None:
    scan = native.ChainScan(version, LINES_PER_LEAF, MAX_LINE_BYTES, True)  # type: ignore[attr-defined]
    number, rest = 1, b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            buf = rest + chunk
            pos, trust = 0, 0
            while True:
                code, pos, number = scan.scan(buf, pos, number, trust)
                scan.take_leaves()
                if code == native.UNSURE:  # type: ignore[attr-defined]
                    trust = 1
                    continue
                break
            if code == native.SUMMARY:  # type: ignore[attr-defined]
                return
            if code != native.END:  # type: ignore[attr-defined]
                raise SystemExit(f"{path}: the scan stopped at line {number} ({code})")
            rest = buf[pos:]


def cpu(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--fib", type=int, default=22, metavar="N")
    parser.add_argument("--trace", action="append", type=Path,
                        help="two traces to use instead of recording fib (given twice)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", help="where the traces go (deleted after)")
    args = parser.parse_args()
    native = extension("blocktrace.format._cscan")
    if native is None:
        raise SystemExit("the C scanner is not built (or BLOCKTRACE_PURE is set)")
    from blocktrace.eip3155 import diff_files

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        where = Path(tmp)
        sources = args.trace or []
        if not sources:
            for name in ("a", "b"):
                path = where / f"{name}.jsonl"
                subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", str(path),
                                str(FIB), str(args.fib)], check=True, stdout=subprocess.DEVNULL)
                sources.append(path)
        if len(sources) != 2:
            raise SystemExit("--trace twice, or neither")
        files: dict[int, list[Path]] = {}
        lines = 0
        for version in (3, 4):
            files[version] = [where / f"{k}-v{version}.jsonl" for k in range(2)]
            for src, dst in zip(sources, files[version], strict=True):
                lines = rechained(src, dst, version)
        packed: dict[int, Path] = {}
        for version in (3, 4):
            packed[version] = where / f"0-v{version}.jsonl.zst"
            with files[version][0].open("rb") as src, packed[version].open("wb") as raw:
                frames = FrameWriter(raw, "zstd")
                while chunk := src.read(1 << 16):
                    frames.write(chunk)
                frames.close()
        size = files[3][0].stat().st_size
        print(f"{lines:,} lines ({size / 1e6:.0f} MB) per trace, Python "
              f"{sys.version.split()[0]}, SHA-256: {native.IMPLEMENTATION}; CPU s of this "
              f"process, best of {args.repeat}, interleaved")
        best: dict[tuple[str, int], float] = {}
        for _ in range(args.repeat):
            for version in (3, 4):
                a, b = files[version]
                for what, work in (
                    ("scan", lambda a=a, v=version: scan_only(native, a, v)),
                    ("verify", lambda a=a: reader.check_chain(a, tree=MerkleAccumulator())),
                    ("verify .zst", lambda z=packed[version]: reader.check_chain(
                        z, tree=MerkleAccumulator())),
                    ("diff", lambda a=a, b=b: diff_files(str(a), str(b))),
                ):
                    seconds = cpu(work)
                    key = (what, version)
                    best[key] = min(best.get(key, seconds), seconds)
        for path in (files[4][0], packed[4]):
            result = reader.check_chain(path, tree=MerkleAccumulator())
            if result.status != "sealed":
                raise SystemExit(f"the version 4 copy does not verify: {result.reason}")
        show: dict[tuple[str, int], float] = {}
        for version in (3, 4):
            for path in (files[version][0], packed[version]):
                trace = TraceReader(path)
                trace.index()
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    got = list(trace.raw_lines(start=lines - 3, count=1))
                    took = time.perf_counter() - start
                    assert len(got) == 1
                    key = (path.suffix, version)
                    show[key] = min(show.get(key, took), took)
        print(", ".join(f"show {kind} v{version}: {1e3 * took:.1f} ms"
                        for (kind, version), took in sorted(show.items())))
        print("\n| per input | v3 s | v3 lines/s | v4 s | v4 lines/s | v4 / v3 time |")
        print("|---|---|---|---|---|---|")
        for what in ("scan", "verify", "verify .zst", "diff"):
            t3, t4 = best[(what, 3)], best[(what, 4)]
            print(f"| {what} | {t3:.2f} | {lines / t3 / 1e6:.2f} M | {t4:.2f} | "
                  f"{lines / t4 / 1e6:.2f} M | {t4 / t3:.2f}x |")


if __name__ == "__main__":
    main()
