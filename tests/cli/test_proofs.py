"""The keygen, sign, prove, check-proof and verify --checkpoint commands, run for real."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from blocktrace.chain.checkpoint import Checkpoint, origin_for
from blocktrace.chain.hashing import LeafChain, split_hash
from blocktrace.chain.merkle import LINES_PER_LEAF, MerkleAccumulator
from blocktrace.chain.note import Signer, sign_note
from blocktrace.chain.proof import TraceFile

PROGRAM = """\
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
print(fib(6))
"""


def bt(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocktrace", *map(str, args)],
        capture_output=True, text=True, cwd=cwd,
    )


def ok(*args: str | Path) -> str:
    done = bt(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    assert done.returncode == status, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert text in done.stderr


def record(directory: Path, name: str) -> Path:
    script = directory / f"{name}.py"
    script.write_text(PROGRAM)
    out = directory / name
    ok("run", "-o", out, script)
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    record(d, "a.jsonl")
    record(d, "b.jsonl")
    ok("keygen", "example.com/ci", "--out", d / "k")
    ok("keygen", "example.com/other", "--out", d / "other")
    ok("sign", d / "a.jsonl", "--key", d / "k.key", "-o", d / "a.cp")
    ok("sign", d / "b.jsonl", "--key", d / "k.key", "-o", d / "b.cp")
    return d


def test_keygen_writes_a_private_and_a_public_key(work: Path) -> None:
    key, pub = work / "k.key", work / "k.pub"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert key.read_text().startswith("PRIVATE+KEY+example.com/ci+")
    assert pub.read_text().startswith("example.com/ci+")
    one_line_error(bt("keygen", "example.com/ci", "--out", work / "k"), 2, "not overwriting")
    one_line_error(bt("keygen", "bad name", "--out", work / "x"), 2, "invalid key name")


def test_sign_prints_a_checkpoint_that_verifies(work: Path) -> None:
    note = ok("sign", work / "a.jsonl", "--key", work / "k.key")
    assert note == (work / "a.cp").read_text()  # Ed25519 is deterministic
    lines = note.split("\n")
    assert lines[0].startswith("blocktrace/trace/") and lines[1].isdigit() and lines[3] == ""
    assert lines[4].startswith("\u2014 example.com/ci ")
    out = ok("verify", work / "a.jsonl", "--checkpoint", work / "a.cp", "--pubkey", work / "k.pub")
    assert "valid and sealed" in out and "signed by example.com/ci" in out


def test_sign_refuses_bad_input(work: Path, tmp_path: Path) -> None:
    one_line_error(bt("sign", work / "a.jsonl", "--key", work / "k.pub"), 2, "not a private key")
    one_line_error(bt("sign", tmp_path / "nope", "--key", work / "k.key"), 2, "cannot read")
    lines = (work / "a.jsonl").read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:40]))
    one_line_error(bt("sign", cut, "--key", work / "k.key"), 2, "unsealed")
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join(lines).replace(b'"depth":2', b'"depth":3', 1))
    one_line_error(bt("sign", edited, "--key", work / "k.key"), 1, "TAMPERED at line")
    one_line_error(bt("prove", edited, "3"), 1, "TAMPERED at line")


def test_verify_names_each_checkpoint_failure(work: Path, tmp_path: Path) -> None:
    a, pub = work / "a.jsonl", work / "k.pub"
    cases = {
        "UNKNOWN KEY": ("--checkpoint", work / "a.cp", "--pubkey", work / "other.pub"),
        "FROM ANOTHER TRACE": ("--checkpoint", work / "b.cp", "--pubkey", pub),
    }
    tampered = tmp_path / "tampered.cp"
    size = TraceFile(a).tree_size
    note = (work / "a.cp").read_bytes()
    tampered.write_bytes(note.replace(b"\n%d\n" % size, b"\n%d\n" % (size - 1), 1))
    cases["SIGNATURE INVALID"] = ("--checkpoint", tampered, "--pubkey", pub)
    for text, args in cases.items():
        done = bt("verify", a, *args)
        assert done.returncode == 4, (text, done.stdout, done.stderr)
        assert text in done.stdout
    data = msgspec.json.decode(bt("verify", a, *cases["UNKNOWN KEY"], "--json").stdout)
    assert data["valid"] is False and data["anchor"]["kind"] == "unknown-key"
    one_line_error(bt("verify", a, "--pubkey", pub), 2, "--checkpoint")
    one_line_error(bt("verify", a, "--checkpoint", tmp_path / "missing.cp"), 2, "cannot read")


def _rewrite(src: Path, dst: Path, line: int) -> None:
    """A writer who lies: edit one line, recompute every hash, head and root."""
    acc = MerkleAccumulator()
    chain = LeafChain(LINES_PER_LEAF, acc.append_leaf_hash)
    out: list[bytes] = []
    raw = src.read_bytes().splitlines()
    for number, text in enumerate(raw, 1):
        parts = split_hash(text)
        assert parts is not None
        body = parts[0].replace(b'"depth":', b'"depth":1', 1) if number == line else parts[0]
        if number == len(raw):
            chain.close_leaf()
            summary = msgspec.json.decode(body + b"}")
            summary.update(head=chain.head(), root=acc.root().hex(), treeSize=acc.size)
            out.append(chain.seal_summary(msgspec.json.encode(summary)[:-1]))
        else:
            out.append(chain.seal(body))
    dst.write_bytes(b"".join(out))


def test_verify_since_extends_rollback_and_fork(work: Path, tmp_path: Path) -> None:
    a, pub = work / "a.jsonl", work / "k.pub"
    trace = TraceFile(a)
    signer = Signer.from_skey((work / "k.key").read_text())
    old = tmp_path / "old.cp"
    old.write_bytes(sign_note(Checkpoint(origin_for(trace.trace_id), 9, trace.root(9)).text(),
                              [signer]))
    out = ok("verify", a, "--checkpoint", work / "a.cp", "--since", old, "--pubkey", pub)
    assert "extends the earlier checkpoint (9 -> " in out
    assert "extends" in ok("verify", a, "--since", old, "--pubkey", pub)
    lines = a.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:100]))
    done = bt("verify", cut, "--since", work / "a.cp", "--pubkey", pub)
    assert done.returncode == 4 and "ROLLED BACK" in done.stdout and "UNSEALED" in done.stdout
    forked = tmp_path / "forked.jsonl"
    _rewrite(a, forked, 200)
    assert bt("verify", forked).returncode == 0  # the chain alone cannot tell
    done = bt("verify", forked, "--since", work / "a.cp", "--pubkey", pub)
    assert done.returncode == 4 and "FORK" in done.stdout
    done = bt("verify", forked, "--checkpoint", work / "a.cp", "--pubkey", pub, "--json")
    data = msgspec.json.decode(done.stdout)
    assert done.returncode == 4 and data["anchor"]["kind"] == "mismatch"
    assert data["status"] == "sealed" and data["valid"] is False


def test_prove_and_check_proof(work: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    ok("prove", work / "a.jsonl", "37", "-o", bundle)
    line37 = (work / "a.jsonl").read_text().splitlines()[36]
    data = msgspec.json.decode(bundle.read_bytes())
    assert data["text"] == line37 and data["line"] == 37 and len(data["leafLines"]) == 16
    out = ok("check-proof", bundle, "--checkpoint", work / "a.cp", "--pubkey", work / "k.pub")
    assert "proof valid: line 37" in out and "signed by example.com/ci" in out
    unanchored = ok("check-proof", bundle)
    assert "not anchored" in unanchored
    result = msgspec.json.decode(ok("check-proof", bundle, "--json"))
    assert result["valid"] is True and result["anchored"] is False
    # a bundle from another trace, and an edited bundle
    done = bt("check-proof", bundle, "--checkpoint", work / "b.cp", "--pubkey", work / "k.pub")
    assert done.returncode == 1 and "REJECTED (mismatch)" in done.stderr
    edited = tmp_path / "edited.json"
    original = bundle.read_bytes()
    edited.write_bytes(original.replace(b'\\"depth\\":', b'\\"depth\\":1', 1))
    assert edited.read_bytes() != original
    done = bt("check-proof", edited)
    assert done.returncode == 1 and "REJECTED (proof-invalid)" in done.stderr
    one_line_error(bt("check-proof", tmp_path / "missing.json"), 2, "cannot read")
    one_line_error(bt("prove", work / "a.jsonl", "0"), 2, "line numbers start at 1")
    lines = len((work / "a.jsonl").read_text().splitlines())
    one_line_error(bt("prove", work / "a.jsonl", str(lines)), 2, "summary line")


def test_missing_cryptography_is_one_line(work: Path) -> None:
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from blocktrace.cli import main\n"
        f"sys.exit(main(['keygen', 'n', '--out', {str(work / 'nocrypto')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    one_line_error(done, 2, "install blocktrace[sign]")
    assert not (work / "nocrypto.key").exists()


def test_unusable_checkpoint_and_key_files_are_one_line_on_stderr(
    work: Path, tmp_path: Path
) -> None:
    """A checkpoint or key file that cannot be used is an input error: one line on stderr
    with the command's prefix, exit 2, and no verdict on stdout before it."""
    a = work / "a.jsonl"
    junk = tmp_path / "junk"
    junk.write_bytes(b"junk\n")
    binary = tmp_path / "binary"
    binary.write_bytes(bytes(range(256)))
    cases = [
        (("--checkpoint", tmp_path / "missing.cp"), "cannot read"),
        (("--checkpoint", work / "a.cp", "--pubkey", junk), "verifier key"),
        (("--checkpoint", work / "a.cp", "--pubkey", binary), "not UTF-8"),
        (("--checkpoint", work / "a.cp", "--pubkey", tmp_path / "missing.pub"), "cannot read"),
        (("--since", tmp_path / "missing.cp"), "cannot read"),
    ]
    for args, text in cases:
        done = bt("verify", a, *args)
        one_line_error(done, 2, text)
        assert done.stderr.startswith("blocktrace verify: ") and done.stdout == "", args
        data = msgspec.json.decode(bt("verify", a, *args, "--json").stdout)
        assert data["valid"] is False and data["anchor"]["status"] == "unusable"


