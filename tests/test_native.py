"""``blocktrace._native``: the one switch between the C extensions and the references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blocktrace import _native
from blocktrace._native import older_than_sources

_REPORT = """
import json
from blocktrace import _native
from blocktrace.chain import writer
from blocktrace.vm import hook
print(json.dumps({
    "pure": _native.PURE,
    "cwriter": _native.extension("blocktrace.chain._cwriter") is not None,
    "chook": _native.extension("blocktrace.vm._chook") is not None,
    "accelerated": writer.ACCELERATED,
    "c_writer": writer.LineWriter is not writer.PyLineWriter,
    "c_hook": hook.InstructionHook is not None,
}))
"""


def _report(pure: str | None) -> dict[str, bool]:
    env = {k: v for k, v in os.environ.items() if k != "BLOCKTRACE_PURE"}
    if pure is not None:
        env["BLOCKTRACE_PURE"] = pure
    out = subprocess.run([sys.executable, "-c", _REPORT], env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    result: dict[str, bool] = json.loads(out.stdout)
    return result


def test_blocktrace_pure_turns_every_c_path_off() -> None:
    assert _report("1") == {
        "pure": True, "cwriter": False, "chook": False, "accelerated": False,
        "c_writer": False, "c_hook": False,
    }


def test_without_blocktrace_pure_the_built_extensions_are_used() -> None:
    for name, value in (("", None), ("unset", "")):  # an empty value is not set
        report = _report(value)
        assert report["pure"] is False, name
        assert report["accelerated"] == report["c_writer"] == report["cwriter"], name
        assert report["c_hook"] == report["chook"], name


def test_an_extension_that_is_not_there_is_none() -> None:
    assert _native.extension("blocktrace.chain._no_such_extension") is None


def test_the_extensions_load_when_built() -> None:
    if _native.PURE:
        pytest.skip("BLOCKTRACE_PURE is set")
    try:
        import blocktrace.chain._cwriter as cwriter
    except ImportError:
        pytest.skip("the C extensions are not built")
    assert _native.extension("blocktrace.chain._cwriter") is cwriter


_EXTENSIONS = ("blocktrace.chain._cwriter", "blocktrace.vm._chook",
               "blocktrace.views.blocks._cvalues", "blocktrace.format._cscan",
               "blocktrace.golden._cstabilise", "blocktrace.eip3155._cskip",
               "blocktrace.view._ctables")


def _built() -> dict[str, str]:
    """Module name -> the file of every extension that is built here."""
    import importlib.util

    found = {}
    for name in _EXTENSIONS:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            found[name] = spec.origin
    return found


def test_the_stubs_say_what_the_extensions_have() -> None:
    """``mypy.stubtest``: each ``.pyi`` matches its module's names and signatures."""
    pytest.importorskip("mypy.stubtest", reason="mypy is not installed (the dev extra)")
    built = _built()
    if len(built) != len(_EXTENSIONS):
        pytest.skip("the C extensions are not all built")
    out = subprocess.run([sys.executable, "-m", "mypy.stubtest", *_EXTENSIONS],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


_IN_SUBINTERPRETER = """
import importlib.util
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
files = {files!r}
w = load("blocktrace.chain._cwriter", files["blocktrace.chain._cwriter"])
out = bytearray()
writer = w.LineWriter(out.extend, lines_per_leaf=2)
for body in (b'{{"a":1', b'{{"b":2', b'{{"c":3'):
    writer.line(body)
writer.flush()
assert bytes(out) == {expected!r}, bytes(out)
assert writer.root() == {root!r}
h = load("blocktrace.vm._chook", files["blocktrace.vm._chook"])
assert h.CACHE == 1 and h.PLAIN_ATTRIBUTES == 1
class VM:
    pass
vm = VM()
vm.gas = 5
seen = []
def f():
    return 1
code = f.__code__
hook = h.InstructionHook({{id(code): [b"event"]}}, vm, lambda v, e: seen.append(e),
                         lambda c, o: None, lambda c, o: None, lambda e: None, object())
hook(code, 0)
assert seen == [b"event"] and vm.gas == 4 and vm.site == b"event"
t = load("blocktrace.view._ctables", files["blocktrace.view._ctables"])
tables = t.TablesPass(1 << 20)
assert tables.feed(b"x\\n", 0, 1) == (1, 0, 1)
"""


def test_the_extensions_work_in_a_subinterpreter() -> None:
    """Multi-phase init and per-module state: each interpreter that loads an
    extension gets its own module (its own types, watcher ids, interned names)."""
    built = _built()
    if len(built) != len(_EXTENSIONS) or _native.PURE:
        pytest.skip("the C extensions are not all built, or BLOCKTRACE_PURE is set")
    interpreters = pytest.importorskip("_interpreters" if sys.version_info >= (3, 13)
                                       else "_xxsubinterpreters")
    from blocktrace.chain import _cwriter

    out = bytearray()
    writer = _cwriter.LineWriter(out.extend, lines_per_leaf=2)
    for body in (b'{"a":1', b'{"b":2', b'{"c":3'):
        writer.line(body)
    writer.flush()
    code = _IN_SUBINTERPRETER.format(files=built, expected=bytes(out), root=writer.root())
    # in a child: a subinterpreter's failure must not take the test run with it; the
    # modules are loaded from their files alone (the blocktrace package imports
    # msgspec, which does not load in subinterpreters)
    script = (f"import {interpreters.__name__} as interpreters\n"
              "interp = interpreters.create()\n"
              f"err = interpreters.run_string(interp, {code!r})\n"
              "interpreters.destroy(interp)\n"
              "assert err is None, err\n"
              "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr

def test_skips_under_blocktrace_pure_say_switched_off_not_not_built() -> None:
    """A skipped C test under BLOCKTRACE_PURE=1 once said "C line writer not built"
    on a machine where it was built."""
    if _native.PURE or _native.extension("blocktrace.chain._cwriter") is None:
        pytest.skip("needs the C line writer built and BLOCKTRACE_PURE unset")
    env = {**os.environ, "BLOCKTRACE_PURE": "1"}
    test_file = os.path.join(os.path.dirname(__file__), "chain", "test_writer.py")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "-p", "no:hypothesispytest", test_file], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "switched off (BLOCKTRACE_PURE is set)" in out.stdout
    assert "not built" not in out.stdout


# A C extension older than the C sources of the checkout it sits in is not used
# (it may lack what the Python code asks of it: an editable install not rebuilt
# after a pull); an installed package is never second-guessed.  Real files.


def _tree(root: Path, *, setup: bool) -> tuple[Path, Path, Path]:
    package = root / "blocktrace"
    (package / "vm").mkdir(parents=True)
    (package / "chain" / "csrc").mkdir(parents=True)
    (package / "views" / "blocks").mkdir(parents=True)
    if setup:
        (root / "setup.py").write_text("")
    built = package / "vm" / "_chook.cpython-313-x86_64-linux-gnu.so"
    built.write_bytes(b"")
    source = package / "chain" / "csrc" / "writer.c"
    source.write_text("")
    return package, built, source


def _age(path: Path, seconds: int) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))


