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


HEX = b"0123456789abcdef"
OP = (b'{"pc":2,"op":83,"gas":"0x10","gasCost":"0x1","depth":1,"opName":"RETURN_VALUE",'
      b'"line":4,"code":0')


def _hashed(byte: int) -> bytes:
    """OP with a hash member of 64 hex digits but ``byte`` at place ``byte % 64`` (every
    sixteen-byte lane of the check, at every place in it, meets bytes of every kind)."""
    digits = bytearray(b"0123456789abcdef" * 4)
    digits[byte % 64] = byte
    return OP + members.HASH_MEMBER + bytes(digits) + b'"}'


@pytest.mark.parametrize("byte", range(256))
def test_a_hash_digit_is_lowercase_hex_for_the_scanner_and_the_line_reader(byte: int) -> None:
    """bt_lower_hex64, the one C check of a hash's 64 digits, as the chain scanner (through
    its compact strip) and the line reader (through the query columns) use it."""
    cscan = pytest.importorskip("blocktrace.format._cscan")
    line = _hashed(byte)
    try:
        cscan.strip(line + b"\n")
        stripped = True
    except ValueError:
        stripped = False
    code, pos, number = cscan.OpColumns().feed(line + b"\n", 0, 2, 1 << 20)
    taken = code == 0 and pos == len(line) + 1 and number == 3
    assert (stripped, taken) == (byte in HEX, byte in HEX)
