"""MLflow integration shared by every task."""

from geograph.tracking.store import configure, ensure_experiment, resolve_tracking_uri, start_run

__all__ = ["configure", "ensure_experiment", "resolve_tracking_uri", "start_run"]
