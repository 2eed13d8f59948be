"""The threads blocktrace runs Python code in while a program is traced.

A compressed trace's writer (:class:`blocktrace.format.compressed.FrameWriter`)
compresses and writes on a thread of its own.  Its Python code is out of every
scope, but ``sys.monitoring`` still calls the stepper for it; with several
program threads the stepper serialises its callbacks under one lock, which the
program's thread holds while a flush waits for the writer's thread: the
stepper answers these threads' events at once, without the lock
(``blocktrace.vm.stepper``).
"""

from __future__ import annotations

__all__ = ["IDS"]

IDS: set[int] = set()
"""``threading.get_ident()`` of each such thread while it runs."""
