"""The keygen, sign, prove, check-proof and verify --checkpoint commands, run for real."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from blocktrace.chain.checkpoint import Checkpoint, origin_for
from blocktrace.chain.note import Signer, sign_note
from blocktrace.chain.proof import TraceFile
from blocktrace.chain.rewrite import rechain_trace
from blocktrace.limits import MAX_BUNDLE_BYTES
from tests.chain.recording import record


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


def test_a_file_that_is_no_checkpoint_is_malformed_not_unsigned(
    work: Path, tmp_path: Path
) -> None:
    # A trace (or any text) given as --checkpoint is not a checkpoint at all: MALFORMED, exit 4
    # (README's verify table), with or without a key; an unsigned checkpoint stays NOT SIGNED.
    a, pub = work / "a.jsonl", work / "k.pub"
    for keys in ((), ("--pubkey", pub)):
        done = bt("verify", a, "--checkpoint", a, *keys)
        assert done.returncode == 4, (keys, done.stdout, done.stderr)
        assert "MALFORMED" in done.stdout and "NOT SIGNED" not in done.stdout, done.stdout
    body = tmp_path / "bare.cp"
    body.write_bytes((work / "a.cp").read_bytes().split(b"\n\n")[0] + b"\n")
    done = bt("verify", a, "--checkpoint", body, "--pubkey", pub)
    assert done.returncode == 4 and "NOT SIGNED" in done.stdout, (done.stdout, done.stderr)


def _rewrite(src: Path, dst: Path, line: int) -> None:
    """A writer who lies: edit one line, recompute every hash (and the summary)."""
    def edit(index: int, body: bytes) -> bytes:
        return body.replace(b'"depth":', b'"depth":1', 1) if index + 1 == line else body

    dst.write_bytes(rechain_trace(src.read_bytes(), edit))


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
    # Format version 3: the summary line is in the tree, so it can be proven.
    summary_bundle = tmp_path / "summary.json"
    ok("prove", work / "a.jsonl", str(lines), "-o", summary_bundle)
    out = ok("check-proof", summary_bundle, "--checkpoint", work / "a.cp",
             "--pubkey", work / "k.pub")
    assert f"proof valid: line {lines}" in out
    # Version 2 kept it out of the tree.
    v2 = tmp_path / "v2.jsonl"
    v2.write_bytes(rechain_trace((work / "a.jsonl").read_bytes(), version=2))
    one_line_error(bt("prove", v2, str(lines)), 2, "summary line")


def test_missing_cryptography_is_one_line(work: Path) -> None:
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from blocktrace.cli import main\n"
        f"sys.exit(main(['keygen', 'n', '--out', {str(work / 'nocrypto')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    one_line_error(done, 2, "pip install 'blocktrace[sign]'")
    assert "(in a checkout: pip install -e '.[sign]')" in done.stderr  # PyPI has only 0.0.16
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


def _forge_summary(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Rewrite the summary line and recompute its hash (and nothing else)."""
    last = len(data.splitlines()) - 1

    def edit(index: int, body: bytes) -> bytes:
        if index != last:
            return body
        summary = msgspec.json.decode(body + b"}")
        change(summary)
        return msgspec.json.encode(summary)[:-1]

    return rechain_trace(data, edit, fix_summary=False)


_SUMMARY_FORGERIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "pass": lambda s: s.update({"pass": not s["pass"]}),
    "output": lambda s: s.update(output="1"),
    "error": lambda s: s.update({"pass": False, "error": "ZeroDivisionError: forged"}),
    "gasUsed": lambda s: s.update(gasUsed="0x1"),
    "time": lambda s: s.update(time=s["time"] + 1),
    "drop-output": lambda s: s.pop("output"),
    "drop-gasUsed": lambda s: s.pop("gasUsed"),
    "drop-pass": lambda s: s.pop("pass"),
    "drop-time": lambda s: s.pop("time"),
    "hash-only": lambda s: None,
}


