"""Optional C speed-ups, built when a C compiler and the Python headers are there.

blocktrace works without them (the pure-Python paths are the reference and stay tested);
with them the per-instruction path runs without a Python frame.  A build failure is a
warning, never an install failure.  ``BLOCKTRACE_PURE=1`` at run time ignores them.
"""

import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.warnings import InformationOnly
except ImportError:  # a setuptools without it does not say it either
    pass
else:
    # `pip install -e .` of this flat layout (the package beside tests/, benchmarks/ ...) is
    # served by setuptools' import finder, which always adds "Editable installation ... Please be
    # careful with folders in your working directory with the same name as your package": pip
    # shows it to every new user. Here the folder of that name in the checkout is the package
    # itself, the one the finder points at, so the note has nothing to act on: it is left out.
    warnings.filterwarnings("ignore", message=r"Editable installation\.", category=InformationOnly)


class _BuildAll(build_ext):
    """Every build rebuilds every extension: they share C sources, and in a
    checkout ``blocktrace._native`` leaves unused an extension older than any
    C source (built from other sources), so an incremental build that skipped
    an unchanged extension would switch it off."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.force = True


# hidden: the helpers of one extension (sha256_init ...) are never seen by another library
_FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"]
# what the extensions do alike with CPython's C API (argument counts, types added to modules)
_PYUTIL = "blocktrace/csrc/pyutil.h"

setup(
    cmdclass={"build_ext": _BuildAll},
    ext_modules=[
        Extension(
            "blocktrace.chain._cwriter",
            [f"blocktrace/chain/csrc/{name}.c"
             for name in ("writer", "buffer", "sites", "merkle", "sha256", "cpu", "bench")],
            depends=[*(f"blocktrace/chain/csrc/{name}.h"
                       for name in ("bench", "buffer", "cpu", "hex", "merkle", "sha256", "sites")),
                     "blocktrace/format/csrc/opline.h", "blocktrace/format/csrc/members.h",
                     "blocktrace/events/csrc/sink.h"],
            # the op line's layout is the format's (format/csrc/opline.h); the stepper's
            # hooks call op and line through events/csrc/sink.h
            include_dirs=["blocktrace/chain/csrc", "blocktrace/format/csrc",
                          "blocktrace/events/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "blocktrace.format._cscan",
            ["blocktrace/format/csrc/scan.c", "blocktrace/format/csrc/columns.c",
             "blocktrace/chain/csrc/sha256.c",
             "blocktrace/chain/csrc/cpu.c"],
            depends=["blocktrace/format/csrc/columns.h", "blocktrace/format/csrc/jsonint.h",
                     "blocktrace/format/csrc/linereader.h",
                     "blocktrace/format/csrc/scanapi.h", "blocktrace/format/csrc/linekinds.h",
                     "blocktrace/chain/csrc/sha256.h", "blocktrace/chain/csrc/hex.h",
                     "blocktrace/chain/csrc/cpu.h", "blocktrace/format/csrc/members.h", _PYUTIL],
            include_dirs=["blocktrace/chain/csrc", "blocktrace/csrc", "blocktrace/format/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "blocktrace.eip3155._cskip",
            ["blocktrace/eip3155/csrc/skip.c"],
            depends=[_PYUTIL, "blocktrace/format/csrc/scanapi.h",
                     "blocktrace/format/csrc/linekinds.h"],
            include_dirs=["blocktrace/csrc", "blocktrace/format/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "blocktrace.vm._chook",
            ["blocktrace/vm/_chook.c"],
            depends=["blocktrace/format/csrc/callline.h", "blocktrace/events/csrc/sink.h",
                     "blocktrace/events/csrc/linestart.h", _PYUTIL],
            # the call and return lines' layout is the format's (format/csrc/callline.h);
            # a tracer's sink is called through events/csrc/sink.h
            include_dirs=["blocktrace/format/csrc", "blocktrace/events/csrc", "blocktrace/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(  # the viewer's table pass (blocktrace/view/tables.py)
            "blocktrace.view._ctables",
            ["blocktrace/view/csrc/tables.c"],
            # the op, call and return lines are read by the format's reader
            depends=["blocktrace/format/csrc/linereader.h", "blocktrace/format/csrc/jsonint.h",
                     "blocktrace/format/csrc/linekinds.h", "blocktrace/format/csrc/members.h",
                     _PYUTIL],
            include_dirs=["blocktrace/format/csrc", "blocktrace/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(  # a line start's values (owner: values; reference tracers/chain.py, render.py)
            "blocktrace.tracers._cvalues",
            ["blocktrace/tracers/csrc/values.c"],
            depends=["blocktrace/format/csrc/opline.h", "blocktrace/format/csrc/calldepth.h",
                     "blocktrace/format/csrc/linekinds.h", "blocktrace/format/csrc/members.h",
                     "blocktrace/chain/csrc/hex.h",
                     "blocktrace/events/csrc/sink.h", "blocktrace/events/csrc/linestart.h"],
            # the writer's line and the stepper's hook meet it through events/csrc
            include_dirs=["blocktrace/format/csrc", "blocktrace/chain/csrc",
                          "blocktrace/events/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(  # the Recorder's log, a sink of the stepper's C hooks (owner: core)
            "blocktrace.tracers._crecord",
            ["blocktrace/tracers/csrc/record.c"],
            depends=["blocktrace/events/csrc/sink.h", _PYUTIL],
            include_dirs=["blocktrace/events/csrc", "blocktrace/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(  # the diff's walk over EVM clients' traces (blocktrace/eip3155/clientpass.py)
            "blocktrace.eip3155._cclients",
            ["blocktrace/eip3155/csrc/clients.c"],
            depends=[_PYUTIL],
            include_dirs=["blocktrace/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "blocktrace.golden._cstabilise",
            ["blocktrace/golden/csrc/stabilise.c"],
            depends=["blocktrace/format/csrc/linekinds.h", "blocktrace/format/csrc/members.h"],
            include_dirs=["blocktrace/format/csrc"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "blocktrace.views.blocks._cvalues",
            ["blocktrace/views/blocks/_cvalues.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
    ],
)
