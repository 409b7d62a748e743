"""MLflow integration shared by every task.

* :mod:`~geograph.tracking.store`: where runs go (``resolve_tracking_uri``, ``configure``,
  ``ensure_experiment``, ``start_run``, ``run_context``).
* :mod:`~geograph.tracking.tags`: run tags (git commit, data fingerprint, device, versions).
* :mod:`~geograph.tracking.compare`: configs x seeds -> mean ± std table, report, plots.
* :mod:`~geograph.tracking.suite`: experiment suites (YAML), resumable.
* :mod:`~geograph.tracking.registry`: pyfunc models, the model registry, loading by URI.
* :mod:`~geograph.tracking.server`: ``mlflow server`` for the project's store.

Only the store is imported eagerly; the rest loads on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from geograph.tracking.store import (
    configure,
    ensure_experiment,
    resolve_tracking_uri,
    run_context,
    start_run,
)

_LAZY = {
    "compare_runs": "geograph.tracking.compare",
    "report": "geograph.tracking.compare",
    "print_table": "geograph.tracking.compare",
    "ComparisonReport": "geograph.tracking.compare",
    "run_suite": "geograph.tracking.suite",
    "load_suite": "geograph.tracking.suite",
    "SuiteRunError": "geograph.tracking.suite",
    "register_model": "geograph.tracking.registry",
    "load_model": "geograph.tracking.registry",
    "log_pyfunc_model": "geograph.tracking.registry",
    "set_alias": "geograph.tracking.registry",
    "start_ui": "geograph.tracking.server",
    "UIServer": "geograph.tracking.server",
    "run_tags": "geograph.tracking.tags",
    "data_fingerprint": "geograph.tracking.tags",
    "config_hash": "geograph.tracking.tags",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geograph.tracking' has no attribute {name!r}")


__all__ = [
    "configure",
    "ensure_experiment",
    "resolve_tracking_uri",
    "run_context",
    "start_run",
    *_LAZY,
]
