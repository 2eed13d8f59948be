"""The blocktrace 0.0.16 API (``blocktrace.blocktrace.BlockTrace``) on the engine."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace import blocktrace
from blocktrace.blocktrace import ChainFailure
from blocktrace.format.versions import FORMAT_VERSION
from blocktrace.views.blocks import values as blocks_values

from . import samples_blocktrace as s

FIB_LINE = s.fib.__code__.co_firstlineno
BLOCK_KEYS = [
    "DateTime", "Function", "Globals", "Builtins", "Locals", "Line Text", "Event", "Arg",
    "Instruction No", "Opcode", "Module", "Path", "Line No", "Hash",
]


def run_readme_example() -> blocktrace.BlockTrace:
    example = blocktrace.BlockTrace(
        "Test", _globals="changes", _locals="on", _builtins="changes"
    )
    example.start()
    s.fib(3)
    example.stop()
    return example


def test_readme_example_block_shapes_and_values() -> None:
    example = run_readme_example()
    blocks = example.block
    assert list(blocks) == list(range(12))
    assert list(blocks[0]) == ["DateTime", "Globals", "Builtins", "Locals", "sample", "Hash"]
    assert blocks[0]["sample"] == "Test"
    assert (blocks[0]["Globals"], blocks[0]["Builtins"], blocks[0]["Locals"]) == ({}, [], {})
    for n in range(12):
        assert re.fullmatch(r"\d\d/\d\d/\d{4}, \d\d:\d\d:\d\d\.\d{6}", blocks[n]["DateTime"])
    for n in range(1, 12):
        assert list(blocks[n]) == BLOCK_KEYS
        assert blocks[n]["Function"] == "fib"
        assert blocks[n]["Module"] == "samples_blocktrace.py"
        assert blocks[n]["Path"] == str(Path(s.__file__).parent)
    events = [blocks[n]["Event"] for n in range(1, 12)]
    assert events == ["call"] + ["line"] * 9 + ["return"]
    lines = [blocks[n]["Line No"] - FIB_LINE for n in range(1, 12)]
    assert lines == [0, 1, 2, 3, 4, 2, 3, 4, 2, 5, 5]
    assert blocks[1]["Line Text"] == "def fib(n: int) -> int:"
    assert blocks[2]["Line Text"] == "i, f1, f2 = 1, 1, 1"
    assert blocks[11]["Line Text"] == "return f1"
    locals_seen = [blocks[n]["Locals"] for n in range(1, 12)]
    assert locals_seen[0] == {"n": 3}
    assert locals_seen[2] == {"n": 3, "i": 1, "f1": 1, "f2": 1}
    assert locals_seen[10] == {"n": 3, "i": 3, "f1": 2, "f2": 3}
    assert blocks[11]["Arg"] == 2
    assert blocks[11]["Opcode"] == "RETURN_VALUE"
    assert all(blocks[n]["Arg"] is None for n in range(1, 11))
    # "changes": everything is new in block 1, nothing changes afterwards
    added = blocks[1]["Globals"]["dictionary_item_added"]
    assert added["root['SECRET']"] == "s3cr3t"
    assert added["root['fib']"].startswith("<function #")  # rendered, not dropped
    assert len(blocks[1]["Builtins"]["iterable_item_added"]) == len(vars(builtins))
    assert all(blocks[n]["Globals"] == {} and blocks[n]["Builtins"] == {} for n in range(2, 12))


def test_hashes_chain_block_to_block() -> None:
    blocks = run_readme_example().block
    first = dict(blocks[0])
    stored = first.pop("Hash")
    assert hashlib.sha1(msgspec.json.encode(first)).hexdigest() == stored
    for n in range(1, 12):
        block = dict(blocks[n])
        stored = block["Hash"]
        block["Hash"] = blocks[n - 1]["Hash"]
        assert hashlib.sha1(msgspec.json.encode(block)).hexdigest() == stored


@pytest.mark.parametrize("options", [{}, {"_new_hash": False}, {"_hash": "sha256"},
                                     {"_globals": "off"}, {"_locals": "off"}])
def test_hash_attribute_is_the_last_blocks_hash_object(options: dict[str, Any]) -> None:
    example = blocktrace.BlockTrace("Test", **options)
    assert example.hash.hexdigest() == example.block[0]["Hash"]
    example.start()
    s.fib(3)
    example.stop()
    last = example.block[example.iter]
    assert example.hash.name == options.get("_hash", "sha1")
    assert example.hash.hexdigest() == last["Hash"]
    if not options:  # a fresh hash object per block: the last block's bytes alone
        block = dict(last)
        block["Hash"] = example.block[example.iter - 1]["Hash"]
        expected = hashlib.sha1(msgspec.json.encode(block))
        assert example.hash.digest() == expected.digest()
    example.hash = replacement = hashlib.sha1(b"set by the user")
    assert example.hash is replacement


def test_verifychain_returns_a_real_result() -> None:
    example = run_readme_example()
    assert example.verifychain(example.block) is True
    assert example.verifychain() is True
    tampered = {n: dict(b) for n, b in example.block.items()}
    tampered[5]["Locals"] = {"n": 30}
    result = example.verifychain(tampered)
    assert not result and isinstance(result, ChainFailure)
    assert result.block == 5 and "hash mismatch" in result.reason
    assert example.verifychain(example.block) is True  # the original is untouched


def test_verifychain_checks_block_zero() -> None:
    example = run_readme_example()
    tampered = {n: dict(b) for n, b in example.block.items()}
    tampered[0]["sample"] = "Forged"
    result = example.verifychain(tampered)
    assert isinstance(result, ChainFailure) and result.block == 0


def test_verifychain_finds_a_dropped_block() -> None:
    example = run_readme_example()
    tampered = {n: b for n, b in example.block.items() if n != 4}
    result = example.verifychain(tampered)
    assert isinstance(result, ChainFailure) and result.block == 4


def test_save_writes_a_trace_that_blocktrace_verify_accepts(tmp_path: Path) -> None:
    example = run_readme_example()
    path = tmp_path / "fib.jsonl"
    head = example.save(path)
    header = msgspec.json.decode(path.read_bytes().split(b"\n", 1)[0])
    assert header["genesis"] == "Test"
    proc = subprocess.run(
        [sys.executable, "-m", "blocktrace", "verify", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert head in proc.stdout
    assert b'"name":"fib"' in path.read_bytes()


def test_exceptions_do_not_reach_the_program() -> None:
    example = blocktrace.BlockTrace("exc", _globals="off", _builtins="off")
    example.start()
    result = s.safe_divide(1, 0)
    example.stop()
    assert result is None
    blocks = [example.block[n] for n in range(1, len(example.block))]
    exceptions = [b for b in blocks if b["Event"] == "exception"]
    assert exceptions[0]["Arg"] == ["ZeroDivisionError", "division by zero"]
    assert exceptions[0]["Function"] == "divide"
    unwind = [b for b in blocks if b["Event"] == "return" and b["Function"] == "divide"]
    assert unwind[0]["Arg"] is None
    assert example.verifychain() is True


def test_unusual_values_are_rendered_not_repr_ed() -> None:
    example = blocktrace.BlockTrace("odd", _globals="off")
    example.start()
    value = s.odd_return()
    example.stop()
    assert isinstance(value, s.Opaque)
    ret = next(b for b in example.block.values() if b.get("Event") == "return")
    assert ret["Arg"].startswith("<Opaque #")
    assert example.verifychain() is True


@pytest.mark.parametrize("algorithm", ["sha256", "md5", "sha3_256", "blake2b", "shake_128"])
def test_any_guaranteed_hash_algorithm(algorithm: str) -> None:
    example = blocktrace.BlockTrace("alg", _hash=algorithm, _globals="off")
    example.start()
    s.fib(2)
    example.stop()
    h = hashlib.new(algorithm)
    expected_len = 40 if algorithm.startswith("shake") else h.digest_size * 2
    assert all(len(b["Hash"]) == expected_len for b in example.block.values())
    assert example.verifychain() is True


def test_unknown_hash_algorithm_is_refused() -> None:
    with pytest.raises(LookupError):
        blocktrace.BlockTrace("x", _hash="sha0")


def test_running_hash_mode_verifies() -> None:
    example = blocktrace.BlockTrace("run", _new_hash=False, _globals="off")
    example.start()
    s.fib(3)
    example.stop()
    assert example.verifychain() is True
    tampered = {n: dict(b) for n, b in example.block.items()}
    tampered[3]["Line No"] = 1
    assert not example.verifychain(tampered)


def test_each_block_hook_and_a_failing_hook() -> None:
    seen: list[tuple[int, str]] = []

    def hook(n: int, block: dict[str, Any]) -> None:
        seen.append((n, block["Event"]))
        if n == 3:
            raise ValueError("hook trouble")

    example = blocktrace.BlockTrace("hook", _globals="off", _each_block_hook=hook)
    example.start()
    assert s.fib(3) == 2
    example.stop()
    assert seen == [(n, example.block[n]["Event"]) for n in range(1, len(example.block))]
    assert [type(e) for e in example.hook_errors] == [ValueError]


def test_trace_options_lines_opcodes_and_path_elements() -> None:
    opcodes = blocktrace.BlockTrace("op", _trace_lines=False, _trace_opcodes=True,
                                    _globals="off", _locals="off", _pathelements=1)
    opcodes.start()
    s.fib(2)
    opcodes.stop()
    events = {b.get("Event") for b in opcodes.block.values()}
    assert "line" not in events and "opcode" in events
    assert "Locals" not in opcodes.block[1] and "Globals" not in opcodes.block[1]
    assert opcodes.block[1]["Path"] == "views"
    assert opcodes.verifychain() is True


def test_inline_btc_commands_hide_values(tmp_path: Path) -> None:
    example = blocktrace.BlockTrace("btc", _globals="on", _locals="on")
    example.start()
    assert s.hidden(7) == 14
    example.stop()
    blocks = list(example.block.values())[1:]
    texts = [b["Line Text"] for b in blocks if b["Event"] == "line"]
    assert "[OBFUSCATED]" in texts
    assert not any("len(password)" in t for t in texts)
    assert any(b["Locals"].get("password") == "[OBFUSCATED]" for b in blocks)
    assert all("s3cr3t7" not in str(b["Locals"]) for b in blocks)
    # nor does it leak into the standard trace
    path = tmp_path / "btc.jsonl"
    example.save(path)
    assert b"s3cr3t7" not in path.read_bytes()
    assert b'"password":"[OBFUSCATED]"' in path.read_bytes()


@pytest.mark.parametrize("options", [{}, {"_builtins": "on"}, {"_trace_opcodes": True}])
def test_ignorelocal_hides_a_variable_that_already_holds_its_secret(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    # The comment comes after the assignment: 0.0.16 hid the value from the block of
    # the next line on, the first one included (the command is read before the
    # values), so that block must not show it, nor the saved trace.
    example = blocktrace.BlockTrace("late", **options)
    example.start()
    try:
        assert s.hidden_late(7) == 14
    finally:
        example.stop()
    line = s.hidden_late.__code__.co_firstlineno + 3  # total = len(secret) + n
    blocks = [b for b in list(example.block.values())[1:] if b["Function"] == "hidden_late"]
    assert [b["Line No"] for b in blocks if b["Event"] == "line"][1] == line
    after = [b for b in blocks if b["Line No"] >= line]
    assert after and all(b["Locals"].get("secret") == "[OBFUSCATED]" for b in after)
    assert all("s3cr3t7" not in str(b["Locals"]) for b in after)
    path = tmp_path / "late.jsonl"
    example.save(path)
    assert b"s3cr3t7" not in path.read_bytes()
    assert b'"secret":"[OBFUSCATED]"' in path.read_bytes()


def _settrace_events(fn: Any) -> list[tuple[str, str, int, int, str]]:
    """(event, function, line, offset, opname) of what ``sys.settrace`` -- 0.0.16's
    engine -- reports of ``fn()`` (its own code only)."""
    import dis

    seen: list[tuple[str, str, int, int, str]] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code.co_filename == s.__file__:
            op = dis.opname[code.co_code[frame.f_lasti]]
            seen.append((event, code.co_name, frame.f_lineno, frame.f_lasti, op))
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return seen


def test_exception_and_return_blocks_are_the_events_settrace_reported() -> None:
    # 0.0.16 made a block per sys.settrace event: an "exception" in each frame the
    # exception passes through, none for a re-raise (a bare raise, the end of a
    # finally, the compiler's cleanup), and a frame it leaves "returns" from the
    # line and instruction it was raised or re-raised at.
    expected = _settrace_events(s.raises_on)
    example = blocktrace.BlockTrace("exc", _globals="off", _locals="off")
    example.start()
    try:
        assert s.raises_on() == "division by zero"
    finally:
        example.stop()
    got = [(b["Event"], b["Function"], b["Line No"], b["Instruction No"], b["Opcode"])
           for b in list(example.block.values())[1:]]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert ([g for g in got if g[0] == "return"]
            == [e for e in expected if e[0] == "return"])


def test_a_resumed_generator_makes_the_blocks_settrace_reported() -> None:
    # settrace's "call" of a resumed generator is at the line it goes on at (its
    # yield's), and no "line" follows for that same line.
    expected = _settrace_events(s.takes_evens)
    example = blocktrace.BlockTrace("gen", _globals="off", _locals="off")
    example.start()
    try:
        assert s.takes_evens() == 12
    finally:
        example.stop()
    got = [(b["Event"], b["Function"], b["Line No"]) for b in list(example.block.values())[1:]]
    assert got == [e[:3] for e in expected]


def test_loop_on_one_line_reports_each_iteration() -> None:
    example = blocktrace.BlockTrace("loop", _globals="off")
    example.start()
    s.counter(3)
    example.stop()
    for_line = s.counter.__code__.co_firstlineno + 2
    hits = [b for b in example.block.values() if b.get("Line No") == for_line
            and b["Event"] == "line"]
    assert len(hits) >= 4  # entry plus one per iteration (settrace semantics)


def test_saved_trace_is_the_whole_run_instruction_by_instruction(tmp_path: Path) -> None:
    example = blocktrace.BlockTrace("whole", _globals="off", _locals="on")
    example.start()
    s.fib(4)
    s.safe_divide(1, 0)
    example.stop()
    path = tmp_path / "run.jsonl"
    example.save(path)
    lines = [msgspec.json.decode(line) for line in path.read_bytes().splitlines()]
    header, events, summary = lines[0], lines[1:-1], lines[-1]
    assert header["blocktrace"] == FORMAT_VERSION and summary["pass"] is True
    ops = [e for e in events if "op" in e and "event" not in e]
    # one op line per instruction, gas falling by exactly one each time
    assert len(ops) == int(summary["gasUsed"], 16)
    gases = [int(e["gas"], 16) for e in ops]
    assert all(a - b == 1 for a, b in itertools.pairwise(gases))
    fib_code = next(e["code"] for e in events if e.get("event") == "call"
                    and e.get("name") == "fib")
    fib_ops = [e for e in ops if e["code"] == fib_code]
    assert {e["depth"] for e in fib_ops} == {2}  # the test's own frame is depth 1
    with_locals = [e["locals"] for e in fib_ops if "locals" in e]
    assert with_locals[0] == {"n": 4}
    assert {"n": 4, "i": 1, "f1": 1, "f2": 1} in with_locals
    assert any(e.get("event") == "raise" and e["error"].startswith("ZeroDivisionError")
               for e in events)
    returns = [e for e in events if e.get("event") == "return" and e["code"] == fib_code]
    assert returns[0]["value"] == 3
    # saving again writes the same bytes
    again = tmp_path / "again.jsonl"
    example.save(again)
    assert again.read_bytes() == path.read_bytes()


def test_values_follow_in_place_mutation() -> None:
    example = blocktrace.BlockTrace("mut", _globals="off")
    example.start()
    s.mutate()
    example.stop()
    seen = [b["Locals"].get("items") for b in example.block.values()
            if b.get("Event") == "line" and b["Function"] == "mutate"]
    # 1 and 1.0 and True compare equal: each must still be shown as what it is
    assert seen == [None, [1, 2], [1.0, 2], [1.0, 2, 3], [1.0, True, 3]]
    assert msgspec.json.encode(seen[-1]) == b"[1.0,true,3]"


def test_long_sequences_follow_mutation_too() -> None:
    example = blocktrace.BlockTrace("mut", _globals="off")
    example.start()
    s.mutate_long()
    example.stop()
    seen = [b["Locals"].get("items") for b in example.block.values()
            if b.get("Event") == "line" and b["Function"] == "mutate_long"]
    assert seen[1].startswith("[0, 1, 2, 3, 4, 5, 6,") and seen[1].endswith("…30 more]")
    assert seen[2].startswith("[0, 1, 2, 3, 4, -5, 6,") and seen[2].endswith("…30 more]")
    assert seen[3].endswith("…31 more]")


@pytest.mark.parametrize("mode", ["on", "changes"])
def test_globals_follow_rebinding_and_mutation(mode: str) -> None:
    s.COUNTER = 0
    s.SEEN.clear()
    example = blocktrace.BlockTrace("glob", _globals=mode, _locals="off")
    example.start()
    s.bump()
    s.bump()
    example.stop()
    blocks = [b for b in example.block.values() if b.get("Function") == "bump"]
    if mode == "on":
        shown = [(b["Globals"]["COUNTER"], b["Globals"]["SEEN"]) for b in blocks]
        assert (1, [1]) in shown and (2, [1, 2]) in shown
        assert shown[-1] == (2, [1, 2])
    else:
        changed = [b["Globals"].get("values_changed", {}) for b in blocks]
        counters = [c["root['COUNTER']"]["new_value"] for c in changed
                    if "root['COUNTER']" in c]
        seens = [c["root['SEEN']"]["new_value"] for c in changed if "root['SEEN']" in c]
        assert counters == [1, 2] and seens == [[1], [1, 2]]
    assert example.verifychain() is True


# -- watching only the instructions that can make a block --------------------------


def _gen(n: int) -> Any:
    for i in range(n):
        x = i * 2; yield x  # noqa: E702
    yield -1


def _workload(n: int) -> int:
    total = 0
    k = 0
    while k < n: k += 1  # noqa: E701
    for j in range(n): k += 1 if j % 2 else 2  # noqa: E701
    for v in _gen(n):
        try:
            total += 10 // (v - 2)
        except ZeroDivisionError:
            total -= 1
        finally:
            total += 1
    squares = [j * j for j in range(n) if j % 2]
    match total:
        case 0:
            total = 1
        case _:
            total += sum(squares)
    with contextlib.nullcontext(3) as three:
        total += three
    return total + k


def _shown(example: blocktrace.BlockTrace, event_kinds: set[str]) -> list[tuple[Any, ...]]:
    keys = ["Function", "Event", "Arg", "Line No", "Line Text", "Instruction No", "Opcode",
            "Locals"]
    # (locals in name order: on 3.12 a frame's f_locals is a dict kept up to date
    # in place, so its order depends on when it was last read)
    return [tuple(repr(sorted(v.items()) if isinstance(v := b.get(k), dict) else v)
                  for k in keys)
            for n, b in sorted(example.block.items()) if n and b["Event"] in event_kinds]


def test_line_blocks_are_those_of_a_run_watching_every_instruction() -> None:
    lines_only = blocktrace.BlockTrace("l", _globals="off", _locals="on")
    lines_only.start()
    first = _workload(5)
    lines_only.stop()
    both = blocktrace.BlockTrace("b", _globals="off", _locals="on", _trace_opcodes=True)
    both.start()
    second = _workload(5)
    both.stop()
    assert first == second
    kinds = {"call", "line", "return", "exception"}
    shown = _shown(lines_only, kinds)
    assert shown == _shown(both, kinds)
    assert len(both.block) > 2 * len(lines_only.block)  # the opcode blocks
    assert sum(1 for b in shown if "'line'" in b[1]) > 40
    assert lines_only.verifychain() is True


def test_turned_off_sites_are_restarted_at_stop() -> None:
    example = blocktrace.BlockTrace("off", _globals="off", _locals="off")
    example.start()
    s.fib(6)
    example.stop()
    # a fresh tool after the run sees every instruction of fib again
    mon = sys.monitoring
    tool = next(t for t in range(6) if mon.get_tool(t) is None)
    counts = [0]

    def on_instruction(code: Any, offset: int) -> None:
        if code is s.fib.__code__:
            counts[0] += 1

    mon.use_tool_id(tool, "test")
    try:
        mon.register_callback(tool, mon.events.INSTRUCTION, on_instruction)
        mon.set_local_events(tool, s.fib.__code__, mon.events.INSTRUCTION)
        s.fib(6)
        s.fib(6)
    finally:
        mon.set_local_events(tool, s.fib.__code__, 0)
        mon.register_callback(tool, mon.events.INSTRUCTION, None)
        mon.free_tool_id(tool)
    assert counts[0] > 0 and counts[0] % 2 == 0
    # and a second BlockTrace run of the same code makes the same blocks
    again = blocktrace.BlockTrace("off", _globals="off", _locals="off")
    again.start()
    s.fib(6)
    again.stop()
    assert _shown(again, {"call", "line", "return"}) == _shown(example, {"call", "line", "return"})


def test_saved_trace_holds_the_watched_instructions(tmp_path: Path) -> None:
    def saved(opcodes: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        example = blocktrace.BlockTrace("w", _globals="off", _trace_opcodes=opcodes)
        example.start()
        _workload(4)
        example.stop()
        path = tmp_path / f"w{opcodes}.jsonl"
        example.save(path)
        proc = subprocess.run(
            [sys.executable, "-m", "blocktrace", "verify", str(path)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        lines = [msgspec.json.decode(line) for line in path.read_bytes().splitlines()]
        ops = [e for e in lines[1:-1] if "op" in e and "event" not in e]
        assert len(ops) == int(lines[-1]["gasUsed"], 16)
        gases = [int(e["gas"], 16) for e in ops]
        assert all(a - b == 1 for a, b in itertools.pairwise(gases))
        return ops, lines[-1]

    every, _ = saved(True)
    watched, _ = saved(False)
    assert 0 < len(watched) < len(every)
    key = [(e["code"], e["pc"]) for e in watched]
    assert set(key) <= {(e["code"], e["pc"]) for e in every}


# -- what is cached or assembled from pieces must never show stale values -----------

GLOBALS_SOURCE = '''\
X = 1
ITEMS = [1, 2]
TABLE = {"a": 1}


def flip():
    global X, NEW
    X = True
    X = 1.0
    ITEMS.append(3)
    TABLE["b"] = 2
    setattr(sys.modules[__name__], "X", "via setattr")
    globals().update(X=5)
    NEW = 7
    del NEW
    return 0


import sys
'''


def _module_from(tmp_path: Path, name: str, source: str) -> Any:
    """A real module file, imported (so its functions are the user's own code)."""
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _flip_globals(tmp_path: Path, mode: str, name: str) -> list[dict[str, Any]]:
    module = _module_from(tmp_path, name, GLOBALS_SOURCE)
    try:
        example = blocktrace.BlockTrace("g", _globals=mode, _locals="on")
        example.start()
        module.flip()
        example.stop()
    finally:
        del sys.modules[name]
    assert example.verifychain() is True
    return [b for n, b in sorted(example.block.items())
            if n and b["Function"] == "flip" and b["Event"] in ("line", "return")]


# what flip()'s globals are at each of its line starts, then at its return:
# X (as JSON), ITEMS, TABLE, NEW
FLIP_STATES: list[tuple[bytes, list[int], dict[str, int], int | None]] = [
    (b"1", [1, 2], {"a": 1}, None),
    (b"true", [1, 2], {"a": 1}, None),
    (b"1.0", [1, 2], {"a": 1}, None),
    (b"1.0", [1, 2, 3], {"a": 1}, None),
    (b"1.0", [1, 2, 3], {"a": 1, "b": 2}, None),
    (b'"via setattr"', [1, 2, 3], {"a": 1, "b": 2}, None),
    (b"5", [1, 2, 3], {"a": 1, "b": 2}, None),
    (b"5", [1, 2, 3], {"a": 1, "b": 2}, 7),
    (b"5", [1, 2, 3], {"a": 1, "b": 2}, None),
    (b"5", [1, 2, 3], {"a": 1, "b": 2}, None),
]


@pytest.mark.parametrize("version_tag", [True, False], ids=["dict-version", "identities"])
def test_globals_on_follow_every_change_between_two_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_tag: bool
) -> None:
    if not version_tag:  # the identity check used where no dict watcher is had
        monkeypatch.setattr(blocks_values, "_watch", None)
    blocks = _flip_globals(tmp_path, "on", f"flipmod_on_{version_tag}")
    shown = [(msgspec.json.encode(b["Globals"]["X"]), b["Globals"]["ITEMS"],
              b["Globals"]["TABLE"], b["Globals"].get("NEW")) for b in blocks]
    assert shown == FLIP_STATES


