"""Counts of fuzz cases run and faults injected, written to JSON at the end of the session.

Every reliability test adds to :data:`COUNTS` (``bump("fuzz.pois.csv")``); the session's
``pytest_sessionfinish`` (see ``conftest.py``) writes the totals to
``$GEOGRAPH_RELIABILITY_COUNTS`` (default ``<tmp>/geograph-reliability/counts.json``) and prints
them, which is where the numbers of docs/guides/reliability.md come from.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

COUNTS: Counter[str] = Counter()
RESULTS: dict[str, Any] = {}
_LOCK = threading.Lock()


def bump(key: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``key`` (dotted: ``fuzz.<reader>.<case>``, ``faults.<target>``)."""
    with _LOCK:
        COUNTS[key] += n


def record(key: str, value: Any) -> None:
    """Keep a measured result (a dict of numbers) for the report."""
    with _LOCK:
        RESULTS[key] = value


def counts_path() -> Path:
    default = Path(tempfile.gettempdir()) / "geograph-reliability" / "counts.json"
    return Path(os.environ.get("GEOGRAPH_RELIABILITY_COUNTS", default))


def write_counts() -> Path | None:
    """Write the counts and results (merged into the file's earlier ones) atomically; None if empty."""
    if not COUNTS and not RESULTS:
        return None
    path = counts_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"counts": dict(sorted(COUNTS.items())), "results": RESULTS}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def totals() -> dict[str, int]:
    """Counts summed by their first two dotted parts (``fuzz.pois``, ``faults.world``)."""
    out: Counter[str] = Counter()
    for key, n in COUNTS.items():
        out[".".join(key.split(".")[:2])] += n
    return dict(sorted(out.items()))
