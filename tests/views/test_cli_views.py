"""``blocktrace lines`` and ``blocktrace types`` as a user runs them: real
subprocesses on real files."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

SCRIPT = '''\
import sys


def demo(n):
    total = 0
    for i in range(n):
        total += i
    return total


def unused(x):
    return x * 2


class Box:
    def __init__(self, size):
        self.size = size

    def grow(self, by):
        self.size += by
        return self.size


print(demo(int(sys.argv[1])))
print(Box(2).grow(1.5))
sys.exit(3)
'''


def blocktrace(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )


def record(tmp_path: Path, locals_mode: str = "on") -> Path:
    (tmp_path / "prog.py").write_text(SCRIPT)
    proc = blocktrace("run", "--locals", locals_mode, "-o", "prog.jsonl", "prog.py", "4",
                      cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    return tmp_path / "prog.jsonl"


def test_lines_annotates_source_with_hits_and_values(tmp_path: Path) -> None:
    record(tmp_path)
    proc = blocktrace("lines", "prog.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    legend, *out = proc.stdout.splitlines()  # the hit column explained first (issue 17)
    assert legend.startswith("hits: how often each statement ran; 1/4 on a line")
    # the file as Python named it (relative or absolute depends on the version)
    assert out[0] in ("== prog.py", f"== {tmp_path / 'prog.py'}")
    margins = {line.split("|", 1)[1].strip(): line.split("|", 1)[0].strip() for line in out[1:]
               if line.split("|", 1)[0].strip()}
    assert margins["total = 0"] == "1"
    assert margins["for i in range(n):"] == "5"
    assert margins["total += i"] == "4"
    assert margins["def demo(n):"] == "1"
    assert margins["return x * 2"] == "!"  # never ran
    after_for = out[out.index("       5 |     for i in range(n):") + 1]
    assert after_for.split("|", 1)[1].split() == ["i=0,", "1,", "2,", "3,", "3", "n=4,", "4,",
                                                  "4,", "4,", "4"]
    after_return = out[out.index("       1 |     return total") + 1]
    assert after_return.endswith("total=6")


def test_lines_counts_the_main_thread_once_other_threads_have_run(tmp_path: Path) -> None:
    # The main thread's op lines carry no "thread" until a second thread runs traced
    # code, then "thread": 1 (docs/FORMAT.md): the same frame, so its statement that
    # was running when the other thread ran is one hit, not two.
    (tmp_path / "threads.py").write_text(
        "import threading\nout = []\n\n\ndef add(v):\n    out.append(v)\n\n\n"
        "ts = [threading.Thread(target=add, args=(x,)) for x in range(3)]\n"
        "for t in ts:\n    t.start()\n    t.join()\nprint(len(out))\n")
    proc = blocktrace("run", "-o", "threads.jsonl", "threads.py", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "3\n", proc.stderr
    proc = blocktrace("lines", "threads.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    margins = {line.split("|", 1)[1].strip(): line.split("|", 1)[0].strip()
               for line in proc.stdout.splitlines()[2:] if line.split("|", 1)[0].strip()}
    assert margins["out.append(v)"] == "3"
    assert margins["for t in ts:"] == "4"
    assert (margins["t.start()"], margins["t.join()"]) == ("3", "3")
    assert margins["print(len(out))"] == "1"


def test_lines_counts_a_class_statement_once_and_not_its_decorator(tmp_path: Path) -> None:
    # A class body starts with bookkeeping (__module__, __qualname__) placed on the
    # class line: not a second run of the class statement, nor of the def around it;
    # a decorator before a body's first statement is not part of the def's header.
    (tmp_path / "classes.py").write_text(
        "import functools\n\n\nclass Point:\n    x = 1\n\n\ndef build():\n"
        "    @functools.singledispatch\n    class Inner:\n        y = 2\n"
        "    return Inner.y + Point.x\n\n\nprint(build())\n")
    proc = blocktrace("run", "-o", "classes.jsonl", "classes.py", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "3\n", proc.stderr
    proc = blocktrace("lines", "classes.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    margins = {line.split("|", 1)[1].strip(): line.split("|", 1)[0].strip()
               for line in proc.stdout.splitlines()[2:] if line.split("|", 1)[0].strip()}
    assert margins == {
        "import functools": "1", "class Point:": "1", "x = 1": "1", "def build():": "1",
        "class Inner:": "1", "y = 2": "1", "return Inner.y + Point.x": "1",
        "print(build())": "1",
    }, proc.stdout


def test_lines_function_filter_and_json(tmp_path: Path) -> None:
    record(tmp_path, "changes")
    proc = blocktrace("lines", "prog.jsonl", "--function", "Box.grow", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [msgspec.json.decode(line) for line in proc.stdout.splitlines()]
    assert [r["statement"] for r in rows] == [
        "def grow(self, by):", "self.size += by", "return self.size"
    ]
    assert [r["hits"] for r in rows] == [1, 1, 1]  # the def ran once, in the class body
    assert rows[1]["samples"]["by"] == [1.5]
    text = blocktrace("lines", "prog.jsonl", "--function", "demo", cwd=tmp_path).stdout
    assert "def demo(n):" in text and "class Box" not in text


def test_lines_errors_are_one_line(tmp_path: Path) -> None:
    record(tmp_path)
    for args, needle in (
        (["lines", "missing.jsonl"], "cannot read"),
        (["lines", "prog.py"], "not a JSON object"),
        (["lines", "prog.jsonl", "--function", "nope"], "no traced source defines 'nope'"),
    ):
        proc = blocktrace(*args, cwd=tmp_path)
        assert proc.returncode == 2
        assert needle in proc.stderr and len(proc.stderr.splitlines()) == 1
        assert "Traceback" not in proc.stderr


def test_types_runs_a_program_and_writes_table_stubs_patch(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(SCRIPT)
    proc = blocktrace("types", "--csv", "t.csv", "--stubs", "stubs", "--patch", "p.diff",
                      "prog.py", "5", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr  # the program's own exit status
    assert proc.stdout == "10\n3.5\n"  # the program's output, unchanged
    rows = [msgspec.json.decode(line) for line in
            (tmp_path / "prog.types.jsonl").read_bytes().splitlines()]
    grow = [r for r in rows if r["function"] == "Box.grow" and r["kind"] == "param"
            and r["name"] == "by"]
    assert grow[0]["types"] == [{"module": None, "name": "float"}]
    assert grow[0]["class"] == "Box"
    with (tmp_path / "t.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    stub = (tmp_path / "stubs" / "prog.pyi").read_text()
    assert "def demo(n: int) -> int: ..." in stub
    assert "    size: float | int" in stub
    patch = (tmp_path / "p.diff").read_text()
    assert "+def demo(n: int) -> int:" in patch
    assert "+    def grow(self, by: float) -> float:" in patch


def test_types_from_recorded_tables(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(SCRIPT)
    assert blocktrace("types", "-o", "a.jsonl", "prog.py", "2", cwd=tmp_path).returncode == 3
    proc = blocktrace("types", "--from", "a.jsonl", "--from", "a.jsonl", "-o", "m.jsonl",
                      "--stubs", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    merged = [msgspec.json.decode(line) for line in
              (tmp_path / "m.jsonl").read_bytes().splitlines()]
    single = [msgspec.json.decode(line) for line in
              (tmp_path / "a.jsonl").read_bytes().splitlines()]
    assert [r["counts"] for r in merged] == [[2 * n for n in r["counts"]] for r in single]
    assert (tmp_path / "out" / "prog.pyi").exists()


def test_types_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text("nonsense\n")
    (tmp_path / "prog.py").write_text(SCRIPT)
    (tmp_path / "taken.jsonl").write_text("")
    for args, needle in (
        (["types", "--from", "bad.jsonl", "--stubs", "s"], "bad.jsonl:1"),
        (["types", "--from", "nowhere.jsonl", "-o", "o.jsonl"], "cannot read"),
        (["types", "--from", "taken.jsonl"], "nothing to write"),
        (["types"], "nothing to do"),
        (["types", "missing.py"], "missing.py"),
        (["types", "-o", "taken.jsonl", "prog.py"], "exists"),
        (["types", "-o", "nowhere/t.jsonl", "prog.py"], "no such directory"),
        (["types", "--csv", "nowhere/t.csv", "prog.py"], "no such directory"),
        (["types", "--from", "bad.jsonl", "prog.py"], "not both"),
    ):
        proc = blocktrace(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr


def test_types_options_after_the_script_are_the_programs_and_types_says_so(
    tmp_path: Path,
) -> None:
    """The README once showed ``types script.py --stubs DIR --patch FILE``: the
    options went to the program and nothing was said."""
    (tmp_path / "prog.py").write_text(SCRIPT)
    proc = blocktrace("types", "prog.py", "5", "--stubs", "stubs", "--patch=p.diff", cwd=tmp_path)
    assert proc.returncode == 3 and proc.stdout == "10\n3.5\n"
    assert not (tmp_path / "stubs").exists() and not (tmp_path / "p.diff").exists()
    assert proc.stderr.count("\n") == 1
    assert "--stubs, --patch=p.diff came after the program" in proc.stderr
    assert "before SCRIPT" in proc.stderr
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "blocktrace types --stubs DIR --patch types.diff script.py" in readme


def test_types_patch_admits_none_for_a_none_default(tmp_path: Path) -> None:
    (tmp_path / "greet.py").write_text(
        "def greet(name, prefix=None, *, sep=None, n=0):\n"
        "    return (prefix or 'Hi') + (sep or ', ') + name * n\n\n"
        "greet('a', 'Yo', sep='; ', n=1)\n"
    )
    proc = blocktrace("types", "--stubs", "stubs", "--patch", "p.diff", "greet.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    patch = (tmp_path / "p.diff").read_text()
    assert ("+def greet(name: str, prefix: str | None = None, *, sep: str | None = None, "
            "n: int = 0) -> str:") in patch
    stub = (tmp_path / "stubs" / "greet.pyi").read_text()
    assert ("def greet(name: str, prefix: str | None = ..., *, sep: str | None = ..., "
            "n: int = ...) -> str: ...") in stub


def test_types_never_writes_over_the_program_or_its_sources(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(SCRIPT)
    (tmp_path / "lib.py").write_text("def f(x):\n    return x\n")
    (tmp_path / "main.py").write_text("import lib\nlib.f(1)\n")
    for args in (["--patch", "prog.py", "--force", "prog.py", "1"],
                 ["-o", "prog.py", "--force", "prog.py", "1"],
                 ["--patch", "lib.py", "--force", "main.py"],
                 ["-o", "t.jsonl", "--csv", "t.jsonl", "--force", "main.py"]):
        proc = blocktrace("types", *args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "not writing" in proc.stderr, proc.stderr
    assert (tmp_path / "prog.py").read_text() == SCRIPT
    assert (tmp_path / "lib.py").read_text() == "def f(x):\n    return x\n"


GENERATORS = """\
def sq(x):
    return x * x


