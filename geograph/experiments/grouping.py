"""Group finished runs into configs and aggregate each metric as mean ± std over seeds.

Runs are first split into *comparison groups* by what they were trained and scored on: their
``geograph.data_fingerprint`` tag and their split protocol (the param whose last dotted part
is ``protocol``, e.g. ``split.protocol``). Runs of different groups are never averaged
together and never ranked against each other. Inside a group, runs are grouped into configs by
their logged params minus the seed (or by ``group_by`` params); the table keeps only the
params that differ between configs, gives each metric as mean and *sample* standard deviation
(ddof=1, so two runs at 0.5 and 0.7 give 0.6000 ± 0.1414; one run has no std), and marks the
best config of each group. Nothing here talks to MLflow: runs come from
:mod:`geograph.experiments.loading`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from geograph.tracking.tags import TAG_CONFIG_NAME, TAG_DATA_FINGERPRINT

# A metric whose name contains one of these is minimised; every other metric is maximised.
LOWER_IS_BETTER_PARTS = ("mae", "rmse", "mse", "loss", "error", "median_km", "jsd")
DEFAULT_METRIC = "test_observed_r2_log1p"
"""What runs are ranked by unless told otherwise: co-visitation R² on observed test pairs."""
SEED_KEYS = ("seed",)
PROTOCOL_KEYS = ("protocol",)
"""Param names (last dotted part) that hold the evaluation protocol, e.g. ``split.protocol``."""
OUTCOME_PREFIXES = ("chosen.",)
"""Params a run picks itself (geolocation's knobs chosen on validation): they vary with the
seed and never define a config."""
CURVE_PREFIXES = ("train_", "val_")
MAX_CURVES = 4

# fixed columns of the comparison table
GROUP = "group"
DATA = "data"
PROTOCOL = "protocol"
CONFIG = "config"
N_RUNS = "n_runs"
SEEDS = "seeds"
BEST = "best"
RUN = "run"
RUN_IDS = "run_ids"
MEAN_SUFFIX = "_mean"
STD_SUFFIX = "_std"
_RESERVED = {GROUP, DATA, PROTOCOL, CONFIG, N_RUNS, SEEDS, BEST, RUN, RUN_IDS}


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
        data: The runs' ``geograph.data_fingerprint`` tag (None when untagged).
        protocol: The runs' protocol param (None when they log none).
    """

    key: tuple[tuple[str, str | None], ...]
    params: dict[str, str]
    runs: list[Any] = field(default_factory=list)
    data: str | None = None
    protocol: str | None = None

    @property
    def cohort(self) -> tuple[str | None, str | None]:
        """``(data, protocol)``: configs are only compared with configs of the same cohort."""
        return self.data, self.protocol


def is_seed_key(key: str, seed_keys: Sequence[str]) -> bool:
    """True when the last dotted part of the param ``key`` is one of ``seed_keys``."""
    return key.rsplit(".", 1)[-1] in seed_keys


def run_protocol(run: Any, protocol_keys: Sequence[str] = PROTOCOL_KEYS) -> str | None:
    """The value of the run's protocol param (see :data:`PROTOCOL_KEYS`), None when it has none."""
    return next((v for k, v in sorted(run.data.params.items()) if is_seed_key(k, protocol_keys)), None)


def group_runs(
    runs: Sequence[Any],
    group_by: Sequence[str] | None,
    seed_keys: Sequence[str] = SEED_KEYS,
    protocol_keys: Sequence[str] = PROTOCOL_KEYS,
) -> list[RunGroup]:
    """Group ``runs`` by data fingerprint, protocol and the params in ``group_by`` (default:
    every param except the seed and the knobs a run chose itself, :data:`OUTCOME_PREFIXES`).

    Runs with a different ``geograph.data_fingerprint`` tag or protocol param never share a
    group, whatever ``group_by`` says. Groups come in the order of their first run.
    """
    groups: dict[tuple, RunGroup] = {}
    for r in runs:
        params = dict(r.data.params)
        if group_by:
            items = tuple((g, params.get(g)) for g in group_by)
        else:
            items = tuple(
                sorted(
                    (k, v)
                    for k, v in params.items()
                    if not is_seed_key(k, seed_keys) and not k.startswith(OUTCOME_PREFIXES)
                )
            )
        data, protocol = r.data.tags.get(TAG_DATA_FINGERPRINT), run_protocol(r, protocol_keys)
        group = groups.setdefault(
            (data, protocol, items), RunGroup(key=items, params=dict(items), data=data, protocol=protocol)
        )
        group.runs.append(r)
    return list(groups.values())


def group_labels(groups: Sequence[RunGroup]) -> list[str]:
    """The configs' ``geograph.config_name`` tags (``config-<i>`` when untagged), made unique:
    a name taken by a config of an earlier comparison group gets ``@<group number>``, one taken
    in the same group ``#<i>``."""
    cohorts = list(dict.fromkeys(g.cohort for g in groups))
    labels: list[str] = []
    for i, g in enumerate(groups):
        label = _config_name(g, i)
        same_cohort = any(
            lab == label and h.cohort == g.cohort for lab, h in zip(labels, groups, strict=False)
        )
        if label in labels and not same_cohort:
            label = f"{label}@{cohorts.index(g.cohort) + 1}"
        if label in labels:
            label = f"{label}#{i}"
        labels.append(label)
    return labels


def _config_name(group: RunGroup, i: int) -> str:
    names = sorted({r.data.tags[TAG_CONFIG_NAME] for r in group.runs if TAG_CONFIG_NAME in r.data.tags})
    return "+".join(names) if names else f"config-{i}"


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


def _best_run(group: RunGroup, metric: str, maximize: bool) -> Any:
    """The config's run with the best ``metric`` (its first run when none logged it)."""
    scored = [(v, i) for i, v in enumerate(_values(group, metric)) if not math.isnan(v)]
    if not scored:
        return group.runs[0]
    # the first run among equals: max of (value, -index), min of (value, index)
    _, i = max(scored, key=lambda t: (t[0], -t[1])) if maximize else min(scored)
    return group.runs[i]


def aggregate(
    groups: list[RunGroup],
    metric: str,
    metrics: Sequence[str] | None,
    group_by: Sequence[str] | None,
    seed_keys: Sequence[str],
    maximize: bool,
    short_ids: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The comparison table of ``groups`` (see :func:`geograph.experiments.compare.compare_runs`).

    Args:
        groups: Configs from :func:`group_runs`.
        metric: Ranking metric.
        metrics: Other metrics (default: every ``test_*`` metric whose mean differs between configs).
        group_by: The params that defined the configs (default: every param but the seed).
        seed_keys: Param names (last dotted part) that hold the seed.
        maximize: Ranking direction.
        short_ids: Run id -> the prefix to show in the ``run`` column (default: the full id).
    """
    labels = group_labels(groups)
    if metrics is None:
        seen = {k for g in groups for r in g.runs for k in r.data.metrics}
        metrics = sorted(k for k in seen if k.startswith("test_") and k != metric)
        if len(groups) > 1:  # a metric with the same mean for every config tells configs apart no better
            metrics = [m for m in metrics if len({mean_std(_values(g, m))[0] for g in groups}) > 1]
    all_metrics = [metric, *[m for m in metrics if m != metric]]
    cohorts = list(dict.fromkeys(g.cohort for g in groups))

    param_names = sorted({k for g in groups for k in g.params})
    if group_by:
        diff = list(group_by)
    else:
        diff = [
            k
            for k in param_names
            if len({g.params.get(k) for g in groups}) > 1
            # the protocol has its own column
            and not any(k == p for g in groups for p in _protocol_params(g))
            # a param that only repeats the config's name (e.g. its ``name``) adds nothing
            and any(g.params.get(k) != _config_name(g, i) for i, g in enumerate(groups))
        ]

    rows: list[dict[str, Any]] = []
    for g, label in zip(groups, labels, strict=True):
        row: dict[str, Any] = {
            GROUP: cohorts.index(g.cohort) + 1,
            DATA: g.data,
            PROTOCOL: g.protocol,
            CONFIG: label,
        }
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
        best_id = _best_run(g, metric, maximize).info.run_id
        row[RUN] = (short_ids or {}).get(best_id, best_id)
        row[RUN_IDS] = ",".join(r.info.run_id for r in g.runs)
        rows.append(row)

    schema: dict[str, Any] = {GROUP: pl.Int64, DATA: pl.String, PROTOCOL: pl.String, CONFIG: pl.String}
    for k in diff:
        schema[_param_column(k)] = pl.String
    schema[N_RUNS] = pl.Int64
    schema[SEEDS] = pl.String
    for m in all_metrics:
        schema[m + MEAN_SUFFIX] = pl.Float64
        schema[m + STD_SUFFIX] = pl.Float64
    schema[RUN] = pl.String
    schema[RUN_IDS] = pl.String
    df = pl.DataFrame(rows, schema=schema, orient="row")
    key = metric + MEAN_SUFFIX
    df = df.sort([GROUP, key], descending=[False, maximize], nulls_last=True, maintain_order=True)
    best = (pl.col(key) == pl.col(key).first().over(GROUP)).fill_null(False).alias(BEST)
    return df.select([c for c in df.columns if c not in (RUN, RUN_IDS)]).with_columns(
        best, df[RUN], df[RUN_IDS]
    )


def _protocol_params(group: RunGroup, protocol_keys: Sequence[str] = PROTOCOL_KEYS) -> list[str]:
    return [k for k in group.params if is_seed_key(k, protocol_keys)]


def groups_of(table: pl.DataFrame) -> list[pl.DataFrame]:
    """``table`` split by comparison group (data fingerprint, protocol), in group order; a
    table without a ``group`` column is one group."""
    if GROUP not in table.columns:
        return [table]
    return [part for _, part in table.group_by(GROUP, maintain_order=True)]


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
    "DATA",
    "GROUP",
    "PROTOCOL",
    "PROTOCOL_KEYS",
    "RUN",
    "RUN_IDS",
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
    "groups_of",
    "higher_is_better",
    "is_seed_key",
    "learning_curves",
    "maximizes",
    "mean_std",
    "metric_names",
    "param_names",
    "run_protocol",
]
