"""The frames of blocktrace under a program ``blocktrace run`` runs (issue 11 item 5).

``inspect.stack()`` at a script's module level is 1 frame long under python.
Under ``blocktrace run`` the program is called from blocktrace's ``main``
itself (no runner or command frames between), so exactly the frames that
start the command remain under it: the ``blocktrace`` script's and ``main``'s,
or, for ``python -m blocktrace``, runpy's two and blocktrace's ``__main__``
module (docs/ARCHITECTURE.md, "What a traced program can still see").
Real subprocesses, with the C extensions and with BLOCKTRACE_PURE=1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.processes import mode_env

STACK = """\
import inspect, sys, traceback
def inner():
    return inspect.stack()
for f in inspect.stack():
    print("module", f.function, f.filename)
print("depth", len(inspect.stack()), len(inner()))
f = sys._getframe()
n = 0
while f is not None:
    n += 1
    f = f.f_back
print("frames", n)
print("extract", len(traceback.extract_stack()))
"""

_CONSOLE = Path(sys.executable).with_name("blocktrace")
_MODES = ["C", "pure"]


def _run(argv: list[str], tmp_path: Path, mode: str) -> list[str]:
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=mode_env(mode == "pure"), check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _stack(tmp_path: Path, mode: str, *how: str, module: bool = False) -> list[str]:
    (tmp_path / "stk.py").write_text(STACK)
    trace = str(tmp_path / "stk.trace.jsonl")
    target = ["-m", "stk"] if module else ["stk.py"]
    if not how:
        return _run([sys.executable, *target], tmp_path, mode)
    return _run([*how, "run", "-o", trace, "--force", *target], tmp_path, mode)


def _counts(lines: list[str]) -> tuple[int, int, int, int]:
    depth = next(line for line in lines if line.startswith("depth")).split()
    frames = next(line for line in lines if line.startswith("frames")).split()[1]
    extract = next(line for line in lines if line.startswith("extract")).split()[1]
    return int(depth[1]), int(depth[2]), int(frames), int(extract)


@pytest.mark.parametrize("mode", _MODES)
def test_the_blocktrace_script_leaves_two_frames_under_a_script(tmp_path: Path,
                                                                mode: str) -> None:
    if not _CONSOLE.exists():
        pytest.skip(f"no blocktrace script beside {sys.executable} (not installed with pip)")
    python = _counts(_stack(tmp_path, mode))
    assert python == (1, 2, 1, 1)
    lines = _stack(tmp_path, mode, str(_CONSOLE))
    assert _counts(lines) == (3, 4, 3, 3)
    below = [line for line in lines if line.startswith("module")]
    assert below[0].endswith("stk.py")
    cli = Path(__file__).parents[2] / "blocktrace" / "cli" / "__init__.py"
    assert below[1].split(maxsplit=2)[1:] == ["main", str(cli)]
    assert below[2].split(maxsplit=2)[1:] == ["<module>", str(_CONSOLE)]


@pytest.mark.parametrize("mode", _MODES)
def test_python_dash_m_blocktrace_leaves_its_own_three(tmp_path: Path, mode: str) -> None:
    lines = _stack(tmp_path, mode, sys.executable, "-m", "blocktrace")
    assert _counts(lines) == (4, 5, 4, 4)
    below = [line.split(maxsplit=2)[1:] for line in lines if line.startswith("module")][1:]
    assert below[0] == ["<module>", str(Path(__file__).parents[2] / "blocktrace" / "__main__.py")]
    assert [name for name, _ in below[1:]] == ["_run_code", "_run_module_as_main"]


@pytest.mark.parametrize("mode", _MODES)
def test_a_module_run_with_dash_m_has_python_s_runpy_frames_and_ours(tmp_path: Path,
                                                                     mode: str) -> None:
    python = _counts(_stack(tmp_path, mode, module=True))
    assert python == (3, 4, 3, 3)  # python -m: runpy's _run_module_as_main, _run_code
    lines = _stack(tmp_path, mode, sys.executable, "-m", "blocktrace", module=True)
    assert _counts(lines) == (6, 7, 6, 6)
    names = [line.split()[1] for line in lines if line.startswith("module")]
    assert names == ["<module>", "_run_code", "_run_module_as_main", "<module>", "_run_code",
                     "_run_module_as_main"]


@pytest.mark.parametrize("mode", _MODES)
def test_blocktrace_types_leaves_the_same_frames_as_run(tmp_path: Path, mode: str) -> None:
    """``blocktrace types`` runs its program from ``main``'s frame too, not
    from its command's handler and a runner (it did until session 6)."""
    (tmp_path / "stk.py").write_text(STACK)
    table = str(tmp_path / "stk.types.jsonl")
    lines = _run([sys.executable, "-m", "blocktrace", "types", "-o", table, "--force", "stk.py"],
                 tmp_path, mode)
    assert _counts(lines) == (4, 5, 4, 4)
    below = [line.split(maxsplit=2)[1:] for line in lines if line.startswith("module")][1:]
    assert below[0] == ["<module>", str(Path(__file__).parents[2] / "blocktrace" / "__main__.py")]
    assert Path(table).stat().st_size > 0
