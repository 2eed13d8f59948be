"""The real inputs the reader fuzz tests mutate, made once per session by the
real command: traces of a small program, keys, checkpoints and a proof bundle;
the damaged-trace seeds (``damage_seeds``, versions 4 and 3, plain and
compact); and the client traces of ../shared/refdata/eip3155.

The CI part of tests/fuzz (what runs without ``BLOCKTRACE_FUZZ=deep``) has a
budget of 30 s per Python.  What it costs, ``CI=true pytest tests/fuzz`` on
3.13, 2 shared cores (wall; CPU = user + sys of pytest and its children):

- before (cebe07d, this session's start): 72.6 s wall, 43.4 s CPU at load 1.3-1.7; alternated
  with the tree below at load 6.5-10.8 (the lead's CI running): 157-160 s
  wall, 47.4-48.1 s CPU;
- session 16, same runs alternated: 80-98 s wall, 20.9-22.8 s CPU, with three
  tests more (the send deadlines of both servers, the view server's whole API
  on damaged traces); then with 20 examples a hypothesis test (was 40): 50.6 s
  wall, 18.3 s CPU at load 6.9-7.0;
- at the session's end (main 76ac300), alternated with cebe07d at load 3.1-3.9:
  3.13 44.0 s wall, 20.6 s CPU (before 85.8 s, 51.2 s); 3.12 43.3 s wall,
  23.9 s CPU (before 90.4 s, 49.9 s); two more runs of 3.12 just after: 39.4 s
  and 29.7 s (load falling from ~3); 3.13 at load 1.9-2.0: 34.0 s wall, 23.5 s
  CPU.  Over the 30 s budget at those loads but for one run; what
  is left is mostly waiting for a core (the servers' and table builders'
  processes, the confined runs of test_fuzz_snapshot_server) and the servers'
  deadlines the tests wait out (about 6 s in all).
- session 17: test_fuzz_walks.py and test_fuzz_guarded.py (new) cost ~3.8 s CPU per
  Python (5.6 s user + sys with pytest's start-up, 1.8 s of it the start-up; wall
  meaningless at load 9); then the whole CI part on 3.13 (main 1ffc8dc), load 4.0-4.6
  with an ASan run of fuzz's at nice 5 beside it: 50.4 s wall, 18.2 s CPU (pytest and
  the children it waited for).  Still over the 30 s wall budget at such loads, as
  before.

Where it went: the readers that ran as a process each (0.15-0.3 s of start-up
and imports, ~15 an example of test_fuzz_one_answer, the pure verify and cat of
test_fuzz_v4, most of test_fuzz_argv's examples, test_regressions_v4's show,
verify, query) run one after another in one worker process (worker.py; the
pure ones in a ``BLOCKTRACE_PURE=1`` one), except the commands that run a
program; the seed traces are recorded once a session and shared
(``damage_seeds`` by test_fuzz_one_answer, test_fuzz_view_api and test_fuzz_v4;
test_regressions_v4's once a module); the servers' deadlines are short in the
tests (1 s; the view's set by ``BLOCKTRACE_VIEW_REQUEST_SECONDS`` and
``BLOCKTRACE_VIEW_SEND_SECONDS``); a request's server ``api/verify`` in
test_fuzz_one_answer runs in the deep mode only (test_fuzz_view_api asks a
server its whole API on the same damage); ``harness.FUZZ`` runs 20 examples
(was 40: every damage class still reaches every reader)."""

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
    """``blocktrace ARGS`` that runs no program: in the shared worker (worker.py)."""
    from .worker import shared

    said = shared().run(args)
    assert said.returncode == 0, (args, said.stderr)


def run_at_once(*commands: list[str | Path], cwd: Path | None = None) -> None:
    """``python ARGV`` for each of ``commands`` (programs recorded: independent),
    all started at once (two cores: about half the wall time of one after
    another); each must exit 0."""
    procs = [subprocess.Popen([sys.executable, *map(str, argv)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd)
             for argv in commands]
    for argv, proc in zip(commands, procs, strict=True):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, (argv, err.decode("utf-8", "replace"))


@pytest.fixture(scope="session")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    d = tmp_path_factory.mktemp("fuzz-seeds")
    plain, traced, unsealed = d / "plain.jsonl", d / "locals.jsonl", d / "unsealed.jsonl"
    _bt("keygen", "fuzz.example/ci", "--out", d / "k")
    bt = ["-m", "blocktrace"]
    run_at_once([*bt, "run", "--genesis", "fuzz-seed", "-o", plain, PROGRAM],
                [*bt, "run", "--locals", "on", "--checkpoint-every", "32",
                 "--sign-key", d / "k.key", "-o", traced, PROGRAM],
                [*bt, "types", "-o", d / "table.jsonl", PROGRAM], cwd=d)
    lines = traced.read_bytes().splitlines(keepends=True)
    unsealed.write_bytes(b"".join(lines[:-1]))
    _bt("sign", traced, "--key", d / "k.key", "-o", d / "whole.cp")
    _bt("prove", traced, "20", "-o", d / "bundle.json")
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


@pytest.fixture(scope="package", autouse=True)
def _close_the_worker() -> Any:
    """The shared command worker (worker.shared), stopped when tests/fuzz ends:
    tests elsewhere check that the test process leaves no child behind
    (tests/snapshot's server fixture)."""
    from .worker import close_shared

    yield
    close_shared()
