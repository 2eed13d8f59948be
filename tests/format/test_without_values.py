"""``format.callline.without_values``: two traces' lines compared but for their hash
members and return values (the calls-level golden's byte comparison)."""

from __future__ import annotations

import hashlib

from blocktrace.format.callline import call_body, call_pieces, return_body, without_values


def _trace(values: list[bytes | None], tail: bytes = b"") -> bytes:
    """Lines of calls returning ``values``, each with a hash member of its own (their
    digits differ with every line and value)."""
    prefix, suffix = call_pieces("call", 1, "f", "m.py", 3)
    bodies = [b'{"blocktrace":3,"hashAlg":"sha256","genesis":"g","level":"call"']
    for value in values:
        bodies.append(call_body(prefix, 1, suffix, tail))
        bodies.append(return_body("return", 1, 1, 8, 5, value, tail))
    out, seen = [], b""
    for body in bodies:
        seen += body
        out.append(body + b',"hash":"%s"}\n' % hashlib.sha256(seen).hexdigest().encode())
    return b"".join(out)


def test_lines_differing_only_in_return_values_and_hashes_are_the_same() -> None:
    one, two = _trace([b"1", b'"a,\\"value\\":b"']), _trace([b"2", b"[3]"])
    assert one != two
    assert without_values(one) == without_values(two) is not None
    assert without_values(one) == without_values(_trace([None, None]))
    assert b'"value"' not in (without_values(one) or b"")


def test_other_differences_and_what_cannot_be_told_from_bytes() -> None:
    assert without_values(_trace([b"1"])) != without_values(_trace([b"1", b"1"]))
    assert without_values(_trace([b"1"], tail=b',"thread":2')) is None
    torn = _trace([b"1"])[:-5]
    assert without_values(torn) is None
