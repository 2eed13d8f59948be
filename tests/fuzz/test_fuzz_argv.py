"""Every command's argv, fuzzed: random known flags with random values and random
file paths (missing, a directory, empty, binary, /dev/null, a name with a line
break, bytes that are not UTF-8, real traces, keys, checkpoints and bundles),
run as real ``blocktrace`` processes (those that run a program: each its own;
the others one after another in one worker process, worker.py).

Whatever the arguments: never a traceback, an exit status the command documents
(2 for a usage error, with its one line on stderr), every line on stderr
``blocktrace``'s own, never a hang, and no existing file overwritten unless
``--force`` was given.  The flags and whether each takes a value come from the
real parser (``blocktrace.cli.build_parser``), so a new option is fuzzed as soon
as it exists.  ``serve`` (it serves until stopped) is left out, and ``view``
always gets ``--html`` (without it, it serves); ``run`` and ``types`` always end
with a small real program (their arguments after it are the program's).

The examples are the same on every run (``harness.FUZZ``, fewer than the other
fuzz tests: each is a process); ``BLOCKTRACE_FUZZ=deep`` searches longer.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from blocktrace.cli import build_parser

from .conftest import PROGRAM, Seeds
from .harness import FUZZ
from .worker import Done, shared

EXAMPLES = max(30, (FUZZ.max_examples or 20) * 3 // 4)
"""30 in CI (enough to meet most commands; each runs in the worker, or its own
process when it runs a program), more in the deep search."""
TIMEOUT = 120.0
"""One command on these small inputs taking longer is a hang."""

LEFT_OUT = {"serve"}
STATUSES = {"verify": (0, 1, 2, 3, 4), "diff": (0, 1, 2), "replay": (0, 1, 2)}
"""Exit statuses beyond 0, 1 and 2 (verify: 3 unsealed, 4 a checkpoint's trouble)."""


@dataclass(frozen=True)
class Option:
    flag: str
    nargs: int  # values it takes
    choices: tuple[str, ...]


def _commands() -> dict[str, tuple[list[Option], list[tuple[str, str | int | None]]]]:
    """Each command's options and positionals, from the real parser."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = {}
    for name, command in sub.choices.items():
        if name in LEFT_OUT:
            continue
        options, positionals = [], []
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if action.option_strings:
                takes = action.nargs if isinstance(action.nargs, int) else (
                    0 if action.nargs == 0 else 1)
                if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                       argparse.BooleanOptionalAction)):
                    takes = 0
                choices = tuple(map(str, action.choices or ()))
                for flag in action.option_strings:
                    options.append(Option(flag, takes, choices))
            else:
                positionals.append((action.dest, action.nargs))
        found[name] = (options, positionals)
    return found


COMMANDS = _commands()


@pytest.fixture(scope="module")
def pool(seeds: Seeds, tmp_path_factory: pytest.TempPathFactory) -> Pool:
    d = tmp_path_factory.mktemp("fuzz-argv")
    files = {
        "trace.jsonl": seeds.plain.read_bytes(),
        "locals.jsonl": seeds.locals.read_bytes(),
        "unsealed.jsonl": seeds.unsealed.read_bytes(),
        "whole.cp": seeds.checkpoint.read_bytes(),
        "k.key": seeds.key.read_bytes(),
        "k.pub": seeds.pub.read_bytes(),
        "bundle.json": seeds.bundle.read_bytes(),
        "table.jsonl": seeds.table.read_bytes(),
        "empty": b"",
        "binary": bytes(range(256)) * 8,
        "text.txt": b"not a trace\n",
        "half.jsonl": seeds.plain.read_bytes()[:700],
        "line\nbreak.jsonl": seeds.plain.read_bytes(),
        "program.py": b"print('hello')\n",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    if seeds.clients:
        shutil.copyfile(seeds.clients[0], d / "client.jsonl")
    (d / "dir").mkdir()
    (d / "dir.jsonl").mkdir()
    os.symlink("loop", d / "loop")
    os.symlink(str(d / "missing"), d / "dangling")
    return Pool(d, sorted(p.name for p in d.iterdir()), files)


class Pool:
    """The directory of inputs the examples name, and what it holds at the start."""

    def __init__(self, dir: Path, names: list[str], originals: dict[str, bytes]) -> None:
        self.dir = dir
        self.names = names
        """What the directory holds before any example (anything else is an output)."""
        self.originals = originals

    def __repr__(self) -> str:
        return f"Pool({self.dir})"

    def paths(self) -> list[bytes]:
        return [os.fsencode(self.dir / n) for n in self.names] + [
            b"missing.jsonl", b"/nonexistent/dir/x", b"/dev/null", b"-", b"",
            os.fsencode(self.dir) + b"/\xff\xfe.jsonl", b"/", b".",
        ]

    def snapshot(self) -> dict[str, str]:
        """Every file's content hash (what must not change without --force)."""
        out = {}
        for name in self.names:
            path = self.dir / name
            if path.is_file() and not path.is_symlink():
                out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out

    def clean(self) -> None:
        """Remove what an example wrote (its outputs, indexes, caches)."""
        for path in self.dir.iterdir():
            if path.name not in self.names:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        for name, data in self.originals.items():  # (what --force overwrote)
            path = self.dir / name
            if not path.is_file() or path.read_bytes() != data:
                path.unlink(missing_ok=True)
                path.write_bytes(data)


VALUES: list[bytes] = [
    b"", b"0", b"-1", b"1", b"3", b"16", b"99999999999999999999999", b"-0", b"1e3", b"nan",
    b"inf", b"0x10", b"1_000", b"abc", b"\xff", b"\xef\xbc\x91", b" ", b"-", b"--", b"--json",
    b"a,b", b",", b"pc,op", b"*", b"..", b"../../etc/passwd", b"http://x", b"1:2", b"-5:3",
    b"fuzz.example/ci", b"SELECT 1", b"SELECT * FROM steps", b"select count(*) from steps",
    b"'", b"x" * 5000, b"\n", b"a\nb", b"op", b"line", b"call", b"on", b"changes", b"json",
]


@st.composite
def argv_of(draw: st.DrawFn, pool: Pool) -> tuple[str, list[bytes]]:
    name = draw(st.sampled_from(sorted(COMMANDS)), label="command")
    options, positionals = COMMANDS[name]
    paths = pool.paths()
    value = st.sampled_from(VALUES) | st.sampled_from(paths) | st.binary(max_size=12).filter(
        lambda b: b"\x00" not in b)
    args: list[bytes] = [name.encode()]

    def positional() -> list[bytes]:
        out: list[bytes] = []
        for _, nargs in positionals:
            if nargs in ("*", "?") and draw(st.booleans()):
                continue
            count = draw(st.integers(1, 2)) if nargs in ("+", "*") else 1
            out += [draw(st.sampled_from(paths) | value) for _ in range(count)]
        return out

    # the positionals usually in place, sometimes missing or one too many
    shape = draw(st.sampled_from(["right", "right", "right", "none", "extra"]))
    words = positional() if shape != "none" else []
    if shape == "extra":
        words.append(draw(value))
    for _ in range(draw(st.integers(0, 4), label="options")):
        if options and draw(st.integers(0, 9)) > 0:
            option = draw(st.sampled_from(options))
            words.append(option.flag.encode())
            for _ in range(option.nargs):
                if option.choices and draw(st.booleans()):
                    words.append(draw(st.sampled_from(option.choices)).encode())
                else:
                    words.append(draw(value))
        else:  # an unknown option, or a known one glued to its value
            words.append(draw(st.sampled_from([b"--nope", b"-z", b"--json=1", b"--outp",
                                               b"--output=", b"-o"])))
    args += words
    if name == "view":
        args += [b"--html", os.fsencode(pool.dir / "out-view.html")]
    if name in ("run", "types"):
        args += [os.fsencode(PROGRAM), *draw(st.lists(st.sampled_from(VALUES), max_size=2))]
    return name, args


OWN_PROCESS = {b"run", b"types", b"replay", b"snapshot"}
"""Commands that run a program: each in a process of its own; the others in the
shared worker process (worker.py: a process each cost ~0.2 s)."""


def run(argv: list[bytes], cwd: Path) -> subprocess.CompletedProcess[bytes] | Done:
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / "cache"),
           "BLOCKTRACE_VIEW_CACHE": str(cwd / "cache" / "view"), "PYTHONHASHSEED": "0"}
    if argv[0] not in OWN_PROCESS:
        return shared().run(argv, env=env, cwd=cwd, timeout=TIMEOUT)
    return subprocess.run([os.fsencode(sys.executable), b"-m", b"blocktrace", *argv],
                          capture_output=True, timeout=TIMEOUT, cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, check=False)


