"""The trace events: what the stepper tells a tracer, and nothing else.

Modelled on ``ethereum.trace``: an event holds what is fixed for its *site* (an
instruction, a code object) or its *occurrence* (an exception, a return value).
Everything that changes from one execution to the next -- gas left, call depth,
thread, the live frame -- is read from the ``vm`` object passed beside the event,
as ``evm`` is in the execution specs.  That is what lets the stepper build one
``OpStart`` per instruction site, once, and hand the same object to the tracer
every time that instruction runs.

Field meanings for Python (the JSON names in the trace file are in brackets):

- ``pc`` [pc]: bytecode offset of the instruction in its code object (bytes).
- ``op`` [op]: the opcode number (``dis.opmap``), specialisations folded back to
  the base instruction, so traces compare across runs and warm-ups.
- ``op_name`` [opName]: the ``dis`` name of ``op``.
- ``line`` [line]: the source line of the instruction, 0 when it has none.
- ``code`` [code]: a small per-trace number for the code object; ``CallStart``
  carries its identity (``name`` = ``__qualname__``, ``file``, ``first_line``).
- depth (read from ``vm.depth``): call depth inside the traced scope, from 1.
- gas (read from ``vm.gas``): steps left before this instruction; every traced
  instruction costs 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CallKind",
    "CallStart",
    "ExceptionKind",
    "OpEnd",
    "OpException",
    "OpStart",
    "Return",
    "ReturnKind",
    "Stop",
    "TraceEvent",
]

CallKind = Literal["call", "resume", "throw", "enter"]
ReturnKind = Literal["return", "yield", "unwind"]
ExceptionKind = Literal["raise", "reraise", "handled"]


@dataclass(slots=True)
class CallStart:
    """A frame of in-scope code starts running.

    Fires before the frame's first instruction: on a plain call (``kind="call"``),
    when a generator or coroutine is resumed by ``next``/``send``/``await``
    (``"resume"``), or resumed by ``throw()`` (``"throw"``).  ``"enter"``: tracing
    started while this frame was already running (the frame that called
    ``blocktrace.start()`` or entered ``blocktrace.trace()``).  Built once per
    code object and kind, and reused.
    """

    kind: CallKind
    code: int
    """Per-trace number of the code object (also used by ``OpStart.code``)."""
    name: str
    """``co_qualname``: ``Class.method``, ``outer.<locals>.inner``, ``<module>``."""
    file: str
    """``co_filename`` as Python reports it."""
    first_line: int
    """``co_firstlineno``."""


@dataclass(slots=True)
class OpStart:
    """An instruction of in-scope code is about to execute.

    Fires once per executed bytecode instruction (``sys.monitoring``'s
    ``INSTRUCTION`` event), before it runs and after its gas is charged.
    One object per instruction site, reused every time the site runs.
    """

    pc: int
    op: int
    op_name: str
    line: int
    code: int
    line_start: bool = False
    """True for the first instruction of each source-line range of the code
    object (``co_lines``): where per-line work such as locals snapshots happens."""


@dataclass(slots=True)
class OpEnd:
    """The instruction at ``pc`` finished without raising.

    CPython reports no "instruction done" event, so completion is observed as
    the next event in the same frame.  The stepper only emits ``OpEnd`` to a
    tracer that sets ``wants_op_end = True`` (``Recorder(op_end=True)``); the
    EIP-3155 writer, like the EIP-3155 tracer of the execution specs, does not
    need it.
    """

    pc: int
    code: int


@dataclass(slots=True)
class OpException:
    """An exception was raised, re-raised or caught at an instruction.

    ``kind="raise"``: raised at ``pc`` (by the instruction or a call it made);
    ``"reraise"``: re-raised by ``raise``/``finally``/``except*`` bookkeeping;
    ``"handled"``: caught by an ``except`` clause of this frame.  One object per
    occurrence.
    """

    kind: ExceptionKind
    pc: int
    op: int
    op_name: str
    line: int
    code: int
    error_type: str
    """Qualified name of the exception's type, e.g. ``ZeroDivisionError``."""
    message: str
    """``str(exc)``, bounded; a message that cannot be rendered is described."""


@dataclass(slots=True)
class Return:
    """A frame of in-scope code stops running.

    ``kind="return"``: it returned ``value``; ``"yield"``: a generator or
    coroutine suspended, yielding ``value``; ``"unwind"``: an exception left the
    frame (``value`` is the exception).  ``pc`` is the instruction it left from.
    """

    kind: ReturnKind
    code: int
    pc: int
    value: object


@dataclass(slots=True)
class Stop:
    """The traced run ended; the last event of every run.

    ``output`` is the rendered result (the exit status for ``blocktrace run``),
    ``error`` is ``None`` on success, ``"OutOfGas"`` when the step budget ran out,
    otherwise the uncaught exception as ``Type: message``; ``gas_used`` counts the
    traced instructions.
    """

    output: str
    error: str | None
    gas_used: int


TraceEvent = CallStart | OpStart | OpEnd | OpException | Return | Stop