total = sum(sq(i) for i in range(4))
squares = [sq(i) for i in range(3)]
double = lambda v: v * 2
print(total, squares, double(5), list(map(lambda w: w + 1, [1, 2])))
"""


def test_lines_counts_generator_expressions_comprehensions_and_lambdas(tmp_path: Path) -> None:
    (tmp_path / "gen.py").write_text(GENERATORS)
    proc = blocktrace("run", "--locals", "on", "-o", "gen.jsonl", "gen.py", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "14 [0, 1, 4] 10 [2, 3]\n"), proc.stderr
    proc = blocktrace("lines", "--json", "gen.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    hits = {r["statement"]: r["hits"] for r in map(msgspec.json.decode, proc.stdout.splitlines())}
    assert hits["total = sum(sq(i) for i in range(4))"] == 1
    assert hits["(sq(i) for i in range(4))"] == 4  # once "hits: 0": one per element
    assert hits["[sq(i) for i in range(3)]"] == 3
    assert hits["lambda v: v * 2"] == 1  # lambdas had no entry at all
    assert hits["lambda w: w + 1"] == 2
    assert hits["return x * x"] == 7
    text = blocktrace("lines", "gen.jsonl", cwd=tmp_path).stdout.splitlines()
    margins = {line.split("|", 1)[1].strip(): line.split("|", 1)[0].strip()
               for line in text[2:] if "|" in line}
    assert margins["total = sum(sq(i) for i in range(4))"] == "1/4"
    assert margins["double = lambda v: v * 2"] == "1/1"
    assert margins["print(total, squares, double(5), list(map(lambda w: w + 1, [1, 2])))"] == "1/2"
    assert "1/4 on a line that holds several" in text[0]
    assert "comprehension" in blocktrace("lines", "--help", cwd=tmp_path).stdout


def test_types_says_when_nothing_was_traced(tmp_path: Path) -> None:
    proc = blocktrace("types", "-m", "json.tool", "--no-such-flag-for-json-tool", cwd=tmp_path)
    assert proc.returncode == 2  # json.tool's own usage error, as under python
    assert proc.stderr.splitlines()[-1] == (
        "blocktrace types: 0 steps recorded: by default only your own code is traced, not the "
        "standard library or site-packages: add --include json to trace json.tool")


def test_lines_does_not_call_a_docstring_never_run(tmp_path: Path) -> None:
    (tmp_path / "doc.py").write_text('"""A module."""\n\n\ndef f():\n    """Say hi."""\n'
                                     '    return 1\n\n\nf()\n')
    assert blocktrace("run", "-o", "doc.jsonl", "doc.py", cwd=tmp_path).returncode == 0
    text = blocktrace("lines", "doc.jsonl", cwd=tmp_path).stdout.splitlines()
    margins = {line.split("|", 1)[1].strip(): line.split("|", 1)[0].strip()
               for line in text[2:] if "|" in line}
    assert margins['"""Say hi."""'] == ""  # it has no code: not "!" (never ran)
    assert margins["return 1"] == "1" and margins["f()"] == "1"


def test_types_stub_keeps_a_dataclass_its_decorator_and_fields(tmp_path: Path) -> None:
    (tmp_path / "pt.py").write_text(
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Point:\n    x: float\n"
        "    y: float = 0.0\n\n\ndef norm(p):\n    return abs(p.x) + abs(p.y)\n\n\n"
        "print(norm(Point(1, 2)))\n")
    proc = blocktrace("types", "--stubs", "stubs", "pt.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stub = (tmp_path / "stubs" / "pt.pyi").read_text()
    # once "class Point: ...": Point(1, 2) did not type-check against the stub
    assert "from dataclasses import dataclass\n" in stub
    assert "@dataclass\nclass Point:\n    x: float\n    y: float = ...\n" in stub
    assert "def norm(p: Point) -> int: ..." in stub


def _edited_and_cut(trace: Path) -> int:
    """edited.jsonl (trace with its middle line edited) and cut.jsonl (the lines
    before it) beside ``trace``; returns the middle line's index (0-based)."""
    lines = trace.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    (trace.parent / "edited.jsonl").write_bytes(
        b"".join(lines[:middle]) + lines[middle].replace(b'"depth":', b'"depth":9', 1)
        + b"".join(lines[middle + 1:]))
    (trace.parent / "cut.jsonl").write_bytes(b"".join(lines[:middle]))
    return middle


