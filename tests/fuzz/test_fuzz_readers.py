"""Every reader, fuzzed with mutated real inputs (issue 11): whatever the input,
one of the command's documented exit statuses and at most one line on stderr --
never a traceback, never a hang.

The inputs are real traces, checkpoints, keys and bundles made by the command
(``conftest.seeds``) and real client traces, mutated at the byte and the line
level; about half the trace mutations are re-chained (every hash recomputed)
so they reach the parsers behind the hash check.  The examples are the same on
every run (the ``blocktrace-fuzz`` profile is derandomized); set
``BLOCKTRACE_FUZZ=deep`` for a long random search.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .conftest import PROGRAM, Seeds
from .harness import FUZZ, Inputs, mutated, run_cli

_counter = itertools.count()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bt-fuzz-") as d:
        yield Path(d)


def _write(scratch: Path, data: bytes, suffix: str = ".jsonl") -> Path:
    """The input as a file (kept until the module ends, so a failure can be replayed)."""
    path = scratch / f"input-{next(_counter)}{suffix}"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def traces(seeds: Seeds) -> Inputs:
    return Inputs(seeds.traces())


@FUZZ
@given(data=st.data())
def test_verify_and_verify_json_give_one_answer(
    data: st.DataObject, traces: Inputs, scratch: Path
) -> None:
    path = _write(scratch, data.draw(mutated(traces)))
    text = run_cli("verify", path)
    text.check((0, 1, 2, 3), f"verify {path}")
    machine = run_cli("verify", "--json", path)
    machine.check((0, 1, 2, 3), f"verify --json {path}")
    if text.known_bug or machine.known_bug:
        return
    assert machine.status == text.status, f"verify {path}: {text} but --json {machine}"
    answer = msgspec.json.decode(machine.stdout)
    assert answer["valid"] is (machine.status == 0), f"verify --json {path}: {answer}"


@FUZZ
@given(data=st.data(), line=st.integers(1, 40), anchored=st.booleans())
def test_prove_and_sign(
    data: st.DataObject, line: int, anchored: bool, seeds: Seeds, traces: Inputs, scratch: Path
) -> None:
    path = _write(scratch, data.draw(mutated(traces)))
    argv = ["prove", str(path), str(line)]
    if anchored:  # a checkpoint of the unmutated trace, or a mutated one
        cp = data.draw(mutated(Inputs([seeds.checkpoint.read_bytes()]), rechain_share=0))
        argv += ["--checkpoint", str(_write(scratch, cp, ".cp"))]
    answer = run_cli(*argv)
    answer.check((0, 1, 2), " ".join(argv))
    if answer.status == 0:  # a bundle prove hands out verifies
        bundle = _write(scratch, answer.stdout, ".json")
        run_cli("check-proof", bundle).check((0,), f"check-proof of {' '.join(argv)}")
    run_cli("sign", path, "--key", seeds.key).check((0, 1, 2), f"sign {path}")


@FUZZ
@given(data=st.data(), as_json=st.booleans())
def test_lines(data: st.DataObject, as_json: bool, traces: Inputs, scratch: Path) -> None:
    path = _write(scratch, data.draw(mutated(traces)))
    argv = ("lines", "--json", path) if as_json else ("lines", path)
    run_cli(*argv).check((0, 1, 2), " ".join(map(str, argv)))


@FUZZ
@given(data=st.data(), as_json=st.booleans(), by_line=st.booleans())
def test_diff_of_blocktrace_traces(
    data: st.DataObject, as_json: bool, by_line: bool, seeds: Seeds, traces: Inputs,
    scratch: Path,
) -> None:
    path = _write(scratch, data.draw(mutated(traces)))
    argv = ["diff", str(seeds.plain), str(path)]
    argv += ["--json"] if as_json else []
    argv += ["--by-line"] if by_line else []
    run_cli(*argv).check((0, 1, 2), " ".join(argv))


@FUZZ
@given(data=st.data(), as_json=st.booleans())
def test_diff_of_client_traces(
    data: st.DataObject, as_json: bool, seeds: Seeds, scratch: Path
) -> None:
    if not seeds.clients:
        pytest.skip("reference client traces not available (../shared/refdata/eip3155)")
    original = data.draw(st.sampled_from(seeds.clients))
    path = _write(scratch, data.draw(mutated(Inputs([original.read_bytes()]), rechain_share=0)))
    argv = ["diff", str(original), str(path), *(["--json"] if as_json else [])]
    run_cli(*argv).check((0, 1, 2), " ".join(argv))


@FUZZ
@given(data=st.data(), anchored=st.booleans(), as_json=st.booleans())
def test_check_proof(
    data: st.DataObject, anchored: bool, as_json: bool, seeds: Seeds, scratch: Path
) -> None:
    original = Inputs([seeds.bundle.read_bytes()])
    bundle = _write(scratch, data.draw(mutated(original, rechain_share=0)), ".json")
    argv = ["check-proof", str(bundle), *(["--json"] if as_json else [])]
    if anchored:
        cp = seeds.checkpoint.read_bytes()
        if data.draw(st.booleans(), label="mutate the checkpoint too"):
            cp = data.draw(mutated(Inputs([cp]), rechain_share=0))
        cp_path = _write(scratch, cp, ".cp")
        argv += ["--checkpoint", str(cp_path), "--pubkey", str(seeds.pub)]
    run_cli(*argv).check((0, 1, 2), " ".join(argv))


@FUZZ
@given(data=st.data(), which=st.sampled_from(["checkpoint", "pubkey", "since"]),
       as_json=st.booleans())
def test_verify_checkpoint_pubkey_since(
    data: st.DataObject, which: str, as_json: bool, seeds: Seeds, scratch: Path
) -> None:
    files = {"checkpoint": seeds.checkpoint, "pubkey": seeds.pub, "since": seeds.early}
    files[which] = _write(
        scratch, data.draw(mutated(Inputs([files[which].read_bytes()]), rechain_share=0)), ".cp"
    )
    argv = ["verify", str(seeds.locals), *(["--json"] if as_json else [])]
    for option, path in files.items():
        argv += [f"--{option}", str(path)]
    run_cli(*argv).check((0, 2, 4), " ".join(argv))


@FUZZ
@given(data=st.data())
def test_types_from_a_table(data: st.DataObject, seeds: Seeds, scratch: Path) -> None:
    table = _write(scratch, data.draw(mutated(Inputs([seeds.table.read_bytes()]),
                                              rechain_share=0)))
    out = scratch / f"out-{next(_counter)}"
    argv = ["types", "--from", str(table), "-o", f"{out}.jsonl", "--stubs", str(out),
            "--patch", f"{out}.diff", "--root", str(PROGRAM.parent)]
    answer = run_cli(*argv)
    if answer.status == 0 and answer.stderr.count("\n") == 2:
        # written: one note per output it reports (--patch, --stubs), none a traceback
        lines = answer.stderr.splitlines()
        assert all(x.startswith("blocktrace types: ") for x in lines), answer.stderr
        assert "Traceback" not in answer.stderr
        return
    answer.check((0, 2), " ".join(argv))


_REQUEST = msgspec.json.encode(
    {"source": "xs = [1, 2]\nys = xs\nys.append(3)\nprint(len(ys))", "steps": 20}
)


@FUZZ
@given(data=st.data())
def test_snapshot_requests(data: st.DataObject) -> None:
    request = data.draw(mutated(Inputs([_REQUEST]), rechain_share=0))
    run_cli("snapshot", stdin=request).check((0, 1, 2), f"snapshot <<< {request!r}")
