"""Where runs go: the tracking URI and a run context that marks crashes FAILED.

Resolution order for the tracking URI: explicit argument, ``MLFLOW_TRACKING_URI``, then the
local default ``sqlite:///mlruns/mlflow.db`` (MLflow 3 recommends a database store for local
use and refuses a plain ``./mlruns`` file store). Artifacts of the default store go under
``mlruns/artifacts``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from geograph.constants import DEFAULT_TRACKING_URI
from geograph.errors import TrackingError


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """Return the tracking URI to use (argument > env > local SQLite default)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
    return uri


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at the resolved tracking URI and check it answers; returns the URI.

    Raises:
        TrackingError: the store cannot be reached (raised before any training starts).
    """
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure here means "unreachable"
        raise TrackingError(f"MLflow tracking store {uri!r} is not reachable: {exc}") from exc
    return uri


def ensure_experiment(name: str, tracking_uri: str | None = None) -> str:
    """Create the experiment if needed (artifacts under ``mlruns/artifacts`` for the default store)."""
    import mlflow

    uri = configure(tracking_uri)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # keep artifacts beside the database (mlruns/artifacts for the default store)
        artifact_location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # noqa: BLE001 - a concurrent process created it first
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


@contextlib.contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """Open an MLflow run; a crash inside marks it FAILED and re-raises.

    Args:
        experiment: Experiment name (created if missing).
        run_name: Optional run name.
        params: Config to log (nested mappings are flattened with dots).
        tags: Extra run tags.
        tracking_uri: Override the tracking URI.
        nested: Open as a child of the active run.
    """
    import mlflow

    exp_id = ensure_experiment(experiment, tracking_uri)
    run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, nested=nested, tags=dict(tags or {}))
    try:
        if params:
            flat = {k: str(v)[:6000] for k, v in _flatten(params).items()}
            items = list(flat.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
        yield run
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


__all__ = ["resolve_tracking_uri", "configure", "ensure_experiment", "start_run"]
