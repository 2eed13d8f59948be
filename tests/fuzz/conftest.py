"""The real inputs the reader fuzz tests mutate, made once per session by the
real command: traces of a small program, keys, checkpoints and a proof bundle;
and the client traces of ../shared/refdata/eip3155."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFDATA = ROOT.parent / "shared" / "refdata" / "eip3155"
PROGRAM = Path(__file__).parents[1] / "programs" / "fuzzseed.py"
CLIENT_TRACES = ("geth/statetest1", "revm/negative_refund", "besu/stackUnderflow_nonzeroMem",
                 "eels/00000936-mixed-1", "nethermind/statetest1")


@dataclass(frozen=True)
class Seeds:
    """Paths of the seed inputs (all real, none edited)."""

    dir: Path
    plain: Path
    """A sealed trace, no locals."""
    locals: Path
    """A sealed trace with --locals on, checkpointed while it ran (signed)."""
    unsealed: Path
    """``locals`` without its summary line."""
    key: Path
    pub: Path
    checkpoint: Path
    """``blocktrace sign`` of ``locals``."""
    early: Path
    """The first checkpoint written while ``locals`` ran."""
    bundle: Path
    """``blocktrace prove locals 20``."""
    table: Path
    """``blocktrace types`` of the program: a type table."""
    clients: tuple[Path, ...]

    def traces(self) -> list[bytes]:
        return [p.read_bytes() for p in (self.plain, self.locals, self.unsealed)]


def _bt(*args: str | Path) -> None:
    done = subprocess.run([sys.executable, "-m", "blocktrace", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (args, done.stderr)


@pytest.fixture(scope="session")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    d = tmp_path_factory.mktemp("fuzz-seeds")
    plain, traced, unsealed = d / "plain.jsonl", d / "locals.jsonl", d / "unsealed.jsonl"
    _bt("keygen", "fuzz.example/ci", "--out", d / "k")
    _bt("run", "--genesis", "fuzz-seed", "-o", plain, PROGRAM)
    _bt("run", "--locals", "on", "--checkpoint-every", "32", "--sign-key", d / "k.key",
        "-o", traced, PROGRAM)
    lines = traced.read_bytes().splitlines(keepends=True)
    unsealed.write_bytes(b"".join(lines[:-1]))
    _bt("sign", traced, "--key", d / "k.key", "-o", d / "whole.cp")
    _bt("prove", traced, "20", "-o", d / "bundle.json")
    _bt("types", "-o", d / "table.jsonl", PROGRAM)
    early = sorted(d.glob("locals.jsonl.cp.*"), key=lambda p: int(p.suffix[1:]))
    assert early, "the run wrote no checkpoint"
    clients = tuple(
        p for p in (REFDATA / f"{name}.jsonl" for name in CLIENT_TRACES) if p.is_file()
    )
    return Seeds(d, plain, traced, unsealed, d / "k.key", d / "k.pub", d / "whole.cp",
                 early[0], d / "bundle.json", d / "table.jsonl", clients)


@pytest.fixture(scope="session")
def damage_seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The traces test_fuzz_one_answer.py and test_fuzz_view_api.py damage
    (versions 4 and 3, plain and compact, sealed and cut short), recorded once."""
    from .test_fuzz_one_answer import record_seeds

    return record_seeds(tmp_path_factory.mktemp("fuzz-one-seeds"))


@pytest.fixture(scope="session", autouse=True)
def _close_the_worker() -> Any:
    """The shared command worker (worker.shared), stopped when the session ends."""
    from .worker import close_shared

    yield
    close_shared()
