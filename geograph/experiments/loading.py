"""Read the finished runs of an experiment from MLflow, for comparison and for suites."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geograph.errors import TrackingError
from geograph.tracking.store import configure
from geograph.tracking.tags import RUN_KIND_SUITE, RUN_KIND_SUMMARY, TAG_RUN_KIND

SEARCH_PAGE_SIZE = 1000


def search_finished(client: Any, experiment_id: str) -> list[Any]:
    """Every FINISHED run of the experiment, oldest first (all pages of ``search_runs``).

    Args:
        client: An ``mlflow.MlflowClient``.
        experiment_id: The experiment's id.
    """
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"],
            max_results=SEARCH_PAGE_SIZE,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def load_runs(
    experiment: str,
    metric: str,
    tracking_uri: str | None = None,
    run_ids: Sequence[str] | None = None,
) -> tuple[list[Any], Any]:
    """The finished training runs of ``experiment`` that logged ``metric``, and the client.

    Suite parent runs and summary runs are skipped.

    Args:
        experiment: MLflow experiment name.
        metric: A metric every returned run logged.
        tracking_uri: Tracking store (default: :func:`geograph.tracking.resolve_tracking_uri`).
        run_ids: Only consider these runs (default: every finished training run).

    Returns:
        ``(runs, client)``: the runs oldest first, and the ``mlflow.MlflowClient`` that read them.

    Raises:
        TrackingError: no such experiment, or no finished run logged ``metric``.
    """
    import mlflow

    configure(tracking_uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        known = sorted(e.name for e in client.search_experiments())
        raise TrackingError(
            f"no experiment named {experiment!r} in {mlflow.get_tracking_uri()}; known: {known}"
        )
    runs = [
        r
        for r in search_finished(client, exp.experiment_id)
        if r.data.tags.get(TAG_RUN_KIND) not in (RUN_KIND_SUITE, RUN_KIND_SUMMARY)
    ]
    if run_ids is not None:
        wanted = set(run_ids)
        runs = [r for r in runs if r.info.run_id in wanted]
    with_metric = [r for r in runs if metric in r.data.metrics]
    if not with_metric:
        present = sorted({k for r in runs for k in r.data.metrics})
        raise TrackingError(
            f"no finished run in experiment {experiment!r} logged metric {metric!r} "
            f"({len(runs)} finished runs; their metrics: {present})"
        )
    return with_metric, client


__all__ = ["load_runs", "search_finished"]
