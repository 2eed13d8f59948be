"""tracefunc's README examples, run on the engine, with their documented shapes."""

from __future__ import annotations

import blocktrace.views.tracefunc as tf_module
from blocktrace.views.tracefunc import TraceResults, tracefunc

from . import samples_tracefunc as s

RANGE = ("type", "<class 'range'>")


def test_simple_function_readme_example() -> None:
    stack, result = tracefunc(s.demo, 3, target_func=s.demo)[0]
    assert stack == "demo (samples_tracefunc.py:11)"
    assert list(result) == ["total = 0", "for i in range(n):", "total += i", "return total"]
    assert result["total = 0"] == (1, {"total": [("int", "0")]})
    hits, values = result["for i in range(n):"]
    assert hits == 4
    assert values == {
        "i": [("int", "0"), ("int", "1"), ("int", "2"), ("int", "2")],
        "n": [("int", "3")] * 4,
        "range": [RANGE] * 4,
    }
    assert result["total += i"] == (
        3,
        {"i": [("int", "0"), ("int", "1"), ("int", "2")],
         "total": [("int", "0"), ("int", "1"), ("int", "3")]},
    )
    assert result["return total"] == (1, {"total": [("int", "3")]})


def test_semicolon_statements_are_separate() -> None:
    results = tracefunc(s.one_liner)
    assert isinstance(results, TraceResults) and results.exc is None
    stack, res = results[0]
    assert stack == ""  # no target_func: no stack
    assert res == {
        "x = 1": (1, {"x": [("int", "1")]}),
        "y = 2": (1, {"y": [("int", "2")]}),
        "return x + y": (1, {"x": [("int", "1")], "y": [("int", "2")]}),
    }


def test_targeted_tracing_and_call_stacks() -> None:
    results = tracefunc(s.wrapper, 2, target_func=s.target)
    assert [stack for stack, _ in results] == [
        "wrapper (samples_tracefunc.py:29)\ntarget (samples_tracefunc.py:20)",
        "wrapper (samples_tracefunc.py:29)\ntarget (samples_tracefunc.py:20)",
        "wrapper (samples_tracefunc.py:30)\nanother (samples_tracefunc.py:24)\n"
        "target (samples_tracefunc.py:20)",
    ]
    assert [res for _, res in results] == [
        {"return x + 1": (1, {"x": [("int", "0")]})},
        {"return x + 1": (1, {"x": [("int", "1")]})},
        {"return x + 1": (1, {"x": [("int", "10")]})},
    ]


def test_nested_function_bodies_are_traced() -> None:
    _, res = tracefunc(s.outer, 10)[0]
    inner = ("function", "<function outer.<locals>.inner>")
    assert res == {
        # the header mentions ``int`` (its annotations): sampled like any name
        "def inner(y: int) -> int:": (1, {"inner": [inner], "int": [("type", "<class 'int'>")]}),
        "return x + y": (1, {"x": [("int", "10")], "y": [("int", "5")]}),
        "return inner(5)": (1, {"inner": [inner]}),
    }


def test_comprehensions_have_one_sample_per_iteration() -> None:
    _, res = tracefunc(s.comp, 4, incl_unhit=True)[0]
    assert res["a = [i * i for i in range(n) if i % 2]"] == (1, {"a": [("list", "[1, 9]")]})
    hits, values = res["[i * i for i in range(n) if i % 2]"]
    assert hits == 2 and values["i"] == [("int", "1"), ("int", "3")]
    hits, values = res["(j for j in range(n))"]
    assert hits == 4 and values["j"] == [("int", str(j)) for j in range(4)]
    hits, values = res['{k: v for k, v in zip("ab", a, strict=False)}']
    assert hits == 2 and values["k"] == [("str", "'a'"), ("str", "'b'")]
    # incl_unhit: the else branch is there with 0 hits and no samples
    assert res["c = None"] == (0, {"c": []})
    assert res["except ZeroDivisionError:"][0] == 1
    assert res["d = 1"] == (1, {"d": [("int", "1")]})
    assert res["return a, b, c, d"][1]["c"] == [("dict", "{'a': 1, 'b': 9}")]


def test_unhit_lines_are_omitted_by_default() -> None:
    _, res = tracefunc(s.comp, 4)[0]
    assert "c = None" not in res


