"""Compare finished runs of one experiment: configs as rows, metrics as mean ± std over seeds.

This composes the three steps: :mod:`~geograph.experiments.loading` reads the runs,
:mod:`~geograph.experiments.grouping` splits them into comparison groups (same data
fingerprint and protocol), groups each into configs, aggregates each metric (mean and *sample*
std, ddof=1, so two runs at 0.5 and 0.7 give 0.6000 ± 0.1414; one run has no std) and marks the
best config of each group, and :mod:`~geograph.experiments.rendering` shows the table.
:func:`report` also writes the table as Markdown and CSV (atomically), draws the metric bars
(error bars = std) and the learning curves, and logs all of it as artifacts of a summary run in
the same experiment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from geograph.experiments.grouping import (
    BEST,
    CONFIG,
    DEFAULT_METRIC,
    SEED_KEYS,
    RunGroup,
    aggregate,
    group_labels,
    group_runs,
    learning_curves,
    maximizes,
)
from geograph.experiments.loading import load_runs
from geograph.experiments.rendering import (
    BARS_FILE,
    CURVES_FILE,
    plot_learning_curves,
    plot_metric_bars,
    write_table,
)
from geograph.tracking.store import run_context, start_run, unique_prefixes
from geograph.tracking.tags import RUN_KIND_SUMMARY, TAG_RUN_KIND

SUMMARY_ARTIFACT_DIR = "comparison"
TAG_BEST_CONFIG = "geograph.best_config"


def compare_runs(
    experiment: str,
    metric: str = DEFAULT_METRIC,
    tracking_uri: str | None = None,
    group_by: Sequence[str] | None = None,
    *,
    higher_is_better: bool | None = None,
    metrics: Sequence[str] | None = None,
    run_ids: Sequence[str] | None = None,
    seed_keys: Sequence[str] = SEED_KEYS,
) -> pl.DataFrame:
    """One row per config of ``experiment``'s finished runs, best first.

    Args:
        experiment: MLflow experiment name.
        metric: Metric to rank by (the run's last logged value).
        tracking_uri: Tracking store (default: :func:`geograph.tracking.resolve_tracking_uri`).
        group_by: Params that define a config (default: every param except the seed).
        higher_is_better: Ranking direction (default: maximise unless the metric name
            contains one of :data:`~geograph.experiments.grouping.LOWER_IS_BETTER_PARTS`).
        metrics: Other metrics to aggregate (default: every ``test_*`` metric).
        run_ids: Only consider these runs (default: every finished training run).
        seed_keys: Param names (last dotted part) that hold the seed.

    Returns:
        Columns ``group`` (1, 2, ...: one per data fingerprint and protocol, in the order of
        their first run), ``data`` (the runs' ``geograph.data_fingerprint`` tag), ``protocol``
        (their protocol param, e.g. ``split.protocol``), ``config`` (the runs'
        ``geograph.config_name`` tag), the params that differ between configs, ``n_runs``,
        ``seeds``, ``<metric>_mean`` / ``<metric>_std`` (sample std, ddof=1; null for one run)
        per metric, ``best`` (True on the best row of each group, ties included), ``run`` (the
        config's best run, as the shortest id prefix unique in the store, at least
        :data:`~geograph.tracking.store.SHORT_RUN_ID` digits) and ``run_ids`` (every
        run of the config, full ids). Rows are sorted by group, then best first. Suite parent
        runs and summary runs are skipped.

    Raises:
        TrackingError: no such experiment, or no finished run logged ``metric``.
    """
    maximize = maximizes(metric, higher_is_better)
    table, _, _ = _compare(experiment, metric, tracking_uri, group_by, maximize, metrics, run_ids, seed_keys)
    return table


def _compare(
    experiment: str,
    metric: str,
    tracking_uri: str | None,
    group_by: Sequence[str] | None,
    maximize: bool,
    metrics: Sequence[str] | None,
    run_ids: Sequence[str] | None,
    seed_keys: Sequence[str],
) -> tuple[pl.DataFrame, list[RunGroup], Any]:
    """``(table, groups, client)`` of :func:`compare_runs`."""
    runs, client = load_runs(experiment, metric, tracking_uri, run_ids)
    groups = group_runs(runs, group_by, seed_keys)
    short = unique_prefixes([r.info.run_id for r in runs], tracking_uri)
    return aggregate(groups, metric, metrics, group_by, seed_keys, maximize, short), groups, client


@dataclass
class ComparisonReport:
    """What :func:`report` produced.

    Attributes:
        table: The :func:`compare_runs` frame.
        metric: Ranking metric.
        higher_is_better: Ranking direction used.
        markdown_path: ``comparison.md``.
        csv_path: ``comparison.csv``.
        plot_paths: The PNGs written (bars, and learning curves when any metric has a history).
        summary_run_id: The summary run holding the artifacts (None when not logged).
    """

    table: pl.DataFrame
    metric: str
    higher_is_better: bool
    markdown_path: Path
    csv_path: Path
    plot_paths: list[Path]
    summary_run_id: str | None


def default_report_dir(experiment: str) -> Path:
    """``mlruns/reports/<experiment>`` (beside the default store, git-ignored)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
    return Path("mlruns") / "reports" / safe


def report(
    experiment: str,
    metric: str = DEFAULT_METRIC,
    *,
    tracking_uri: str | None = None,
    group_by: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    higher_is_better: bool | None = None,
    run_ids: Sequence[str] | None = None,
    curve_metrics: Sequence[str] | None = None,
    log_summary: bool = True,
    parent_run_id: str | None = None,
    seed_keys: Sequence[str] = SEED_KEYS,
    summary_tags: Mapping[str, str] | None = None,
) -> ComparisonReport:
    """Compare, write Markdown + CSV + plots to ``out_dir``, and log them as a summary run.

    Args:
        experiment: MLflow experiment name.
        metric: Ranking metric.
        tracking_uri: Tracking store.
        group_by: See :func:`compare_runs`.
        out_dir: Folder for the files (default :func:`default_report_dir`).
        higher_is_better: See :func:`compare_runs`.
        run_ids: See :func:`compare_runs`.
        curve_metrics: Metric keys to draw learning curves for (default: ``train_*`` and
            ``val_*`` metrics with more than one step, at most
            :data:`~geograph.experiments.grouping.MAX_CURVES`: ``train_loss`` and the ``val_``
            twin of ``metric`` first).
        log_summary: Log the files as artifacts (under ``comparison/``) of a new run tagged
            ``geograph.run_kind=summary`` in ``experiment``.
        parent_run_id: Nest the summary run under this run (a suite's parent run).
        seed_keys: See :func:`compare_runs`.
        summary_tags: Extra tags for the summary run.

    Raises:
        TrackingError: no such experiment, or no finished run logged ``metric``.
    """
    maximize = maximizes(metric, higher_is_better)
    table, groups, client = _compare(
        experiment, metric, tracking_uri, group_by, maximize, None, run_ids, seed_keys
    )
    out = Path(out_dir) if out_dir is not None else default_report_dir(experiment)
    md_path, csv_path = write_table(table, out, metric, experiment=experiment, higher_is_better=maximize)
    plots = [plot_metric_bars(table, metric, out / BARS_FILE)]
    # labels in group order (the table is sorted, groups are not)
    labels = group_labels(groups)
    curves = learning_curves(groups, labels, curve_metrics, metric, client.get_metric_history)
    if curves:
        plots.append(plot_learning_curves(curves, out / CURVES_FILE))
    summary_id = None
    if log_summary:
        import mlflow

        best = table.filter(pl.col(BEST))[CONFIG].to_list()
        with (
            run_context(parent_run_id=parent_run_id),
            start_run(
                experiment,
                run_name=f"compare-{metric}",
                params={"metric": metric, "higher_is_better": maximize, "n_configs": table.height},
                tags={
                    **dict(summary_tags or {}),
                    TAG_RUN_KIND: RUN_KIND_SUMMARY,
                    TAG_BEST_CONFIG: ",".join(best),
                },
                tracking_uri=tracking_uri,
            ) as run,
        ):
            for p in [md_path, csv_path, *plots]:
                mlflow.log_artifact(str(p), artifact_path=SUMMARY_ARTIFACT_DIR)
            summary_id = run.info.run_id
    return ComparisonReport(
        table=table,
        metric=metric,
        higher_is_better=maximize,
        markdown_path=md_path,
        csv_path=csv_path,
        plot_paths=plots,
        summary_run_id=summary_id,
    )


__all__ = ["ComparisonReport", "compare_runs", "default_report_dir", "report"]
