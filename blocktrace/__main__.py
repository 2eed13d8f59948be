"""``python -m blocktrace`` is the ``blocktrace`` command."""

import sys

from blocktrace.cli import main

sys.exit(main())
