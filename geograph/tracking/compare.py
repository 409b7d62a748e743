"""Compare finished runs of one experiment: configs as rows, metrics as mean ± std over seeds.

Runs are grouped by their logged params minus the seed (or by ``group_by`` params); the table
keeps only the params that differ between groups, gives each metric as mean and *sample*
standard deviation (ddof=1, so two runs at 0.5 and 0.7 give 0.6000 ± 0.1414; one run has no
std), and marks the best group. :func:`report` also writes the table as Markdown and CSV
(atomically), draws the metric bars (error bars = std) and the learning curves, and logs all
of it as artifacts of a summary run in the same experiment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from geograph.errors import TrackingError
from geograph.tracking.store import configure, run_context, start_run
from geograph.tracking.tags import (
    RUN_KIND_SUITE,
    RUN_KIND_SUMMARY,
    TAG_CONFIG_NAME,
    TAG_RUN_KIND,
)
from geograph.utils import atomic_write, atomic_write_text

# A metric whose name contains one of these is minimised; every other metric is maximised.
LOWER_IS_BETTER_PARTS = ("mae", "rmse", "mse", "loss", "error", "median_km")
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

MARKDOWN_FILE = "comparison.md"
CSV_FILE = "comparison.csv"
BARS_FILE = "metric_bars.png"
CURVES_FILE = "learning_curves.png"
SUMMARY_ARTIFACT_DIR = "comparison"


def higher_is_better(metric: str) -> bool:
    """False when ``metric`` names an error (see :data:`LOWER_IS_BETTER_PARTS`), else True."""
    name = metric.lower()
    return not any(part in name for part in LOWER_IS_BETTER_PARTS)


@dataclass
class _Group:
    key: tuple[tuple[str, str | None], ...]
    params: dict[str, str]
    runs: list[Any] = field(default_factory=list)


def _is_seed_key(key: str, seed_keys: Sequence[str]) -> bool:
    return key.rsplit(".", 1)[-1] in seed_keys


def _search_finished(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _collect(
    experiment: str,
    metric: str,
    tracking_uri: str | None,
    group_by: Sequence[str] | None,
    run_ids: Sequence[str] | None,
    seed_keys: Sequence[str],
) -> tuple[list[_Group], Any]:
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
        for r in _search_finished(client, exp.experiment_id)
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
    groups: dict[tuple, _Group] = {}
    for r in with_metric:
        params = dict(r.data.params)
        if group_by:
            items = tuple((g, params.get(g)) for g in group_by)
        else:
            items = tuple(sorted((k, v) for k, v in params.items() if not _is_seed_key(k, seed_keys)))
        group = groups.setdefault(items, _Group(key=items, params=dict(items)))
        group.runs.append(r)
    return list(groups.values()), client


def _labels(groups: Sequence[_Group]) -> list[str]:
    """The configs' ``geograph.config_name`` tags (``config-<i>`` when untagged), made unique."""
    labels: list[str] = []
    for i, g in enumerate(groups):
        names = sorted({r.data.tags[TAG_CONFIG_NAME] for r in g.runs if TAG_CONFIG_NAME in r.data.tags})
        label = "+".join(names) if names else f"config-{i}"
        if label in labels:
            label = f"{label}#{i}"
        labels.append(label)
    return labels


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


def _values(group: _Group, metric: str) -> list[float]:
    return [r.data.metrics.get(metric, float("nan")) for r in group.runs]


