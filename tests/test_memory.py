"""geograph.utils.memory: freed heap pages leave the resident set."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from geograph.utils import memory

# 1,000 blocks of 100 KB (below glibc's mmap threshold: they come from the heap); the last one
# stays alive so the heap's top cannot shrink by itself, the others are freed
SCRIPT = textwrap.dedent(
    """
    import json, os
    from geograph.utils.memory import release_free_memory

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    blocks = [bytearray(100_000) for _ in range(1000)]
    for b in blocks:
        b[::4096] = b"x" * len(range(0, len(b), 4096))  # touch every page
    last = blocks.pop()
    held = rss()
    del blocks
    freed = rss()
    released = release_free_memory()
    print(json.dumps({"held": held, "freed": freed, "trimmed": rss(), "released": released}))
    """
)


def _run(env: dict | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux") or memory.allocator() == "system",
                    reason="needs glibc's malloc_trim and /proc")
def test_free_heap_pages_leave_the_resident_set():
    r = _run()
    assert r["held"] - r["freed"] < 30, r  # freeing alone keeps the pages (the top is pinned)
    assert r["freed"] - r["trimmed"] > 70, r  # about 100 MB leave on release
    assert r["released"] is True


TCMALLOC = ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


@pytest.mark.skipif(not sys.platform.startswith("linux") or TCMALLOC is None,
                    reason="needs gperftools' tcmalloc (Debian: libtcmalloc-minimal4) and /proc")
def test_under_tcmalloc_its_own_release_call_is_used():
    r = _run({**os.environ, "LD_PRELOAD": TCMALLOC})
    assert r["freed"] - r["trimmed"] > 70, r  # glibc's malloc_trim would release nothing here
    assert r["released"] is True


def test_without_a_release_call_nothing_is_released(monkeypatch):
    monkeypatch.setattr(memory, "_tcmalloc_release", lambda: None)
    monkeypatch.setattr(memory, "_glibc_trim", lambda: None)
    assert memory.release_free_memory() is False
