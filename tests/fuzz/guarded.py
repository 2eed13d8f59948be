"""Buffers with a page nobody may read on each side, for calling the C readers
directly: a read one byte past the end of what they are given (or before its
start) is a SIGSEGV at once, with or without a sanitizer -- a ``bytes`` object
would hide it (its trailing NUL, and the allocator's rounding, are readable)."""

from __future__ import annotations

import ctypes
import mmap

PAGE = mmap.PAGESIZE
_PROT_NONE = 0


class Guarded:
    """``size`` bytes of room between two unreadable pages."""

    def __init__(self, size: int) -> None:
        self.room = -(-size // PAGE) * PAGE
        self.map = mmap.mmap(-1, self.room + 2 * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for at in (base, base + PAGE + self.room):
            if libc.mprotect(at, PAGE, _PROT_NONE) != 0:
                raise OSError(ctypes.get_errno(), "mprotect")
        self.view = memoryview(self.map)

    def at_end(self, data: bytes) -> memoryview:
        """``data`` ending where the unreadable page after it starts."""
        assert len(data) <= self.room
        end = PAGE + self.room
        self.view[end - len(data):end] = data
        return self.view[end - len(data):end]

    def at_start(self, data: bytes) -> memoryview:
        """``data`` starting where the unreadable page before it ends."""
        assert len(data) <= self.room
        self.view[PAGE:PAGE + len(data)] = data
        return self.view[PAGE:PAGE + len(data)]
