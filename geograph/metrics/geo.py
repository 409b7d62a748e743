"""Geolocation metrics: great-circle error, accuracy within thresholds, Recall vs Area.

Recall vs Area (RvA): Sarr et al., "Enhancing Worldwide Image Geolocation by Ensembling
Satellite-Based Ground-Level Attribute Predictors", https://arxiv.org/abs/2407.13862 . For a
ranked list of (disjoint) regions, the area needed for a query is the accumulated area of the
regions ranked up to and including the first one that contains the true location; recall at
area ``A`` is the fraction of queries whose area needed is at most ``A``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import h3
import numpy as np

from geograph.constants import GEO_THRESHOLDS_KM
from geograph.geo.sphere import check_lat_lon, haversine_km

RVA_BUDGETS_KM2 = (1e2, 1e3, 1e4, 1e5, 1e6)
RVA_AUC_RANGE_KM2 = (1e2, 1e6)


def great_circle_error_km(pred_latlon: np.ndarray, true_latlon: np.ndarray) -> np.ndarray:
    """Great-circle distance between predictions and truths, km.

    Shapes: both ``(N, 2)`` degrees; returns ``(N,)``.
    """
    p = np.asarray(pred_latlon, dtype=np.float64)
    t = np.asarray(true_latlon, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"pred and true must both be (N, 2) degrees, got {p.shape} and {t.shape}")
    check_lat_lon(p[:, 0], p[:, 1], "predictions")
    check_lat_lon(t[:, 0], t[:, 1], "truths")
    return haversine_km(p[:, 0], p[:, 1], t[:, 0], t[:, 1])


def threshold_key(km: float) -> str:
    """Metric name of the accuracy within ``km``: ``acc_25km``."""
    return f"acc_{km:g}km"


def accuracy_within(
    errors_km: np.ndarray, thresholds_km: Sequence[float] = GEO_THRESHOLDS_KM
) -> dict[str, float]:
    """Fraction of errors ``<= t`` for each threshold (default 1 / 25 / 200 / 750 / 2500 km)."""
    e = np.asarray(errors_km, dtype=np.float64)
    if e.size == 0:
        raise ValueError("accuracy_within needs at least one error")
    return {threshold_key(t): float(np.mean(e <= t)) for t in thresholds_km}


def geo_metrics(
    pred_latlon: np.ndarray, true_latlon: np.ndarray, thresholds_km: Sequence[float] = GEO_THRESHOLDS_KM
) -> dict[str, float]:
    """Accuracy within each threshold, median and mean great-circle error (km)."""
    e = great_circle_error_km(pred_latlon, true_latlon)
    out = accuracy_within(e, thresholds_km)
    out["median_km"] = float(np.median(e))
    out["mean_km"] = float(np.mean(e))
    return out


# --- Recall vs Area ----------------------------------------------------------------------


def area_to_capture(ranked_regions: Sequence[Sequence[str]], true_latlon: np.ndarray) -> np.ndarray:
    """Accumulated area (km²) of each query's ranked H3 regions until one contains the truth.

    Args:
        ranked_regions: Per query, H3 cells best first (disjoint; any resolutions).
        true_latlon: ``(N, 2)`` true coordinates in degrees.

    Returns:
        ``(N,)`` km²; ``inf`` where no listed region contains the truth.
    """
    t = np.asarray(true_latlon, dtype=np.float64)
    if len(ranked_regions) != len(t):
        raise ValueError(f"got {len(ranked_regions)} rankings for {len(t)} truths")
    out = np.full(len(t), np.inf)
    area_cache: dict[str, float] = {}
    for i, (regions, (lat, lon)) in enumerate(zip(ranked_regions, t.tolist(), strict=True)):
        truth_at: dict[int, str] = {}
        total = 0.0
        for cell in regions:
            if cell not in area_cache:
                area_cache[cell] = h3.cell_area(cell, unit="km^2")
            total += area_cache[cell]
            res = h3.get_resolution(cell)
            if res not in truth_at:
                truth_at[res] = h3.latlng_to_cell(lat, lon, res)
            if truth_at[res] == cell:
                out[i] = total
                break
    return out


def area_to_capture_from_scores(
    cell_scores: np.ndarray, cell_areas_km2: np.ndarray, true_index: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`area_to_capture` for a dense score matrix over a fixed region list.

    Regions are ranked by score (ties counted against the query: every region scoring at
    least the true region's score is searched first). A true region that is not in the list
    (``true_index < 0``) or has no score (``<= 0``) is never captured (``inf``).

    Shapes: ``cell_scores`` ``(N, C)``, ``cell_areas_km2`` ``(C,)``, ``true_index`` ``(N,)``.
    """
    s = np.asarray(cell_scores, dtype=np.float64)
    a = np.asarray(cell_areas_km2, dtype=np.float64)
    ti = np.asarray(true_index, dtype=np.int64)
    out = np.full(len(ti), np.inf)
    ok = ti >= 0
    if not ok.any():
        return out
    rows = np.flatnonzero(ok)
    st = s[rows, ti[rows]]
    need = ((s[rows] >= st[:, None]) * a[None, :]).sum(1)
    need[st <= 0] = np.inf
    out[rows] = need
    return out


