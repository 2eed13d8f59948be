"""Helpers of the viewer's server tests: a real traced program, a real server on
127.0.0.1, real HTTP requests (no mocks)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REFDATA = ROOT.parent / "shared" / "refdata" / "eip3155"

PROGRAM = '''\
def add(a, b):
    total = a + b
    return total


def main():
    total = 0
    for i in range(4):
        total = add(total, i * 11)
    try:
        raise ValueError("boom")
    except ValueError:
        pass
    print(total)


main()
'''
"""total becomes 0, 0, 11, 33, 66 in main; add's total is a fresh local each call."""


def record(directory: Path, *extra: str, name: str = "prog", program: str = PROGRAM) -> Path:
    """Trace ``PROGRAM`` (with ``--locals changes`` unless ``extra`` says
    otherwise) by the real command; the trace's path."""
    script = directory / f"{name}.py"
    script.write_text(program)
    trace = directory / f"{name}.trace.jsonl"
    options = list(extra) or ["--locals", "changes"]
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "--force", *options, "-o", str(trace),
         str(script)],
        capture_output=True, text=True, timeout=120, check=False, cwd=directory,
    )
    assert proc.returncode == 0, proc.stderr
    return trace


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET (errors included, not raised)."""
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def api(base: str, call: str, /, **params: Any) -> Any:
    """The JSON answer of ``/<token>/api/CALL?params`` (asserting 200)."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    status, _, body = get(f"{base}api/{call}" + (f"?{query}" if query else ""))
    assert status == 200, (call, params, status, body[:500])
    return json.loads(body)
