"""C2SP signed notes with Ed25519 keys (the format of Go's ``sumdb/note``).

A signed note is UTF-8 text ending in a newline, a blank line, then one or
more signature lines ``— <key name> <base64(key id || signature)>``.  The key
id of an Ed25519 key is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``.
Keys are written as Go writes them, so keys and notes interoperate with Go's
``golang.org/x/mod/sumdb/note`` and the transparency-dev tools:

- verifier key (public, shareable): ``<name>+<hex key id>+<base64(0x01 || public key)>``
- signer key (private): ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``

Verification follows the spec: signatures from unknown keys are ignored; a
signature from a known key that fails rejects the whole note
(:class:`InvalidSignatureError`); a note with no verified signature is
rejected (:class:`UnverifiedNoteError`).  Malformed notes raise
:class:`MalformedNoteError`.  Ed25519 comes from the ``cryptography`` package,
an optional extra (``pip install blocktrace[sign]``), imported only when a key
is used; parsing needs nothing extra.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType

__all__ = [
    "MAX_SIGNATURES",
    "InvalidSignatureError",
    "MalformedNoteError",
    "Note",
    "NoteError",
    "NoteSignature",
    "Signer",
    "SigningUnavailableError",
    "UnverifiedNoteError",
    "Verifier",
    "generate_key",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
]

MAX_SIGNATURES = 100
"""Signature lines accepted in one note (Go's limit; the spec asks for >= 16)."""

_ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # em dash, space
_INSTALL_HINT = ("Ed25519 signing needs the 'cryptography' package: pip install 'blocktrace[sign]' "
                 "(in a checkout: pip install -e '.[sign]')")


class NoteError(ValueError):
    """A signed note or key could not be used."""


class MalformedNoteError(NoteError):
    """The note or key does not follow the signed-note format."""


class UnverifiedNoteError(NoteError):
    """No signature on the note is from a trusted key (unknown key or unsigned)."""

    def __init__(self, message: str, signatures: Sequence[NoteSignature] = ()) -> None:
        super().__init__(message)
        self.signatures = list(signatures)


class InvalidSignatureError(NoteError):
    """A signature from a trusted key does not verify: the note was altered or
    signed by someone else under the same key name and id."""


class SigningUnavailableError(NoteError):
    """The ``cryptography`` package is missing."""


def _ed25519() -> ModuleType:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise SigningUnavailableError(_INSTALL_HINT) from exc
    return ed25519


def _is_valid_name(name: str) -> bool:
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() or unicodedata.category(c) == "Zs" for c in name)
        and not any("\ud800" <= c <= "\udfff" for c in name)  # (argv's bytes that are not UTF-8)
    )


def _check_name(name: str) -> None:
    if not _is_valid_name(name):
        raise MalformedNoteError(
            f"invalid key name {name!r}: it must be non-empty UTF-8 text, without spaces or '+'"
        )


def key_id(name: str, public_key: bytes) -> int:
    """The key id of an Ed25519 public key under ``name`` (C2SP signed-note)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([_ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(text: str, what: str) -> bytes:
    """Strict base64: only the one canonical encoding of the bytes is accepted,
    so no two spellings of a signature or key are both valid."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedNoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedNoteError(f"{what} is not canonical base64")
    return raw


def _parse_key_id(text: str, what: str) -> int:
    if len(text) != 8 or any(c not in "0123456789abcdef" for c in text):
        raise MalformedNoteError(f"{what}: key id {text!r} is not 8 lowercase hex digits")
    return int(text, 16)


def _key_fields(name: str, id_hex: str, key_b64: str, what: str) -> tuple[int, bytes]:
    """The NAME, KEYID and KEY fields of a key (``what``) checked: its key id and
    the 32 bytes of its Ed25519 key (public or seed)."""
    _check_name(name)
    kid = _parse_key_id(id_hex, what)
    raw = _b64decode(key_b64, what)
    if len(raw) != 33 or raw[0] != _ALG_ED25519:
        raise MalformedNoteError(f"{what} is not an Ed25519 key (type 0x01, 32 bytes)")
    return kid, raw[1:]


