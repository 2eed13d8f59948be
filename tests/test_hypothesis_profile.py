"""The suite's hypothesis profile (tests/conftest.py): a property test draws the
same examples in every run, so CI cannot fail on an example no earlier run tried."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st


def test_a_property_test_draws_the_same_examples_every_time() -> None:
    def examples() -> list[bytes]:
        drawn: list[bytes] = []

        @given(st.binary(min_size=8, max_size=8))
        def record(data: bytes) -> None:
            drawn.append(data)

        record()
        return drawn

    first = examples()
    assert len(first) > 10
    assert examples() == first
