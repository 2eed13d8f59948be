"""Every reader on a trace whose file name is not UTF-8 (``\\x80t.jsonl``; argv holds
its byte as a lone surrogate), as real processes with a UTF-8 locale's strict
stdout: an answer, never a traceback.  A JSON answer or file names it with the
byte written ``\\x80`` (``format.callline.json_text``, as the header's argv); text
on stdout writes the byte as it is; a Parquet dataset, which pyarrow and DuckDB
can only name in UTF-8, is refused in such a directory with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ODD = b"\x80t.jsonl"
SHOWN = "\\x80t.jsonl"  # the name in JSON text
ENV = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # stdout as in a UTF-8 locale


def _cli(where: Path, *args: bytes | str) -> subprocess.CompletedProcess[bytes]:
    argv = [os.fsencode(sys.executable), b"-m", b"blocktrace",
            *(a if isinstance(a, bytes) else a.encode() for a in args)]
    done = subprocess.run(argv, cwd=where, capture_output=True, timeout=300, env=ENV,
                          check=False, input=b"")
    assert b"Traceback" not in done.stderr, done.stderr.decode("utf-8", "replace")
    return done


def _ok(where: Path, *args: bytes | str) -> bytes:
    done = _cli(where, *args)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return done.stdout


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``\\x80t.jsonl`` and ``b.jsonl``, two traces of one program."""
    here = tmp_path_factory.mktemp("odd")
    (here / "p.py").write_text("def f(x):\n    return x * 2\n\nprint(f(3))\n")
    _ok(here, "run", "-o", ODD, "p.py")
    _ok(here, "run", "-o", "b.jsonl", "p.py")
    return here


def test_verify(where: Path) -> None:
    assert ODD + b": valid and sealed" in _ok(where, "verify", ODD)
    assert json.loads(_ok(where, "verify", "--json", ODD))["file"] == SHOWN


def test_show_cat_and_lines(where: Path) -> None:
    assert _ok(where, "show", ODD, "0:2")
    assert _ok(where, "cat", ODD) == (where / os.fsdecode(ODD)).read_bytes()
    rows = [json.loads(line) for line in _ok(where, "lines", "--json", ODD).splitlines()]
    assert rows and all(row["file"].endswith("p.py") for row in rows)


def test_diff_json_names_both_inputs(where: Path) -> None:
    for a, b in ((ODD, b"b.jsonl"), (b"b.jsonl", ODD)):
        text = _ok(where, "diff", a, b)
        assert ODD in text
        inputs = json.loads(_ok(where, "diff", "--json", a, b))["inputs"]
        assert {inputs["a"]["path"], inputs["b"]["path"]} == {SHOWN, "b.jsonl"}


def test_prove_and_check_proof(where: Path) -> None:
    bundle = b"\x80bundle.json"
    _ok(where, "prove", "-o", bundle, ODD, "3")
    assert b"valid" in _ok(where, "check-proof", bundle)
    answer = json.loads(_ok(where, "check-proof", "--json", bundle))
    assert answer["valid"] is True and answer["bundle"] == "\\x80bundle.json"
    bad = where / os.fsdecode(b"\x80bad.json")
    data = json.loads((where / os.fsdecode(bundle)).read_bytes())
    data["line"] = "tampered"
    bad.write_text(json.dumps(data))
    rejected = _cli(where, "check-proof", "--json", b"\x80bad.json")
    assert rejected.returncode in (1, 2)
    assert json.loads(rejected.stdout)["bundle"] == "\\x80bad.json"


def test_query_names_the_trace(where: Path) -> None:
    pytest.importorskip("duckdb")
    pytest.importorskip("pyarrow")
    env_cache = where / "cache"
    ENV["BLOCKTRACE_CACHE"] = str(env_cache)
    try:
        rows = json.loads(_ok(where, "query", "--json", ODD, "SELECT path, name FROM runs"))
        assert rows == [{"path": SHOWN, "name": SHOWN}]
        assert SHOWN.encode() in _ok(where, "query", ODD, "SELECT name FROM runs")
        assert _ok(where, "query", "--csv", ODD, "SELECT count(*) AS n FROM ops")
    finally:
        del ENV["BLOCKTRACE_CACHE"]


def test_export(where: Path) -> None:
    pytest.importorskip("pyarrow")
    said = _ok(where, "export", "--force", "--to", "perfetto", b"\x80pf.json", ODD)
    assert b"\x80pf.json" in said
    timeline = json.loads((where / os.fsdecode(b"\x80pf.json")).read_bytes())
    assert timeline["otherData"]["traces"][0]["path"] == SHOWN
    _ok(where, "export", "--force", "--to", "speedscope", b"\x80ss.json", ODD)
    flame = json.loads((where / os.fsdecode(b"\x80ss.json")).read_bytes())
    assert flame["profiles"][0]["name"].startswith(SHOWN)
    said = _ok(where, "export", "--to", "parquet", "dataset", ODD)
    assert said.startswith(ODD + b": run ")
    refused = _cli(where, "export", "--to", "parquet", b"\x80dataset", ODD)
    assert refused.returncode == 2 and refused.stderr.count(b"\n") == 1
    assert b"must be UTF-8" in refused.stderr
    assert not (where / os.fsdecode(b"\x80dataset")).exists()


def test_view_html(where: Path) -> None:
    _ok(where, "view", "--force", "--html", b"\x80one.html", ODD)
    page = (where / os.fsdecode(b"\x80one.html")).read_bytes()
    assert b"<title>blocktrace view: \\x80t.jsonl" in page
    _ok(where, "view", "--force", "--html", b"\x80two.html", ODD, "b.jsonl")


def test_keygen_and_sign(where: Path) -> None:
    pytest.importorskip("cryptography")
    said = _ok(where, "keygen", "--out", b"\x80key", "example.com/k")
    assert b"\x80key.key" in said
    _ok(where, "sign", "--key", b"\x80key.key", "-o", b"\x80cp", ODD)
    answer = json.loads(_ok(where, "verify", "--json", "--checkpoint", b"\x80cp",
                            "--pubkey", b"\x80key.pub", ODD))
    assert answer["valid"] is True
