"""The reading commands import only what they use (issue 18 item 4).

``show`` and ``prove`` of one line take a few milliseconds of their own; as a
fresh process most of their time is the interpreter's start and the imports.
How long that takes is measured by benchmarks/bench_startup.py (``--commands``),
never by a timed assert; here the real commands run on a real plain trace and
the test looks at every module the process imported, up to its end.

The children run with ``-S`` and blocktrace and its dependencies on
``PYTHONPATH``, as a pip-installed blocktrace starts: an editable install's
import hook (a ``.pth`` file run by ``site``) imports pathlib and more in every
process, which would hide those modules coming back.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import blocktrace

# ``python -m blocktrace ARGS``, then the names in sys.modules once it has ended.
_LIST_MODULES = """
import runpy, sys
sys.argv = ["blocktrace", *sys.argv[1:]]
try:
    runpy.run_module("blocktrace", run_name="__main__", alter_sys=True)
finally:
    with open(OUT, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
"""

# Optional dependencies, each for something a plain trace's show, prove, verify
# or check-proof never does: compressed traces, signatures, SQL, the servers.
OPTIONAL = ("zstandard", "compression.zstd", "cryptography", "duckdb", "pyarrow", "uvicorn")

# Never needed to show or prove a line of a plain trace: other commands' code,
# signatures and checkpoints (asked for by options), the recorder, and standard
# modules none of it uses (tempfile: only to keep an index, which is there;
# shutil, with bz2 and lzma: argparse's help formatter asks it the terminal's width).
NOT_FOR_READING = (
    *OPTIONAL,
    "asyncio", "http", "email", "json", "difflib", "tempfile", "pathlib", "queue", "shutil",
    "bz2", "lzma",
    "blocktrace.chain.note", "blocktrace.chain.checkpoint", "blocktrace.eip3155",
    "blocktrace.query", "blocktrace.view", "blocktrace.views", "blocktrace.snapshot",
    "blocktrace.vm", "blocktrace.tracers", "blocktrace.golden", "blocktrace.replay",
    "blocktrace.cli.run", "blocktrace.cli.diff", "blocktrace.cli.view",
)


def _among(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def _path_as_installed() -> str:
    """blocktrace's checkout, then every directory this Python finds packages in."""
    checkout = Path(blocktrace.__file__).resolve().parent.parent
    dirs = [str(checkout), *site.getsitepackages(), sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"]]
    return os.pathsep.join(dict.fromkeys(dirs))


def _modules_of(tmp_path: Path, *args: str, status: int = 0) -> set[str]:
    out = tmp_path / "modules.txt"
    env = {k: v for k, v in os.environ.items() if k != "BLOCKTRACE_PURE"}
    env["PYTHONPATH"] = _path_as_installed()
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", f"OUT = {str(out)!r}\n{_LIST_MODULES}", *args],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False)
    assert proc.returncode == status, proc.stderr
    return set(out.read_text().splitlines())


@pytest.fixture(scope="module")
def plain_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sealed plain trace of a few thousand lines, indexed (verify keeps it)."""
    where = tmp_path_factory.mktemp("plain")
    script = where / "loop.py"
    script.write_text("total = 0\nfor i in range(300):\n    total += i * i\nprint(total)\n")
    trace = where / "loop.jsonl"
    subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", str(trace), str(script)],
                   check=True, capture_output=True, cwd=where, timeout=120)
    subprocess.run([sys.executable, "-m", "blocktrace", "verify", str(trace)],
                   check=True, capture_output=True, cwd=where, timeout=120)
    return trace


@pytest.mark.parametrize(("module", "command"), [
    ("show", ["show", "{trace}", "100"]),
    ("show", ["show", "--line", "{trace}", "100"]),
    ("proofs", ["prove", "{trace}", "100", "-o", "{tmp}/proof.json"]),
])
def test_show_and_prove_of_a_plain_trace_load_nothing_they_do_not_use(
        tmp_path: Path, plain_trace: Path, module: str, command: list[str]) -> None:
    args = [a.format(trace=plain_trace, tmp=tmp_path) for a in command]
    modules = _modules_of(tmp_path, *args)
    # it did read the trace through the format's reader and index
    assert {"blocktrace.format.reader", "blocktrace.format.index",
            f"blocktrace.cli.{module}"} <= modules
    assert _among(modules, NOT_FOR_READING) == []


def test_verify_and_check_proof_load_no_optional_dependency(
        tmp_path: Path, plain_trace: Path) -> None:
    modules = _modules_of(tmp_path, "verify", str(plain_trace))
    assert "blocktrace.chain.verify" in modules
    assert _among(modules, (*OPTIONAL, "blocktrace.chain.note",
                            "blocktrace.chain.checkpoint")) == []

    bundle = tmp_path / "proof.json"
    _modules_of(tmp_path, "prove", str(plain_trace), "10", "-o", str(bundle))
    modules = _modules_of(tmp_path, "check-proof", str(bundle))
    assert "blocktrace.chain.proof" in modules
    # a bundle is checked without the trace: nothing of the trace's reading
    assert _among(modules, (*OPTIONAL, "blocktrace.chain.note", "blocktrace.chain.checkpoint",
                            "blocktrace.format.reader", "blocktrace.format.index",
                            "blocktrace.format.compressed", "blocktrace.format.lines",
                            "pathlib", "tempfile")) == []


def test_version_help_and_usage_errors_load_no_command_s_work(tmp_path: Path) -> None:
    """``--version`` registers no command; a command's ``--help`` or usage error
    loads only its module's parser, not msgspec, the format or the chain."""
    modules = _modules_of(tmp_path, "--version")
    assert _among(modules, ("blocktrace.cli.",)) == []
    for module, args in (("verify", ["verify", "--help"]), ("proofs", ["prove", "--help"]),
                         ("show", ["show", "--help"])):
        modules = _modules_of(tmp_path, *args)
        assert f"blocktrace.cli.{module}" in modules
        assert _among(modules, ("msgspec", "blocktrace.format", "blocktrace.chain")) == []
    modules = _modules_of(tmp_path, "show", status=2)
    assert _among(modules, ("msgspec", "blocktrace.format", "blocktrace.chain")) == []
