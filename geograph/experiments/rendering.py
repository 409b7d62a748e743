"""Show a comparison table: rich tables, Markdown and CSV files, metric bars, learning curves.

Every function takes a :func:`geograph.experiments.compare.compare_runs` frame (or the
curves of :func:`geograph.experiments.grouping.learning_curves`); files are written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from geograph.experiments.grouping import (
    BEST,
    CONFIG,
    MEAN_SUFFIX,
    N_RUNS,
    SEEDS,
    STD_SUFFIX,
    maximizes,
    metric_names,
    param_names,
)
from geograph.utils import atomic_write, atomic_write_text

MARKDOWN_FILE = "comparison.md"
CSV_FILE = "comparison.csv"
BARS_FILE = "metric_bars.png"
CURVES_FILE = "learning_curves.png"
PRED_VS_OBSERVED_FILE = "pred_vs_observed.png"
PLOT_DPI = 110
PANEL_INCHES = 4.0
MAX_PANEL_COLUMNS = 3


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "—"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def display_frame(table: pl.DataFrame, digits: int = 4, max_metrics: int | None = None) -> pl.DataFrame:
    """The metrics part of ``table`` as strings: ★ for the best, one ``"mean ± std"`` column per metric.

    Args:
        table: A :func:`~geograph.experiments.compare.compare_runs` frame.
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
    maximize = maximizes(metric, higher_is_better)
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

    maximize = maximizes(metric, higher_is_better)
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


def _save_png(plt: Any, fig: Any, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as PNG atomically, and close it."""
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=PLOT_DPI)
    plt.close(fig)
    return path


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
    return _save_png(plt, fig, path)


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
    return _save_png(plt, fig, path)


@dataclass(frozen=True)
class PredictionPanel:
    """The observed pairs of one model's run, for :func:`plot_pred_vs_observed`.

    Attributes:
        observed_log1p: ``log1p`` of the observed visitors. Shapes: ``(E,)``.
        predicted_log1p: The model's prediction on the same scale (what R² scores). Shapes: ``(E,)``.
        r2: The run's R² on these pairs (None when not logged).
        seed: The run's seed (None when unknown).
    """

    observed_log1p: np.ndarray
    predicted_log1p: np.ndarray
    r2: float | None = None
    seed: int | None = None


def pred_vs_observed_figure(panels: Mapping[str, PredictionPanel]) -> Any:
    """One hexbin panel per model (at most :data:`MAX_PANEL_COLUMNS` a row): observed against
    predicted ``log1p(visitors)``, counts on a log colour scale, the y=x line, and the model's
    R² in the title. All panels share the axis limits. Returns the matplotlib figure.

    Raises:
        ValueError: no panels.
    """
    if not panels:
        raise ValueError("no models to plot")
    plt = _pyplot()
    n = len(panels)
    cols = min(n, MAX_PANEL_COLUMNS)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_INCHES * cols, PANEL_INCHES * rows), squeeze=False)
    values = [a for p in panels.values() for a in (p.observed_log1p, p.predicted_log1p) if len(a)]
    lo = min((float(np.min(a)) for a in values), default=0.0)
    hi = max((float(np.max(a)) for a in values), default=1.0)
    lo, hi = min(lo, 0.0), max(hi, lo + 1.0)
    for ax, (label, panel) in zip(axes.flat, panels.items(), strict=False):
        if len(panel.observed_log1p):
            ax.hexbin(
                panel.observed_log1p,
                panel.predicted_log1p,
                gridsize=40,
                bins="log",
                mincnt=1,
                cmap="viridis",
                extent=(lo, hi, lo, hi),
            )
        ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1, ls="--", label="y = x")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        r2 = "—" if panel.r2 is None else f"{panel.r2:.3f}"
        seed = "" if panel.seed is None else f", seed {panel.seed}"
        ax.set_title(f"{label}: observed R² {r2}{seed}", fontsize="medium")
        ax.set_xlabel("observed log1p(visitors)")
        ax.set_ylabel("predicted log1p(visitors)")
    for ax in list(axes.flat)[n:]:
        fig.delaxes(ax)
    axes[0][0].legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    return fig


def plot_pred_vs_observed(panels: Mapping[str, PredictionPanel], path: str | Path) -> Path:
    """Write :func:`pred_vs_observed_figure` of ``panels`` to ``path`` as PNG, atomically."""
    return _save_png(_pyplot(), pred_vs_observed_figure(panels), path)


__all__ = [
    "BARS_FILE",
    "CSV_FILE",
    "CURVES_FILE",
    "MARKDOWN_FILE",
    "PRED_VS_OBSERVED_FILE",
    "PredictionPanel",
    "differences_frame",
    "display_frame",
    "plot_learning_curves",
    "plot_metric_bars",
    "plot_pred_vs_observed",
    "pred_vs_observed_figure",
    "print_table",
    "render_markdown",
    "write_table",
]