@pytest.mark.parametrize("version_tag", [True, False], ids=["dict-version", "identities"])
def test_globals_changes_follow_every_change_between_two_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_tag: bool
) -> None:
    if not version_tag:
        monkeypatch.setattr(blocks_values, "_watch", None)
    blocks = _flip_globals(tmp_path, "changes", f"flipmod_changes_{version_tag}")
    changed = [b["Globals"].get("values_changed", {}) for b in blocks]
    xs = [msgspec.json.encode(c["root['X']"]["new_value"]) for c in changed
          if "root['X']" in c]
    assert xs == [b"true", b"1.0", b'"via setattr"', b"5"]
    items = [c["root['ITEMS']"]["new_value"] for c in changed if "root['ITEMS']" in c]
    tables = [c["root['TABLE']"]["new_value"] for c in changed if "root['TABLE']" in c]
    assert items == [[1, 2, 3]] and tables == [{"a": 1, "b": 2}]
    added = [b["Globals"].get("dictionary_item_added", {}) for b in blocks]
    removed = [b["Globals"].get("dictionary_item_removed", {}) for b in blocks]
    assert [a for a in added if a] == [{"root['NEW']": 7}]
    assert [r for r in removed if r] == [{"root['NEW']": 7}]


def test_globals_are_watched_where_the_c_helper_is_built() -> None:
    # a dict watcher (public C API since 3.12) tells when a module's globals
    # changed; without it globals are checked by identity, correct but slower
    if blocks_values.plain_values is None:
        pytest.skip("the C helper is not built, or BLOCKTRACE_PURE is set")
    assert blocks_values._watch is not None


