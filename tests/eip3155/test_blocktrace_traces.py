"""Diffing blocktrace's own traces, made by ``blocktrace run`` in a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from blocktrace.eip3155 import diff_files

PROGRAM = '''\
def classify(n):
    if n > 10:
        return "big"
    return "small"


def main(n):
    label = classify(n)
    total = 0
    for i in range(3):
        total += i * n
    return label, total


print(main({n}))
'''


def _record(tmp_path: Path, name: str, n: int, *extra: str) -> Path:
    """Run the program with input ``n`` as ``prog.py`` in its own directory; the trace."""
    where = tmp_path / name
    where.mkdir()
    (where / "prog.py").write_text(PROGRAM.replace("{n}", str(n)), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", *extra, "-o", "trace.jsonl", "prog.py"],
        cwd=where, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return where / "trace.jsonl"


def _diff(a: Path, b: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blocktrace", "diff", *args, str(a), str(b)],
                          capture_output=True, text=True, timeout=120)


def test_two_runs_of_the_same_program_are_equal(tmp_path: Path) -> None:
    a = _record(tmp_path, "a", 5)
    b = _record(tmp_path, "b", 5)
    # Different genesis, start time, pid and hashes: ignored.
    assert a.read_text().splitlines()[0] != b.read_text().splitlines()[0]
    done = _diff(a, b)
    assert done.returncode == 0, done.stdout + done.stderr
    report = diff_files(str(a), str(b))
    assert report.equal
    assert report.a.dialect == report.b.dialect == "blocktrace"
    assert report.fields == ("pc", "op", "depth", "line", "function", "thread", "error",
                             "locals", "globals")


def test_a_different_branch_is_reported_at_its_line(tmp_path: Path) -> None:
    a = _record(tmp_path, "a", 5)
    b = _record(tmp_path, "b", 50)
    done = _diff(a, b, "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    first = report["firstDivergence"]
    assert first["a"]["function"] == first["b"]["function"] == "classify"
    assert first["a"]["line"] == 4 and first["b"]["line"] == 3
    assert first["a"]["source"] == 'return "small"'
    assert first["b"]["source"] == 'return "big"'
    assert "line" in first["fields"]
    # the last common step is the branch on line 2
    common = report["firstDivergence"]["lastCommon"]
    a_lines = a.read_text().splitlines()
    assert json.loads(a_lines[common["aLine"] - 1])["line"] == 2
    # the summaries differ in nothing the program printed to its exit status
    assert report["summary"]["equal"] is True
    text = _diff(a, b).stdout
    a_at = next(line for line in text.splitlines() if line.startswith("    A at "))
    b_at = next(line for line in text.splitlines() if line.startswith("    B at "))
    assert a_at.startswith("    A at classify ") and a_at.endswith('prog.py:4  | return "small"')
    assert b_at.startswith("    B at classify ") and b_at.endswith('prog.py:3  | return "big"')


def test_locals_show_where_values_part_ways(tmp_path: Path) -> None:
    a = _record(tmp_path, "a", 5, "--locals", "on")
    b = _record(tmp_path, "b", 6, "--locals", "on")
    report = diff_files(str(a), str(b))
    first = report.steps.first
    assert first is not None and first.a is not None and first.b is not None
    assert first.fields == ["locals"]
    assert (first.a.function, first.a.line) == ("main", 8)  # n differs on entry to main
    assert first.a.locals == {"n": 5} and first.b.locals == {"n": 6}
    text = _diff(a, b).stdout
    assert "locals n: A 5, B 6" in text
    # without locals the two runs take the same path: equal
    plain_a = _record(tmp_path, "pa", 5)
    plain_b = _record(tmp_path, "pb", 6)
    assert _diff(plain_a, plain_b).returncode == 0


def test_an_uncaught_exception_differs_in_the_summary(tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    bad = tmp_path / "bad"
    for where, body in ((ok, "x = 1 + 1\n"), (bad, "x = 1 // 0\n")):
        where.mkdir()
        (where / "p.py").write_text(body)
        subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", "t.jsonl", "p.py"],
                       cwd=where, capture_output=True, timeout=120)
    report = diff_files(str(ok / "t.jsonl"), str(bad / "t.jsonl"))
    assert not report.equal
    assert "pass" in report.summary.differences or "output" in report.summary.differences
    first = report.steps.first
    assert first is not None


def test_an_exception_line_joins_its_instruction_and_is_compared(tmp_path: Path) -> None:
    body = (
        "def f(x):\n"
        "    try:\n"
        "        return 1 // x\n"
        "    except ZeroDivisionError:\n"
        "        return -1\n"
        "\n"
        "\n"
        "print(f(X))\n"
    )
    traces = []
    for name, x in (("zero", 0), ("one", 1)):
        where = tmp_path / name
        where.mkdir()
        (where / "p.py").write_text(body.replace("X", str(x)))
        done = subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", "t.jsonl", "p.py"],
                              cwd=where, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        traces.append(where / "t.jsonl")
    raw = [json.loads(line) for line in traces[0].read_text().splitlines()]
    raise_line = next(i for i, obj in enumerate(raw) if obj.get("event") == "raise")
    op_line = raw[raise_line - 1]
    assert (op_line["pc"], op_line["opName"]) == (raw[raise_line]["pc"], "BINARY_OP")
    report = diff_files(str(traces[0]), str(traces[1]))
    first = report.steps.first
    assert first is not None and first.a is not None and first.b is not None
    # the raise line merged into the BINARY_OP step: the divergence is that step's error
    assert first.fields == ["error"]
    assert (first.a.opName, first.a.line, first.a.lineno) == ("BINARY_OP", 3, raise_line)
    assert first.a.error == "ZeroDivisionError: integer division or modulo by zero"
    assert first.a.event == "raise" and first.b.error is None
    assert report.a.merged >= 1


def _record_source(tmp_path: Path, name: str, source: str) -> Path:
    where = tmp_path / name
    where.mkdir()
    (where / "prog.py").write_text(source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "-o", "trace.jsonl", "prog.py"],
        cwd=where, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return where / "trace.jsonl"


def test_by_line_compares_source_lines_not_instructions(tmp_path: Path) -> None:
    # Same lines executed in the same order, different bytecode on line 2.
    a = _record_source(tmp_path, "a", "x = -3\ny = abs(x)\nprint(y)\n")
    b = _record_source(tmp_path, "b", "x = -3\ny = x if x > 0 else -x\nprint(y)\n")
    assert not diff_files(str(a), str(b)).equal
    report = diff_files(str(a), str(b), by_line=True)
    assert report.equal, report.steps.first
    assert report.steps.steps_a == report.steps.steps_b == 3
    done = _diff(a, b, "--by-line")
    assert done.returncode == 0
    assert "compared per source line: depth, line, function" in done.stdout
    assert done.stdout.rstrip().endswith("same: 3 source lines agree on depth, line, function, "
                                         "thread, error, locals, globals")


def test_by_line_finds_the_line_where_runs_part_ways(tmp_path: Path) -> None:
    a = _record(tmp_path, "a", 5)
    b = _record(tmp_path, "b", 50)
    report = diff_files(str(a), str(b), by_line=True)
    first = report.steps.first
    assert first is not None and first.a is not None and first.b is not None
    assert (first.a.function, first.a.line, first.b.line) == ("classify", 4, 3)
    assert first.fields == ["line"]
    # the line before, in both: the test on line 2
    assert report.steps.last_common is not None
    assert report.steps.last_common[0].line == report.steps.last_common[1].line == 2


def test_by_line_refuses_client_traces() -> None:
    from .helpers import trace

    done = _diff(trace("geth", "statetest1"), trace("besu", "statetest1"), "--by-line")
    assert done.returncode == 2
    assert "--by-line compares blocktrace traces" in done.stderr
    assert done.stderr.count("\n") == 1


# -- blocktrace traces are read through the format's reader (issue 12) -------------------


def _recorded(tmp_path: Path, programs: Path) -> Path:
    trace = tmp_path / "b.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "-o", str(trace), str(programs / "behaves.py")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert trace.exists(), done.stderr
    return trace


def test_a_torn_last_line_is_not_read_as_the_format_says(tmp_path: Path, programs: Path) -> None:
    """TraceReader stops before a torn line (the run was cut short there); the
    client reader would hand it on as a line that is not JSON (noise)."""
    from blocktrace.eip3155.normalise import read_all

    trace = _recorded(tmp_path, programs)
    lines = trace.read_bytes().splitlines(keepends=True)
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"".join(lines[:-2]) + lines[-2][:30])
    steps, info = read_all(str(torn))
    assert info.noise == 0
    assert info.lines == len(lines) - 2
    whole, _ = read_all(str(trace))
    assert [s.pc for s in steps] == [s.pc for s in whole][: len(steps)]


def test_a_compressed_blocktrace_trace_normalises_as_the_plain_one(
    tmp_path: Path, programs: Path
) -> None:
    import gzip

    from blocktrace.eip3155.normalise import read_all

    trace = _recorded(tmp_path, programs)
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(trace.read_bytes()))
    plain, info = read_all(str(trace))
    steps, packed_info = read_all(str(packed))
    assert [(s.pc, s.op, s.depth) for s in steps] == [(s.pc, s.op, s.depth) for s in plain]
    assert packed_info.python == info.python and info.python


def test_diff_says_when_a_blocktrace_trace_does_not_verify(tmp_path: Path) -> None:
    a = _record(tmp_path, "a", 5)
    b = _record(tmp_path, "b", 5)
    sealed = _diff(a, b)
    assert sealed.returncode == 0 and sealed.stderr == "", sealed.stderr
    lines = b.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    # The same steps, a hash digit changed: what diff compares agrees, the chain does not.
    edited = tmp_path / "edited.jsonl"
    cut = lines[middle].rindex(b'"hash":"') + 8
    digit = b"1" if lines[middle][cut:cut + 1] == b"0" else b"0"
    edited.write_bytes(b"".join(lines[:middle]) + lines[middle][:cut] + digit
                       + lines[middle][cut + 1:] + b"".join(lines[middle + 1:]))
    for args in ((), ("--json",)):
        done = _diff(a, edited, *args)
        assert done.returncode == 0, done.stderr  # the steps are the same
        assert done.stderr.startswith(
            f"blocktrace diff: note: {edited} is TAMPERED at line {middle + 1} "
            "(blocktrace verify says why): "), done.stderr
        assert done.stderr.count("\n") == 1
    short = tmp_path / "short.jsonl"
    short.write_bytes(b"".join(lines[:middle]))
    done = _diff(short, a)
    assert done.returncode == 1
    assert done.stderr.startswith(f"blocktrace diff: note: {short} is UNSEALED"), done.stderr
