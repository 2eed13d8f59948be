"""A command whose optional dependency is not installed says so in one line naming the
extra that brings it (``pip install -e '.[sign]'``, as the README installs extras), exit 2,
never a traceback: what a new user meets after a bare ``pip install -e .``.

The dependency is made unimportable in the child process (``sys.modules[name] = None``,
which makes ``import name`` raise ``ModuleNotFoundError`` as a missing package does); the
command is blocktrace's own, run for real on real files."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIB = str(ROOT / "examples" / "fib.py")

# (the package made missing, the extra bringing it, the command's arguments)
CASES = [
    ("zstandard", "zstd", ["run", "-o", "new.jsonl.zst", FIB, "3"]),
    ("zstandard", "zstd", ["verify", "z.jsonl.zst"]),
    ("zstandard", "zstd", ["show", "z.jsonl.zst", "1"]),
    ("zstandard", "zstd", ["cat", "z.jsonl.zst", "-o", "out.jsonl"]),
    ("zstandard", "zstd", ["diff", "z.jsonl.zst", "p.jsonl"]),
    ("zstandard", "zstd", ["prove", "z.jsonl.zst", "3"]),
    ("cryptography", "sign", ["keygen", "n", "--out", "other"]),
    ("cryptography", "sign", ["sign", "p.jsonl", "--key", "k.key", "-o", "new.cp"]),
    ("cryptography", "sign", ["verify", "p.jsonl", "--checkpoint", "p.cp", "--pubkey", "k.pub"]),
    ("cryptography", "sign", ["verify", "p.jsonl", "--checkpoint", "p.cp", "--pubkey", "k.pub",
                              "--json"]),
    ("cryptography", "sign", ["verify", "p.jsonl", "--since", "p.cp", "--pubkey", "k.pub"]),
    ("cryptography", "sign", ["check-proof", "b.json", "--checkpoint", "p.cp", "--pubkey",
                              "k.pub"]),
    ("cryptography", "sign", ["run", "--sign-key", "k.key", "--checkpoint-every", "10", "-o",
                              "new.jsonl", FIB, "3"]),
    ("uvicorn", "server", ["serve", "--port", "0"]),
    ("duckdb", "query", ["query", "p.jsonl", "SELECT 1"]),
    ("pyarrow", "query", ["export", "p.jsonl", "--to", "parquet", "out/"]),
]


def _blocktrace(cwd: Path, *args: str, missing: str | None = None
                ) -> subprocess.CompletedProcess[str]:
    hide = f"sys.modules[{missing!r}] = None\n" if missing else ""
    code = f"import sys\n{hide}from blocktrace.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace, its .zst twin, a key pair, a checkpoint and a proof, made with every
    dependency present."""
    for package in ("zstandard", "cryptography"):
        pytest.importorskip(package)
    work = tmp_path_factory.mktemp("extras")
    for args in (["run", "-o", "p.jsonl", FIB, "3"], ["run", "-o", "z.jsonl.zst", FIB, "3"],
                 ["keygen", "n", "--out", "k"], ["sign", "p.jsonl", "--key", "k.key", "-o",
                                                 "p.cp"]):
        done = _blocktrace(work, *args)
        assert done.returncode == 0, done.stderr
    proof = _blocktrace(work, "prove", "p.jsonl", "3")
    assert proof.returncode == 0, proof.stderr
    (work / "b.json").write_text(proof.stdout)
    return work


@pytest.mark.parametrize(("package", "extra", "args"), CASES,
                         ids=[f"{c[0]}-{' '.join(c[2][:2])}" for c in CASES])
def test_a_missing_extra_is_one_line_naming_it(files: Path, package: str, extra: str,
                                               args: list[str]) -> None:
    done = _blocktrace(files, *args, missing=package)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"blocktrace {args[0]}: "), lines[0]
    assert f"pip install -e '.[{extra}]'" in lines[0], lines[0]
    assert not done.stdout  # no verdict printed before the error
    assert not list(files.glob("new*")) and not (files / "out").exists()


def test_each_extra_named_brings_its_package() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for package, extra, _ in CASES:
        assert any(dep.startswith(package) for dep in extras[extra]), (extra, package)