def check(name: str, argv: list[bytes],
          done: subprocess.CompletedProcess[bytes] | Done) -> None:
    what = b" ".join(argv).decode("utf-8", "backslashreplace")[:500]
    err = done.stderr.decode("utf-8", "backslashreplace")
    allowed = STATUSES.get(name, (0, 1, 2))
    assert done.returncode in allowed, f"{what}: exit {done.returncode}\n{err}"
    if name in ("run", "types") and done.returncode == 1:
        # a word taken for SCRIPT that is no program: Python's own report of it
        # (``python binary`` says SyntaxError too), from no frame of blocktrace's
        assert f"{os.sep}blocktrace{os.sep}" not in err, f"{what}\n{err}"
        return
    assert "Traceback" not in err, f"{what}\n{err}"
    lines = err.split("\n")[:-1] if err.endswith("\n") else err.split("\n") if err else []
    if done.returncode == 2 and not (b"--json" in argv and done.stdout.startswith(b"{")):
        assert lines, f"{what}: exit 2 with nothing on stderr"  # (--json: said on stdout)
    # blocktrace's own lines only (a note and the error at most); the program's own
    # output goes to stdout (the program prints, never fails)
    assert len(lines) <= 2, f"{what}: {len(lines)} lines on stderr\n{err}"
    for line in lines:
        assert line.startswith("blocktrace"), f"{what}: not one of ours: {line!r}\n{err}"