def test_lines_says_when_the_trace_does_not_verify(tmp_path: Path) -> None:
    trace = record(tmp_path)
    sealed = blocktrace("lines", "prog.jsonl", cwd=tmp_path)
    assert sealed.returncode == 0 and sealed.stderr == "", sealed.stderr
    middle = _edited_and_cut(trace)
    for args in (["edited.jsonl"], ["edited.jsonl", "--function", "demo"],
                 ["edited.jsonl", "--json"]):
        done = blocktrace("lines", *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stderr.startswith(
            f"blocktrace lines: note: edited.jsonl is TAMPERED at line {middle + 1} "
            "(blocktrace verify says why): "), done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    done = blocktrace("lines", "cut.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("blocktrace lines: note: cut.jsonl is UNSEALED"), done.stderr


def test_cat_says_when_the_trace_does_not_verify(tmp_path: Path) -> None:
    # cat copies a .jsonl as it is (same bytes, exit 0) and, like lines/show/diff, says on
    # stderr when what it copied is TAMPERED at line N or UNSEALED.
    trace = record(tmp_path)
    sealed = blocktrace("cat", "prog.jsonl", cwd=tmp_path)
    assert sealed.returncode == 0 and sealed.stderr == "", sealed.stderr
    assert sealed.stdout == trace.read_text()
    middle = _edited_and_cut(trace)
    for name, note in (("edited.jsonl", f"TAMPERED at line {middle + 1} "),
                       ("cut.jsonl", "UNSEALED")):
        out = tmp_path / f"out-{name}"
        for args in ([name], [name, "-o", out.name]):
            done = blocktrace("cat", *args, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            copied = out.read_bytes() if "-o" in args else done.stdout.encode()
            assert copied == (tmp_path / name).read_bytes()
            assert done.stderr.startswith(f"blocktrace cat: note: {name} is {note}"), done.stderr
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_types_refuses_a_stubs_dir_that_is_a_file_before_the_program_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "prog.py").write_text(SCRIPT)
    (tmp_path / "taken.txt").write_text("mine\n")
    proc = blocktrace("types", "--stubs", "taken.txt", "prog.py", "2", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "blocktrace types: taken.txt: not a directory (--stubs DIR)\n"
    assert proc.stdout == ""  # refused before the program ran
    assert (tmp_path / "taken.txt").read_text() == "mine\n"
    assert not (tmp_path / "prog.types.jsonl").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_types_names_the_output_a_failed_write_was_for(tmp_path: Path) -> None:
    # /dev/full opens, then every write fails (ENOSPC): the error has no file name
    # of its own, and the line must say which output it was.
    (tmp_path / "prog.py").write_text(SCRIPT)
    for option in ("-o", "--csv", "--patch"):
        extra = ["-o", "t.jsonl"] if option != "-o" else []
        proc = blocktrace("types", "--force", *extra, option, "/dev/full", "prog.py", "2",
                          cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == (
            "blocktrace types: /dev/full: cannot write: No space left on device\n"), option


def test_types_patch_says_when_the_traced_files_are_outside_its_root(tmp_path: Path) -> None:
    # The patch holds files under --root (default: the current directory): a script
    # elsewhere is left out, and the line says so instead of "the run left no
    # annotation to add"; a --root that is no directory is refused before the run.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "prog.py").write_text(SCRIPT)
    (tmp_path / "here").mkdir()
    proc = blocktrace("types", "--patch", "t.diff", "../elsewhere/prog.py", "2",
                      cwd=tmp_path / "here")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "blocktrace types: patch t.diff: empty: 1 traced file is outside "
        f"{tmp_path / 'here'} (give --root DIR)"), proc.stderr
    proc = blocktrace("types", "--force", "--root", "..", "--patch", "t.diff",
                      "../elsewhere/prog.py", "2", cwd=tmp_path / "here")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "blocktrace types: patch t.diff: annotations for 1 file(s)"), proc.stderr
    assert "+++ b/elsewhere/prog.py" in (tmp_path / "here" / "t.diff").read_text()
    proc = blocktrace("types", "--force", "--root", "nowhere", "--patch", "t.diff",
                      "../elsewhere/prog.py", "2", cwd=tmp_path / "here")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr == "blocktrace types: nowhere: no such directory (--root DIR)\n"


def test_types_keeps_a_stub_already_there(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(SCRIPT)
    (tmp_path / "stubs").mkdir()
    mine = tmp_path / "stubs" / "prog.pyi"
    mine.write_text("# written by hand\n")
    proc = blocktrace("types", "--stubs", "stubs", "prog.py", "2", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "blocktrace types: stubs/prog.pyi exists: not overwriting it (use --force); "
        "the types are in prog.types.jsonl")
    assert mine.read_text() == "# written by hand\n"
    proc = blocktrace("types", "--from", "prog.types.jsonl", "--stubs", "stubs", cwd=tmp_path)
    assert proc.returncode == 2 and "use --force" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert mine.read_text() == "# written by hand\n"
    proc = blocktrace("types", "--from", "prog.types.jsonl", "--stubs", "stubs", "--force",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert mine.read_text().startswith("# Stub generated by blocktrace")
