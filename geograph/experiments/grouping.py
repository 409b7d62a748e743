"""Group finished runs into configs and aggregate each metric as mean ± std over seeds.

Runs are grouped by their logged params minus the seed (or by ``group_by`` params); the table
keeps only the params that differ between groups, gives each metric as mean and *sample*
standard deviation (ddof=1, so two runs at 0.5 and 0.7 give 0.6000 ± 0.1414; one run has no
std), and marks the best group. Nothing here talks to MLflow: runs come from
:mod:`geograph.experiments.loading`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from geograph.tracking.tags import TAG_CONFIG_NAME

# A metric whose name contains one of these is minimised; every other metric is maximised.
LOWER_IS_BETTER_PARTS = ("mae", "rmse", "mse", "loss", "error", "median_km", "jsd")
DEFAULT_METRIC = "test_observed_r2_log1p"
"""What runs are ranked by unless told otherwise: co-visitation R² on observed test pairs."""
SEED_KEYS = ("seed",)
CURVE_PREFIXES = ("train_", "val_")
MAX_CURVES = 4

# fixed columns of the comparison table
CONFIG = "config"
N_RUNS = "n_runs"
SEEDS = "seeds"
BEST = "best"
MEAN_SUFFIX = "_mean"
STD_SUFFIX = "_std"
_RESERVED = {CONFIG, N_RUNS, SEEDS, BEST}


def higher_is_better(metric: str) -> bool:
    """False when ``metric`` names an error (see :data:`LOWER_IS_BETTER_PARTS`), else True."""
    name = metric.lower()
    return not any(part in name for part in LOWER_IS_BETTER_PARTS)


def maximizes(metric: str, override: bool | None = None) -> bool:
    """The ranking direction: ``override`` when given, else :func:`higher_is_better` of ``metric``."""
    return higher_is_better(metric) if override is None else bool(override)


@dataclass
class RunGroup:
    """The runs of one config.

    Attributes:
        key: The (param, value) pairs that define the config, sorted by param.
        params: ``key`` as a mapping.
        runs: The MLflow runs of the config, in search order.
    """

    key: tuple[tuple[str, str | None], ...]
    params: dict[str, str]
    runs: list[Any] = field(default_factory=list)


def is_seed_key(key: str, seed_keys: Sequence[str]) -> bool:
    """True when the last dotted part of the param ``key`` is one of ``seed_keys``."""
    return key.rsplit(".", 1)[-1] in seed_keys


def group_runs(
    runs: Sequence[Any], group_by: Sequence[str] | None, seed_keys: Sequence[str] = SEED_KEYS
) -> list[RunGroup]:
    """Group ``runs`` by the params in ``group_by`` (default: every param except the seed).

    Groups come in the order of their first run.
    """
    groups: dict[tuple, RunGroup] = {}
    for r in runs:
        params = dict(r.data.params)
        if group_by:
            items = tuple((g, params.get(g)) for g in group_by)
        else:
            items = tuple(sorted((k, v) for k, v in params.items() if not is_seed_key(k, seed_keys)))
        group = groups.setdefault(items, RunGroup(key=items, params=dict(items)))
        group.runs.append(r)
    return list(groups.values())


def group_labels(groups: Sequence[RunGroup]) -> list[str]:
    """The configs' ``geograph.config_name`` tags (``config-<i>`` when untagged), made unique."""
    labels: list[str] = []
    for i, g in enumerate(groups):
        names = sorted({r.data.tags[TAG_CONFIG_NAME] for r in g.runs if TAG_CONFIG_NAME in r.data.tags})
        label = "+".join(names) if names else f"config-{i}"
        if label in labels:
            label = f"{label}#{i}"
        labels.append(label)
    return labels


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1) of the non-NaN ``values``; None where undefined."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


def _values(group: RunGroup, metric: str) -> list[float]:
    return [r.data.metrics.get(metric, float("nan")) for r in group.runs]


def _param_column(param: str) -> str:
    return f"param.{param}" if param in _RESERVED else param