@settings(FUZZ, max_examples=EXAMPLES)
@given(data=st.data())
def test_any_argv_is_one_line_or_an_answer(data: st.DataObject, pool: Pool) -> None:
    name, argv = data.draw(argv_of(pool))
    before = pool.snapshot()
    done = run(argv, pool.dir)
    event(f"{name} exit {done.returncode}")
    try:
        check(name, argv, done)
        if b"--force" not in argv:
            after = pool.snapshot()
            changed = [p for p, digest in before.items() if after.get(p) != digest]
            assert not changed, f"{b' '.join(argv)!r} changed {changed} without --force"
    finally:
        pool.clean()


@pytest.mark.parametrize("argv", [[b"cat", b"TRACE", b"-o", b"victim"],
                                  [b"export", b"TRACE", b"--to", b"perfetto", b"victim"]])
def test_an_existing_output_is_not_overwritten_silently(
    pool: Pool, tmp_path: Path, argv: list[bytes]
) -> None:
    (tmp_path / "victim").write_bytes(b"keep me\n")
    argv = [os.fsencode(pool.dir / "trace.jsonl") if a == b"TRACE" else a for a in argv]
    done = run(argv, tmp_path)
    assert (tmp_path / "victim").read_bytes() == b"keep me\n", done.stderr
    assert done.returncode == 2


def test_a_dataset_over_an_existing_file_is_one_line(pool: Pool, tmp_path: Path) -> None:
    # (found by the fuzz test: makedirs raised FileExistsError as a traceback)
    pytest.importorskip("pyarrow")
    (tmp_path / "victim").write_bytes(b"keep me\n")
    done = run([b"export", os.fsencode(pool.dir / "trace.jsonl"), b"--to", b"parquet",
                b"victim"], tmp_path)
    check("export", [b"export"], done)
    assert done.returncode == 2 and b"not a directory" in done.stderr, done.stderr
    assert (tmp_path / "victim").read_bytes() == b"keep me\n"


def test_program_arguments_that_are_not_utf8_are_recorded(tmp_path: Path) -> None:
    # (a crash found by the fuzz test above: the header's argv could not be encoded)
    done = run([b"run", b"-o", b"t.jsonl", os.fsencode(PROGRAM), b"\x80", b"ok"], tmp_path)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    header = (tmp_path / "t.jsonl").read_bytes().split(b"\n")[0]
    assert b'"argv":["' + os.fsencode(PROGRAM) + b'","\\\\x80","ok"]' in header, header
    assert run([b"verify", b"t.jsonl"], tmp_path).returncode == 0


def test_sql_that_is_not_utf8_is_one_line(pool: Pool) -> None:
    # (found by the fuzz test: DuckDB raised TypeError on the lone surrogate)
    done = run([b"query", os.fsencode(pool.dir / "trace.jsonl"), b"SELECT '\x80'"], pool.dir)
    check("query", [b"query"], done)
    assert done.returncode == 2 and b"not UTF-8" in done.stderr, done.stderr


@pytest.mark.parametrize("command", [b"run", b"snapshot"])
def test_a_genesis_that_is_not_utf8_is_one_line(command: bytes, tmp_path: Path) -> None:
    # (found by the fuzz test: the trace's header could not be encoded, a traceback)
    argv = [command, b"--genesis", b"\x80", *([b"--format", b"trace"] if command == b"snapshot"
                                             else []), os.fsencode(PROGRAM)]
    done = run(argv, tmp_path)
    check(command.decode(), argv, done)
    assert done.returncode == 2 and b"not UTF-8" in done.stderr, done.stderr


def test_verify_json_of_a_file_name_that_is_not_utf8(pool: Pool, tmp_path: Path) -> None:
    # (found by the fuzz test: --json could not encode the name, a traceback)
    for argv in ([b"verify", b"\x80.jsonl", b"--json"],
                 [b"verify", os.fsencode(pool.dir / "trace.jsonl"), b"--genesis", b"\x80",
                  b"--json"]):
        done = run(argv, tmp_path)
        check("verify", argv, done)
        answer = msgspec.json.decode(done.stdout)
        assert answer["valid"] is False, answer
    assert msgspec.json.decode(run([b"verify", b"\x80.jsonl", b"--json"], tmp_path).stdout)[
        "file"] == "\\x80.jsonl"


def test_a_key_name_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    # (found by the fuzz test: hashing the name for the key id raised UnicodeEncodeError)
    done = run([b"keygen", b"\x80", b"--out", b"k"], tmp_path)
    check("keygen", [b"keygen"], done)
    assert done.returncode == 2 and b"invalid key name" in done.stderr, done.stderr
    assert not list(tmp_path.glob("k.*"))
