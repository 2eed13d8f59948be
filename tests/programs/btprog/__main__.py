"""``python -m btprog``: prints what it sees, exits with its first argument."""

import sys

from btprog.helper import double

print(f"argv0={sys.argv[0].endswith('__main__.py')} argv={sys.argv[1:]!r} name={__name__}")
print(f"double={double(21)}")
if len(sys.argv) > 1:
    sys.exit(int(sys.argv[1]))
