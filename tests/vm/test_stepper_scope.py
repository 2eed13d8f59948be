"""Scope: the user's own code by default; ``include``, ``exclude``, ``target``."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import blocktrace
from blocktrace import CallStart, OpStart, Recorder, Return
from blocktrace.vm import ScopeError

_LIB_PATH = Path(__file__).parent.parent / "programs" / "scopelib.py"


def _load_lib() -> ModuleType:
    existing = sys.modules.get("scopelib")
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location("scopelib", _LIB_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scopelib"] = module
    spec.loader.exec_module(module)
    return module


lib = _load_lib()


def _user_callback(x: int) -> int:
    return x * 10


def _program() -> tuple[object, ...]:
    return (
        lib.helper(1),
        lib.apply(_user_callback, 2),
        lib.target(3),
        json.dumps({"a": [1, 2]}, sort_keys=True),
        textwrap.dedent("    x\n    y\n"),
        pytest.approx(1.0) == 1.0,  # site-packages, pure Python
    )


EXPECTED = _program()


def _calls(rec: Recorder) -> list[tuple[str, str, int]]:
    return [
        (Path(r.event.file).name, r.event.name, r.depth)
        for r in rec.records
        if type(r.event) is CallStart
    ]


def _run(**scope: object) -> Recorder:
    rec = Recorder()
    with blocktrace.trace(rec, **scope):  # type: ignore[arg-type]
        result = _program()
    assert result == EXPECTED
    return rec


def test_default_scope_is_the_users_own_code() -> None:
    rec = _run()
    files = {Path(e.file).name for e in rec.of_type(CallStart)}
    assert files == {"test_stepper_scope.py", "scopelib.py"}
    assert [c[1:] for c in _calls(rec)] == [
        ("_run", 1),  # the frame that entered trace()
        ("_program", 2),
        ("helper", 3),
        ("apply", 3),
        ("_user_callback", 4),
        ("target", 3),
        ("helper", 4),
    ]


def test_stdlib_and_site_packages_are_never_seen() -> None:
    rec = _run()
    stdlib = str(Path(json.__file__).parent)
    site = str(Path(pytest.__file__).parent.parent)
    for event in rec.of_type(CallStart):
        assert not event.file.startswith((stdlib, site)), event
        assert "blocktrace" not in Path(event.file).parts[-2:-1], event


@pytest.mark.parametrize("spec", [str(_LIB_PATH), str(_LIB_PATH.parent), "scopelib"])
def test_exclude_by_file_directory_or_module(spec: str) -> None:
    rec = _run(exclude=[spec])
    calls = _calls(rec)
    assert all(file != "scopelib.py" for file, _, _ in calls)
    # Code of the user called back from excluded code is still the user's:
    # traced, one deeper than the caller that is traced.
    program_depth = next(d for _, name, d in calls if name == "_program")
    assert ("test_stepper_scope.py", "_user_callback", program_depth + 1) in calls


@pytest.mark.parametrize("spec", [str(_LIB_PATH), "scopelib"])
def test_include_only(spec: str) -> None:
    rec = _run(include=[spec])
    calls = _calls(rec)
    assert calls == [
        ("scopelib.py", "helper", 1),
        ("scopelib.py", "apply", 1),
        ("scopelib.py", "target", 1),
        ("scopelib.py", "helper", 2),
    ]
    ops = rec.of_type(OpStart)
    known = {e.code for e in rec.of_type(CallStart)}
    assert ops and {op.code for op in ops} <= known


def test_target_traces_only_while_the_function_runs() -> None:
    rec = _run(target="scopelib:target")
    assert _calls(rec) == [("scopelib.py", "target", 1), ("scopelib.py", "helper", 2)]
    returns = [e.value for e in rec.of_type(Return)]
    assert returns == [4, 8]
    target_code = rec.of_type(CallStart)[0].code
    assert rec.of_type(OpStart)[0].code == target_code


def test_target_in_the_callers_module() -> None:
    rec = _run(target=f"{__name__}:_user_callback")
    assert [(name, depth) for _, name, depth in _calls(rec)] == [("_user_callback", 1)]


@pytest.mark.parametrize(
    "scope",
    [{"include": ["no/such/path/or.module"]}, {"exclude": ["no_such_module_zz"]},
     {"target": "no-colon"}],
)
def test_bad_scope_raises_and_restores_the_tracer(scope: dict[str, object]) -> None:
    before = blocktrace.get_tracer()
    with pytest.raises(ScopeError), blocktrace.trace(Recorder(), **scope):  # type: ignore[arg-type]
        pass
    assert blocktrace.get_tracer() is before
    assert blocktrace.vm.active_stepper() is None
