"""Geolocation evaluation: accuracy within 1/25/200/750/2500 km, Recall-vs-Area, and plots."""

from __future__ import annotations

import time

import numpy as np

from geograph.geolocate.config import SELECT_METRIC, GeolocateConfig
from geograph.geolocate.data import GeoData
from geograph.geolocate.select import Selected, predict_with
from geograph.geolocate.train import acc_mean
from geograph.metrics.geo import geo_metrics, rva_curve, rva_metrics


def evaluate(
    cfg: GeolocateConfig, data: GeoData, sel: Selected, split: str = "test"
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Metrics on ``split`` (accuracies, median / mean km, and RvA for the head, kNN and cells).

    ``predict_s_per_1k`` is the wall time of the prediction per 1,000 queries.

    RvA adds recall at 10^2..10^6 km², ``rva_auc`` and ``area50_km2``, the search area that
    holds the truth for half of the queries (:func:`area_for_recall`).

    Returns ``(metrics, predicted latlon, area needed km² or empty)``; keys unprefixed.
    """
    q, ll = data.part(split)
    t0 = time.perf_counter()
    pred, _ = predict_with(sel, q, cfg.predict.batch_size)
    seconds = time.perf_counter() - t0
    m = geo_metrics(pred, ll)
    m["predict_s_per_1k"] = 1000.0 * seconds / max(len(q), 1)
    m[SELECT_METRIC] = acc_mean(m)
    area = np.zeros(0)
    if sel.method == "head":
        area = sel.predictor.area_needed(q, ll)
    elif sel.method == "knn":
        area = sel.predictor.area_needed(q, ll, cfg.predict.region_resolution)
    elif sel.method == "cells":  # the classifier's own geocells (cells.resolution)
        area = sel.predictor.area_needed(q, ll)
    if len(area):
        m.update(rva_metrics(area))
        m["area50_km2"] = area_for_recall(area, 0.5)
    return m, pred, area


def area_for_recall(area_needed_km2: np.ndarray, recall: float = 0.5) -> float:
    """The smallest search area (km²) within which ``recall`` of the queries are captured
    (``inf`` when fewer ever are)."""
    a = np.sort(np.asarray(area_needed_km2, dtype=np.float64))
    if not len(a):
        return float("inf")
    return float(a[max(int(np.ceil(recall * len(a))) - 1, 0)])


# ----------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------


def rva_figure(curves: dict[str, np.ndarray]):
    """Recall-vs-Area curves (one per label) on a log area axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = plt.get_cmap("tab10").colors
    for i, (label, area) in enumerate(curves.items()):
        x, y = rva_curve(area)
        # ten colours, then the same colours dashed, dotted: every curve stays distinguishable
        ax.plot(x, y, label=label, color=colors[i % 10], ls=("-", "--", ":")[i // 10 % 3])
    for b in (1e2, 1e4, 1e6):
        ax.axvline(b, color="0.85", lw=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("search area (km²)")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1)
    ax.set_title("Recall vs Area (test)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def error_map_figure(true_latlon: np.ndarray, errors_km: np.ndarray, title: str):
    """Test points on a lon/lat plate carrée, coloured by log10 great-circle error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    order = np.argsort(-errors_km)  # small errors drawn last (on top)
    sc = ax.scatter(
        true_latlon[order, 1],
        true_latlon[order, 0],
        c=np.log10(np.maximum(errors_km[order], 1.0)),
        s=3,
        cmap="viridis_r",
        vmin=0,
        vmax=4,
        linewidths=0,
    )
    cb = fig.colorbar(sc, ax=ax, shrink=0.8)
    cb.set_label("error (log10 km)")
    lo, la = true_latlon[:, 1], true_latlon[:, 0]
    ax.set_xlim(max(-180, lo.min() - 2), min(180, lo.max() + 2))
    ax.set_ylim(max(-90, la.min() - 2), min(90, la.max() + 2))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="box")
    fig.tight_layout()
    return fig


def geo_metrics_errors(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    from geograph.metrics.geo import great_circle_error_km

    return great_circle_error_km(pred, true)
