"""``blocktrace run`` behaves like ``python``: real subprocesses side by side,
then the trace they left must verify sealed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.chain.verify import verify_file

Runner = Callable[..., subprocess.CompletedProcess[str]]

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _summary(trace: Path) -> dict[str, Any]:
    return _decode(trace.read_bytes().splitlines()[-1])


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("ok", 0),
        ("exit0", 0),
        ("exitnone", 0),
        ("exit3", 3),  # sys.exit(3) from six frames down
        ("exitmsg", 1),  # sys.exit("msg"): the message on stderr, status 1
        ("raise", 1),  # uncaught exception: its traceback on stderr, status 1
        ("stdin", 0),
    ],
)
def test_same_output_status_and_a_sealed_trace(
    mode: str, status: int, tmp_path: Path, programs: Path,
    blocktrace_cli: Runner, python_cli: Runner,
) -> None:
    script = programs / "behaves.py"
    args = [mode, "two words", "--flag", "-o", "x"]  # options after the script are the program's
    stdin = "line one\nline two\n" if mode == "stdin" else None
    plain = python_cli(script, *args, input=stdin)
    trace = tmp_path / "t.jsonl"
    traced = blocktrace_cli("run", "-o", trace, script, *args, input=stdin)

    assert plain.returncode == status
    assert traced.returncode == status
    assert traced.stdout == plain.stdout
    # The traceback of an uncaught exception, too: blocktrace's own frames are not in it.
    assert traced.stderr == plain.stderr
    assert "atexit handler ran" in traced.stdout
    assert f"argv={args!r}" in traced.stdout
    assert "name=__main__" in traced.stdout
    if mode == "stdin":
        assert "stdin='line one\\nline two\\n'" in traced.stdout

    check = verify_file(trace)
    assert check.status == "sealed", check.reason
    summary = _summary(trace)
    assert summary["output"] == str(status)
    assert summary["pass"] is (mode in ("ok", "exit0", "exitnone", "stdin"))
    if mode == "raise":
        assert summary["error"] == "ValueError: deep failure"
    header = _decode(trace.read_bytes().split(b"\n", 1)[0])
    assert header["argv"] == [str(script), *args]


def test_uncaught_exception_traceback_matches_python(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    script = programs / "behaves.py"
    plain = python_cli(script, "raise")
    traced = blocktrace_cli("run", "-o", tmp_path / "t.jsonl", script, "raise")
    assert traced.stderr.splitlines()[1] == "Traceback (most recent call last):"
    assert "blocktrace" not in traced.stderr.replace(str(programs), "")
    assert "runpy" not in traced.stderr
    assert traced.stderr == plain.stderr


def test_dash_m_module(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    plain = python_cli("-m", "btprog", "4", "z", cwd=programs)
    trace = tmp_path / "m.jsonl"
    traced = blocktrace_cli("run", "-o", trace, "-m", "btprog", "4", "z", cwd=programs)
    assert plain.returncode == traced.returncode == 4
    assert traced.stdout == plain.stdout == "argv0=True argv=['4', 'z'] name=__main__\ndouble=42\n"
    assert traced.stderr == plain.stderr == ""
    assert verify_file(trace).status == "sealed"
    names = [
        _decode(line)["name"]
        for line in trace.read_bytes().splitlines()
        if line.startswith(b'{"event":"call"')
    ]
    assert "double" in names  # the package's own modules are the user's code: traced


def test_default_output_name_and_verbose_head(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner
) -> None:
    proc = blocktrace_cli("run", "-v", programs / "behaves.py", cwd=tmp_path)
    assert proc.returncode == 0
    trace = tmp_path / "behaves.trace.jsonl"
    assert trace.exists()
    head = _summary(trace)["hash"]
    assert isinstance(head, str) and head in proc.stderr
    assert blocktrace_cli("verify", "--head", head, trace, cwd=tmp_path).returncode == 0


def test_out_of_gas_exit_124_and_sealed_trace(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner
) -> None:
    trace = tmp_path / "g.jsonl"
    proc = blocktrace_cli("run", "--gas", "500", "-o", trace, programs / "gasloop.py")
    assert proc.returncode == 124
    # Neither ``except Exception`` swallowed it nor ``except BaseException`` went on.
    assert proc.stdout == "start\n"
    assert "out of gas" in proc.stderr and "Traceback" not in proc.stderr
    check = verify_file(trace)
    assert check.status == "sealed", check.reason
    summary = _summary(trace)
    assert summary["error"] == "OutOfGas"
    assert summary["pass"] is False
    assert summary["gasUsed"] == "0x1f4"
    assert summary["output"] == "124"


def test_locals_and_globals_change_nothing(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    """Objects whose __repr__ raises, mutates or is huge: same result, no call made."""
    plain = python_cli(programs / "nasty.py")
    assert plain.returncode == 0 and plain.stdout == "result=1000101 calls=[]\n"
    for mode in ("on", "changes"):
        trace = tmp_path / f"n-{mode}.jsonl"
        traced = blocktrace_cli(
            "run", "--locals", mode, "--globals", mode, "-o", trace, programs / "nasty.py"
        )
        assert (traced.returncode, traced.stdout, traced.stderr) == (0, plain.stdout, "")
        assert verify_file(trace).status == "sealed"
        data = trace.read_bytes()
        assert b'"locals":' in data and b'"globals":' in data
        assert b"<Raises #" in data and b"<Mutates #" in data
        assert len(data) < 2_000_000  # the million-character string is bounded


def test_relative_script_sees_what_python_shows_it(
    programs: Path, blocktrace_cli: Runner, python_cli: Runner, tmp_path: Path
) -> None:
    plain = python_cli("mainfacts.py", cwd=programs)
    traced = blocktrace_cli("run", "-o", tmp_path / "t.jsonl", "mainfacts.py", cwd=programs)
    assert plain.returncode == traced.returncode == 7
    assert traced.stdout == plain.stdout
    assert "argv0=mainfacts.py\n" in traced.stdout
    assert f"file={programs / 'mainfacts.py'}\n" in traced.stdout  # absolute, as python makes it
    assert "builtins=module\n" in traced.stdout and "main_is_me=True\n" in traced.stdout
    assert traced.stderr == plain.stderr
    assert "DeprecationWarning" in traced.stderr


def test_syntax_error_in_the_script(
    tmp_path: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    script = tmp_path / "broken.py"
    script.write_text("x = 1\ndef (\n")
    plain = python_cli("broken.py", cwd=tmp_path)
    traced = blocktrace_cli("run", "-o", "t.jsonl", "broken.py", cwd=tmp_path)
    assert plain.returncode == traced.returncode == 1
    assert traced.stderr == plain.stderr
    assert "SyntaxError" in traced.stderr and "Traceback" not in traced.stderr
    summary = _summary(tmp_path / "t.jsonl")
    assert summary["pass"] is False and str(summary["error"]).startswith("SyntaxError")


def test_keyboard_interrupt(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    plain = python_cli(programs / "interrupted.py", tmp_path / "plain.txt")
    traced = blocktrace_cli(
        "run", "-o", tmp_path / "t.jsonl", programs / "interrupted.py", tmp_path / "traced.txt"
    )
    # python finishes (exit handlers, files it closes) and then dies of SIGINT (a shell
    # shows 130, and a shell loop stops); blocktrace seals the trace and does the same
    expected = -signal.SIGINT if os.name == "posix" else 130
    assert plain.returncode == traced.returncode == expected
    assert traced.stderr == plain.stderr
    assert traced.stderr.endswith("KeyboardInterrupt\n")
    assert plain.stdout == traced.stdout == "atexit ran\n"
    assert (tmp_path / "traced.txt").read_text() == "written before Ctrl-C\n"
    assert (tmp_path / "plain.txt").read_text() == "written before Ctrl-C\n"
    assert verify_file(tmp_path / "t.jsonl").status == "sealed"
    types = blocktrace_cli(
        "types", "-o", tmp_path / "types.jsonl", programs / "interrupted.py", cwd=tmp_path
    )
    assert types.returncode == expected
    assert types.stderr == plain.stderr
    assert (tmp_path / "types.jsonl").exists()


def test_main_called_as_a_function_returns_130_for_ctrl_c(
    programs: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from blocktrace.cli import main\n"
        f"status = main(['run', '-o', {str(tmp_path / 't.jsonl')!r},"
        f" {str(programs / 'interrupted.py')!r}])\n"
        "print('status', status)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "status 130\natexit ran\n"
    assert proc.stderr.endswith("KeyboardInterrupt\n")
    assert verify_file(tmp_path / "t.jsonl").status == "sealed"


@pytest.mark.parametrize("ending", ["exit", "raise"])
def test_directory_and_zip_application(
    tmp_path: Path, blocktrace_cli: Runner, python_cli: Runner, ending: str
) -> None:
    """Run as python runs them: argv, __name__, an absolute sys.path[0] and
    __file__, python's traceback frames, and a file left open flushed at exit."""
    import zipapp

    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text(
        "import sys\n"
        "print('app', sys.argv[0], sys.argv[2:], __name__, sys.path[0], __file__,"
        " __spec__.name)\n"
        "out = open(sys.argv[1], 'w')\n"
        "out.write('buffered\\n')\n"
        "def fail():\n"
        "    raise ValueError('from the app')\n"
        "if sys.argv[2] == 'exit':\n"
        "    sys.exit(len(sys.argv))\n"
        "fail()\n"
    )
    zipapp.create_archive(app, tmp_path / "app.pyz")
    for target in ("app", "app.pyz"):
        plain = python_cli(target, "plain.txt", ending, cwd=tmp_path)
        traced = blocktrace_cli("run", "-o", f"{target}.jsonl", target, "traced.txt", ending,
                                cwd=tmp_path)
        assert (traced.returncode, traced.stdout, traced.stderr) == (
            plain.returncode, plain.stdout, plain.stderr
        )
        main = tmp_path / target / "__main__.py"
        assert plain.stdout == (
            f"app {target} ['{ending}'] __main__ {tmp_path / target} {main} __main__\n"
        )
        if ending == "exit":
            assert (plain.returncode, plain.stderr) == (3, "")
        else:
            assert plain.returncode == 1
            assert plain.stderr.endswith("ValueError: from the app\n")
        assert (tmp_path / "plain.txt").read_text() == "buffered\n"
        assert (tmp_path / "traced.txt").read_text() == "buffered\n"
        assert verify_file(tmp_path / f"{target}.jsonl").status == "sealed"