def rva_key(area_km2: float) -> str:
    """Metric name of recall at an area budget: ``rva_1e4km2``."""
    return f"rva_1e{int(round(np.log10(area_km2)))}km2"


def recall_at_area(
    area_needed_km2: np.ndarray, budgets_km2: Sequence[float] = RVA_BUDGETS_KM2
) -> dict[str, float]:
    """Recall at each area budget (default 10^2 .. 10^6 km²)."""
    a = np.asarray(area_needed_km2, dtype=np.float64)
    return {rva_key(b): float(np.mean(a <= b)) for b in budgets_km2}


def rva_curve(area_needed_km2: np.ndarray, num: int = 200, range_km2: tuple[float, float] = (1.0, 5.1e8)):
    """The RvA curve on a log-spaced area grid: returns ``(areas_km2, recall)``, each ``(num,)``.

    The default range runs from 1 km² to the area of the Earth (5.1e8 km²).
    """
    a = np.sort(np.asarray(area_needed_km2, dtype=np.float64))
    grid = np.logspace(np.log10(range_km2[0]), np.log10(range_km2[1]), num)
    recall = np.searchsorted(a, grid, side="right") / max(len(a), 1)
    return grid, recall


def rva_auc(
    area_needed_km2: np.ndarray, range_km2: tuple[float, float] = RVA_AUC_RANGE_KM2, num: int = 401
) -> float:
    """Area under the RvA curve with log10(area) on the x axis, normalised to [0, 1].

    It is the mean recall over a log-uniform area budget in ``range_km2`` (default
    10^2 .. 10^6 km²): 1 means every truth is inside the first 100 km², 0 means none is
    captured within 10^6 km².
    """
    grid, recall = rva_curve(area_needed_km2, num=num, range_km2=range_km2)
    x = np.log10(grid)
    return float(np.trapezoid(recall, x) / (x[-1] - x[0]))


def rva_metrics(area_needed_km2: np.ndarray) -> dict[str, float]:
    """Recall at 10^2 .. 10^6 km² and ``rva_auc``."""
    out = recall_at_area(area_needed_km2)
    out["rva_auc"] = rva_auc(area_needed_km2)
    return out


def prefixed(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    """``{"acc_25km": x}`` -> ``{"test_acc_25km": x}`` for ``prefix="test"``."""
    if prefix not in ("train", "val", "test"):
        raise ValueError(f"metric prefix must be train, val or test, got {prefix!r}")
    return {f"{prefix}_{k}": float(v) for k, v in metrics.items()}


__all__ = [
    "RVA_BUDGETS_KM2",
    "accuracy_within",
    "area_to_capture",
    "area_to_capture_from_scores",
    "geo_metrics",
    "great_circle_error_km",
    "prefixed",
    "recall_at_area",
    "rva_auc",
    "rva_curve",
    "rva_key",
    "rva_metrics",
    "threshold_key",
]