def _aggregate(
    groups: list[_Group],
    metric: str,
    metrics: Sequence[str] | None,
    group_by: Sequence[str] | None,
    seed_keys: Sequence[str],
    maximize: bool,
) -> pl.DataFrame:
    labels = _labels(groups)
    if metrics is None:
        seen = {k for g in groups for r in g.runs for k in r.data.metrics}
        metrics = sorted(k for k in seen if k.startswith("test_") and k != metric)
        if len(groups) > 1:  # a metric with the same mean for every config tells configs apart no better
            metrics = [m for m in metrics if len({_mean_std(_values(g, m))[0] for g in groups}) > 1]
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
            row[f"param.{k}" if k in _RESERVED else k] = g.params.get(k)
        row[N_RUNS] = len(g.runs)
        seeds = []
        for r in g.runs:
            seed = next((v for k, v in r.data.params.items() if _is_seed_key(k, seed_keys)), None)
            if seed is not None:
                seeds.append(seed)
        row[SEEDS] = ",".join(sorted(seeds, key=lambda s: (len(s), s)))
        for m in all_metrics:
            mean, std = _mean_std(_values(g, m))
            row[m + MEAN_SUFFIX] = mean
            row[m + STD_SUFFIX] = std
        rows.append(row)

    schema: dict[str, Any] = {CONFIG: pl.String}
    for k in diff:
        schema[f"param.{k}" if k in _RESERVED else k] = pl.String
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