@pytest.mark.parametrize("forgery", sorted(_SUMMARY_FORGERIES))
def test_every_summary_forgery_is_caught_by_a_checkpoint(
    work: Path, tmp_path: Path, forgery: str
) -> None:
    """Issue 11: a signed checkpoint of a version 3 trace covers the outcome."""
    a, cp, pub = work / "a.jsonl", work / "a.cp", work / "k.pub"
    honest = ok("verify", a, "--checkpoint", cp, "--pubkey", pub)
    assert "the run's outcome (the summary line) is covered" in honest
    forged = tmp_path / "forged.jsonl"
    data = a.read_bytes()
    forged.write_bytes(_forge_summary(data, _SUMMARY_FORGERIES[forgery]))
    if forgery != "hash-only":
        assert forged.read_bytes() != data
    done = bt("verify", forged, "--checkpoint", cp, "--pubkey", pub)
    if forgery == "hash-only":  # the same bytes: nothing was forged
        assert done.returncode == 0
        return
    assert done.returncode in (1, 4), (done.stdout, done.stderr)
    assert any(w in done.stdout for w in ("TAMPERED", "DOES NOT MATCH", "ROLLED BACK")), done
    js = msgspec.json.decode(bt("verify", forged, "--checkpoint", cp, "--pubkey", pub,
                                "--json").stdout)
    assert js["valid"] is False


@pytest.mark.parametrize("forgery", ["pass", "output", "error", "gasUsed", "time"])
def test_a_version_2_checkpoint_says_the_outcome_is_not_covered(
    work: Path, tmp_path: Path, forgery: str
) -> None:
    v2, cp, pub = tmp_path / "v2.jsonl", tmp_path / "v2.cp", work / "k.pub"
    v2.write_bytes(rechain_trace((work / "a.jsonl").read_bytes(), version=2))
    ok("sign", v2, "--key", work / "k.key", "-o", cp)
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(_forge_summary(v2.read_bytes(), _SUMMARY_FORGERIES[forgery]))
    out = ok("verify", forged, "--checkpoint", cp, "--pubkey", pub)  # the known limitation
    assert "the outcome is not covered: format version 2" in out
    assert "format version 2: the summary is outside the tree" in out  # said without -c too
    assert "no checkpoint covers this outcome" in ok("verify", forged)
    js = msgspec.json.decode(ok("verify", forged, "--checkpoint", cp, "--pubkey", pub, "--json"))
    assert js["checkpoint"]["outcomeCovered"] is False


def test_a_prefix_checkpoint_does_not_cover_the_outcome(work: Path, tmp_path: Path) -> None:
    a = work / "a.jsonl"
    trace = TraceFile(a)
    signer = Signer.from_skey((work / "k.key").read_text())
    prefix = tmp_path / "prefix.cp"
    prefix.write_bytes(sign_note(Checkpoint(origin_for(trace.trace_id), 3, trace.root(3)).text(),
                                 [signer]))
    out = ok("verify", a, "--checkpoint", prefix, "--pubkey", work / "k.pub")
    assert "the outcome is not covered: the checkpoint covers only a prefix" in out


def test_head_given_the_version_2_summary_head_names_the_sealed_head(
    work: Path, tmp_path: Path
) -> None:
    """Issue 17 item 7: the v2 summary's ``head`` is not the head to anchor."""
    v2 = tmp_path / "v2.jsonl"
    v2.write_bytes(rechain_trace((work / "a.jsonl").read_bytes(), version=2))
    summary = msgspec.json.decode(v2.read_bytes().splitlines()[-1])
    done = bt("verify", v2, "--head", summary["head"])
    one_line_error(done, 2, f"anchor the sealed head {summary['hash']}")
    assert "valid and sealed" in ok("verify", v2, "--head", summary["hash"])


_RECORD_V3 = """\
import sys
import blocktrace
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
tracer = blocktrace.ChainTracer(sys.argv[1], format_version=3)
with blocktrace.trace(tracer):
    print(fib(6))
tracer.close()
"""


