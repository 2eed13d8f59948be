"""Every real client trace is read, and every pair agrees under the defaults."""

from __future__ import annotations

import itertools

import pytest

from blocktrace.eip3155 import diff_files, read_all

from .helpers import CLIENTS, TESTS, trace


@pytest.mark.parametrize("test", TESTS)
def test_every_pair_of_clients_compares_equal(test: str) -> None:
    for a, b in itertools.combinations(CLIENTS, 2):
        report = diff_files(str(trace(a, test)), str(trace(b, test)))
        assert report.equal, (a, b, report.steps.first, report.summary)
        assert report.steps.steps_a == report.steps.steps_b == report.steps.common


@pytest.mark.parametrize("test", TESTS)
def test_all_clients_give_the_same_number_of_steps(test: str) -> None:
    counts = {client: len(read_all(str(trace(client, test)))[0]) for client in CLIENTS}
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize(
    ("client", "dialect", "gas_used"),
    [
        ("besu", "besu", "transaction"),
        ("erigon", "erigon", "execution"),
        ("evmone", "evmone", "transaction"),
        ("nethermind", "nethermind", "execution"),
        ("nimbus", "nimbus", "execution"),
        ("revm", "revm", "transaction"),
    ],
)
def test_clients_with_a_signature_are_recognised(client: str, dialect: str, gas_used: str) -> None:
    for test in TESTS:
        _, info = read_all(str(trace(client, test)))
        assert (info.dialect, info.gas_used) == (dialect, gas_used), test


def test_geth_and_eels_are_recognised_when_their_quirks_show() -> None:
    # geth writes per-frame exit lines; eels leaves gasCost out on the faulting op.
    assert read_all(str(trace("geth", "negative_refund")))[1].dialect == "geth"
    assert read_all(str(trace("eels", "statetest1")))[1].dialect == "eels"
    # Without a quirk they are generic EVM traces whose gasUsed is execution gas
    # (the state root comes on a line of its own).
    _, info = read_all(str(trace("geth", "statetest1")))
    assert (info.dialect, info.gas_used) == ("evm", "execution")


def test_gas_used_meanings_are_noted_not_flagged() -> None:
    report = diff_files(str(trace("geth", "negative_refund")),
                        str(trace("revm", "negative_refund")))
    assert report.equal
    assert report.summary.differences == []
    assert any("gasUsed differs" in note for note in report.summary.notes)
    assert report.summary.a is not None and report.summary.b is not None
    assert report.summary.a.gasUsed == 0x3478FA  # execution gas
    assert report.summary.b.gasUsed == 3460658  # whole transaction, a decimal number


def test_summaries_with_the_same_meaning_are_compared() -> None:
    report = diff_files(str(trace("besu", "statetest1")), str(trace("evmone", "statetest1")))
    assert report.equal
    assert report.a.gas_used == report.b.gas_used == "transaction"
    assert not report.summary.notes or all("gasUsed" not in n for n in report.summary.notes)
