"""MLflow integration: where runs go, how they are tagged, the model registry, the UI server.

It knows no task and no suite; those live in :mod:`geograph.experiments`.

* :mod:`~geograph.tracking.store`: where runs go (``resolve_tracking_uri``, ``configure``,
  ``ensure_experiment``, ``start_run``, ``run_context``).
* :mod:`~geograph.tracking.tags`: run tags (git commit, data fingerprint, device, versions).
* :mod:`~geograph.tracking.registry`: pyfunc models, the model registry, loading by URI.
* :mod:`~geograph.tracking.server`: ``mlflow server`` for the project's store.

Only the store is imported eagerly; the rest loads on first attribute access.
"""

from __future__ import annotations

from geograph.tracking.store import (
    configure,
    ensure_experiment,
    resolve_tracking_uri,
    run_context,
    start_run,
)
from geograph.utils.lazy import lazy_getattr

_LAZY = {
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


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "configure",
    "ensure_experiment",
    "resolve_tracking_uri",
    "run_context",
    "start_run",
    *_LAZY,
]
