"""Prints what a main script can see of how it was started."""

import os
import pickle
import sys
import warnings


class Picklable:
    pass


print(f"argv0={sys.argv[0]}")
print(f"file={__file__}")
print(f"path0_is_script_dir={sys.path[0] == os.path.dirname(os.path.abspath(__file__))}")
print(f"builtins={type(__builtins__).__name__}")
print(f"main_is_me={sys.modules['__main__'].__dict__ is globals()}")
print(f"spec={__spec__}")
print(f"pickled={pickle.loads(pickle.dumps(Picklable())).__class__.__name__}")
warnings.warn("shown in __main__ by default", DeprecationWarning, stacklevel=1)
sys.exit(256 + 7)
