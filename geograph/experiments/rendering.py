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
    DATA,
    GROUP,
    MEAN_SUFFIX,
    N_RUNS,
    PROTOCOL,
    RUN,
    SEEDS,
    STD_SUFFIX,
    groups_of,
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
    """The metrics part of ``table`` as strings: ★ for the best of each group, one ``"mean ± std"``
    column per metric, and the ``run`` id prefix last.

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
    if RUN in table.columns:
        out[RUN] = ["—" if v is None else str(v) for v in table[RUN].to_list()]
    return pl.DataFrame(out, schema=dict.fromkeys(out, pl.String))


def differences_frame(table: pl.DataFrame) -> pl.DataFrame:
    """The config differences, transposed: one row per param whose value is not the same for
    every config of ``table``, one column per config (best first)."""
    params = [p for p in param_names(table) if table[p].n_unique() > 1]
    out: dict[str, list[str]] = {"param": params}
    for i, label in enumerate(table[CONFIG].to_list()):
        out[label] = ["—" if table[p][i] is None else str(table[p][i]) for p in params]
    return pl.DataFrame(out, schema=dict.fromkeys(out, pl.String))


def group_heading(part: pl.DataFrame, n_groups: int) -> str:
    """One line naming a comparison group: its number, data fingerprint, protocol and size."""
    data, protocol, number = (part[c][0] if c in part.columns else None for c in (DATA, PROTOCOL, GROUP))
    n_runs = int(part[N_RUNS].sum())
    return (
        f"group {number or 1} of {n_groups}: data {data or 'untagged'}, protocol {protocol or '—'}; "
        f"{n_runs} run{'s' if n_runs != 1 else ''} in {part.height} config{'s' if part.height != 1 else ''}"
    )


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
    """The comparison as Markdown: a title, one explanatory line, then per comparison group a
    heading, its metrics table and its config differences (params as rows, configs as columns)."""
    maximize = maximizes(metric, higher_is_better)
    parts = groups_of(table)
    title = f"# Comparison: {experiment}" if experiment else "# Comparison"
    lines = [
        title,
        "",
        f"Ranked by `{metric}` ({'higher' if maximize else 'lower'} is better); metrics are mean ± sample "
        f"std (ddof=1) over seeds; {int(table[N_RUNS].sum())} finished runs in {table.height} configs and "
        f"{len(parts)} group{'s' if len(parts) != 1 else ''} (runs on different data or protocols are "
        "never compared); ★ marks the best of each group; `run` is the best seed's run id (prefix).",
    ]
    for part in parts:
        heading = group_heading(part, len(parts))
        lines += ["", f"## {heading[0].upper()}{heading[1:]}", ""]
        lines += _md_table(display_frame(part, digits), right={N_RUNS, *metric_names(table)}, center={BEST})
        diff = differences_frame(part)
        if diff.height:
            lines += ["", "Config differences (params that differ between configs):", ""]
            lines += _md_table(diff, right=set())
    return "\n".join(lines) + "\n"


def render_csv(table: pl.DataFrame) -> str:
    """The comparison as CSV: every column of ``table``, numbers in full."""
    return table.write_csv()


def print_table(
    table: pl.DataFrame,
    metric: str,
    *,
    experiment: str | None = None,
    higher_is_better: bool | None = None,
    console: Any = None,
    digits: int = 4,
    max_metrics: int | None = None,
    wide: bool = False,
) -> None:
    """Print the comparison: a rich table per comparison group (same data fingerprint and
    protocol), the best config of each group starred and in bold green.

    By default the tables fit the console width (80 columns in a pipe): short headers (``n``,
    ``m1``, ``m2``, ... named in a legend below), as many metrics as fit (at most
    ``max_metrics``), config differences as ``config: param=value`` lines; the run id prefix
    never wraps. ``wide`` shows every column with full names instead (params, seeds, all
    metrics) and lets the tables be as wide as they need. Boxes are plain ASCII when the console
    is not a terminal.
    """
    from rich.console import Console
    from rich.text import Text

    maximize = maximizes(metric, higher_is_better)
    console = console or Console(highlight=False)
    direction = "higher" if maximize else "lower"
    console.print(
        Text(
            f"{experiment or 'comparison'}: ranked by {metric} ({direction} is better), mean ± sample std over seeds"
        )
    )
    parts = groups_of(table)
    metrics = metric_names(table)
    if wide:
        _print_wide(console, parts, metrics, digits)
        return
    shown = _fitting_metrics(console, parts, metrics, digits, max_metrics)
    for part in parts:
        console.print(Text(group_heading(part, len(parts))))
        console.print(_compact_table(console, part, metrics[:shown], digits))
        diff = differences_frame(part)
        for label in diff.columns[1:] if diff.height else []:
            values = ", ".join(f"{p}={v}" for p, v in zip(diff["param"], diff[label], strict=True))
            console.print(Text(f"  {label}: {values}"))
    names = [
        f"m{i} {m}" + ("" if maximizes(m, maximize if i == 1 else None) else " (lower is better)")
        for i, m in enumerate(metrics[:shown], start=1)
    ]
    more = f"; +{len(metrics) - shown} more: --wide, comparison.md / .csv" if shown < len(metrics) else ""
    console.print(
        Text("★ best in its group by m1; n: runs; run: best seed's run id (for --run-id)", style="dim")
    )
    console.print(Text(", ".join(names) + more, style="dim"))


def _box(console: Any) -> Any:
    from rich import box

    return box.HEAVY_HEAD if console.is_terminal else box.ASCII


def _compact_table(console: Any, part: pl.DataFrame, metrics: list[str], digits: int) -> Any:
    from rich.table import Table
    from rich.text import Text

    t = Table(box=_box(console))
    t.add_column("", no_wrap=True)
    t.add_column(CONFIG, overflow="fold")
    t.add_column("n", justify="right", no_wrap=True)
    t.add_column(RUN, no_wrap=True)
    for i in range(len(metrics)):
        t.add_column(f"m{i + 1}", justify="right", no_wrap=True)
    for row in part.iter_rows(named=True):
        cells = ["★" if row[BEST] else "", row[CONFIG], str(row[N_RUNS]), row.get(RUN) or "—"]
        cells += [_fmt(row[m + MEAN_SUFFIX], row[m + STD_SUFFIX], digits) for m in metrics]
        t.add_row(*(Text(c) for c in cells), style="bold green" if row[BEST] else None)
    return t


def _fitting_metrics(
    console: Any, parts: list[pl.DataFrame], metrics: list[str], digits: int, most: int | None
) -> int:
    """How many metric columns every group's compact table can show within the console width
    (at least one: the ranking metric)."""
    from rich.measure import Measurement

    n = max(1, min(len(metrics), most if most is not None else len(metrics)))
    unbounded = console.options.update(width=10**4)  # measured widths are capped at the options' width
    while n > 1:
        widths = [
            Measurement.get(console, unbounded, _compact_table(console, p, metrics[:n], digits)).maximum
            for p in parts
        ]
        if max(widths) <= console.width:
            break
        n -= 1
    return n


def _print_wide(console: Any, parts: list[pl.DataFrame], metrics: list[str], digits: int) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    for part in parts:
        params = param_names(part)
        t = Table(box=_box(console))
        for c in [BEST, CONFIG, *params, N_RUNS, SEEDS, RUN, *metrics]:
            t.add_column(c, justify="right" if c in metrics or c == N_RUNS else "left", no_wrap=True)
        for row in part.iter_rows(named=True):
            cells = ["★" if row[BEST] else "", row[CONFIG], *[row[p] or "—" for p in params]]
            cells += [str(row[N_RUNS]), row[SEEDS] or "—", row.get(RUN) or "—"]
            cells += [_fmt(row[m + MEAN_SUFFIX], row[m + STD_SUFFIX], digits) for m in metrics]
            t.add_row(*(Text(c) for c in cells), style="bold green" if row[BEST] else None)
        need = Measurement.get(console, console.options.update(width=10**4), t).maximum  # uncapped
        out = console
        if need > console.width:  # as wide as the table needs, on the same stream
            out = Console(
                file=console.file,
                width=need,
                force_terminal=console.is_terminal,
                highlight=False,
                no_color=console.no_color,
            )
        out.print(Text(group_heading(part, len(parts))))
        out.print(t)


def write_table(
    table: pl.DataFrame,
    out_dir: str | Path,
    metric: str,
    *,
    experiment: str | None = None,
    higher_is_better: bool | None = None,
) -> tuple[Path, Path]:
    """Write ``comparison.md`` (:func:`render_markdown`) and ``comparison.csv`` (:func:`render_csv`:
    numbers in full) atomically; returns both paths."""
    out = Path(out_dir)
    md_path, csv_path = out / MARKDOWN_FILE, out / CSV_FILE
    atomic_write_text(
        md_path, render_markdown(table, metric, experiment=experiment, higher_is_better=higher_is_better)
    )
    atomic_write_text(csv_path, render_csv(table))
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
    "group_heading",
    "plot_learning_curves",
    "plot_metric_bars",
    "plot_pred_vs_observed",
    "pred_vs_observed_figure",
    "print_table",
    "render_csv",
    "render_markdown",
    "write_table",
]