LOCALS_SOURCE = '''\
def odd_locals():
    big = 2 ** 70
    nan = float("nan")
    inf = float("-inf")
    flag = True
    one = 1
    real = 1.0
    none = None
    text = 'say "hi" \\\\ ünïcode ☃'
    long_text = "x" * 300
    pair = (1, "two")
    return 0
'''


def test_blocks_hash_as_msgspec_encodes_them_in_every_configuration(tmp_path: Path) -> None:
    module = _module_from(tmp_path, "oddlocals", LOCALS_SOURCE)
    try:
        for g, loc, b in itertools.product(["on", "off", "changes"], repeat=3):
            for options in ({}, {"_new_hash": False}, {"_hash": "sha256"}):
                example = blocktrace.BlockTrace("odd", _globals=g, _locals=loc, _builtins=b,
                                                **options)
                example.start()
                module.odd_locals()
                s.fib(3)
                example.stop()
                assert example.verifychain() is True, (g, loc, b, options)
                if options:
                    continue
                blocks = example.block
                for n in range(1, len(blocks)):
                    block = dict(blocks[n])
                    stored = block["Hash"]
                    block["Hash"] = blocks[n - 1]["Hash"]
                    assert hashlib.sha1(msgspec.json.encode(block)).hexdigest() == stored
    finally:
        del sys.modules["oddlocals"]


