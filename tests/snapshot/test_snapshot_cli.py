"""``blocktrace snapshot`` as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec


def blocktrace(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", *args, "--cpu", "10", "--wall", "60"],
        input=stdin, capture_output=True, timeout=120, check=False,
    )


def test_request_on_stdin() -> None:
    request = msgspec.json.encode({"source": "x = 2\ny = x * 21\n", "steps": 50})
    done = blocktrace("snapshot", stdin=request)
    assert done.returncode == 0, done.stderr
    response = msgspec.json.decode(done.stdout)
    assert response["status"] == "ok"
    assert response["steps"][-1]["stack"][0]["variables"] == {"x": 2, "y": 42}
    assert done.stdout.count(b"\n") == 1  # compact


def test_pretty() -> None:
    done = blocktrace("snapshot", "--pretty", stdin=b'{"source": "a = 1"}')
    assert done.returncode == 0
    assert b'\n  "status": "ok",\n' in done.stdout


def test_script_with_input_file_and_steps(tmp_path: Path) -> None:
    script = tmp_path / "greet.py"
    script.write_text("while True:\n    print('hi', input())\n")
    feed = tmp_path / "in.txt"
    feed.write_text("a\nb\n")
    done = blocktrace("snapshot", str(script), "--input", str(feed), "--steps", "100")
    assert done.returncode == 1  # the program ended with EOFError
    response = msgspec.json.decode(done.stdout)
    assert response["error"]["type"] == "EOFError"
    assert response["stdout"] == "a\nhi a\nb\nhi b\n"

    done = blocktrace("snapshot", str(script), "--input", str(feed), "--steps", "3")
    response = msgspec.json.decode(done.stdout)
    assert response["status"] == "step_limit"
    assert len(response["steps"]) == 4


def test_trace_format_writes_a_verifiable_trace(tmp_path: Path) -> None:
    done = blocktrace("snapshot", "--format", "trace", "--genesis", "nonce-7",
                      stdin=b'{"source": "print(6 * 7)"}')
    assert done.returncode == 0, done.stderr
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(done.stdout)
    verified = subprocess.run([sys.executable, "-m", "blocktrace", "verify", str(trace)],
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0
    assert "valid and sealed" in verified.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        (("snapshot",), b"{not json", b"not JSON"),
        (("snapshot",), b'{"source": 5}', b"$.source"),
        (("snapshot",), b'{"source": "", "stpes": 3}', b"stpes"),
        (("snapshot",), b'{"source": "", "steps": 0}', b"$.steps"),
        (("snapshot", str(tmp_path / "missing.py")), b"", b"cannot read script"),
        (("snapshot", "--steps", "-3", "x.py"), b"", b"must be positive"),
        (("snapshot", "--steps", "200000", "x.py"), b"", b"argument --steps: at most 100000"),
        (("serve", "--max-steps", "200000"), b"", b"argument --max-steps: at most 100000"),
    ]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        runs = [pool.submit(blocktrace, *args, stdin=stdin) for args, stdin, _ in cases]
        dones = [r.result(timeout=120) for r in runs]
    for (args, stdin, needle), done in zip(cases, dones, strict=True):
        assert done.returncode == 2, (args, stdin, done.stderr)
        assert done.stdout == b""
        assert done.stderr.count(b"\n") == 1 and needle in done.stderr, done.stderr
        assert b"Traceback" not in done.stderr


def test_script_and_input_file_are_read_bounded(tmp_path: Path) -> None:
    """SCRIPT and --input are read through limits.read_small_file (4 MiB, as a
    request on stdin): /dev/zero stops at the bound instead of filling memory,
    and a script is held to a request's 1,000,000 characters."""
    big = tmp_path / "big.py"
    big.write_bytes(b"#" * ((4 << 20) + 1))
    long = tmp_path / "long.py"
    long.write_bytes(b"#" * 1_000_001)
    script = tmp_path / "ok.py"
    script.write_text("print(input())\n")
    cases = [
        (("snapshot", "/dev/zero"), b"/dev/zero is larger than 4 MiB: too big for a script"),
        (("snapshot", str(big)), b"big.py is larger than 4 MiB: too big for a script"),
        (("snapshot", str(script), "--input", "/dev/zero"),
         b"/dev/zero is larger than 4 MiB: too big for an input file"),
        (("snapshot", str(long)), b"length <= 1000000 - at `$.source`"),
    ]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        dones = list(pool.map(lambda case: blocktrace(*case[0]), cases))
    for (args, needle), done in zip(cases, dones, strict=True):
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == b""
        assert done.stderr.count(b"\n") == 1 and needle in done.stderr, done.stderr