@pytest.fixture(scope="module")
def v3_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run recorded in format version 3 by ChainTracer(format_version=3), for real."""
    d = tmp_path_factory.mktemp("v3")
    script = d / "record_v3.py"
    script.write_text(_RECORD_V3)
    trace = d / "v3.jsonl"
    done = subprocess.run([sys.executable, str(script), str(trace)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0 and done.stdout == "8\n", done.stderr
    assert trace.read_bytes().startswith(b'{"blocktrace":3,')
    assert "valid and sealed" in ok("verify", trace)
    return trace


def _bundle_with(data: dict[str, Any], **changes: Any) -> bytes:
    """``data`` with fields changed (None: removed), in the bundle's canonical key order
    (format, version, then the rest, prevHash last), so only the edit is refused."""
    edited = {**data, **changes}
    order = ["format", "version", *(k for k in data if k not in ("format", "version",
                                                               "prevHash")), "prevHash"]
    return msgspec.json.encode({k: edited[k] for k in order if edited.get(k) is not None}) + b"\n"


@pytest.mark.parametrize("line", [3, 37], ids=["leaf-0", "leaf-2"])
def test_a_bundle_names_the_format_version_it_is_proven_under(
    work: Path, v3_trace: Path, tmp_path: Path, line: int
) -> None:
    """A version 4 bundle says "version":4 (and carries prevHash); a version 1-3 bundle
    names neither. A bundle relabelled either way is refused as mislabelled, one line."""
    v4_trace = work / "a.jsonl"
    assert v4_trace.read_bytes().startswith(b'{"blocktrace":4,')
    made = {}
    for version, trace in ((3, v3_trace), (4, v4_trace)):
        path = tmp_path / f"v{version}.json"
        ok("prove", trace, str(line), "-o", path)
        data = msgspec.json.decode(path.read_bytes())
        made[version] = data
        assert list(data)[:2] == (["format", "version"] if version == 4 else ["format", "line"])
        assert data.get("version") == (4 if version == 4 else None)
        assert ("prevHash" in data) == (version == 4)
        assert _bundle_with(data) == path.read_bytes()  # the helper keeps a bundle as it is
        out = ok("check-proof", path)
        assert f"proof valid: line {line}" in out
        assert ("(format version 4)" if version == 4 else "(format versions 1-3)") in out
        result = msgspec.json.decode(ok("check-proof", path, "--json"))
        assert result["valid"] is True and result["version"] == data.get("version")
    v3, v4 = made[3], made[4]
    mislabelled = {
        "v3 + prevHash": (_bundle_with(v3, prevHash=v4["prevHash"]), 'prevHash without "version"'),
        "v3 + version 4": (_bundle_with(v3, version=4), '"version":4 without prevHash'),
        "v3 + version 3": (_bundle_with(v3, version=3), "version 3 is not written"),
        "v4 - prevHash": (_bundle_with(v4, prevHash=None), '"version":4 without prevHash'),
        "v4 - version": (_bundle_with(v4, version=None), 'prevHash without "version"'),
        "v4 version 5": (_bundle_with(v4, version=5), "unknown format version 5"),
    }
    if line <= 16:  # leaf 0 holds the header, which names the trace's version
        mislabelled["v3 as v4"] = (
            _bundle_with(v3, version=4, prevHash=v4["prevHash"]),
            "the header in leaf 0 is format version 3, the bundle is proven under version 4's",
        )
        mislabelled["v4 as v3"] = (
            _bundle_with(v4, version=None, prevHash=None),
            "the header in leaf 0 is format version 4, the bundle is proven under versions 1-3's",
        )
    else:  # elsewhere the other rule hashes the leaf to something else
        mislabelled["v3 as v4"] = (_bundle_with(v3, version=4, prevHash=v4["prevHash"]),
                                   "line 33's hash does not match")
        mislabelled["v4 as v3"] = (_bundle_with(v4, version=None, prevHash=None),
                                   "audit path does not verify")
    for what, (content, text) in mislabelled.items():
        path = tmp_path / "edited.json"
        path.write_bytes(content)
        done = bt("check-proof", path)
        assert done.returncode == 1, (what, done.stderr)
        one_line_error(done, 1, "REJECTED (proof-invalid)")
        assert text in done.stderr, (what, done.stderr)


def test_check_proof_reads_a_bundle_from_standard_input(work: Path) -> None:
    # `blocktrace prove TRACE N | blocktrace check-proof -`
    bundle = ok("prove", work / "a.jsonl", "20")

    def check(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "blocktrace", "check-proof", "-", *args],
                              input=data, capture_output=True, check=False)

    done = check(bundle.encode(), "--checkpoint", str(work / "a.cp"), "--pubkey",
                 str(work / "k.pub"))
    assert done.returncode == 0, done.stderr
    assert b"proof valid: line 20" in done.stdout and b"signed by example.com/ci" in done.stdout
    done = check(bundle.encode().replace(b'"line":20', b'"line":21', 1))
    assert done.returncode == 1 and b"REJECTED" in done.stderr
    done = check(b" " * (MAX_BUNDLE_BYTES + 1))
    assert done.returncode == 2 and done.stderr.count(b"\n") == 1
    assert b"standard input is larger than" in done.stderr and b"Traceback" not in done.stderr
