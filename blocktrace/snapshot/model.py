"""The request and response of a snapshot run, as msgspec structs.

The shapes follow Python Tutor's ``pg_logger`` trace and willow's tracer closely
enough that a front end written for either needs only a small adapter (see
docs/SNAPSHOTS.md): a response is a list of steps, each with the event, the
line, the stack of frames with their variables, the heap of objects those
variables reach, and the cumulative output.

Values inside frames and heap members are *encoded values*: ``None``, booleans,
numbers and strings stay native JSON; a reference to a heap object is
``["REF", n]`` and a non-finite float is ``["SPECIAL_FLOAT", "inf"]`` (both
spelled as in Python Tutor).  Heap ids are small integers, stable within one
response.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "MAX_STEPS",
    "ChildJob",
    "EndRecord",
    "ErrorInfo",
    "Frame",
    "HeapObject",
    "Limits",
    "SnapshotRequest",
    "SnapshotResponse",
    "Step",
]

MAX_STEPS = 100_000
"""The most steps any request may ask for; a server may allow fewer."""

Value = Any
"""An encoded value: JSON scalar, ``["REF", n]`` or ``["SPECIAL_FLOAT", s]``."""

StepEvent = Literal["call", "line", "return", "exception", "uncaught_exception", "step_limit"]
Category = Literal["list", "tuple", "set", "dict", "object", "class", "function", "module", "other"]
Status = Literal["ok", "error", "step_limit", "limit"]
LimitName = Literal["steps", "cpu_time", "wall_time", "output", "disk"]


class SnapshotRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a client sends: willow's ``{source, input, steps}`` plus the format."""

    source: Annotated[str, msgspec.Meta(max_length=1_000_000)]
    """The program, as the text of a ``.py`` file."""
    input: str = ""
    """Fed to the program's stdin; reading past its end raises ``EOFError``."""
    steps: Annotated[int, msgspec.Meta(ge=1, le=MAX_STEPS)] = 1000
    """The most steps to record; the run stops (uncatchably) after them."""
    format: Literal["snapshots", "trace"] = "snapshots"
    """``snapshots`` for this module's response, ``trace`` for a blocktrace trace."""
    genesis: str | None = None
    """Genesis token of the trace (``format: trace`` only), e.g. a grader's nonce."""


class ErrorInfo(msgspec.Struct, omit_defaults=True):
    """An exception of the program, or the limit that stopped it."""

    type: str
    """The exception's type name (``ZeroDivisionError``), or a limit's name."""
    message: str
    line: int | None = None
    """The line of the user's source it happened at, when known."""


class HeapObject(msgspec.Struct, omit_defaults=True):
    """One object on the heap, reachable from a frame's variables.

    ``members`` are ``[key, value]`` pairs: the index for lists, tuples and
    sets, the encoded key for dicts, the attribute name for objects, classes and
    modules.  Values that are heap objects appear as ``["REF", n]``, so aliasing
    and cycles are visible.
    """

    type: str
    """The object's type name (``list``, ``Node``, ``function``)."""
    category: Category
    members: list[tuple[Value, Value]] = []
    name: str | None = None
    """Functions: ``f(a, b)``; classes and modules: their name."""
    value: str | None = None
    """Short text for builtin values shown whole (``range(0, 3)``, ``b'ab'``)."""
    truncated: int = 0
    """How many members were left out (containers are bounded)."""


class Frame(msgspec.Struct):
    """A frame of the user's code, oldest first in ``Step.stack``."""

    id: int
    """Small per-response number of this call."""
    name: str
    """``<module>`` or the function's qualified name."""
    line: int
    variables: dict[str, Value]
    """In declaration order; a ``return`` step adds ``__return__``."""


class Step(msgspec.Struct, omit_defaults=True):
    """The program's state at one step: before a line runs, at a call, a
    return, or where an exception was raised."""

    event: StepEvent
    line: int
    function: str
    stack: list[Frame]
    heap: dict[str, HeapObject]
    stdout: str
    """Everything printed so far."""
    error: ErrorInfo | None = None
    """On ``exception``, ``uncaught_exception`` and ``step_limit`` steps."""


class SnapshotResponse(msgspec.Struct):
    """The whole answer to a ``format: snapshots`` request."""

    status: Status
    """``ok``: the program ended normally; ``error``: an uncaught exception (or
    the process ended abnormally); ``step_limit``; ``limit``: a resource limit."""
    steps: list[msgspec.Raw]
    stdout: str
    error: ErrorInfo | None = None
    limit: LimitName | None = None
    """Which limit stopped the run, when one did."""


class Limits(msgspec.Struct, frozen=True):
    """Bounds on one confined run.  Small defaults: this is for teaching code."""

    cpu_seconds: int = 2
    wall_seconds: float = 5.0
    memory_bytes: int = 512 * 1024 * 1024
    processes: int = 8
    """Processes the run's user may have beyond those it had at start."""
    file_bytes: int = 1024 * 1024
    """Largest file the program may write in its directory."""
    disk_bytes: int = 8 * 1024 * 1024
    """All the program's files together: a size-limited tmpfs under bubblewrap and
    in the Landlock layer's private tree; where neither is, the server measures
    the directory and stops the run past it."""
    open_files: int = 64
    stdout_chars: int = 64 * 1024
    """Output kept (characters); printing more stops the run with ``limit: output``."""
    response_bytes: int = 16 * 1024 * 1024
    """Largest response (all steps together) a run may produce."""
    max_steps: int = 10_000
    """Requests asking for more steps are refused."""


class EndRecord(msgspec.Struct, omit_defaults=True):
    """How the child's run ended, sent last on its result channel."""

    status: Status
    stdout: str
    error: ErrorInfo | None = None
    limit: LimitName | None = None


class ChildJob(msgspec.Struct):
    """Everything the child bootstrap needs, sent on its stdin."""

    request: SnapshotRequest
    limits: Limits
    workdir: str
    audit_hook: bool = True
    os_layer: Literal["bwrap", "landlock", "none"] = "none"
    """``landlock``: Landlock and seccomp are the boundary (the child applies
    them); ``bwrap``: bubblewrap is, with seccomp (and Landlock where the kernel
    has it) inside; ``none``: no kernel layer."""
    uid: int | None = None
    """Switch to this user id (and group) before running the program."""
    allowed_read: list[str] = []
    """Directories the program may read (Python's library), besides ``workdir``."""
    private_tree: bool = False
    """``landlock`` only: first move into a user and mount namespace holding only
    ``allowed_read`` and a tmpfs of the disk quota at ``workdir``
    (:mod:`blocktrace.snapshot.mountns`)."""
