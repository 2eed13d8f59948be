"""C2SP signed notes with Ed25519: the published vectors, and every tamper."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blocktrace.chain.note import (
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    generate_key,
    key_id,
    open_note,
    parse_note,
    sign_note,
)

REFDATA = Path(__file__).resolve().parents[3] / "shared" / "refdata" / "merkle"
PETER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"


def _vectors() -> Any:
    path = REFDATA / "signed_note_ed25519.json"
    if not path.exists():
        pytest.skip(f"reference data {path} is absent")
    return json.loads(path.read_text())


def test_valid_vectors_verify_with_each_trusted_key() -> None:
    for case in _vectors()["valid"]:
        keys = [Verifier.from_vkey(k) for k in case.get("vkeys") or [case["vkey"]]]
        msg = case["signed_note"].encode()
        note = open_note(msg, keys)
        assert note.text == case["note_text"]
        assert len(note.verified) == len(keys) and not note.unverified
        for key in keys:  # the other signer is unknown: ignored, not rejected
            one = open_note(msg, [key])
            assert [s.name for s in one.verified] == [key.name]
            assert len(one.unverified) == len(keys) - 1


def test_signing_reproduces_the_go_vector_exactly() -> None:
    case = next(c for c in _vectors()["valid"] if "skey" in c)
    signer = Signer.from_skey(case["skey"])
    assert signer.skey == case["skey"]
    assert signer.verifier().vkey == case["vkey"]
    assert sign_note(case["note_text"], [signer]).decode() == case["signed_note"]


def test_key_ids_follow_the_spec() -> None:
    for vkey in (PETER, ENOCH):
        v = Verifier.from_vkey(vkey)
        assert key_id(v.name, v.public_key) == v.key_id
        assert v.vkey == vkey


def test_every_listed_invalid_note_is_rejected() -> None:
    peter = Verifier.from_vkey(PETER)
    expected = {
        "known key, corrupted": InvalidSignatureError,
        "only an unknown signer": UnverifiedNoteError,
    }
    cases = _vectors()["invalid_for_vkey_PeterNeumann"]
    assert len(cases) >= 10
    for case in cases:
        msg = bytes.fromhex(case["msg_hex"]) if case["msg_hex"] else case["msg"].encode()
        kind = next((v for k, v in expected.items() if case["why"].startswith(k)), None)
        with pytest.raises(kind or MalformedNoteError):
            open_note(msg, [peter])


def test_key_name_with_a_space_is_malformed_even_with_a_final_newline() -> None:
    case = next(c for c in _vectors()["invalid_for_vkey_PeterNeumann"] if "space" in c["why"])
    with pytest.raises(MalformedNoteError):
        parse_note(case["msg"].encode() + b"\n")


def test_every_single_byte_change_of_a_signed_note_is_rejected() -> None:
    case = next(c for c in _vectors()["valid"] if "skey" in c)
    msg = case["signed_note"].encode()
    peter = Verifier.from_vkey(PETER)
    for i in range(len(msg)):
        for delta in (1, 0x20, 0x80):
            changed = bytearray(msg)
            changed[i] ^= delta
            with pytest.raises(NoteError):
                open_note(bytes(changed), [peter])
                pytest.fail(f"accepted a change of byte {i} (xor {delta:#x})")


def test_signatures_from_unknown_keys_are_kept_when_resigning() -> None:
    two = next(c for c in _vectors()["valid"] if "vkeys" in c)
    enoch_sig = parse_note(two["signed_note"].encode()).signatures[1]
    mine = generate_key("example.com/mine")
    msg = sign_note(two["note_text"], [mine], existing=[enoch_sig])
    note = open_note(msg, [mine.verifier(), Verifier.from_vkey(ENOCH)])
    assert [s.name for s in note.verified] == ["example.com/mine", "EnochRoot"]


def test_generated_keys_round_trip() -> None:
    signer = generate_key("example.com/ci")
    again = Signer.from_skey(signer.skey + "\n")
    assert again == signer
    verifier = Verifier.from_vkey(signer.verifier().vkey)
    msg = sign_note("hello\n", [signer])
    assert open_note(msg, [verifier]).text == "hello\n"
    other = generate_key("example.com/ci")  # same name, different key: an unknown key
    with pytest.raises(UnverifiedNoteError, match="unknown key"):
        open_note(msg, [other.verifier()])


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "name",
        "na me+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpcQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",
        "Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(MalformedNoteError):
        Verifier.from_vkey(vkey)


def test_bad_signer_keys_and_texts_are_refused() -> None:
    with pytest.raises(MalformedNoteError):
        Signer.from_skey("PRIVATE+KEY+PeterNeumann+c74f20a3")
    with pytest.raises(MalformedNoteError):
        Signer.from_skey("PRIVATE+KEY+PeterNeumann+00000000+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
    signer = generate_key("a")
    for text in ("no newline", "bell\x07\n"):
        with pytest.raises(MalformedNoteError):
            sign_note(text, [signer])
    with pytest.raises(MalformedNoteError):
        generate_key("has space")


def test_missing_cryptography_gives_one_clear_message() -> None:
    """A real interpreter in which ``cryptography`` cannot be imported."""
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from blocktrace.chain.note import Verifier, open_note, SigningUnavailableError\n"
        f"v = Verifier.from_vkey({PETER!r})\n"
        "msg = " + repr(next(c for c in _vectors()["valid"] if "skey" in c)["signed_note"].encode())
        + "\ntry:\n    open_note(msg, [v])\n"
        "except SigningUnavailableError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'blocktrace[sign]'" in out.stdout


def test_both_kinds_of_key_check_their_fields_alike() -> None:
    """A verifier key and a signer key: the same checks of NAME, KEYID and KEY,
    each error naming which kind of key it was."""
    not_ed25519 = base64.b64encode(bytes([2]) + bytes(32)).decode()
    short = base64.b64encode(bytes([1]) + bytes(31)).decode()
    for key in (not_ed25519, short):
        with pytest.raises(MalformedNoteError, match=r"^verifier key is not an Ed25519 key"):
            Verifier.from_vkey(f"name+00000000+{key}")
        with pytest.raises(MalformedNoteError, match=r"^signer key is not an Ed25519 key"):
            Signer.from_skey(f"PRIVATE+KEY+name+00000000+{key}")
    with pytest.raises(MalformedNoteError, match="verifier key: key id"):
        Verifier.from_vkey(f"name+XYZ+{short}")
    with pytest.raises(MalformedNoteError, match="signer key: key id"):
        Signer.from_skey(f"PRIVATE+KEY+name+XYZ+{short}")