def test_exception_is_kept_and_traces_returned() -> None:
    results = tracefunc(s.crash, 4)
    assert isinstance(results.exc, ZeroDivisionError)
    _, res = results[0]
    assert res["x = n * 2"] == (1, {"n": [("int", "4")], "x": [("int", "8")]})
    assert res["return x / 0"] == (1, {"x": [("int", "8")]})


def test_recursion_gives_one_entry_per_call() -> None:
    results = tracefunc(s.fact, 4)
    assert len(results) == 4
    assert [r["if n <= 1:"][1]["n"] for _, r in results] == [
        [("int", "4")], [("int", "3")], [("int", "2")], [("int", "1")]
    ]
    assert results[3][1]["return 1"] == (1, {})


def test_at_most_ten_calls_and_ten_samples() -> None:
    assert len(tracefunc(s.fact, 25)) == 10
    _, res = tracefunc(s.long_loop, 30)[0]
    hits, values = res["total += i"]
    assert hits == 30
    assert values["i"] == [("int", str(i)) for i in range(10)]


def test_values_are_shown_without_running_program_code() -> None:
    before = s.Loud.calls
    _, res = tracefunc(s.uses_loud)[0]
    assert s.Loud.calls == before
    (type_name, text), = res["return thing"][1]["thing"]
    assert type_name == "Loud" and text.startswith("<Loud #")


def test_library_code_is_not_traced() -> None:
    view = tf_module.LineView(s.uses_library)
    import blocktrace

    with blocktrace.trace(view, include=[s.__file__]) as vm:
        s.uses_library(5)
    # only the target file was in scope: json's code never reached the tracer
    assert all(code_id in view._tables for code_id in view._tables)
    assert all(t is None or t.code.co_filename == s.__file__ for t in view._tables.values())
    assert vm.gas_used < 200
    _, res = view.results()[0]
    assert res["return len(text)"][1]["text"] == [("str", "'[0, 1, 2, 3, 4]'")]


def test_program_result_is_unchanged() -> None:
    # the traced function computes the same thing with and without tracing
    assert s.wrapper(3) == [1, 2, 3, 11]
    tracefunc(s.wrapper, 3, target_func=s.target)
    assert s.wrapper(3) == [1, 2, 3, 11]


def test_function_without_source_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="source"):
        tracefunc(len, [1])


def test_exported_from_the_package() -> None:
    import blocktrace

    assert blocktrace.tracefunc is tracefunc
    assert blocktrace.TraceResults is TraceResults


def test_a_lambda_does_not_count_its_statement_again() -> None:
    _, res = tracefunc(s.sort_desc, [1, 3, 2])[0]
    assert res["ordered = sorted(values, key=lambda v: -v)"][0] == 1
    assert res["return ordered"] == (1, {"ordered": [("list", "[3, 2, 1]")]})


def test_long_values_are_cut_as_tracefunc_cut_them() -> None:
    # tracefunc 0.0.7 showed repr(value) cut to 47 characters and "...": so do
    # we for builtin containers however long or deep, and for long strings,
    # bytes and big numbers (objects of the program's classes stay <Type #n>).
    def shapes() -> int:
        nums = list(range(100))
        deep = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
        loop: list[object] = [1]
        loop.append(loop)
        table = {"k": [1, 2, 3] * 20, "z": None}
        quoted = "it's " * 30
        both = "say \"it's\" " * 10
        big = 2**300
        return len(nums) + len(deep) + len(loop) + len(table) + len(quoted) + len(both) + big % 7

    values = {
        "nums": list(range(100)),
        "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        "table": {"k": [1, 2, 3] * 20, "z": None},
        "quoted": "it's " * 30,
        "both": "say \"it's\" " * 10,
        "big": 2**300,
    }
    loop: list[object] = [1]
    loop.append(loop)
    values["loop"] = loop
    _, trace = tracefunc(shapes, target_func=shapes)[0]
    seen = {name: samples[0][1] for _, (_, got) in trace.items() for name, samples in got.items()}
    for name, value in values.items():
        text = repr(value)
        want = text if len(text) <= 50 else text[:47] + "..."
        assert seen[name] == want, name
