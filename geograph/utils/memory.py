"""Handing freed memory back to the operating system.

glibc's allocator keeps the pages of freed blocks below its (dynamic, up to 32 MB) mmap
threshold in the heap: a process that built a large graph and freed it still shows that memory
in its RSS, and the next, smaller structure reuses it only partly. Out-of-core preparation
(`geograph.covisit.sharded`) builds one state, then one state group, at a time and frees it
before the next; releasing the free pages at those boundaries leaves a rank's resident memory
after preparing at what it holds, not at the most it held while preparing. Training steps do not
call it: the next step faults the released pages back in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def release_free_memory() -> bool:
    """Return the C heap's free pages to the operating system (glibc ``malloc_trim(0)``).

    Returns True if memory was released, False if none could be or the C library has no
    ``malloc_trim``. Freed blocks stay free for the allocator either way; only their pages leave
    the resident set, and the next use of them faults them back in.
    """
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False