def test_check_proof_of_something_that_is_no_bundle_is_unusable(
    work: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "b.json"
    ok("prove", work / "a.jsonl", "5", "-o", bundle)
    data = msgspec.json.decode(bundle.read_bytes())
    del data["root"]
    inputs = {
        "empty": (b"", "empty file"),
        "blank": (b"\n\n", "empty file"),
        "junk": (b"junk\n", "not JSON"),
        "binary": (bytes(range(256)), "not JSON"),
        "number": (b"17\n", "not a proof bundle"),
        "no-root": (msgspec.json.encode(data) + b"\n", "root"),
    }
    for name, (content, text) in inputs.items():
        path = tmp_path / name
        path.write_bytes(content)
        done = bt("check-proof", path)
        one_line_error(done, 2, text)
        assert "REJECTED" not in done.stderr and str(path) in done.stderr, done.stderr
        done = bt("check-proof", path, "--json")
        assert done.returncode == 2
        result = msgspec.json.decode(done.stdout)
        assert result["valid"] is False and result["kind"] == "unusable"


def test_a_junk_signing_key_is_one_clear_line(work: Path, tmp_path: Path) -> None:
    binary = tmp_path / "binary.key"
    binary.write_bytes(bytes(range(128, 256)))
    for args in (("sign", work / "a.jsonl", "--key", binary),
                 ("run", "--checkpoint-every", "16", "--sign-key", binary,
                  "-o", tmp_path / "t.jsonl", work / "a.jsonl.py")):
        done = bt(*args)
        one_line_error(done, 2, "not a private key from blocktrace keygen (not UTF-8 text)")
        assert "codec" not in done.stderr
    assert not (tmp_path / "t.jsonl").exists()