def _odd_locals_traced(tmp_path: Path, name: str) -> blocktrace.BlockTrace:
    """A BlockTrace with locals on (globals off) of LOCALS_SOURCE's odd_locals()."""
    module = _module_from(tmp_path, name, LOCALS_SOURCE)
    try:
        example = blocktrace.BlockTrace("odd", _globals="off", _locals="on")
        example.start()
        module.odd_locals()
        example.stop()
    finally:
        del sys.modules[name]
    return example


def test_locals_show_as_before_on_the_fast_path_and_off_it(tmp_path: Path) -> None:
    example = _odd_locals_traced(tmp_path, "oddlocals2")
    last = next(b for b in example.block.values() if b.get("Event") == "return")["Locals"]
    assert last["big"] == str(2**70)  # beyond 64 bits: text, as the renderer shows it
    assert last["nan"] == "nan" and last["inf"] == "-inf"
    assert msgspec.json.encode([last["flag"], last["one"], last["real"], last["none"]]) == (
        b"[true,1,1.0,null]"
    )
    assert last["text"] == 'say "hi" \\ ünïcode ☃'
    assert last["long_text"] == "x" * 200 + "…"
    assert last["pair"] == [1, "two"]


def test_the_saved_trace_renders_what_the_block_shows_as_is(tmp_path: Path) -> None:
    example = _odd_locals_traced(tmp_path, "oddlocals3")
    path = tmp_path / "odd.jsonl"
    example.save(path)
    events = [msgspec.json.decode(line) for line in path.read_bytes().splitlines()[1:-1]]
    last = [e["locals"] for e in events if "locals" in e and e["depth"] == 2][-1]
    # one rendering pass, two views: the trace shows every value rendered
    assert last["text"] == repr('say "hi" \\ ünïcode ☃')
    assert last["one"] == 1 and last["real"] == 1.0 and last["flag"] is True
    assert last["big"] == str(2**70)


