"""``python -m blocktrace`` is the ``blocktrace`` command.

A program the command runs is called from this module's own frame, as
``blocktrace.cli.main`` does it: under the program lie only runpy's frames and
this one (docs/ARCHITECTURE.md, "What a traced program can still see")."""

import sys

from blocktrace.cli import Command

command = Command(None)
ready = command.program
if ready is None:
    sys.exit(command.status)
with ready.bottom():
    try:
        ready.call(*ready.args)
    except BaseException as exc:
        sys.exit(command.finish(exc))
sys.exit(command.finish(None))
