"""Stubs of ``blocktrace.golden._cstabilise`` (csrc/stabilise.c): the golden form's line loop."""

from collections.abc import Buffer, Callable

def scan(
    data: Buffer,
    start: int,
    probes: tuple[bytes, ...] | None,
    seen: dict[bytes, bytes],
    add: Callable[[bytes], object],
    /,
) -> tuple[int, int]:
    """Hand the bodies of ``data``'s lines from ``start`` to ``add`` while Python has
    nothing to do for them: ``(offset, why)`` (0: done to the incomplete rest, 1: the
    line at ``offset`` needs Python, 2: it has no hash member)."""

def unsettled(data: Buffer, probes: tuple[bytes, ...], /) -> bool:
    """Whether one of ``probes`` occurs in ``data``, or ``" at 0x"`` and a hex digit."""

def known(body: bytes, probes: tuple[bytes, ...], seen: dict[bytes, bytes], /) -> bytes | None:
    """``body`` when none of ``probes`` occurs in it, ``seen[body]`` when it was
    rewritten before, else None (Python rewrites it)."""

def spawn_watch(on: bool, /) -> str | None:
    """Arm the process-start watch (an audit hook), or disarm it and get what it saw:
    ``"<event> <repr of its argument>"`` or None."""