def test_every_watched_instruction_makes_its_opcode_block_with_locals_on() -> None:
    example = blocktrace.BlockTrace("op", _globals="on", _locals="on", _trace_opcodes=True)
    example.start()
    s.fib(3)
    example.stop()
    blocks = [example.block[n] for n in range(1, len(example.block))]
    for n, block in enumerate(blocks):
        if block["Event"] == "line":
            after = blocks[n + 1]
            assert after["Event"] == "opcode"
            assert (after["Instruction No"], after["Line No"], after["Locals"]) == (
                block["Instruction No"], block["Line No"], block["Locals"])
    assert example.verifychain() is True


def test_a_second_run_of_the_same_blocktrace_shows_fresh_values() -> None:
    example = blocktrace.BlockTrace("twice", _globals="on", _locals="on")
    for expected in (1, 2):
        s.COUNTER = 0
        example.start()
        s.bump()
        example.stop()
        ret = next(b for b in reversed(example.block.values()) if b.get("Event") == "return")
        assert ret["Globals"]["COUNTER"] == 1 and ret["Arg"] == 1
        assert ret["Globals"]["SEEN"][-expected:] == [1] * expected
    assert example.verifychain() is True


def _blocktrace_in_a_cycle() -> Any:
    """Run a BlockTrace, leave it in cycles, return a weak reference to its spool."""
    import weakref

    example = blocktrace.BlockTrace("cycle", _globals="off")
    example.start()
    s.fib(2)
    example.stop()
    example.me = example  # a cycle: only the garbage collector can free it
    try:
        raise ValueError("kept with its traceback")
    except ValueError as exc:
        example.hook_errors.append(exc)  # this frame holds `example`: another cycle
    return weakref.ref(example._spool)


