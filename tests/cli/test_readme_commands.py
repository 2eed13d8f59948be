"""Every shell command the README and the user docs show, as a new user types it.

Two checks. The first reads every command line of the pages' ``sh`` blocks (and every
`` `blocktrace COMMAND ...` `` span in their text) and asks the real argument parser whether
each option it names exists for that command: a page naming a flag that was renamed or
removed fails here, whichever section it is in. The second runs the command lines of the
pages, verbatim and in the order they are written, in a temporary directory holding what
they refer to (``examples/``, a ``prog.py``, ...), with ``blocktrace`` on ``PATH`` as the
README's activate line puts it, and checks each exit status and the output the text quotes
or describes. A line that cannot run here (a server, a browser, ``pip install``, the set-up
itself) is listed in ``SKIPPED`` with the reason; a new command line that is in neither
list fails the test until it is classified."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The pages this test keeps true (FORMAT.md, PERFORMANCE.md and SECURITY.md have their own).
PAGES = ["README.md", "docs/DIFF.md", "docs/VIEW.md", "docs/QUERY.md", "docs/GOLDEN.md",
         "docs/MIGRATING.md", "docs/SNAPSHOTS.md", "docs/ARCHITECTURE.md"]
SHELL_WORDS = ("blocktrace", "pytest", "pip", "echo", "curl", "bash", ".")


def _fenced(text: str) -> list[tuple[int, str, str]]:
    """(line number of the block's first line, language tag, body) of each fenced block."""
    blocks = []
    opened: tuple[int, str] | None = None
    body: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if opened is None:
                opened, body = (n + 1, line[3:].strip()), []
            else:
                blocks.append((*opened, "".join(f"{b}\n" for b in body)))
                opened = None
        elif opened is not None:
            body.append(line)
    return blocks


def _strip_comment(line: str) -> str:
    """The line without its trailing ``# comment`` (a ``#`` after a space, outside quotes)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def command_lines(page: str) -> list[tuple[int, str]]:
    """(line number, command) for every shell command line of the page's fenced blocks:
    ``sh`` blocks and untagged ones; in a block with ``$`` prompts only the prompted lines
    (the rest is output), and in DIFF.md's indented examples the ``$`` lines."""
    text = (ROOT / page).read_text()
    found = []
    for first, tag, body in _fenced(text):
        if tag not in ("sh", ""):
            continue
        lines = body.splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        for n, line in enumerate(lines):
            if prompted:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            command = _strip_comment(line.strip())
            first_word, _, rest = command.partition(" ")
            output = first_word == "blocktrace" and rest.partition(" ")[0].endswith(":")
            if first_word in SHELL_WORDS and not output:
                found.append((first + n, command))  # (not output: "blocktrace golden: ...")
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("    ") and line.strip().startswith("$ blocktrace"):
            found.append((n, line.strip()[2:]))
    return found


# -- 1. every option a page names exists -----------------------------------------------


def _commands_in(line: str) -> list[list[str]]:
    """The ``blocktrace COMMAND ...`` invocations of one shell line (or of a usage line:
    ``[--csv | --json]``), as word lists after ``blocktrace``, brackets taken off."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # a span in prose with an apostrophe: words as written
        words = line.split()
    found: list[list[str]] = []
    current: list[str] | None = None
    depth = 0
    for word in words:
        depth += word.count("[") - word.count("]")
        if word in ("&&", "||", ";", "(", ")") or (word == "|" and depth <= 0):
            current = None
            continue
        if word == "|":
            continue
        if current is None:
            if word == "blocktrace":
                current = []
                found.append(current)
            continue
        bare = word.strip("[]")
        if bare and bare != "...":
            current.append(bare)
    return [words for words in found if words]


def _spans(page: str) -> list[tuple[int, str]]:
    """`` `blocktrace COMMAND ...` `` code spans of the page's text, outside fenced blocks."""
    text = (ROOT / page).read_text()
    outside = "".join(part if i % 2 == 0 else "\n" * part.count("\n")
                      for i, part in enumerate(text.split("\n```")))
    return [(outside.count("\n", 0, m.start()) + 1, m.group(1))
            for m in re.finditer(r"`(blocktrace [a-z][^`]*)`", outside)]


def unknown_options(line: str) -> list[str]:
    """The options of ``line``'s blocktrace commands that the command does not have."""
    from blocktrace.cli import _COMMANDS, _RUNS_A_PROGRAM, _subparser, build_parser, split_program

    parser = build_parser()
    wrong = []
    for command, *args in _commands_in(line):
        if command not in _COMMANDS:
            if not command.startswith("-") and not command.endswith(":"):  # (output quoted)
                wrong.append(f"no command {command!r}")
            continue
        sub = _subparser(parser, command)
        if command in _RUNS_A_PROGRAM:  # what follows the script (or -m MODULE) is its own
            args, _, _ = split_program(sub, args)
        for arg in args:
            name = arg.partition("=")[0]
            if re.fullmatch(r"--?[A-Za-z][\w-]*", name) and name not in sub._option_string_actions:
                wrong.append(f"blocktrace {command} {name}")
    return wrong


def is_usage(line: str) -> bool:
    """A usage line (``blocktrace verify TRACE [--head HEX]``): its options are checked,
    it is not run."""
    try:
        words = shlex.split(line)
    except ValueError:
        return False
    return any(word.startswith("[") or "..." in word for word in words)


def test_unknown_options_finds_a_renamed_flag() -> None:
    # The check itself, on lines shaped as the pages write them.
    assert unknown_options("blocktrace verify TRACE [--head HEX] [--json]") == []
    assert unknown_options("blocktrace query T \"SQL\" [--csv | --jsn]") == [
        "blocktrace query --jsn"]
    assert unknown_options("blocktrace run -m black --check x.py") == []
    assert unknown_options("echo x | blocktrace snapshot --prety && blocktrace cat a") == [
        "blocktrace snapshot --prety"]
    assert unknown_options("blocktrace shwo t 1") == ["no command 'shwo'"]


def test_every_option_the_pages_name_exists(pytestconfig: pytest.Config) -> None:
    wrong = []
    for page in PAGES:
        for n, line in [*command_lines(page), *_spans(page)]:
            wrong += [f"{page}:{n}: {what}" for what in unknown_options(line)]
        # pytest's options of the plugin (GOLDEN.md, README): pytest knows them or says no
        for n, line in enumerate((ROOT / page).read_text().splitlines(), 1):
            for name in re.findall(r"(?<![\w-])--(blocktrace-[a-z-]+)", line):
                try:
                    pytestconfig.getoption(name.replace("-", "_"))
                except ValueError:
                    wrong.append(f"{page}:{n}: pytest --{name}")
    assert not wrong, wrong


# -- 2. the command lines, run --------------------------------------------------------------


@dataclass
class Expect:
    """What a command line must do: its exit status, text its output must hold (stdout
    and stderr together, each a regex), files it leaves; ``before``: a shell line run
    first (files the text says the user has, e.g. an earlier checkpoint)."""

    status: int = 0
    says: list[str] = field(default_factory=list)
    makes: list[str] = field(default_factory=list)
    before: str = ""


# Lines that cannot run here, and why.
SKIPPED: dict[str, str] = {
    "bash scripts/dev demo": "the set-up itself: tests/cli/test_first_setup.py and CI",
    "bash scripts/dev test": "the whole suite: what CI runs (.ci/run)",
    ". .venv-3.13/bin/activate": "this test puts blocktrace on PATH as activating does",
    "blocktrace view prog.trace.jsonl": "a server until Ctrl-C, and a browser: tests/view",
    "blocktrace view a.jsonl b.jsonl": "a server until Ctrl-C, and a browser: tests/view",
    "blocktrace view --no-browser prog.trace.jsonl": "a server until Ctrl-C: tests/view",
    "blocktrace view a.trace.jsonl b.trace.jsonl": "a server until Ctrl-C: tests/view",
    "pip install -e '.[query]'": "installs from the network",
    "pip install -e . pytest": "installs from the network",
    "pip install -e '.[server]'": "installs from the network",
    "pip install -e '.[server]'; blocktrace serve --port 8000 --workers 2":
        "installs, then a server until Ctrl-C: tests/snapshot",
    "blocktrace serve --host 127.0.0.1 --port 8000 --workers 2 --queue 8":
        "a server until Ctrl-C: tests/snapshot",
    "curl -s localhost:8000/trace -d '{\"source\": \"print(1 + 1)\"}'": "needs the server",
    "curl -s localhost:8000/health": "needs the server",
    "blocktrace diff --by-line run-3.12.jsonl run-3.13.jsonl":
        "two Pythons' traces: tests/eip3155 (by-line across versions)",
}

SEALED = r": valid and sealed: \d+ lines, head [0-9a-f]{64}"
RAN = {
    # README: the first example (its output is checked line by line in test_readme_setup)
    "blocktrace run -o fib.trace.jsonl examples/fib.py 10": Expect(
        says=["sum of the first 10 Fibonacci numbers: 88"], makes=["fib.trace.jsonl"]),
    "blocktrace verify fib.trace.jsonl": Expect(says=["fib.trace.jsonl" + SEALED]),
    # Large traces
    "blocktrace run -o big.jsonl.zst prog.py": Expect(makes=["big.jsonl.zst"]),
    "blocktrace verify big.jsonl.zst": Expect(says=["big.jsonl.zst" + SEALED]),
    "blocktrace show big.jsonl.zst 100000:5": Expect(says=[r'\A(\{"pc":\d+,"op":[^\n]*\n){5}\Z']),
    "blocktrace show --line big.jsonl.zst 1:2": Expect(
        says=[r'\A\{"blocktrace":\d[^\n]*\n\{[^\n]*\n\Z']),
    "blocktrace cat big.jsonl.zst -o big.jsonl": Expect(makes=["big.jsonl"]),
    # Prove and sign
    "blocktrace keygen example.com/ci --out ci": Expect(
        says=[r"wrote ci.key \(private, keep it secret\) and ci.pub"], makes=["ci.key", "ci.pub"]),
    "blocktrace sign fib.trace.jsonl --key ci.key -o fib.cp": Expect(makes=["fib.cp"]),
    "blocktrace verify fib.trace.jsonl --checkpoint fib.cp --pubkey ci.pub": Expect(
        says=["fib.trace.jsonl" + SEALED, r"checkpoint fib.cp: matches the whole tree"]),
    "blocktrace prove fib.trace.jsonl 120 > line120.json": Expect(makes=["line120.json"]),
    "blocktrace check-proof line120.json --checkpoint fib.cp --pubkey ci.pub": Expect(
        says=[r"proof valid: line 120 is leaf 7", r"checkpoint fib.cp .* matches"]),
    "blocktrace verify fib.trace.jsonl --since old.cp --pubkey ci.pub": Expect(
        before="cp fib.cp old.cp", says=["fib.trace.jsonl" + SEALED, "old.cp"]),
    # Diff (its report is checked in test_readme_setup)
    "blocktrace run -o a.jsonl examples/fib.py 5": Expect(makes=["a.jsonl"]),
    "blocktrace run -o b.jsonl examples/fib.py 6": Expect(makes=["b.jsonl"]),
    "blocktrace diff a.jsonl b.jsonl": Expect(status=1, says=["first divergence at step"]),
    # View: the static page
    "blocktrace view --html report.html prog.trace.jsonl": Expect(
        before="blocktrace run -o prog.trace.jsonl examples/fib.py 4 >/dev/null",
        says=["wrote report.html"], makes=["report.html"]),
    # Golden traces (a project of one test: calc.py, tests/test_calc.py)
    "pytest --blocktrace-golden --blocktrace-golden-update": Expect(
        says=[r"1 golden trace\(s\) written", "1 passed"],
        makes=["tests/__traces__/test_calc/test_fib.jsonl"]),
    "pytest --blocktrace-golden": Expect(says=["blocktrace golden: 1 same", "1 passed"]),
    "echo world | blocktrace run --record-inputs -o run.jsonl prog.py": Expect(
        makes=["run.jsonl"]),
    "blocktrace replay run.jsonl": Expect(says=[r"same behaviour, \d+ steps"]),
    # Query
    'blocktrace query fib.trace.jsonl "SELECT function, line, count(*) AS n FROM ops '
    'GROUP BY ALL ORDER BY n DESC LIMIT 5"': Expect(
        says=[r"function\s+line\s+n\n", r"\nfib\s+7\s+\d+\n", r"\(5 rows\)"]),
    "blocktrace export traces/ --to parquet fleet/": Expect(
        before="mkdir -p traces && cp a.jsonl b.jsonl traces/",
        says=[r"traces/a.jsonl: run a-\w+ \(sealed"], makes=["fleet/dataset.json"]),
    'blocktrace query fleet/ "SELECT status, count(*) FROM runs GROUP BY ALL" --csv': Expect(
        says=[r"\Astatus,count_star\(\)\nsealed,2\n"]),
    "blocktrace run --clock -o app.jsonl app.py && blocktrace export app.jsonl --to perfetto "
    "app.json": Expect(says=[r"1 trace -> app.json \(perfetto\)"], makes=["app.json"]),
    # Snapshots
    'echo \'{"source": "xs = [1, 2]\\nys = xs\\nys.append(3)", "steps": 100}\' | '
    "blocktrace snapshot --pretty": Expect(says=[r'"status": "ok"']),
    "blocktrace snapshot script.py --input answers.txt --steps 500": Expect(
        says=[r'"status":"ok"', r"hello ada"]),
    'echo \'{"source": "x = [1, 2]\\ny = x"}\' | blocktrace snapshot --pretty': Expect(
        says=[r'"status": "ok"']),
    'blocktrace snapshot script.py --format trace --genesis "$NONCE" > run.trace.jsonl': Expect(
        makes=["run.trace.jsonl"]),
}


def _scratch(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The user's directory: examples/ as in the checkout, and the files the pages name
    as the user's own (prog.py, app.py, script.py and its answers, a project with a test)."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    # long enough for `show ... 100000:5` (about 7 steps per turn), reads its stdin if any
    (work / "prog.py").write_text(
        "import sys\nt = 0\nfor i in range(15_000):\n    t += i\n"
        "print(t, sys.stdin.read() if not sys.stdin.isatty() else '')\n")
    shutil.copy2(ROOT / "examples" / "fib.py", work / "app.py")
    (work / "script.py").write_text(
        "try:\n    name = input('name? ')\nexcept EOFError:\n    name = 'nobody'\n"
        "print('hello', name)\n")
    (work / "answers.txt").write_text("ada\n")
    (work / "calc.py").write_text(
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
        "    return a\n")
    (work / "tests").mkdir()
    (work / "tests" / "test_calc.py").write_text(
        "import calc\n\n\ndef test_fib():\n    assert calc.fib(6) == 8\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, module in (("blocktrace", "blocktrace"), ("pytest", "pytest")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               NONCE="a-nonce-from-the-verifier", PYTHONPATH=str(work),
               BLOCKTRACE_CACHE=str(tmp_path / "cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    env.pop("BLOCKTRACE_VIEW_CACHE", None)
    env.pop("PYTEST_ADDOPTS", None)
    return work, env


def test_the_pages_commands_run_as_written(tmp_path: Path) -> None:
    work, env = _scratch(tmp_path)
    lines = [(page, n, line) for page in PAGES for n, line in command_lines(page)]
    unclassified = [f"{page}:{n}: {line}" for page, n, line in lines
                    if line not in RAN and line not in SKIPPED and not is_usage(line)]
    assert not unclassified, ("command lines this test neither runs nor skips; add them to "
                              f"RAN or SKIPPED: {unclassified}")
    failures = []
    ran = set()
    for page, n, line in lines:
        expect = RAN.get(line)
        if expect is None or line in ran:  # a line shown twice (README and docs) runs once
            continue
        ran.add(line)
        if expect.before:
            subprocess.run(["bash", "-c", expect.before], cwd=work, env=env, check=True,
                           timeout=300, capture_output=True)
        done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        said = done.stdout if done.stdout else done.stderr
        both = done.stdout + done.stderr
        where = f"{page}:{n}: {line}"
        if done.returncode != expect.status:
            failures.append(f"{where}: exit {done.returncode}, not {expect.status}: "
                            f"{done.stderr[-500:]}")
            continue
        failures += [f"{where}: output does not match {want!r}: {said[-800:]!r}"
                     for want in expect.says
                     if not re.search(want, done.stdout) and not re.search(want, both)]
        failures += [f"{where}: did not write {name}" for name in expect.makes
                     if not (work / name).exists()]
    assert not failures, "\n".join(failures)
    assert not [line for line in RAN if line not in ran], "RAN lists lines no page has"
    # What the lines' comments and text say of what they made.
    assert stat.S_IMODE((work / "ci.key").stat().st_mode) == 0o600
    whole = subprocess.run([sys.executable, "-m", "blocktrace", "verify", "big.jsonl"],
                           cwd=work, capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stdout + whole.stderr  # "exactly the .jsonl"
    bundle = json.loads((work / "line120.json").read_text())
    assert bundle["line"] == 120
    trace = (work / "run.trace.jsonl").read_text().splitlines()
    assert json.loads(trace[0])["genesis"] == env["NONCE"]
    timeline = json.loads((work / "app.json").read_text())
    assert timeline["traceEvents"]


def test_the_readme_python_examples_run(tmp_path: Path) -> None:
    """The README's two Python blocks (with the ``fib`` they call defined), as scripts."""
    readme = (ROOT / "README.md").read_text()
    blocks = [body for _, tag, body in _fenced(readme) if tag == "python"]
    assert len(blocks) == 2
    fib = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n"
    first = tmp_path / "first.py"
    first.write_text(blocks[0] + fib + "print(fib(6))\n")
    done = subprocess.run([sys.executable, str(first)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout == "8\n", done.stderr
    assert "blocktrace.jsonl" in done.stderr  # "says where on stderr"
    second = tmp_path / "second.py"
    second.write_text(fib + blocks[1] + "print('ops', len(ops))\n")
    done = subprocess.run([sys.executable, str(second)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^ops [1-9]\d*$", done.stdout, re.M), done.stdout
    assert re.search(r"^LOAD_FAST \d+ \d+$", done.stdout, re.M), done.stdout  # count_ops
    for name in ("blocktrace.jsonl", "run.trace.jsonl"):
        check = subprocess.run([sys.executable, "-m", "blocktrace", "verify", name],
                               cwd=tmp_path, capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr


def test_the_migrating_python_examples_run(tmp_path: Path) -> None:
    """MIGRATING.md's Python blocks as scripts, with what they call defined: 0.0.16 code
    (its blocks, ``verifychain``, ``save`` to a trace ``blocktrace verify`` accepts), the
    check of a block's hash by hand, and the tracefunc loop, printing what its comment says."""
    text = (ROOT / "docs" / "MIGRATING.md").read_text()
    blocks = [body for _, tag, body in _fenced(text) if tag == "python"]
    assert len(blocks) == 3, "a new Python block in MIGRATING.md: run it here"
    old, by_hand, tracefunc = blocks
    assert "example.save(\"fib.jsonl\")" in old and "example.block[5]" in by_hand
    fib = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n"
    script = tmp_path / "old_code.py"
    script.write_text(fib + old + by_hand + "print('checked by hand')\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert printed[0].startswith("{0: {'DateTime': "), printed[0][:200]  # {0: {...}, 1: ...
    assert printed[1:] == ["True", "checked by hand"], printed[1:]
    check = subprocess.run([sys.executable, "-m", "blocktrace", "verify", "fib.jsonl"],
                           cwd=tmp_path, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "fib.jsonl" + ": valid and sealed" in check.stdout
    # tracefunc's README demo; the block's comment shows the line its loop prints
    demo = ("def demo(n):\n    total = 0\n    for i in range(n):\n        total += i\n"
            "    return total\n\n")
    shown = re.search(r"# '(.*?)' (\d+) (\{.*?), \.\.\.\]\}\n", tracefunc)
    assert shown is not None, tracefunc
    script = tmp_path / "tracefunc_code.py"
    script.write_text(demo + tracefunc)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    snippet, hits, values = shown.groups()
    assert any(line.startswith(f"{snippet} {hits} {values}, ")
               for line in done.stdout.splitlines()), (shown.groups(), done.stdout)


def _shown_as_pattern(line: str) -> re.Pattern[str]:
    """A line of output as a page shows it: numbers stand for any number, ``...`` and the
    example's home directory for anything."""
    pattern = re.escape(line.strip())
    pattern = re.sub(r"\d+", r"\\d+", pattern)
    pattern = pattern.replace(re.escape("/home/me/calc/calc.py"), ".*")
    return re.compile(pattern.replace(re.escape("..."), ".*"))


def test_the_golden_failure_report_reads_as_shown(tmp_path: Path) -> None:
    """GOLDEN.md's failure report, line by line in order, from a real failing test: the
    project of one test whose function moved down a line after its golden was recorded."""
    golden = (ROOT / "docs" / "GOLDEN.md").read_text()
    (report,) = [body for _, tag, body in _fenced(golden)
                 if body.startswith("blocktrace golden: the test's behaviour changed")]
    work, env = _scratch(tmp_path)
    pytest_line = ["bash", "-c", "pytest -p no:cacheprovider --blocktrace-golden"]
    first = subprocess.run([*pytest_line[:2], pytest_line[2] + " --blocktrace-golden-update"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    assert first.returncode == 0, first.stdout[-2000:]
    calc = work / "calc.py"
    calc.write_text("# moved down a line\n" + calc.read_text())
    env.pop("PYTHONHASHSEED", None)
    done = subprocess.run(pytest_line, cwd=work, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 1, done.stdout[-2000:]
    got = [line.strip() for line in done.stdout.splitlines()]
    at = 0
    for shown in report.splitlines():
        pattern = _shown_as_pattern(shown)
        found = next((i for i in range(at, len(got)) if pattern.fullmatch(got[i])), None)
        assert found is not None, (shown, got[at:at + 20])
        at = found + 1


def test_the_diff_library_example_runs(tmp_path: Path) -> None:
    """DIFF.md "As a library", verbatim: two blocktrace runs and geth's trace of a state test
    (the reference traces the eip3155 tests read)."""
    text = (ROOT / "docs" / "DIFF.md").read_text()
    section = text[text.index("## As a library"):]
    code = "\n".join(line[4:] for line in section.splitlines()[1:]
                     if line.startswith("    ") or not line.strip())
    code = code.strip("\n").split("\n\n\n")[0] + "\n"
    assert "diff_files(" in code and "normalise(" in code, code
    geth = ROOT.parent / "shared" / "refdata" / "eip3155" / "geth" / "negative_refund.jsonl"
    if not geth.exists():
        pytest.skip(f"reference traces not available ({geth} is missing)")
    shutil.copy2(geth, tmp_path / "geth.jsonl")
    for name, n in (("a.jsonl", "5"), ("b.jsonl", "6")):
        subprocess.run([sys.executable, "-m", "blocktrace", "run", "-o", name,
                        str(ROOT / "examples" / "fib.py"), n], cwd=tmp_path, check=True,
                       capture_output=True, timeout=120)
    (tmp_path / "example.py").write_text(code + "print('dialect', info.dialect)\n")
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("A: a.jsonl (blocktrace, Python "), done.stdout[:300]
    assert "first divergence at step" in done.stdout
    assert done.stdout.rstrip().endswith("dialect geth"), done.stdout[-300:]


def test_the_types_example_says_what_it_wrote(tmp_path: Path) -> None:
    """The README's `blocktrace types --stubs DIR --patch types.diff script.py`, verbatim, on a
    script with one unannotated function: it says where the stubs and the patch went, and
    that a patch is empty when nothing was left to annotate."""
    readme = (ROOT / "README.md").read_text()
    (line,) = [line for _, line in _spans("README.md") if line.startswith("blocktrace types ")]
    assert line == "blocktrace types --stubs DIR --patch types.diff script.py", line
    work, env = _scratch(tmp_path)
    assert "types.diff" in readme
    (work / "script.py").write_text("def f(a, b=None):\n    return a\n\nf(1)\nf(2, 'x')\n")
    done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "blocktrace types: patch types.diff: annotations for 1 file(s)",
        "blocktrace types: 1 stub file(s) in DIR"], done.stderr
    assert "+def f(a: int, b: str | None = None) -> int:" in (work / "types.diff").read_text()
    (work / "script.py").write_text("def f(a: int) -> int:\n    return a\n\nf(1)\n")
    again = line.replace("types ", "types --force ", 1)  # (its options go before the script)
    done = subprocess.run(["bash", "-c", again], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert ("blocktrace types: patch types.diff: empty: the run left no annotation to add"
            in done.stderr.splitlines()), done.stderr
