"""The BlockTrace view's C helpers (``blocktrace.views.blocks._cvalues``): plain
locals, and the dict watcher that tells when a module's globals changed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

_cvalues: Any = pytest.importorskip(
    "blocktrace.views.blocks._cvalues",
    reason="the C helper is not built (python setup.py build_ext --inplace)",
)


# -- plain_values: BlockTrace's locals ----------------------------------------------------


def test_plain_values_copies_numbers_none_and_bools_in_order() -> None:
    plain = _cvalues.plain_values
    d = {"a": 1, "b": -2.5, "c": None, "d": True, "e": 2**63 - 1, "f": -(2**63) + 1, "g": 0.0}
    out = plain(d)
    assert out == d and list(out) == list(d)
    assert out is not d
    assert plain({}) == {}


@pytest.mark.parametrize(
    "value",
    ["text", [1], (1,), 2**63, -(2**63), 10**30, float("nan"), float("inf"), -float("inf"),
     object(), 1j, b"x"],
)
def test_plain_values_is_none_when_a_value_would_be_rendered(value: object) -> None:
    assert _cvalues.plain_values({"a": 1, "b": value}) is None


def test_plain_values_wants_exact_types_and_str_keys() -> None:
    class Int(int):
        pass

    class Float(float):
        pass

    class Str(str):
        pass

    assert _cvalues.plain_values({"a": Int(1)}) is None
    assert _cvalues.plain_values({"a": Float(1.0)}) is None
    assert _cvalues.plain_values({Str("a"): 1}) is None
    assert _cvalues.plain_values({1: 1}) is None
    assert _cvalues.plain_values({"__builtins__": 1}) is None


def test_plain_values_reads_a_frames_locals() -> None:
    def f(n: int, x: float) -> Any:
        i = 3
        flag = False
        nothing = None
        del nothing
        return sys._getframe(), i, flag

    frame = f(7, 1.5)[0]
    out = _cvalues.plain_values(frame.f_locals)
    assert out == {"n": 7, "x": 1.5, "i": 3, "flag": False}
    assert type(out) is dict

    def g(items: list[int]) -> Any:
        return sys._getframe()

    assert _cvalues.plain_values(g([1]).f_locals) is None


def test_plain_values_of_a_mapping_that_fails() -> None:
    class Broken(dict[str, int]):
        def items(self) -> Any:
            raise KeyError("boom")

    with pytest.raises(KeyError):
        _cvalues.plain_values(Broken(a=1))
    with pytest.raises(AttributeError):  # no items(): what the caller would have met
        _cvalues.plain_values(3)


# -- watch / epoch: has a module's dict changed? ----------------------------------------


def _changes() -> list[tuple[str, Any]]:
    marker = object()
    return [
        ("a key added", lambda d: d.__setitem__("new", 1)),
        ("a value replaced", lambda d: d.__setitem__("x", marker)),
        ("a key deleted", lambda d: d.__delitem__("x")),
        ("update", lambda d: d.update(y=2)),
        ("pop", lambda d: d.pop("x")),
        ("setdefault of a new key", lambda d: d.setdefault("z", 3)),
        ("clear", lambda d: d.clear()),
        ("popitem", lambda d: d.popitem()),
    ]


@pytest.mark.parametrize("name_change", _changes(), ids=lambda c: c[0])
def test_every_change_to_a_watched_dict_moves_the_epoch(name_change: tuple[str, Any]) -> None:
    if not _cvalues.WATCHING:
        pytest.skip("no dict watcher id was free")
    d: dict[str, Any] = {"x": 1, "w": 2}
    before = _cvalues.watch(d)
    assert before == _cvalues.epoch()
    d["w"]  # reading is not a change
    assert _cvalues.epoch() == before
    name_change[1](d)
    assert _cvalues.epoch() > before, name_change[0]


def test_an_unwatched_dict_leaves_the_epoch_alone() -> None:
    d = {"x": 1}
    before = _cvalues.epoch()
    d["x"] = 2
    d["y"] = 3
    del d["x"]
    assert _cvalues.epoch() == before


def test_a_watched_dict_dying_moves_the_epoch() -> None:
    if not _cvalues.WATCHING:
        pytest.skip("no dict watcher id was free")
    d = {"x": 1}
    before = _cvalues.watch(d)
    del d
    assert _cvalues.epoch() > before


def test_what_is_not_an_exact_dict_is_not_watched() -> None:
    class D(dict[str, int]):
        pass

    assert _cvalues.watch(D(a=1)) is None
    assert _cvalues.watch(3) is None


def test_a_module_in_a_subinterpreter_has_its_own_watcher() -> None:
    """Multi-phase init: each interpreter gets its own module state, so its own
    watcher id; a change seen by either moves the one epoch."""
    interpreters = pytest.importorskip("_interpreters" if sys.version_info >= (3, 13)
                                       else "_xxsubinterpreters")
    # loaded from its file alone: the blocktrace package imports msgspec, which
    # does not load in subinterpreters
    code = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            "blocktrace.views.blocks._cvalues", {_cvalues.__file__!r})
        c = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(c)
        d = {{"x": 1}}
        before = c.watch(d)
        d["x"] = 2
        assert c.epoch() > before, "no epoch move in the subinterpreter"
    """)
    # run in a child process: a failure in a subinterpreter must not take the test run with it
    script = textwrap.dedent(f"""
        import {interpreters.__name__} as interpreters
        interp = interpreters.create()
        err = interpreters.run_string(interp, {code!r})
        interpreters.destroy(interp)
        assert err is None, err
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
