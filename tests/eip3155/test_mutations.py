"""Single mutations of a real trace are found at the exact step, then resynchronised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blocktrace.eip3155 import diff_files, read_all

from .helpers import CLIENTS, lines_of, trace, write_lines

TEST = "negative_refund"


def _step_line_numbers(client: str) -> list[int]:
    """1-based file line of each normalised step (mutations target real op lines)."""
    steps, _ = read_all(str(trace(client, TEST)))
    return [step.lineno for step in steps]


@pytest.mark.parametrize("client", CLIENTS)
def test_one_stack_value(client: str, tmp_path: Path) -> None:
    lines = lines_of(client, TEST)
    numbers = _step_line_numbers(client)
    step = next(i for i, n in enumerate(numbers) if i > 150 and '"stack":["' in lines[n - 1])
    obj = json.loads(lines[numbers[step] - 1])
    obj["stack"][-1] = hex(int(obj["stack"][-1], 16) ^ 1)
    lines[numbers[step] - 1] = json.dumps(obj)
    mutated = write_lines(tmp_path / "m.jsonl", lines)
    other = "besu" if client != "besu" else "geth"
    report = diff_files(str(trace(other, TEST)), str(mutated))
    first = report.steps.first
    assert first is not None and first.step == step
    assert first.fields == ["stack"]
    assert first.b is not None and first.b.lineno == numbers[step]
    assert report.steps.hunk_count == 1
    assert report.steps.differing_a == report.steps.differing_b == 1
    assert report.steps.common == len(numbers) - 1


@pytest.mark.parametrize("client", ["geth", "revm", "nethermind"])
def test_one_gas_value(client: str, tmp_path: Path) -> None:
    lines = lines_of(client, TEST)
    numbers = _step_line_numbers(client)
    step = 321
    obj = json.loads(lines[numbers[step] - 1])
    obj["gas"] = hex(int(obj["gas"], 16) + 1)
    lines[numbers[step] - 1] = json.dumps(obj)
    report = diff_files(str(trace(client, TEST)), str(write_lines(tmp_path / "m.jsonl", lines)))
    first = report.steps.first
    assert first is not None
    assert (first.step, first.fields) == (step, ["gas"])
    assert first.a is not None and first.b is not None
    assert first.a.lineno == first.b.lineno == numbers[step]
    assert report.steps.last_common is not None
    assert report.steps.last_common[0].index == step - 1


@pytest.mark.parametrize("client", ["geth", "evmone", "revm"])
def test_a_dropped_op_line(client: str, tmp_path: Path) -> None:
    lines = lines_of(client, TEST)
    numbers = _step_line_numbers(client)
    step = 200
    del lines[numbers[step] - 1]
    report = diff_files(str(trace(client, TEST)), str(write_lines(tmp_path / "m.jsonl", lines)))
    first = report.steps.first
    assert first is not None and first.step == step
    assert report.steps.hunk_count == 1
    hunk = report.steps.hunks[0]
    assert (hunk.a_start, hunk.a_count, hunk.b_start, hunk.b_count) == (step, 1, step, 0)
    assert hunk.a_steps[0].lineno == numbers[step]
    assert report.steps.steps_b == len(numbers) - 1


@pytest.mark.parametrize("client", ["geth", "besu", "nimbus"])
def test_an_extra_op_line(client: str, tmp_path: Path) -> None:
    lines = lines_of(client, TEST)
    numbers = _step_line_numbers(client)
    step = 100
    lines.insert(numbers[step] - 1, lines[numbers[10] - 1])  # a real op line from elsewhere
    report = diff_files(str(trace(client, TEST)), str(write_lines(tmp_path / "m.jsonl", lines)))
    first = report.steps.first
    assert first is not None and first.step == step
    assert first.b is not None and first.b.lineno == numbers[step]
    hunk = report.steps.hunks[0]
    assert (hunk.a_count, hunk.b_count) == (0, 1)
    assert report.steps.hunk_count == 1
    assert report.steps.steps_b == len(numbers) + 1


def test_several_divergences_make_several_hunks(tmp_path: Path) -> None:
    lines = lines_of("geth", TEST)
    numbers = _step_line_numbers("geth")
    for step in (50, 150, 250, 350):
        obj = json.loads(lines[numbers[step] - 1])
        obj["pc"] += 1
        lines[numbers[step] - 1] = json.dumps(obj)
    mutated = str(write_lines(tmp_path / "m.jsonl", lines))
    report = diff_files(str(trace("revm", TEST)), mutated, max_hunks=2)
    assert report.steps.hunk_count == 4
    assert [h.a_start for h in report.steps.hunks] == [50, 150]
    assert report.steps.differing_a == report.steps.differing_b == 4
    assert not report.equal


def test_ignore_and_fields_change_what_is_compared(tmp_path: Path) -> None:
    lines = lines_of("geth", TEST)
    numbers = _step_line_numbers("geth")
    obj = json.loads(lines[numbers[30] - 1])
    obj["gas"] = hex(int(obj["gas"], 16) + 7)
    lines[numbers[30] - 1] = json.dumps(obj)
    mutated = str(write_lines(tmp_path / "m.jsonl", lines))
    original = str(trace("geth", TEST))
    assert not diff_files(original, mutated).equal
    assert diff_files(original, mutated, ignore=["gas"]).equal
    assert diff_files(original, mutated, fields=["pc", "op"]).equal
    # gasCost is left out by default (clients disagree on it), compared on request
    assert diff_files(str(trace("besu", "statetest1")), str(trace("geth", "statetest1"))).equal
    report = diff_files(str(trace("besu", "statetest1")), str(trace("geth", "statetest1")),
                        fields=["gasCost"])
    assert report.steps.first is not None and report.steps.first.fields == ["gasCost"]


def test_stack_top_compares_only_the_top_items(tmp_path: Path) -> None:
    lines = lines_of("geth", TEST)
    numbers = _step_line_numbers("geth")
    step = next(i for i, n in enumerate(numbers) if lines[n - 1].count('"0x') > 6)
    obj = json.loads(lines[numbers[step] - 1])
    assert len(obj["stack"]) >= 3
    obj["stack"][0] = "0x1234"  # the bottom of the stack
    lines[numbers[step] - 1] = json.dumps(obj)
    mutated = str(write_lines(tmp_path / "m.jsonl", lines))
    original = str(trace("geth", TEST))
    assert not diff_files(original, mutated).equal
    assert diff_files(original, mutated, stack_top=2).equal


def test_a_trace_that_ends_early(tmp_path: Path) -> None:
    lines = lines_of("besu", TEST)[:100]
    report = diff_files(str(trace("besu", TEST)), str(write_lines(tmp_path / "m.jsonl", lines)))
    first = report.steps.first
    assert first is not None and first.step == 100 and first.b is None
    assert report.steps.differing_a == 311 and report.steps.differing_b == 0
    assert any("no summary" in note for note in report.summary.notes)


@pytest.mark.parametrize("window", [16, 2000])
def test_gas_shifted_from_one_step_on_is_one_hunk_to_the_end(tmp_path: Path, window: int) -> None:
    lines = lines_of("geth", TEST)
    numbers = _step_line_numbers("geth")
    for n in range(numbers[100] - 1, len(lines)):  # every op line from step 100 on
        obj = json.loads(lines[n])
        if "pc" in obj:
            obj["gas"] = hex(int(obj["gas"], 16) - 3)
            lines[n] = json.dumps(obj)
    mutated = str(write_lines(tmp_path / "m.jsonl", lines))
    report = diff_files(str(trace("geth", TEST)), mutated, window=window)
    assert report.steps.hunk_count == 1
    assert report.steps.first is not None and report.steps.first.step == 100
    assert report.steps.differing_a == report.steps.differing_b == len(numbers) - 100
    overflowed = any("look-ahead window" in note for note in report.notes)
    assert overflowed == (window == 16)
    assert diff_files(str(trace("geth", TEST)), mutated, ignore=["gas"], window=window).equal