def test_program_that_hits_the_recursion_limit(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    """The RecursionError is the program's, not a tracer failure: nothing is
    detached, the whole run is in a sealed trace, calls and returns balance."""
    script = programs / "recursion_limit.py"
    plain = python_cli(script)
    trace = tmp_path / "r.jsonl"
    traced = blocktrace_cli("run", "-o", trace, script)
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, plain.stdout, "")
    assert plain.stdout == "caught RecursionError\n45\n"
    assert verify_file(trace).status == "sealed"
    summary = _summary(trace)
    assert summary["pass"] is True and "error" not in summary
    events = [_decode(line) for line in trace.read_bytes().splitlines()[1:-1]]
    calls = [e for e in events if e.get("event") == "call"]
    returns = [e for e in events if e.get("event") == "return"]
    assert len(calls) == len(returns) > 900
    assert max(e["depth"] for e in calls) > 900
    assert not any(e.get("event") == "tracerError" for e in events)


def test_everything_after_dash_m_module_is_the_modules(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    args = ["5", "-o", "elsewhere", "--gas", "1", "--help"]
    plain = python_cli("-m", "btprog", *args, cwd=programs)
    trace = tmp_path / "m.jsonl"
    traced = blocktrace_cli("run", "-o", trace, "-m", "btprog", *args, cwd=programs)
    assert plain.returncode == traced.returncode == 5
    assert traced.stdout == plain.stdout
    assert f"argv={args!r}" in traced.stdout
    assert not (programs / "elsewhere").exists()
    summary = _summary(trace)
    assert int(summary["gasUsed"], 16) > 1  # --gas 1 was the module's, not ours


def test_a_program_that_closes_its_stdout(
    tmp_path: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    script = tmp_path / "closes.py"
    script.write_text("import sys\nprint('hi')\nsys.stdout.close()\n")
    plain = python_cli(script)
    traced = blocktrace_cli("run", "-o", tmp_path / "t.jsonl", script)
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, "hi\n", "")
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "hi\n", "")
    assert verify_file(tmp_path / "t.jsonl").status == "sealed"