def compare_runs(
    experiment: str,
    metric: str = "test_r2",
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
            contains one of :data:`LOWER_IS_BETTER_PARTS`).
        metrics: Other metrics to aggregate (default: every ``test_*`` metric).
        run_ids: Only consider these runs (default: every finished training run).
        seed_keys: Param names (last dotted part) that hold the seed.

    Returns:
        Columns ``config`` (the runs' ``geograph.config_name`` tag), the params that differ
        between configs, ``n_runs``, ``seeds``, ``<metric>_mean`` / ``<metric>_std`` (sample
        std, ddof=1; null for one run) per metric, and ``best`` (True on the best row, ties
        included). Suite parent runs and summary runs are skipped.

    Raises:
        TrackingError: no such experiment, or no finished run logged ``metric``.
    """
    maximize = _direction(metric, higher_is_better)
    groups, _ = _collect(experiment, metric, tracking_uri, group_by, run_ids, seed_keys)
    return _aggregate(groups, metric, metrics, group_by, seed_keys, maximize)


def _direction(metric: str, override: bool | None) -> bool:
    return higher_is_better(metric) if override is None else bool(override)


# --- rendering ----------------------------------------------------------------------------


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "—"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def metric_names(table: pl.DataFrame) -> list[str]:
    """Metrics aggregated in ``table`` (in column order)."""
    return [c.removesuffix(MEAN_SUFFIX) for c in table.columns if c.endswith(MEAN_SUFFIX)]


def param_names(table: pl.DataFrame) -> list[str]:
    """The config-difference (param) columns of ``table``."""
    fixed = {CONFIG, N_RUNS, SEEDS, BEST}
    return [c for c in table.columns if c not in fixed and not c.endswith((MEAN_SUFFIX, STD_SUFFIX))]


def display_frame(table: pl.DataFrame, digits: int = 4, max_metrics: int | None = None) -> pl.DataFrame:
    """The metrics part of ``table`` as strings: ★ for the best, one ``"mean ± std"`` column per metric.

    Args:
        table: A :func:`compare_runs` frame.
        digits: Decimals shown.
        max_metrics: Show only the first this many metrics (the ranking metric comes first).
    """
    metrics = metric_names(table)[:max_metrics]
    out: dict[str, list[str]] = {BEST: ["★" if b else "" for b in table[BEST].to_list()]}
    for c in (CONFIG, N_RUNS, SEEDS):
        out[c] = ["—" if v is None else str(v) for v in table[c].to_list()]
    for m in metrics:
        means, stds = table[m + MEAN_SUFFIX].to_list(), table[m + STD_SUFFIX].to_list()
        out[m] = [_fmt(a, b, digits) for a, b in zip(means, stds, strict=True)]
    return pl.DataFrame(out)


def differences_frame(table: pl.DataFrame) -> pl.DataFrame:
    """The config differences, transposed: one row per param, one column per config (best first)."""
    params = param_names(table)
    out: dict[str, list[str]] = {"param": params}
    for i, label in enumerate(table[CONFIG].to_list()):
        out[label] = ["—" if table[p][i] is None else str(table[p][i]) for p in params]
    return pl.DataFrame(out, schema=dict.fromkeys(out, pl.String))


def _md_table(df: pl.DataFrame, right: set[str], center: set[str] = frozenset()) -> list[str]:
    def align(c: str) -> str:
        return ":-:" if c in center else ("---:" if c in right else "---")

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "|".join(align(c) for c in df.columns) + "|"]
    for row in df.iter_rows():
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return lines


def render_markdown(
    table: pl.DataFrame,
    metric: str,
    *,
    experiment: str | None = None,
    higher_is_better: bool | None = None,
    digits: int = 4,
) -> str:
    """The comparison as Markdown: a title, one explanatory line, the metrics table, and the
    config differences (params as rows, configs as columns)."""
    maximize = _direction(metric, higher_is_better)
    shown = display_frame(table, digits)
    n_runs = int(table[N_RUNS].sum())
    title = f"# Comparison: {experiment}" if experiment else "# Comparison"
    lines = [
        title,
        "",
        f"Ranked by `{metric}` ({'higher' if maximize else 'lower'} is better); metrics are mean ± sample "
        f"std (ddof=1) over seeds; {n_runs} finished runs in {table.height} configs; ★ marks the best.",
        "",
        *_md_table(shown, right={N_RUNS, *metric_names(table)}, center={BEST}),
    ]
    diff = differences_frame(table)
    if diff.height:
        lines += ["", "Config differences (params that differ between configs):", ""]
        lines += _md_table(diff, right=set())
    return "\n".join(lines) + "\n"


def print_table(
    table: pl.DataFrame,
    metric: str,
    *,
    experiment: str | None = None,
    higher_is_better: bool | None = None,
    console: Any = None,
    digits: int = 4,
    max_metrics: int | None = None,
) -> None:
    """Print the comparison as two rich tables: metrics (best row in bold green) and the config
    differences (params as rows). At most ``max_metrics`` metrics are shown (default: as many as
    fit the terminal width); the Markdown and CSV files have all."""
    from rich.console import Console
    from rich.table import Table

    maximize = _direction(metric, higher_is_better)
    console = console or Console()
    if max_metrics is None:  # as many "0.1234 ± 0.0123" columns as fit beside the fixed ones
        label_width = max((len(str(c)) for c in table[CONFIG].to_list()), default=6)
        fixed = 7 + max(label_width, 6) + 3 + 9 + max((len(s) for s in table[SEEDS].to_list()), default=5) + 4
        max_metrics = max(1, (console.width - fixed) // (2 * digits + 11))
    shown = display_frame(table, digits, max_metrics=max_metrics)
    hidden = len(metric_names(table)) - (shown.width - 4)
    title = (
        f"{experiment or 'comparison'}: {metric} ({'higher' if maximize else 'lower'} is better), "
        "mean ± sample std over seeds"
    )
    metrics_table = Table(
        title=title, caption=f"+{hidden} more metrics in comparison.md / .csv" if hidden else None
    )
    metrics = set(metric_names(table))
    for c in shown.columns:
        metrics_table.add_column(c, justify="right" if c in metrics or c == N_RUNS else "left", no_wrap=True)
    for row, best in zip(shown.iter_rows(), table[BEST].to_list(), strict=True):
        metrics_table.add_row(*[str(v) for v in row], style="bold green" if best else None)
    console.print(metrics_table)
    diff = differences_frame(table)
    if diff.height:
        diff_table = Table(title="config differences")
        param_width = max(len(v) for v in diff["param"].to_list() + ["param"])
        # config columns share what the param column leaves; each is at least as wide as its
        # longest word when that fits, so words wrap at spaces instead of being cut
        share = max(6, (console.width - param_width - 3 * diff.width - 1) // max(1, diff.width - 1))
        for c in diff.columns:
            longest = max((len(w) for v in diff[c].to_list() for w in v.split()), default=1)
            diff_table.add_column(c, no_wrap=c == "param", min_width=min(max(longest, len(c)), share))
        for row in diff.iter_rows():
            diff_table.add_row(*row)
        console.print(diff_table)


def write_table(
    table: pl.DataFrame,
    out_dir: str | Path,
    metric: str,
    *,
    experiment: str | None = None,
    higher_is_better: bool | None = None,
) -> tuple[Path, Path]:
    """Write ``comparison.md`` and ``comparison.csv`` (numbers in full) atomically; returns both paths."""
    out = Path(out_dir)
    md_path, csv_path = out / MARKDOWN_FILE, out / CSV_FILE
    atomic_write_text(
        md_path, render_markdown(table, metric, experiment=experiment, higher_is_better=higher_is_better)
    )
    with atomic_write(csv_path, suffix=".csv") as tmp:
        table.write_csv(tmp)
    return md_path, csv_path


# --- plots ----------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_metric_bars(table: pl.DataFrame, metric: str, path: str | Path) -> Path:
    """Bar per config at the metric mean, error bar = sample std, best bar highlighted."""
    plt = _pyplot()
    labels = table[CONFIG].to_list()
    means = [m if m is not None else 0.0 for m in table[metric + MEAN_SUFFIX].to_list()]
    stds = [s if s is not None else 0.0 for s in table[metric + STD_SUFFIX].to_list()]
    colors = ["tab:green" if b else "tab:blue" for b in table[BEST].to_list()]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(labels) + 2), 3.6))
    ax.bar(range(len(labels)), means, yerr=stds, capsize=4, color=colors)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean ± std over seeds")
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _curves(
    client: Any, groups: list[_Group], labels: list[str], keys: Sequence[str] | None, metric: str
) -> dict[str, dict[str, pl.DataFrame]]:
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
                for m in client.get_metric_history(r.info.run_id, key)
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


def plot_learning_curves(curves: Mapping[str, Mapping[str, pl.DataFrame]], path: str | Path) -> Path:
    """One panel per metric key, one line per config (mean over seeds, band = ± std)."""
    plt = _pyplot()
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, (key, per_config) in zip(axes[0], curves.items(), strict=True):
        for label, frame in per_config.items():
            steps = frame["step"].to_list()
            mean = frame["mean"].to_list()
            std = [s if s is not None else 0.0 for s in frame["std"].to_list()]
            ax.plot(steps, mean, label=label)
            ax.fill_between(
                steps,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                alpha=0.2,
            )
        ax.set_title(key)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


# --- the whole report -------------------------------------------------------------------------


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
    metric: str = "test_r2",
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
            ``val_*`` metrics with more than one step, at most :data:`MAX_CURVES`: ``train_loss``
            and the ``val_`` twin of ``metric`` first).
        log_summary: Log the files as artifacts (under ``comparison/``) of a new run tagged
            ``geograph.run_kind=summary`` in ``experiment``.
        parent_run_id: Nest the summary run under this run (a suite's parent run).
        seed_keys: See :func:`compare_runs`.
        summary_tags: Extra tags for the summary run.
    """
    maximize = _direction(metric, higher_is_better)
    groups, client = _collect(experiment, metric, tracking_uri, group_by, run_ids, seed_keys)
    table = _aggregate(groups, metric, None, group_by, seed_keys, maximize)
    out = Path(out_dir) if out_dir is not None else default_report_dir(experiment)
    md_path, csv_path = write_table(table, out, metric, experiment=experiment, higher_is_better=maximize)
    plots = [plot_metric_bars(table, metric, out / BARS_FILE)]
    # labels in group order (the table is sorted, groups are not)
    labels = _labels(groups)
    curves = _curves(client, groups, labels, curve_metrics, metric)
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
                    "geograph.best_config": ",".join(best),
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


__all__ = [
    "LOWER_IS_BETTER_PARTS",
    "ComparisonReport",
    "compare_runs",
    "default_report_dir",
    "differences_frame",
    "display_frame",
    "higher_is_better",
    "metric_names",
    "param_names",
    "plot_learning_curves",
    "plot_metric_bars",
    "print_table",
    "render_markdown",
    "report",
    "write_table",
]
