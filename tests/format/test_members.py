"""The appended members' two spellings agree: format/csrc/members.h (the C writers' and
readers') and blocktrace/format/members.py (the Python writers'), so a C and a pure
writer cannot drift apart on a member's name without this failing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from blocktrace.format import members

HEADER = Path(members.__file__).parent / "csrc" / "members.h"


def c_strings() -> dict[str, bytes]:
    """Each ``#define BT_X_MEMBER "..."`` of the header: the literal's bytes."""
    found = {}
    for name, literal in re.findall(r'^#define (BT_\w+_MEMBER) "((?:[^"\\]|\\.)*)"',
                                    HEADER.read_text(), re.MULTILINE):
        found[name.removeprefix("BT_")] = literal.replace('\\"', '"').encode()
    return found


def test_header_names_the_same_members_as_the_module() -> None:
    assert set(c_strings()) == {name for name in members.__all__}


@pytest.mark.parametrize("name", members.__all__)
def test_each_member_is_spelt_alike(name: str) -> None:
    assert c_strings()[name] == getattr(members, name)


def test_hash_lengths_agree_with_the_module() -> None:
    text = HEADER.read_text()
    member_len = int(re.search(r"#define BT_HASH_MEMBER_LEN (\d+)", text)[1])  # type: ignore[index]
    assert member_len == len(members.HASH_MEMBER)
