"""``blocktrace._native``: the one switch between the C extensions and the references."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from blocktrace import _native

_REPORT = """
import json
from blocktrace import _native
from blocktrace.chain import writer
from blocktrace.vm import stepper
print(json.dumps({
    "pure": _native.PURE,
    "cwriter": _native.extension("blocktrace.chain._cwriter") is not None,
    "chook": _native.extension("blocktrace.vm._chook") is not None,
    "accelerated": writer.ACCELERATED,
    "c_writer": writer.LineWriter is not writer.PyLineWriter,
    "c_hook": stepper._InstructionHook is not None,
}))
"""


def _report(pure: str | None) -> dict[str, bool]:
    env = {k: v for k, v in os.environ.items() if k != "BLOCKTRACE_PURE"}
    if pure is not None:
        env["BLOCKTRACE_PURE"] = pure
    out = subprocess.run([sys.executable, "-c", _REPORT], env=env, capture_output=True,
                         text=True, check=True, timeout=60)
    result: dict[str, bool] = json.loads(out.stdout)
    return result


def test_blocktrace_pure_turns_every_c_path_off() -> None:
    assert _report("1") == {
        "pure": True, "cwriter": False, "chook": False, "accelerated": False,
        "c_writer": False, "c_hook": False,
    }


def test_without_blocktrace_pure_the_built_extensions_are_used() -> None:
    for name, value in (("", None), ("unset", "")):  # an empty value is not set
        report = _report(value)
        assert report["pure"] is False, name
        assert report["accelerated"] == report["c_writer"] == report["cwriter"], name
        assert report["c_hook"] == report["chook"], name


def test_an_extension_that_is_not_there_is_none() -> None:
    assert _native.extension("blocktrace.chain._no_such_extension") is None


def test_the_extensions_load_when_built() -> None:
    if _native.PURE:
        pytest.skip("BLOCKTRACE_PURE is set")
    try:
        import blocktrace.chain._cwriter as cwriter
    except ImportError:
        pytest.skip("the C extensions are not built")
    assert _native.extension("blocktrace.chain._cwriter") is cwriter
