"""blocktrace code that CPython runs where an exception cannot reach the program.

Weak reference callbacks run as an object dies, in whatever frame the program
was in; whatever they raise is printed as "Exception ignored" and dropped.  A
program's signal handler that lands there and raises (a timeout) would lose its
exception, and the program would run on as if the signal had never come.
:mod:`blocktrace.vm.signals` puts such a handler off to just after, as it does on
the trace's write path.  Code objects are added once per definition, never per
event.
"""

from __future__ import annotations

from types import CodeType

__all__ = ["CODE"]

CODE: set[CodeType] = set()
"""The code objects of blocktrace's weak reference callbacks."""
