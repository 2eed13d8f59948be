"""Aligning two normalised step streams: first divergence, then hunks.

Like goevmlab's comparer, the streams are walked in lockstep and the first
step where the compared fields differ is the first divergence.  Unlike it, the
differ then looks ahead (at most ``window`` steps on each side, so memory stays
bounded) for the nearest point where both streams agree again for ``sync``
steps in a row, records the divergent region as a hunk (steps only in A,
steps only in B, like a diff(1) hunk) and carries on.  Only the first
``max_hunks`` hunks are kept in full; the rest are counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator

import msgspec

from blocktrace.eip3155.compare import Comparer
from blocktrace.eip3155.records import Step

__all__ = ["DEFAULT_MAX_HUNKS", "DEFAULT_WINDOW", "Divergence", "Hunk", "StepDiff", "diff_steps"]

DEFAULT_MAX_HUNKS = 5
DEFAULT_WINDOW = 2000
SYNC = 3
"""Steps that must agree in a row for the streams to count as back in step."""
FIRST_WINDOW = 8
"""The first look-ahead after a divergence (then x8 up to the full window)."""
SHOWN = 5
"""Steps kept per side of a hunk for the report."""
SKIP_AGAIN = 2
"""Common steps compared one by one before ``skip`` is asked again after it passed some."""
SKIP_PATIENCE = 1024
"""At most this many common steps compared one by one between two asks of ``skip``
(the count doubles each time it passes none)."""


class Hunk(msgspec.Struct):
    a_start: int
    b_start: int
    a_count: int = 0
    b_count: int = 0
    a_steps: list[Step] = msgspec.field(default_factory=list)
    b_steps: list[Step] = msgspec.field(default_factory=list)


class Divergence(msgspec.Struct):
    step: int
    fields: list[str]
    a: Step | None
    b: Step | None


class StepDiff(msgspec.Struct):
    steps_a: int = 0
    steps_b: int = 0
    common: int = 0
    first: Divergence | None = None
    last_common: tuple[Step, Step] | None = None
    hunks: list[Hunk] = msgspec.field(default_factory=list)
    hunk_count: int = 0
    differing_a: int = 0
    differing_b: int = 0
    window_overflows: int = 0
    """Divergent regions longer than the look-ahead window (resync gave up)."""
    stopped: bool = False
    """The comparison stopped at ``stop_after`` hunks: the counts cover what was read."""

    @property
    def equal(self) -> bool:
        return self.hunk_count == 0


class _Ahead:
    """An iterator with a look-ahead buffer (bounded by the caller)."""

    __slots__ = ("buffer", "done", "source")

    def __init__(self, source: Iterator[Step]) -> None:
        self.source = source
        self.buffer: deque[Step] = deque()
        self.done = False

    def peek(self, count: int) -> list[Step]:
        buffer = self.buffer
        source = self.source
        while len(buffer) < count and not self.done:
            step = next(source, None)
            if step is None:
                self.done = True
            else:
                buffer.append(step)
        return list(buffer) if len(buffer) <= count else [buffer[i] for i in range(count)]

    def take(self, count: int) -> None:
        for _ in range(count):
            self.buffer.popleft()


def _resync(
    wa: list[Step], wb: list[Step], comparer: Comparer, a_done: bool, b_done: bool
) -> tuple[int, int] | None:
    """How many steps of each window to put in the hunk (the nearest resync point), or
    None when the windows hold none.  ``a_done``/``b_done``: the stream ends with its window."""
    key = comparer.key
    ka: list[Hashable] = [key(step) for step in wa]
    kb: list[Hashable] = [key(step) for step in wb]
    na, nb = len(ka), len(kb)
    where: dict[Hashable, list[int]] = {}
    for j, k in enumerate(kb):
        where.setdefault(k, []).append(j)
    best = (na, nb) if a_done and b_done else None
    best_sum = na + nb if best is not None else None

    def agree(i: int, j: int) -> bool:
        for t in range(1, SYNC):
            if i + t >= na or j + t >= nb:
                # Both streams ending together after a shorter run also counts.
                return i + t == na and j + t == nb and a_done and b_done
            if ka[i + t] != kb[j + t]:
                return False
        return True

    for i in range(na):
        if best_sum is not None and i >= best_sum:
            break
        for j in where.get(ka[i], ()):
            if i + j == 0:
                continue
            if best_sum is not None and i + j >= best_sum:
                break
            if agree(i, j):
                best, best_sum = (i, j), i + j
                break
    return best


def _look_ahead(
    ahead_a: _Ahead, ahead_b: _Ahead, comparer: Comparer, window: int, result: StepDiff
) -> tuple[int, int]:
    """The size of the divergent region at the head of both buffers.

    Searches growing windows (most divergences are one changed step, and a
    full window per divergence would make a trace that differs everywhere
    quadratic); a point found in a window counts once no nearer one could lie
    beyond it.
    """
    # The common case first, on cheap raw comparisons: one changed step on each side.
    same = comparer.same
    wa = ahead_a.peek(1 + SYNC)
    wb = ahead_b.peek(1 + SYNC)
    if len(wa) == len(wb) == 1 + SYNC and all(same(wa[t], wb[t]) for t in range(1, 1 + SYNC)):
        return 1, 1
    size = min(FIRST_WINDOW, window)
    while True:
        wa = ahead_a.peek(size)
        wb = ahead_b.peek(size)
        a_end = ahead_a.done and len(ahead_a.buffer) <= size
        b_end = ahead_b.done and len(ahead_b.buffer) <= size
        found = _resync(wa, wb, comparer, a_end, b_end)
        if found is not None and (found[0] + found[1] + SYNC <= size or (a_end and b_end)):
            return found
        if size >= window:
            if found is not None:
                return found
            if not (a_end and b_end):
                result.window_overflows += 1
            return len(wa), len(wb)
        size = min(size * 8, window)


def _record(
    result: StepDiff, only_a: list[Step], only_b: list[Step], common: int, adjacent: bool,
    max_hunks: int,
) -> None:
    """Add a divergent region to the last hunk (when no common step lies between) or a new one."""
    hunks = result.hunks
    if adjacent and result.hunk_count > 0:
        hunk = hunks[-1] if result.hunk_count <= max_hunks else None
    else:
        result.hunk_count += 1
        hunk = None
        if result.hunk_count <= max_hunks:
            hunk = Hunk(common + result.differing_a, common + result.differing_b)
            hunks.append(hunk)
    if hunk is not None:
        hunk.a_steps.extend(only_a[: max(0, SHOWN - len(hunk.a_steps))])
        hunk.b_steps.extend(only_b[: max(0, SHOWN - len(hunk.b_steps))])
        hunk.a_count += len(only_a)
        hunk.b_count += len(only_b)
    result.differing_a += len(only_a)
    result.differing_b += len(only_b)


def diff_steps(
    a: Iterator[Step],
    b: Iterator[Step],
    comparer: Comparer,
    *,
    max_hunks: int = DEFAULT_MAX_HUNKS,
    window: int = DEFAULT_WINDOW,
    stop_after: int | None = None,
    skip: Callable[[int | None], tuple[int, int, int, int, int, int]] | None = None,
) -> StepDiff:
    """Compare two step streams; consumes both to the end, or stops once
    ``stop_after`` hunks were found (``stopped`` says so).

    ``skip``: asked, while both streams are in step and nothing is buffered, to
    pass over the steps that lie ahead of both in common; it answers how many
    it passed (each of ``a`` and ``b`` then goes on after them; see
    ``blocktrace.eip3155.skip``).  Once ``max_hunks`` hunks were found (and with
    no ``stop_after``) it is given the steps in common since the last hunk, and
    may pass over a changed step followed by ``SYNC`` common ones too, counting
    it as the one-step hunk this function would, and a divergent region as this
    function's look-ahead aligns it (``skip.Skip``)."""
    result = StepDiff()
    same = comparer.same
    ahead_a, ahead_b = _Ahead(a), _Ahead(b)
    buf_a, buf_b = ahead_a.buffer, ahead_b.buffer
    last_a: Step | None = None
    last_b: Step | None = None
    common = 0
    common_since_hunk = 0
    patience = -1 if skip is None else SKIP_AGAIN
    # the look-ahead on the lines as bytes, where the skip has one (skip._Skipper): its
    # answer is the look-ahead's, and no step is read past the divergent region
    look: Callable[[Step, Step], tuple[int, int] | None] | None = getattr(skip, "look", None)
    while True:
        # Lockstep fast path: straight from the sources while nothing is buffered.
        if not buf_a and not buf_b and not ahead_a.done and not ahead_b.done:
            if skip is not None and (last_a is not None or result.hunk_count):
                # once the hunks kept in full are found, it may count one-step hunks too
                counted = (result.first is not None and result.hunk_count >= max_hunks
                           and stop_after is None)
                passed, _, hunks, only_a, only_b, after = skip(
                    common_since_hunk if counted else None)
                if hunks:  # counted as _record counts them
                    result.hunk_count += hunks
                    result.differing_a += only_a
                    result.differing_b += only_b
                    common += passed - only_a
                    common_since_hunk = after
                else:
                    common += passed
                    common_since_hunk += passed
                patience = SKIP_AGAIN if passed else min(patience * 2, SKIP_PATIENCE)
            run = 0
            paused = False
            for sa in a:
                sb = next(b, None)
                if sb is None:
                    ahead_b.done = True
                    buf_a.append(sa)
                    break
                if same(sa, sb):
                    run += 1
                    last_a = sa
                    last_b = sb
                    if run == patience:
                        paused = True  # ask ``skip`` again
                        break
                    continue
                buf_a.append(sa)
                buf_b.append(sb)
                break
            else:
                ahead_a.done = True
            common += run
            common_since_hunk += run
            if paused:
                continue
        wa = ahead_a.peek(1)
        wb = ahead_b.peek(1)
        if not wa and not wb:
            break
        if wa and wb and same(wa[0], wb[0]):
            ahead_a.take(1)
            ahead_b.take(1)
            common += 1
            common_since_hunk += 1
            last_a, last_b = wa[0], wb[0]
            continue
        # A divergence: look ahead for the nearest point where the streams agree again.
        if result.first is None:
            sa0 = wa[0] if wa else None
            sb0 = wb[0] if wb else None
            fields = comparer.differing(sa0, sb0) if sa0 is not None and sb0 is not None else []
            result.first = Divergence(common, fields, sa0, sb0)
            if last_a is not None and last_b is not None:
                result.last_common = (last_a, last_b)
        found = look(wa[0], wb[0]) if look is not None and wa and wb else None
        da, db = found if found is not None else _look_ahead(
            ahead_a, ahead_b, comparer, window, result)
        wa = ahead_a.peek(da)
        wb = ahead_b.peek(db)
        if da == db:
            # A changed region: pair its steps; pairs that agree are common steps.
            i = 0
            while i < da:
                if same(wa[i], wb[i]):
                    common += 1
                    common_since_hunk += 1
                    last_a, last_b = wa[i], wb[i]
                    i += 1
                    continue
                j = i + 1
                while j < da and not same(wa[j], wb[j]):
                    j += 1
                _record(result, wa[i:j], wb[i:j], common, common_since_hunk == 0, max_hunks)
                common_since_hunk = 0
                i = j
        else:
            _record(result, wa[:da], wb[:db], common, common_since_hunk == 0, max_hunks)
            common_since_hunk = 0
        ahead_a.take(da)
        ahead_b.take(db)
        if stop_after is not None and result.hunk_count >= stop_after:
            result.stopped = True
            break
    result.common = common
    result.steps_a = common + result.differing_a
    result.steps_b = common + result.differing_b
    return result