def test_os_exit_keeps_its_status_and_leaves_an_unsealed_trace(
    tmp_path: Path, blocktrace_cli: Runner
) -> None:
    script = tmp_path / "quits.py"
    script.write_text("import os\nprint('bye', flush=True)\nos._exit(5)\n")
    traced = blocktrace_cli("run", "-o", tmp_path / "t.jsonl", script)
    assert (traced.returncode, traced.stdout) == (5, "bye\n")
    # No chance to seal: like a kill, the trace is unsealed, never valid.
    assert verify_file(tmp_path / "t.jsonl").status == "unsealed"


@pytest.mark.parametrize("mode", ["on", "changes"])
def test_reading_locals_changes_no_local_variable(
    mode: str, tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    script = programs / "locals_tricky.py"
    plain = python_cli(script)
    trace = tmp_path / "t.jsonl"
    traced = blocktrace_cli("run", "--locals", mode, "--globals", mode, "-o", trace, script)
    assert plain.returncode == 0 and "8 10\n" in plain.stdout
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, plain.stdout, plain.stderr)
    assert verify_file(trace).status == "sealed"


def test_a_signal_handlers_exception_reaches_the_program(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    """A SIGALRM timeout raised while the tracer runs is the program's: it is not
    taken for a tracer failure (which detached the tracer and left the program
    spinning for ever)."""
    script = programs / "alarm_timeout.py"
    plain = python_cli(script, "6")
    trace = tmp_path / "t.jsonl"
    # A lost timeout ends the program's spin all the same (the handler's mark),
    # whatever the machine's speed; the gas only bounds the trace should the
    # handler never run at all (the six 5 ms timeouts take ~0.1 M steps here).
    traced = blocktrace_cli("run", "--gas", "2000000", "-o", trace, script, "6", timeout=120)
    assert plain.stdout == "[" + ", ".join(["'too slow'"] * 6) + "] 6\n"
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, plain.stdout, "")
    check = verify_file(trace)
    assert check.status == "sealed", check.reason
    assert check.summary is not None and check.summary["pass"] is True


