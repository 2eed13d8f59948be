"""docs/QUERY.md's twenty questions, each run against real traces, with what the
answers must say checked where the traces make it certain."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from blocktrace.query import TABLES, connect

from .helpers import CLIENTS, ROOT, Runner, client_trace, record

DOC = (ROOT / "docs" / "QUERY.md").read_text()
QUESTIONS = re.findall(r"### (\d+)\. (.*?)\n\n```sql\n(.*?)```", DOC, re.S)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory, blocktrace_cli: Runner,
         programs: Path) -> list[str]:
    where = tmp_path_factory.mktemp("ours")
    fib = ROOT / "examples" / "fib.py"
    return [str(p) for p in (
        record(blocktrace_cli, where / "queried.jsonl", programs / "queried.py",
               "--locals", "changes", "--clock"),
        record(blocktrace_cli, where / "reference.jsonl", fib, args=("12",)),
        record(blocktrace_cli, where / "fib11.jsonl", fib, args=("11",)),
        record(blocktrace_cli, where / "fib13.jsonl", fib, args=("13",)),
    )]


@pytest.fixture(scope="module")
def answers(ours: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BLOCKTRACE_CACHE", str(tmp_path_factory.mktemp("qcache")))
        mine = connect(ours)
        theirs = connect([str(client_trace(c, "negative_refund")) for c in CLIENTS])
    out: dict[str, Any] = {}
    for number, _, sql in QUESTIONS:
        con = theirs if "EIP-3155" in sql.splitlines()[0] else mine
        result = con.execute(sql)
        names = [d[0] for d in result.description]
        out[number] = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    return out


def test_there_are_twenty_and_each_is_one_read_only_statement() -> None:
    from blocktrace.cli.query import _check_statement

    assert [int(n) for n, _, _ in QUESTIONS] == list(range(1, 21))
    for _, _, sql in QUESTIONS:
        _check_statement(sql)  # what `blocktrace query` accepts


def test_every_question_has_an_answer(answers: dict[str, Any]) -> None:
    assert all(answers[str(n)] for n in range(1, 21)), [n for n, a in answers.items() if not a]


def test_the_answers_say_what_the_programs_did(answers: dict[str, Any]) -> None:
    top = answers["1"][0]
    assert top["file"].endswith("fib.py") and top["line"] == 7  # fib's body
    deepest = {r["function"]: r["deepest"] for r in answers["3"]}
    assert deepest["fib"] == 12 and deepest["fact"] == 6  # fib(12) of fib.py 13; fact(6)
    edges = {(r["caller"], r["callee"]): r["times"] for r in answers["5"]}
    assert edges[("fact", "fact")] == 5 and edges[("main", "fails")] == 5
    assert [r["value"] for r in answers["6"]] == ["720", "120", "24", "6", "2", "1"]
    assert [r["value"] for r in answers["7"]] == ["0", "1", "3", "2", "1", "721", "735"]
    (first,) = answers["8"]
    assert first["first_step"] == next(r["step"] for r in answers["7"] if r["value"] == "721")
    assert {(r["kind"], r["type"]) for r in answers["9"]} >= {
        ("raise", "ValueError"), ("handled", "ValueError"), ("raise", "ZeroDivisionError")}
    assert answers["10"] == [{"function": "fails", "exception": "ValueError", "times": 2}]
    gens = {r["function"]: (r["resumed"], r["yielded"]) for r in answers["12"]}
    assert gens["squares"] == (4, 4)
    assert {r["function"] for r in answers["13"]} == {"<module>", "main", "fails", "fact",
                                                     "squares"}
    assert all(r["verified"] and r["pass"] for r in answers["15"])
    parted = {r["run"].rsplit("-", 1)[0]: r["first_divergence"] for r in answers["16"]}
    assert set(parted) == {"fib11", "fib13"} and 0 < parted["fib11"] < parted["fib13"]
    assert {r["function"] for r in answers["17"]} >= {"fib"}


def test_the_client_answers(answers: dict[str, Any]) -> None:
    assert any(r["opName"] == "SSTORE" for r in answers["18"])
    assert len({r["traces"] for r in answers["19"]}) == 1  # every client at every step
    fields = {Path(r["path"]).parent.name: r for r in answers["20"]}
    assert set(fields) == set(CLIENTS)
    assert fields["nethermind"]["with_refund"] == 0 and fields["nethermind"]["with_opName"] == 0
    assert fields["geth"]["with_refund"] == fields["geth"]["steps"]
    assert fields["evmone"]["lowest_refund"] == -4800


def test_the_tables_are_documented() -> None:
    for table, columns in TABLES.items():
        assert f"### `{table}`" in DOC
        for name, kind, _ in columns:
            assert f"| `{name}` | {kind} |" in DOC, (table, name)