@dataclass(frozen=True, slots=True)
class Verifier:
    """A trusted Ed25519 public key with its name and key id."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex id>+<base64(0x01 || key)>``."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise MalformedNoteError("verifier key is not of the form NAME+KEYID+KEY")
        name, id_hex, key_b64 = parts
        kid, public_key = _key_fields(name, id_hex, key_b64, "verifier key")
        if key_id(name, public_key) != kid:
            raise MalformedNoteError(
                f"verifier key id {id_hex} does not match its name and public key"
            )
        return cls(name, kid, public_key)

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([_ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        ed25519 = _ed25519()
        from cryptography.exceptions import InvalidSignature

        key = ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Signer:
    """An Ed25519 private key with its name and key id."""

    name: str
    key_id: int
    seed: bytes

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise MalformedNoteError("signer key is not of the form PRIVATE+KEY+NAME+KEYID+KEY")
        name, id_hex, key_b64 = parts[2:]
        kid, seed = _key_fields(name, id_hex, key_b64, "signer key")
        signer = cls(name, kid, seed)
        if key_id(name, signer.verifier().public_key) != kid:
            raise MalformedNoteError(f"signer key id {id_hex} does not match its name and key")
        return signer

    @property
    def skey(self) -> str:
        encoded = base64.b64encode(bytes([_ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encoded}"

    def verifier(self) -> Verifier:
        ed25519 = _ed25519()
        from cryptography.hazmat.primitives import serialization

        key = ed25519.Ed25519PrivateKey.from_private_bytes(self.seed)
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return Verifier(self.name, key_id(self.name, public), public)

    def sign(self, message: bytes) -> bytes:
        signature: bytes = _ed25519().Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)
        return signature


def generate_key(name: str) -> Signer:
    """A new random Ed25519 key named ``name``."""
    _check_name(name)
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Signer(name, key_id(name, public), seed)


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: who claims to have signed, and the signature bytes."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        encoded = base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature).decode()
        return f"{_SIG_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed note: its text (signed bytes, final newline included) and the
    signatures, split into verified ones and ones from keys not trusted here."""

    text: str
    signatures: tuple[NoteSignature, ...]
    verified: tuple[NoteSignature, ...] = ()
    unverified: tuple[NoteSignature, ...] = ()


def _check_text_chars(message: str) -> None:
    for c in message:
        if c < " " and c != "\n":
            raise MalformedNoteError(f"note contains the control character {c!r}")


def parse_note(message: bytes) -> Note:
    """Split a signed note into text and signature lines, without verifying.

    Raises :class:`MalformedNoteError` for anything the spec does not allow:
    invalid UTF-8, control characters, no blank line before the signatures, no
    signature, a line after the signatures that is not a signature, a bad key
    name, bad base64, more than :data:`MAX_SIGNATURES` signatures.
    """
    try:
        msg = message.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNoteError("note is not valid UTF-8") from exc
    _check_text_chars(msg)
    split = msg.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block:
        raise MalformedNoteError("note has no signature lines")
    if not block.endswith("\n"):
        raise MalformedNoteError("note's last signature line does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(f"signature line {number} does not start with '— '")
        name, sep, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _is_valid_name(name) or not encoded:
            raise MalformedNoteError(f"signature line {number} is not '— NAME SIGNATURE'")
        raw = _b64decode(encoded, f"signature line {number}")
        if len(raw) < 5:
            raise MalformedNoteError(f"signature line {number} is too short")
        signatures.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return Note(text, tuple(signatures))


def open_note(message: bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse a signed note and verify it against the trusted ``verifiers``.

    Returns the note with its verified signatures and the ignored ones from
    unknown keys.  Raises :class:`MalformedNoteError`,
    :class:`InvalidSignatureError` (a trusted key's signature fails: the whole
    note is rejected) or :class:`UnverifiedNoteError` (no trusted signature).
    """
    note = parse_note(message)
    known = {(v.name, v.key_id): v for v in verifiers}
    text = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if (sig.name, sig.key_id) in seen:
            continue
        seen.add((sig.name, sig.key_id))
        if not verifier.verify(text, sig.signature):
            raise InvalidSignatureError(
                f"signature by {sig.name} (key id {sig.key_id:08x}) does not verify"
            )
        verified.append(sig)
    if not verified:
        if unverified:
            signers = ", ".join(f"{s.name} (key id {s.key_id:08x})" for s in unverified)
            trusted = ", ".join(f"{n} (key id {k:08x})" for n, k in known) or "none"
            raise UnverifiedNoteError(
                f"unknown key: signed by {signers}, trusted here: {trusted}", unverified
            )
        raise UnverifiedNoteError("note has no signature")
    return Note(note.text, note.signatures, tuple(verified), tuple(unverified))


def sign_note(
    text: str, signers: Sequence[Signer], existing: Sequence[NoteSignature] = ()
) -> bytes:
    """Sign ``text`` (which must end in a newline) with each signer; keep the
    ``existing`` signatures of other keys after the new ones."""
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end in a newline")
    _check_text_chars(text)
    if not signers and not existing:
        raise MalformedNoteError("a signed note needs at least one signature")
    message = text.encode("utf-8")
    lines = []
    have = set()
    for signer in signers:
        _check_name(signer.name)
        have.add((signer.name, signer.key_id))
        lines.append(NoteSignature(signer.name, signer.key_id, signer.sign(message)).line)
    lines.extend(sig.line for sig in existing if (sig.name, sig.key_id) not in have)
    return message + b"\n" + "".join(lines).encode("utf-8")
