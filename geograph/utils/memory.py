"""Handing freed memory back to the operating system.

glibc's allocator keeps the pages of freed blocks below its (dynamic, up to 32 MB) mmap
threshold in the heap: a process that built a large graph and freed it still shows that memory
in its RSS, and the next, smaller structure reuses it only partly. Out-of-core preparation
(`geograph.covisit.sharded`) builds one state, then one state group, at a time and frees it
before the next; releasing the free pages at those boundaries leaves a rank's resident memory
after preparing at what it holds, not at the most it held while preparing. Training steps do not
call it: the next step faults the released pages back in.

A process started with another malloc in ``LD_PRELOAD`` (gperftools' tcmalloc, see
``docs/guides/scaling.md``) is asked through that allocator's own call
(``MallocExtension_ReleaseFreeMemory``); glibc's ``malloc_trim`` would find nothing to release.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["TCMALLOC_HINT", "allocator", "find_tcmalloc", "release_free_memory"]

TCMALLOC_HINT = (
    "install gperftools' tcmalloc (Debian / Ubuntu: apt install libtcmalloc-minimal4; "
    "Fedora: dnf install gperftools-libs; conda: conda install -c conda-forge gperftools)"
)


@functools.cache
def _tcmalloc_release():
    """tcmalloc's ``MallocExtension_ReleaseFreeMemory`` when it is loaded into this process, else None."""
    try:
        fn = getattr(ctypes.CDLL(None), "MallocExtension_ReleaseFreeMemory", None)
    except (OSError, TypeError):
        return None
    if fn is not None:
        fn.argtypes, fn.restype = [], None
    return fn


@functools.cache
def _glibc_trim():
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


def allocator() -> str:
    """The process's malloc: ``"tcmalloc"`` (gperftools, usually through ``LD_PRELOAD``),
    ``"glibc"`` (a C library with ``malloc_trim``) or ``"system"`` (anything else)."""
    if _tcmalloc_release() is not None:
        return "tcmalloc"
    return "glibc" if _glibc_trim() is not None else "system"


def find_tcmalloc() -> str | None:
    """The name of gperftools' tcmalloc library as the dynamic loader finds it
    (``libtcmalloc_minimal.so.4``), or None when it is not installed."""
    return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def release_free_memory() -> bool:
    """Return the allocator's free pages to the operating system (glibc ``malloc_trim(0)``, or
    tcmalloc's ``MallocExtension_ReleaseFreeMemory`` when it is the process's malloc).

    Returns True if memory was released (always, under tcmalloc, which does not say), False if
    none could be or the C library has no release call. Freed blocks stay free for the allocator
    either way; only their pages leave the resident set, and the next use of them faults them
    back in.
    """
    tc = _tcmalloc_release()
    if tc is not None:
        tc()
        return True
    trim = _glibc_trim()
    return bool(trim(0)) if trim is not None else False