def aggregate(
    groups: list[RunGroup],
    metric: str,
    metrics: Sequence[str] | None,
    group_by: Sequence[str] | None,
    seed_keys: Sequence[str],
    maximize: bool,
) -> pl.DataFrame:
    """The comparison table of ``groups`` (see :func:`geograph.experiments.compare.compare_runs`)."""
    labels = group_labels(groups)
    if metrics is None:
        seen = {k for g in groups for r in g.runs for k in r.data.metrics}
        metrics = sorted(k for k in seen if k.startswith("test_") and k != metric)
        if len(groups) > 1:  # a metric with the same mean for every config tells configs apart no better
            metrics = [m for m in metrics if len({mean_std(_values(g, m))[0] for g in groups}) > 1]
    all_metrics = [metric, *[m for m in metrics if m != metric]]

    param_names = sorted({k for g in groups for k in g.params})
    if group_by:
        diff = list(group_by)
    else:
        diff = [
            k
            for k in param_names
            if len({g.params.get(k) for g in groups}) > 1
            # a param that only repeats the config's label (e.g. its ``name``) adds nothing
            and any(g.params.get(k) != label for g, label in zip(groups, labels, strict=True))
        ]

    rows: list[dict[str, Any]] = []
    for g, label in zip(groups, labels, strict=True):
        row: dict[str, Any] = {CONFIG: label}
        for k in diff:
            row[_param_column(k)] = g.params.get(k)
        row[N_RUNS] = len(g.runs)
        seeds = []
        for r in g.runs:
            seed = next((v for k, v in r.data.params.items() if is_seed_key(k, seed_keys)), None)
            if seed is not None:
                seeds.append(seed)
        row[SEEDS] = ",".join(sorted(seeds, key=lambda s: (len(s), s)))
        for m in all_metrics:
            mean, std = mean_std(_values(g, m))
            row[m + MEAN_SUFFIX] = mean
            row[m + STD_SUFFIX] = std
        rows.append(row)

    schema: dict[str, Any] = {CONFIG: pl.String}
    for k in diff:
        schema[_param_column(k)] = pl.String
    schema[N_RUNS] = pl.Int64
    schema[SEEDS] = pl.String
    for m in all_metrics:
        schema[m + MEAN_SUFFIX] = pl.Float64
        schema[m + STD_SUFFIX] = pl.Float64
    df = pl.DataFrame(rows, schema=schema, orient="row")
    key = metric + MEAN_SUFFIX
    df = df.sort(key, descending=maximize, nulls_last=True, maintain_order=True)
    best_value = df[key][0]
    return df.with_columns((pl.col(key) == best_value).fill_null(False).alias(BEST))


def metric_names(table: pl.DataFrame) -> list[str]:
    """Metrics aggregated in ``table`` (in column order)."""
    return [c.removesuffix(MEAN_SUFFIX) for c in table.columns if c.endswith(MEAN_SUFFIX)]


def param_names(table: pl.DataFrame) -> list[str]:
    """The config-difference (param) columns of ``table``."""
    return [c for c in table.columns if c not in _RESERVED and not c.endswith((MEAN_SUFFIX, STD_SUFFIX))]


def learning_curves(
    groups: list[RunGroup],
    labels: list[str],
    keys: Sequence[str] | None,
    metric: str,
    history: Callable[[str, str], Sequence[Any]],
) -> dict[str, dict[str, pl.DataFrame]]:
    """Per metric key and config: the mean and sample std over seeds at each step.

    Args:
        groups: The configs.
        labels: Their labels (see :func:`group_labels`), in the same order.
        keys: Metric keys (default: ``train_*`` and ``val_*`` metrics, ``train_loss`` and the
            ``val_`` twin of ``metric`` first); at most :data:`MAX_CURVES` keys with a curve.
        metric: The ranking metric.
        history: ``history(run_id, key)`` -> the logged points (with ``step`` and ``value``),
            e.g. ``MlflowClient.get_metric_history``.

    Returns:
        ``{key: {label: frame}}`` with columns ``step``, ``mean``, ``std``; a config whose
        runs logged ``key`` at fewer than two steps has no curve.
    """
    if keys is None:
        # train_loss first, then the validation twin of the ranking metric, then the rest by name
        first = ["train_loss", "val_" + metric.split("_", 1)[-1]]
        seen = sorted(
            {k for g in groups for r in g.runs for k in r.data.metrics if k.startswith(CURVE_PREFIXES)},
            key=lambda k: (first.index(k) if k in first else len(first), k),
        )
    else:
        seen = list(keys)
    out: dict[str, dict[str, pl.DataFrame]] = {}
    for key in seen:
        per_config: dict[str, pl.DataFrame] = {}
        for g, label in zip(groups, labels, strict=True):
            points = [
                (r.info.run_id, m.step, m.value)
                for r in g.runs
                if key in r.data.metrics
                for m in history(r.info.run_id, key)
            ]
            if len({p[1] for p in points}) < 2:
                continue
            frame = pl.DataFrame(points, schema=["run_id", "step", "value"], orient="row")
            per_config[label] = (
                frame.group_by("step")
                .agg(pl.col("value").mean().alias("mean"), pl.col("value").std(ddof=1).alias("std"))
                .sort("step")
            )
        if per_config:
            out[key] = per_config
        if len(out) >= MAX_CURVES:
            break
    return out


__all__ = [
    "BEST",
    "CONFIG",
    "LOWER_IS_BETTER_PARTS",
    "MEAN_SUFFIX",
    "N_RUNS",
    "SEEDS",
    "SEED_KEYS",
    "STD_SUFFIX",
    "RunGroup",
    "aggregate",
    "group_labels",
    "group_runs",
    "higher_is_better",
    "is_seed_key",
    "learning_curves",
    "maximizes",
    "mean_std",
    "metric_names",
    "param_names",
]
