"""The blocktrace 0.0.16 API on the new engine: ``BlockTrace``, imported as before
with ``from blocktrace import blocktrace`` (``blocktrace/blocktrace.py`` is the shim).

Code written for the 2021 tool runs unchanged::

    from blocktrace import blocktrace
    example = blocktrace.BlockTrace("Test", _globals="changes", _locals="on", _builtins="changes")
    example.start(); fib(3); example.stop()
    print(example.block)

``example.block`` is a dict of numbered blocks: block 0 holds ``DateTime``,
``Globals``/``Builtins``/``Locals`` (those switched on), ``sample`` (the genesis
text) and ``Hash``; every later block ``DateTime``, ``Function``, the switched-on
value groups, ``Line Text``, ``Event`` (``call``/``line``/``return``/
``exception``/``opcode``), ``Arg``, ``Instruction No``, ``Opcode``, ``Module``,
``Path``, ``Line No`` and ``Hash`` -- the hash of the block with ``Hash`` set to
the previous block's hash.  What changed from 0.0.16 (docs/MIGRATING.md):

- it is a tracer on the sys.monitoring engine (no ``sys.settrace``), tracing the
  user's own code only, from the frames that start after ``start()``;
- ``verifychain()`` returns ``True`` or a falsy :class:`ChainFailure` naming the
  block and the reason, and checks block 0 too;
- values JSON cannot encode are rendered (``<Foo #3>``), not dropped; nothing
  is ``repr``-ed, so tracing runs none of the program's code;
- exceptions and odd return values never raise inside the traced program;
- ``"changes"`` is computed here (no DeepDiff); DeepDiff keyword arguments are
  accepted and ignored;
- ``save(path)`` writes the same run as a standard hash-chained trace
  (docs/FORMAT.md) that ``blocktrace verify`` accepts.

The package: ``tracer`` (``BlockTrace``, the tracer), ``values`` (values as
blocks and the standard trace show them; the C helpers of ``_cvalues.c``),
``shapes`` (the fixed parts of blocks), ``changes`` (the ``"changes"`` mode),
``bytecode`` (what is read from code objects), ``replay`` (``save()``) and
``verify`` (``verifychain``).
"""

from __future__ import annotations

from blocktrace.views.blocks.tracer import BlockTrace
from blocktrace.views.blocks.verify import ChainFailure

__all__ = ["BlockTrace", "ChainFailure"]
