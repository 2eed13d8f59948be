"""A package for ``blocktrace run -m btprog``."""
