"""The machine a benchmark ran on, for the hardware line every benchmark prints."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what ``platform`` reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (``avx2``, ``avx512_bf16``, ...); empty
    where the file is missing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and ":" in line:
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def hardware_line(*details: str) -> str:
    """``hardware: <CPU model>, <N> logical CPUs, <details...>, Python <version>``: the line a
    benchmark prints above its table (``details``: torch version, threads, malloc, ...)."""
    import os

    parts = [cpu_model(), f"{os.cpu_count()} logical CPUs", *details, f"Python {platform.python_version()}"]
    return "hardware: " + ", ".join(parts)