def test_a_handler_that_raises_in_a_weak_reference_callback_of_ours_reaches_the_program(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    """A signal whose handler raises, landing as an object the trace numbered
    dies: CPython runs the handler in blocktrace's weak reference callback, where
    what it raises is printed as ignored and lost (the program ran on as if no
    signal had come; seen as a lost timeout in a CI run).  It runs just after,
    in the program."""
    script = programs / "signal_in_weakref_callback.py"
    trace = tmp_path / "t.jsonl"
    plain = python_cli(script)
    traced = blocktrace_cli(
        "run", "--locals", "on", "--gas", "3000000", "-o", trace, script, timeout=120
    )
    assert plain.stdout == "caught\n"
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, "caught\n", "")
    assert verify_file(trace).status == "sealed"


def test_an_excepthook_that_raises_is_reported_as_python_reports_it(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    """"Error in sys.excepthook", then the original traceback, status 1; the
    trace sealed with the program's error (it used to be sealed with status 0,
    and the hook's exception left through blocktrace's frames)."""
    script = programs / "excepthook_raises.py"
    plain = python_cli(script, "broken")
    trace = tmp_path / "t.jsonl"
    traced = blocktrace_cli("run", "-o", trace, script, "broken")
    assert "Error in sys.excepthook:" in plain.stderr and "Original exception" in plain.stderr
    assert (traced.returncode, traced.stdout, traced.stderr) == (1, plain.stdout, plain.stderr)
    assert verify_file(trace).status == "sealed"
    assert _summary(trace)["error"] == "ValueError: main failed"


def test_a_signal_handler_that_raises_in_the_excepthook_runs_there(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner
) -> None:
    """The hook is the program's code: its handlers run in it, as under python."""
    script = programs / "excepthook_raises.py"
    plain = python_cli(script, "signalled")
    trace = tmp_path / "t.jsonl"
    traced = blocktrace_cli("run", "-o", trace, script, "signalled")
    assert (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout) == (1, "before\n")
    for text in (plain.stderr, traced.stderr):
        hook, original = text.split("\nOriginal exception was:\n")
        assert hook.startswith("Error in sys.excepthook:\n")
        assert hook.endswith("Timeout: too slow\n")
        assert "During handling" not in hook and original.endswith("ValueError: main failed\n")
    assert verify_file(trace).status == "sealed"
    assert _summary(trace)["error"] == "ValueError: main failed"


def test_a_signal_that_arrives_while_the_trace_is_sealed_runs_after_it(
    tmp_path: Path, programs: Path
) -> None:
    """A handler of the program's that raises must not raise inside blocktrace
    as it seals the run (that left the trace unsealed, one line long, and the
    handler's exception came out of blocktrace's frames): it runs once the trace
    is sealed, its exception printed as python prints one raised after the
    program's end, and the run's status stays 0.  The signal is raised, by a
    tracer of the test's, exactly as the ``Stop`` reaches it."""
    trace = tmp_path / "t.jsonl"
    done = subprocess.run(
        [sys.executable, str(programs / "signal_at_seal.py"), str(trace)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert (done.returncode, done.stdout) == (0, "program done\nhandler ran\nstatus 0\n"), done
    assert done.stderr.startswith("Traceback") and done.stderr.endswith("Timeout: too slow\n")
    assert "blocktrace" not in done.stderr.replace(str(tmp_path), "")
    check = verify_file(trace)
    assert check.status == "sealed", check.reason
    assert check.summary is not None and check.summary["pass"] is True


@pytest.mark.parametrize("how", ["end", "raise"])
@pytest.mark.parametrize("as_module", [False, True])
def test_a_file_left_open_is_flushed_and_exit_handlers_see_the_programs_main(
    tmp_path: Path, programs: Path, blocktrace_cli: Runner, python_cli: Runner,
    how: str, as_module: bool,
) -> None:
    target = ["-m", "leaves_open"] if as_module else ["leaves_open.py"]
    plain = python_cli(*target, tmp_path / "plain.txt", how, cwd=programs)
    traced = blocktrace_cli(
        "run", "-o", tmp_path / "t.jsonl", *target, tmp_path / "traced.txt", how, cwd=programs
    )
    assert plain.returncode == traced.returncode == (1 if how == "raise" else 0)
    argv0 = str(programs / "leaves_open.py") if as_module else "leaves_open.py"
    assert plain.stdout == traced.stdout == f"at exit: the program's own __main__ {argv0} 3\n"
    assert traced.stderr == plain.stderr
    expected = "written, never flushed by the program\n"
    assert (tmp_path / "plain.txt").read_text() == (tmp_path / "traced.txt").read_text() == expected
    assert verify_file(tmp_path / "t.jsonl").status == "sealed"