def test_an_extension_built_before_its_sources_changed_is_stale(tmp_path: Path) -> None:
    package, built, _ = _tree(tmp_path, setup=True)
    _age(built, 60)
    assert older_than_sources(str(built), str(package))


def test_an_extension_built_after_its_sources_is_used(tmp_path: Path) -> None:
    package, _, source = _tree(tmp_path, setup=True)
    _age(source, 60)
    (package / "vm" / "_chook.c").write_text("")
    _age(package / "vm" / "_chook.c", 60)
    assert not older_than_sources(str(package / "vm" / "_chook.cpython-313-x86_64-linux-gnu.so"),
                                  str(package))


def test_a_source_deeper_in_the_package_counts_too(tmp_path: Path) -> None:
    package, built, source = _tree(tmp_path, setup=True)
    _age(source, 120)
    _age(built, 60)
    assert not older_than_sources(str(built), str(package))
    (package / "views" / "blocks" / "_cvalues.c").write_text("")
    _native._newest.clear()
    assert older_than_sources(str(built), str(package))


def test_an_installed_package_is_never_second_guessed(tmp_path: Path) -> None:
    package, built, _ = _tree(tmp_path, setup=False)
    _age(built, 60)
    assert not older_than_sources(str(built), str(package))


# The argument checks the C extensions share (blocktrace/csrc/pyutil.h): a wrong argument
# count is a TypeError that names the arguments, a position outside the buffer a
# ValueError, each with its function's own words.


def _extensions(*names: str) -> list[Any]:
    found = [_native.extension(name) for name in names]
    if any(module is None for module in found):
        pytest.skip("needs the C extensions built and BLOCKTRACE_PURE unset")
    return found


def test_a_wrong_argument_count_is_a_type_error_naming_the_arguments() -> None:
    cscan, cskip = _extensions("blocktrace.format._cscan", "blocktrace.eip3155._cskip")
    scan, columns = cscan.ChainScan(3, 16, 1000, False), cscan.OpColumns()
    for call, usage in [
        (scan.scan, "scan(buffer, pos, number, trust)"),
        (scan.known, "known(first, bits)"),
        (scan.digests, "digests(first, hashes)"),
        (cscan.leaf_cut, "leaf_cut(buffer, lines_before, per_leaf)"),
        (cscan.perfect_roots, "perfect_roots(hashes, per)"),
        (columns.feed, "feed(buffer, pos, line_no, max_rows)"),
        (columns.op, "op(line_no, thread, depth, pc, op, opName, gas, line, code)"),
        (columns.call, "call(line_no, thread, depth, code, kind, name, file, first_line, clock)"),
        (columns.ret, "ret(line_no, thread, kind, value, clock)"),
        (columns.exception, "exception(line_no, thread, depth, pc, op, opName, line, code, "
                            "event, error, clock)"),
        (columns.gather, "gather(ids, how)"),
        (cskip.skip, "skip() takes 8, 10, 11 or 13 arguments"),
    ]:
        with pytest.raises(TypeError) as raised:
            call(b"")
        assert str(raised.value) == usage


def test_a_position_outside_the_buffer_is_a_value_error() -> None:
    cscan, ctables = _extensions("blocktrace.format._cscan", "blocktrace.view._ctables")
    for call, message in [
        (lambda: cscan.ChainScan(3, 16, 1000, False).scan(b"{}\n", 4, 1, 0),
         "pos outside the buffer, or trust not 0, 1 or 2"),
        (lambda: cscan.ChainScan(3, 16, 1000, False).scan(b"{}\n", 0, 1, 3),
         "pos outside the buffer, or trust not 0, 1 or 2"),
        (lambda: cscan.OpColumns().feed(b"{}\n", 4, 1, 10), "pos outside the buffer"),
        (lambda: ctables.TablesPass(1000).feed(b"{}\n", 4, 1), "position outside the buffer"),
    ]:
        with pytest.raises(ValueError) as raised:
            call()
        assert str(raised.value) == message
