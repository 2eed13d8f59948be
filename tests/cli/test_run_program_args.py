"""What belongs to the program and what to blocktrace: everything after SCRIPT or
``-m MODULE`` is the program's, as with ``python``; no option of blocktrace's is
abbreviated; ``-m`` finds what python finds; the output never overwrites what
the run reads; the step budget fits EIP-3155's uint64."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from blocktrace.chain.verify import verify_file

Runner = Callable[..., subprocess.CompletedProcess[str]]
Check = Callable[[subprocess.CompletedProcess[str]], None]

ARGV = "import sys\nprint(sys.argv[1:])\n"


@pytest.mark.parametrize(
    "program_args",
    [
        ["--check"],  # once "ambiguous option: could match --checkpoint-every, ..."
        ["--g"],  # once a prefix of --gas, --genesis, --globals
        ["--gas", "1", "-o", "elsewhere", "--force", "-v"],  # blocktrace's own spellings
        ["--output=x", "-vo", "y", "--", "-h"],
        ["--help"],
    ],
)
@pytest.mark.parametrize("as_module", [False, True])
def test_everything_after_the_program_is_the_programs(
    program_args: list[str], as_module: bool, tmp_path: Path, blocktrace_cli: Runner,
    python_cli: Runner,
) -> None:
    (tmp_path / "argv.py").write_text(ARGV)
    target = ["-m", "argv"] if as_module else ["argv.py"]
    plain = python_cli(*target, *program_args, cwd=tmp_path)
    traced = blocktrace_cli("run", "-o", "t.jsonl", *target, *program_args, cwd=tmp_path)
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, plain.stdout, "")
    assert f"{program_args!r}" in traced.stdout
    assert verify_file(tmp_path / "t.jsonl").status == "sealed"
    assert not (tmp_path / "elsewhere").exists()


def test_options_before_the_program_in_every_spelling(
    tmp_path: Path, blocktrace_cli: Runner
) -> None:
    (tmp_path / "argv.py").write_text(ARGV)
    proc = blocktrace_cli("run", "-vo", "a.jsonl", "--gas=100", "--", "argv.py", "x", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "['x']\n")
    assert "a.jsonl" in proc.stderr  # -v
    proc = blocktrace_cli("run", "-ob.jsonl", "-margv", "--check", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "['--check']\n")
    assert verify_file(tmp_path / "b.jsonl").status == "sealed"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--gen", "x", "argv.py"],  # a prefix of --genesis, once accepted
        ["run", "--verb", "argv.py"],
        ["types", "--stub", "out", "argv.py"],
        ["snapshot", "argv.py", "--step", "5"],
        ["verify", "t.jsonl", "--hea", "00"],
    ],
)
def test_no_option_is_abbreviated(
    args: list[str], tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    (tmp_path / "argv.py").write_text(ARGV)
    proc = blocktrace_cli(*args, cwd=tmp_path)
    one_line_error(proc)
    assert proc.returncode == 2
    assert "unrecognized arguments" in proc.stderr
    assert proc.stdout == ""


def _console_script() -> Path:
    script = Path(sys.executable).parent / "blocktrace"
    if not script.exists():
        pytest.skip("no blocktrace console script beside this interpreter (pip install -e .)")
    return script


def test_dash_m_finds_a_module_in_the_current_directory(tmp_path: Path) -> None:
    """Under the installed command, ``sys.path[0]`` is its bin directory until
    the program starts: the module must be looked up as python will."""
    command = _console_script()
    (tmp_path / "mymod.py").write_text("import sys\nprint('mymod', sys.argv[1:])\n")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("print('mypkg init')\n")
    (tmp_path / "mypkg" / "__main__.py").write_text("print('mypkg main')\n")
    (tmp_path / "mypkg" / "tool.py").write_text("print('mypkg tool')\n")
    for module, says in (("mymod", "mymod ['a']\n"), ("mypkg", "mypkg init\nmypkg main\n"),
                         ("mypkg.tool", "mypkg init\nmypkg tool\n")):
        proc = subprocess.run([command, "run", "-o", "t.jsonl", "--force", "-m", module, "a"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, says, ""), module
    # the package's __init__ ran traced: looking the module up imported nothing
    trace = (tmp_path / "t.jsonl").read_bytes().splitlines()
    files = {Path(e["file"]).name for e in map(msgspec.json.decode, trace)
             if e.get("event") == "call"}
    assert files == {"__init__.py", "tool.py"}


def test_a_package_init_runs_traced_under_dash_m(
    tmp_path: Path, blocktrace_cli: Runner
) -> None:
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "mypkg" / "__main__.py").write_text("from mypkg import X\nprint(X)\n")
    proc = blocktrace_cli("run", "-o", "t.jsonl", "-m", "mypkg", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "1\n")
    calls = [e for e in map(msgspec.json.decode, (tmp_path / "t.jsonl").read_bytes().splitlines())
             if e.get("event") == "call"]
    assert [Path(e["file"]).name for e in calls] == ["__init__.py", "__main__.py"]


def test_types_dash_m_finds_a_module_in_the_current_directory(tmp_path: Path) -> None:
    command = _console_script()
    (tmp_path / "mymod.py").write_text("def f(x):\n    return x\n\nf(1)\n")
    proc = subprocess.run([command, "types", "-m", "mymod"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mymod.types.jsonl").exists()


@pytest.mark.parametrize("output", ["hi.py", "./hi.py", "link.py"])
def test_the_trace_never_overwrites_the_program(
    output: str, tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    script = tmp_path / "hi.py"
    script.write_text("print('hi')\n")
    (tmp_path / "link.py").symlink_to(script)
    proc = blocktrace_cli("run", "-o", output, "--force", "hi.py", cwd=tmp_path)
    one_line_error(proc)
    assert proc.returncode == 2 and "is the program" in proc.stderr
    assert proc.stdout == ""
    assert script.read_text() == "print('hi')\n"


def test_the_trace_never_overwrites_a_modules_file_or_the_signing_key(
    tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    main = tmp_path / "mypkg" / "__main__.py"
    main.write_text("print('main')\n")
    proc = blocktrace_cli("run", "-o", main, "--force", "-m", "mypkg", cwd=tmp_path)
    one_line_error(proc)
    assert "is the program" in proc.stderr
    assert main.read_text() == "print('main')\n"
    key = tmp_path / "ci.key"
    key.write_text("secret\n")
    proc = blocktrace_cli("run", "-o", key, "--force", "--sign-key", key, "--checkpoint-every",
                          "10", "-m", "mypkg", cwd=tmp_path)
    one_line_error(proc)
    assert "signing key" in proc.stderr
    assert key.read_text() == "secret\n"


@pytest.mark.parametrize(("gas", "ok"), [("0xffffffffffffffff", True),
                                         ("0x10000000000000000", False),
                                         (str(2**100), False)])
def test_gas_is_a_uint64(
    gas: str, ok: bool, tmp_path: Path, blocktrace_cli: Runner, one_line_error: Check
) -> None:
    (tmp_path / "argv.py").write_text(ARGV)
    proc = blocktrace_cli("run", "--gas", gas, "-o", "t.jsonl", "argv.py", cwd=tmp_path)
    if not ok:
        one_line_error(proc)
        assert "--gas" in proc.stderr and "2**64-1" in proc.stderr
        assert not (tmp_path / "t.jsonl").exists()
        return
    assert proc.returncode == 0, proc.stderr
    lines = map(msgspec.json.decode, (tmp_path / "t.jsonl").read_bytes().splitlines())
    first_op = next(line for line in lines if "pc" in line)
    assert first_op["gas"] == "0xffffffffffffffff"
    help_text = blocktrace_cli("run", "--help").stdout
    assert "2**64-1" in help_text


@pytest.mark.parametrize("locals_", ["off", "on"])
def test_a_script_whose_name_is_not_utf8_is_traced(
    tmp_path: Path, locals_: str, blocktrace_cli: Runner,
) -> None:
    # A file name's bytes that are not UTF-8 reach Python as lone surrogates, which no
    # JSON encoder takes: the call and source lines write them as \xNN (as the header's
    # argv does). Before, the tracer detached at the first call line ("run failed, 0
    # steps, error 'tracer detached'"); the program ran on untraced.
    name = "a\udc80.py"
    (tmp_path / name).write_text("x = 6 * 7\nprint(x)\n")
    out = tmp_path / "t.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "run", "--locals", locals_, "-o", str(out),
         str(tmp_path / name)], capture_output=True, cwd=tmp_path, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"42\n"
    assert b"detached" not in proc.stderr, proc.stderr
    assert verify_file(out).status == "sealed"
    lines = out.read_bytes().splitlines()
    summary = msgspec.json.decode(lines[-1])
    assert summary["pass"] is True and summary.get("error") in (None, ""), summary
    written = str(tmp_path / name).encode("utf-8", "surrogateescape").decode(
        "utf-8", "backslashreplace").encode()
    calls = [line for line in lines if b'"event":"call"' in line]
    assert calls and b'"file":' + msgspec.json.encode(written.decode()) in calls[0]
    assert any(b'"event":"source"' in line and msgspec.json.encode(written.decode()) in line
               for line in lines)