def test_the_spool_is_closed_quietly_when_a_blocktrace_in_a_cycle_is_collected() -> None:
    import gc
    import warnings

    gc.collect()  # other tests' garbage (a file they left open) is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spool = _blocktrace_in_a_cycle()
        gc.collect()
        assert spool() is None
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_kept_rendering_follows_the_renderers_object_numbers() -> None:
    """An object at a dead object's address is numbered anew by the renderer;
    the view's renderings kept by id must not show the dead one's number."""
    from blocktrace import Renderer

    class Box:
        pass

    views = blocks_values.ValueViews()
    renderer = Renderer()
    addresses: set[int] = set()
    reused = 0
    for i in range(1, 41):
        box = Box()
        reused += id(box) in addresses
        addresses.add(id(box))
        shown = views.values({"box": box}, renderer.render, [])[0]
        assert shown["box"] == f"<{Box.__qualname__} #{i}>"
        del box, shown
    assert reused  # the allocator did give a dead box's address to a new one


THREADED = '''\
import sys, threading
from blocktrace import blocktrace

def f(n):
    total = n + 1
    return total

bt = blocktrace.BlockTrace("T", _globals="off")
bt.start()
t = threading.Thread(target=f, args=(5,))
t.start()
t.join()
f(6)
bt.stop()
for b in list(bt.block.values())[1:]:
    print(b["Event"], b["Function"], b["Line No"], sorted(b["Locals"]))
print(bt.verifychain())
'''


def test_a_thread_leaves_the_frame_that_called_start_without_blocks(tmp_path: Path) -> None:
    # The frame that called start() makes no blocks (0.0.16's sys.settrace never
    # saw it); a thread's frame at the same depth once took its place, so the
    # thread's f made a call block only and the module's lines after it made blocks.
    script = tmp_path / "threaded.py"
    script.write_text(THREADED)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=True)
    f_blocks = ["call f 4 ['n']", "line f 5 ['n']", "line f 6 ['n', 'total']",
                "return f 6 ['n', 'total']"]
    assert done.stdout.splitlines() == [*f_blocks, *f_blocks, "True"]
