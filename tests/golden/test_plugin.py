"""``pytest --blocktrace-golden`` on a small real project, run by pytest in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CALC = '''\
def add(a, b):
    return a + b


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, add(a, b)
    return a


def shout(word):
    return word.upper() + "!"
'''

TESTS = '''\
import pytest

import calc


def test_fib():
    assert calc.fib(6) == 8


def test_shout():
    assert calc.shout("hi") == "HI!"


@pytest.mark.parametrize("a, b", [(1, 2), ("a/b", "c")])
def test_add(a, b):
    calc.add(a, b)
'''


def make_project(root: Path, tests: str = TESTS, calc: str = CALC) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "calc.py").write_text(calc)
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(tests)
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    return root


def pytest_run(root: Path, *args: str, tmpdir: Path | None = None,
               ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED="0")
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    # Hypothesis's plugin (installed with the test extras, unused by the project) would cost
    # each run most of its start-up.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-p", "no:hypothesispytest", "-q", *args],
        cwd=root, capture_output=True, text=True, timeout=300, env=env, check=False,
    )


def goldens(root: Path) -> dict[str, bytes]:
    traces = root / "tests" / "__traces__"
    return {str(p.relative_to(traces)): p.read_bytes() for p in sorted(traces.rglob("*.jsonl"))}


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blocktrace", "verify", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_missing_update_same_and_stable_bytes(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    missing = pytest_run(root, "--blocktrace-golden")
    assert missing.returncode == 1
    assert "no golden trace for this test at tests/__traces__/test_calc/test_fib.jsonl" in (
        missing.stdout)
    assert "--blocktrace-golden-update" in missing.stdout
    assert not (root / "tests" / "__traces__").exists()

    written = pytest_run(root, "--blocktrace-golden", "--blocktrace-golden-update")
    assert written.returncode == 0, written.stdout + written.stderr
    assert "4 golden trace(s) written" in written.stdout
    first = goldens(root)
    # Parametrised ids become file names; one that is not file-safe gets a hash.
    assert sorted(first) == [
        "test_calc/test_add[1-2].jsonl",
        next(n for n in first if n.startswith("test_calc/test_add[a_b-c]-")),
        "test_calc/test_fib.jsonl",
        "test_calc/test_shout.jsonl",
    ]
    golden = root / "tests" / "__traces__" / "test_calc" / "test_fib.jsonl"
    assert verify(golden).returncode == 0
    text = golden.read_text()
    assert str(tmp_path) not in text  # paths are relative to the project root
    assert '"file":"calc.py"' in text and '"level":"line"' in text

    same = pytest_run(root, "--blocktrace-golden")
    assert same.returncode == 0, same.stdout
    assert "4 same" in same.stdout

    # The same behaviour gives the same bytes, hashes included.
    for path in (root / "tests" / "__traces__").rglob("*.jsonl"):
        path.unlink()
    again = pytest_run(root, "--blocktrace-golden", "--blocktrace-golden-update")
    assert again.returncode == 0
    assert goldens(root) == first


def test_a_change_fails_exactly_the_tests_that_run_it(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    assert pytest_run(root, "--blocktrace-golden-update", "--blocktrace-golden").returncode == 0
    (root / "calc.py").write_text(CALC.replace("    return word.upper() + \"!\"",
                                               "    loud = word.upper()\n    return loud + \"!\""))
    result = pytest_run(root, "--blocktrace-golden")
    assert result.returncode == 1
    out = result.stdout
    assert "FAILED tests/test_calc.py::test_shout" in out
    assert "1 failed, 3 passed" in out
    assert "first divergence at step 2 of the source lines run" in out
    assert "golden: tests/__traces__/test_calc/test_shout.jsonl" in out
    assert "last common step 1: shout  calc.py:13  | loud = word.upper()" in out
    assert "golden: (nothing: the trace ends here)" in out
    assert "now:    shout  calc.py:14  | return loud + \"!\"" in out
    assert "call stack (now), outermost first:" in out
    assert "test_shout  tests/test_calc.py:11  | assert calc.shout(\"hi\") == \"HI!\"" in out
    assert "0 further hunk(s); source lines: 2 in the golden, 3 now" in out

    # The golden's side quotes its source only while the file still reads as recorded.
    (root / "calc.py").write_text(CALC.replace("    return a + b", "    c = a + b\n    return c"))
    shifted = pytest_run(root, "--blocktrace-golden").stdout
    assert "golden: fib  calc.py:6  | (source missing or changed:" in shifted
    assert "now:    fib  calc.py:7  | a, b = 0, 1" in shifted

    temp = tmp_path / "temp"
    temp.mkdir()
    updated = pytest_run(root, "--blocktrace-golden", "--blocktrace-golden-update", tmpdir=temp)
    assert "4 golden trace(s) rewritten" in updated.stdout
    assert "tests/__traces__/test_calc/test_shout.jsonl" in updated.stdout
    # rewritten in place: nothing else left beside the goldens, nothing in the temp dir
    assert {p.name for p in (root / "tests" / "__traces__" / "test_calc").iterdir()} == {
        os.path.basename(name) for name in goldens(root)}
    assert pytest_run(root, "--blocktrace-golden", tmpdir=temp).returncode == 0
    assert [p.name for p in temp.iterdir() if "blocktrace" in p.name] == []


def test_levels_pin_more_or_less(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    for level in ("calls", "ops"):
        args = ("--blocktrace-golden", "--blocktrace-golden-level", level)
        assert pytest_run(root, *args, "--blocktrace-golden-update").returncode == 0
        (root / "tests" / "__traces__").rename(root / f"traces-{level}")
    # Same calls, other instructions: a + b computed by another expression.
    (root / "calc.py").write_text(CALC.replace("return a + b", "return sum((a, b))"))
    for level, failed in (("calls", "FAILED tests/test_calc.py::test_add[a_b-c]"),
                          ("ops", "FAILED tests/test_calc.py::test_fib")):
        (root / f"traces-{level}").rename(root / "tests" / "__traces__")
        result = pytest_run(root, "--blocktrace-golden", "--blocktrace-golden-level", level)
        (root / "tests" / "__traces__").rename(root / f"traces-{level}")
        if level == "calls":
            # sum() of a tuple of numbers: the same calls; of strings: a TypeError now.
            assert result.returncode == 1
            assert "test_add[a/b-c] - TypeError" in result.stdout
            assert "3 same" in result.stdout
        else:
            assert failed in result.stdout
            assert "level op" in result.stdout and "pc " in result.stdout


def test_marker_opts_in_and_configures(tmp_path: Path) -> None:
    tests = TESTS.replace(
        "def test_shout():",
        "@pytest.mark.blocktrace_golden(level='calls', ignore=['file'])\ndef test_shout():",
    )
    root = make_project(tmp_path / "good", tests=tests)
    written = pytest_run(root, "--blocktrace-golden-update")
    assert written.returncode == 0
    assert sorted(goldens(root)) == ["test_calc/test_shout.jsonl"]
    golden = root / "tests" / "__traces__" / "test_calc" / "test_shout.jsonl"
    assert '"level":"call"' in golden.read_text()
    # Lines change, calls do not: the calls-level marker keeps the test passing.
    (root / "calc.py").write_text(CALC.replace("    return word.upper() + \"!\"",
                                               "    loud = word.upper()\n    return loud + \"!\""))
    assert pytest_run(root).returncode == 0
    # An unknown field in ignore is a usage error, not a silent pass.
    bad = make_project(tmp_path / "bad", tests=tests.replace("ignore=['file']", "ignore=['nope']"))
    result = pytest_run(bad, "--blocktrace-golden-update")
    assert result.returncode != 0
    assert "unknown field 'nope'" in result.stdout + result.stderr


def test_corrupt_or_edited_golden_fails_naming_the_file(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    assert pytest_run(root, "--blocktrace-golden-update", "--blocktrace-golden").returncode == 0
    traces = root / "tests" / "__traces__" / "test_calc"
    fib = traces / "test_fib.jsonl"
    fib.write_text(fib.read_text().replace('"name":"fib"', '"name":"fob"'))
    (traces / "test_shout.jsonl").write_bytes(b"not a trace at all\n")
    result = pytest_run(root, "--blocktrace-golden")
    out = result.stdout
    assert result.returncode == 1
    assert ("golden trace tests/__traces__/test_calc/test_fib.jsonl is tampered at line"
            in out)
    assert "golden trace tests/__traces__/test_calc/test_shout.jsonl is unusable" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert "2 corrupt" in out


def test_a_test_that_spawns_a_process_is_reported(tmp_path: Path) -> None:
    tests = TESTS + textwrap.dedent('''

        def test_spawns():
            import subprocess, sys
            subprocess.run([sys.executable, "-c", "pass"], check=True)
    ''')
    root = make_project(tmp_path, tests=tests)
    result = pytest_run(root, "--blocktrace-golden", "--blocktrace-golden-update")
    assert result.returncode == 1
    assert "FAILED tests/test_calc.py::test_spawns" in result.stdout
    assert "the test started another process (subprocess.Popen" in result.stdout
    assert "1 not traced" in result.stdout
    assert "test_spawns.jsonl" not in str(goldens(root))


def test_unused_goldens_are_reported_and_pruned(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    assert pytest_run(root, "--blocktrace-golden-update", "--blocktrace-golden").returncode == 0
    traces = root / "tests" / "__traces__"
    stale = traces / "test_calc" / "test_removed.jsonl"
    stale.write_bytes((traces / "test_calc" / "test_fib.jsonl").read_bytes())
    gone = traces / "test_gone"
    gone.mkdir()
    (gone / "test_x.jsonl").write_bytes(stale.read_bytes())
    # Selecting one test by node id says nothing about its module's other goldens.
    narrow = pytest_run(root, "--blocktrace-golden", "tests/test_calc.py::test_fib")
    assert "test_calc/test_removed.jsonl" not in narrow.stdout
    report = pytest_run(root, "--blocktrace-golden")
    assert "2 golden trace(s) not used by any test" in report.stdout
    assert "tests/__traces__/test_calc/test_removed.jsonl" in report.stdout
    assert "tests/__traces__/test_gone/test_x.jsonl" in report.stdout
    assert stale.exists()
    pruned = pytest_run(root, "--blocktrace-golden", "--blocktrace-golden-prune")
    assert "2 golden trace(s) removed" in pruned.stdout
    assert not stale.exists() and not gone.exists()
    assert len(goldens(root)) == 4


def test_xdist_workers_write_their_own_tests_goldens(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    root = make_project(tmp_path / "parallel")
    serial = make_project(tmp_path / "serial")
    assert pytest_run(serial, "--blocktrace-golden", "--blocktrace-golden-update").returncode == 0
    result = pytest_run(root, "-n", "2", "--blocktrace-golden", "--blocktrace-golden-update")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 golden trace(s) written" in result.stdout
    assert goldens(root) == goldens(serial)  # the same bytes as a serial run
    (root / "tests" / "__traces__" / "test_calc" / "test_old.jsonl").write_bytes(b"")
    again = pytest_run(root, "-n", "2", "--blocktrace-golden")
    assert again.returncode == 0
    assert "4 same" in again.stdout
    assert "1 golden trace(s) not used by any test" in again.stdout


def test_values_and_masks(tmp_path: Path) -> None:
    tests = TESTS + textwrap.dedent('''

        @pytest.mark.blocktrace_golden(values=True, mask=[r"(?i)token-[0-9a-f]+"])
        def test_token():
            import secrets
            token = "token-" + secrets.token_hex(8)
            assert calc.shout(token).endswith("!")
    ''')
    root = make_project(tmp_path, tests=tests)
    assert pytest_run(root, "--blocktrace-golden-update").returncode == 0
    golden = root / "tests" / "__traces__" / "test_calc" / "test_token.jsonl"
    text = golden.read_text()
    assert '"token":"\'<masked>\'"' in text and "TOKEN" not in text
    first = golden.read_bytes()
    assert pytest_run(root).returncode == 0
    golden.unlink()
    assert pytest_run(root, "--blocktrace-golden-update").returncode == 0
    assert golden.read_bytes() == first


def test_the_missing_golden_message_names_a_command_that_writes_it(tmp_path: Path) -> None:
    tests = TESTS.replace("def test_shout():",
                          "@pytest.mark.blocktrace_golden\ndef test_shout():")
    root = make_project(tmp_path, tests=tests)
    missing = pytest_run(root, "--blocktrace-golden", "-k", "fib or shout")
    assert missing.returncode == 1
    # Unmarked: --blocktrace-golden-update alone would not trace it.
    assert ("test_fib.jsonl; create it with pytest --blocktrace-golden "
            "--blocktrace-golden-update\n") in missing.stdout
    # Marked: it alone does.
    assert "test_shout.jsonl; create it with pytest --blocktrace-golden-update\n" in (
        missing.stdout)
    alone = pytest_run(root, "--blocktrace-golden-update", "-k", "fib")
    assert alone.returncode == 0
    assert not (root / "tests" / "__traces__").exists()
    assert ("blocktrace golden: --blocktrace-golden-update wrote nothing: without "
            "--blocktrace-golden only tests marked blocktrace_golden are traced") in alone.stdout
    marked = pytest_run(root, "--blocktrace-golden-update")
    assert "1 golden trace(s) written" in marked.stdout and "wrote nothing" not in marked.stdout
    assert sorted(goldens(root)) == ["test_calc/test_shout.jsonl"]
