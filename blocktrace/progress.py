"""Progress of long reads and writes, on a terminal only.

A 1.6 GB ``verify`` takes half a minute; silent, it looks hung.  Every command
that reads or writes a large trace wraps its pass in :class:`Progress` and tells
it how far it got, once per batch::

    with Progress(os.path.getsize(path), f"verify {path}") as progress:
        for batch in batches:
            ...
            progress.update(bytes_done)

It draws one line on stderr, redrawn in place, and wipes it at the end -- only
when stderr is a terminal and the work has already taken more than a second
(``BLOCKTRACE_PROGRESS_DELAY`` seconds, if set).  In a pipe, a file or a CI
log it writes nothing, ever: there ``update`` is a no-op, and costs a call.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TextIO

__all__ = ["DELAY", "Progress", "following", "size_of"]

DELAY = 1.0
"""Seconds of work before the line first appears: quick commands stay quiet."""

_REDRAW = 0.1  # seconds between redraws (a terminal need not repaint faster)
_FIRST_LOOK = 0.01  # seconds between a follower's looks until its line is first drawn


def _delay() -> float:
    text = os.environ.get("BLOCKTRACE_PROGRESS_DELAY")
    if text:
        try:
            return max(0.0, float(text))
        except ValueError:
            pass
    return DELAY


def _is_terminal(stream: TextIO | None) -> bool:
    if stream is None:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed, or not a real file
        return False


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _read_positions(paths: set[str]) -> int | None:
    """The sum of this process's read positions in the files ``paths`` (the
    furthest per file), or None when none is open."""
    furthest: dict[str, int] = {}
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target not in paths:
                continue
            with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
                pos = int(info.readline().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        furthest[target] = max(pos, furthest.get(target, 0))
    return sum(furthest.values()) if furthest else None


def size_of(path: str) -> int | None:
    """The file's size for a progress line (None when it has none: a pipe, or gone)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def following(paths: Sequence[str], what: str) -> Progress:
    """``Progress(total size of paths, what).follow(paths)``: progress of a
    pass over files read by code that does not report it."""
    total = sum(size_of(path) or 0 for path in paths)
    return Progress(total or None, what).follow(paths)


class Progress:
    """How far a pass over ``total_bytes`` got (``None`` or 0 when the total is
    not known: then only the bytes done and the rate are shown), labelled
    ``what`` (``"verify trace.jsonl"``).  A context manager; :meth:`update`
    takes the bytes done so far (not an increment)."""

    def __init__(self, total_bytes: int | None, what: str, *,
                 stream: TextIO | None = None) -> None:
        self.total = total_bytes if total_bytes and total_bytes > 0 else None
        self.what = what
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self._drawn = False
        self._follower: threading.Thread | None = None
        self._wanted: set[str] | None = None
        self._stop_following = threading.Event()
        self._started = time.monotonic()
        self._first = self._started + _delay()
        self._next = self._first
        if not _is_terminal(self._stream):
            self.update = self._count  # type: ignore[method-assign]

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._first = self._next = self._started + _delay()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def follow(self, paths: Sequence[str]) -> Progress:
        """Tell the progress from how far this process has read ``paths``,
        looked up a few times a second by a thread (on Linux, in
        ``/proc/self/fdinfo``), for commands whose reading loop is not theirs
        to change (``diff``, ``lines``, exports): the reading costs nothing
        more.  Where the line is never drawn (no terminal) or the positions
        cannot be read, nothing is started."""
        if self.update == self._count or not os.path.isdir("/proc/self/fdinfo"):
            return self
        wanted = self._wanted = {os.path.realpath(p) for p in paths}
        stop = self._stop_following

        def poll() -> None:
            # First look as the delay passes (not up to a redraw later: a pass a
            # little longer than the delay would otherwise show nothing), then
            # every _FIRST_LOOK for a redraw's time while the files are not open
            # yet, then every _REDRAW.
            while True:
                now = time.monotonic()
                if now < self._first:
                    wait = max(self._first - now, _FIRST_LOOK)
                elif not self._drawn and now < self._first + _REDRAW:
                    wait = _FIRST_LOOK
                else:
                    wait = _REDRAW
                if stop.wait(wait):
                    return
                done = _read_positions(wanted)
                if done is not None and not stop.is_set():
                    self.update(done)

        self._follower = threading.Thread(target=poll, name="blocktrace-progress", daemon=True)
        self._follower.start()
        return self

    def look(self) -> None:
        """The follower's look at the files' positions, from the reading loop itself
        (once per piece it reads): a thread of its own may wait for the GIL longer
        than a short pass takes while the loop runs Python.  A clock read unless a
        redraw is due; nothing where nothing is followed (no terminal)."""
        wanted = self._wanted
        if wanted is None or time.monotonic() < self._next:
            return
        done = _read_positions(wanted)
        if done is not None:
            self.update(done)

    def _count(self, done_bytes: int) -> None:
        self.done = done_bytes

    def update(self, done_bytes: int) -> None:
        """``done_bytes`` of the total are done.  Cheap: a clock read, and a
        redraw at most ten times a second once the first second has passed."""
        self.done = done_bytes
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + _REDRAW
        self._draw(self._line(now))

    def close(self) -> None:
        """Wipe the line, if one was drawn: what the command prints next starts
        on a clean line."""
        follower = self._follower
        if follower is not None:
            self._stop_following.set()
            follower.join()
            self._follower = None
        if self._drawn:
            self._drawn = False
            self._write("\r\x1b[K")

    def _line(self, now: float) -> str:
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.what}:"]
        if self.total is not None:
            share = min(self.done, self.total) / self.total
            parts.append(f"{share * 100:3.0f}% of {_size(self.total)}")
        else:
            parts.append(_size(self.done))
        if rate > 0:
            parts.append(f"{_size(rate)}/s")
            if self.total is not None and self.done < self.total:
                parts.append(f"{_duration((self.total - self.done) / rate)} left")
        return ", ".join([" ".join(parts[:2]), *parts[2:]])

    def _draw(self, line: str) -> None:
        try:
            width = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            width = 80
        if width > 1 and len(line) >= width:
            line = line[:width - 4] + "..."
        self._drawn = True
        self._write(f"\r{line}\x1b[K")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: the work goes on
            self.update = self._count  # type: ignore[method-assign]
            self._drawn = False
