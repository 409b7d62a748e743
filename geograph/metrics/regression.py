"""Regression metrics for co-visit counts, on the log1p scale and on raw counts.

Spearman's rho is rank-based, so it is the same on log1p and raw counts (expm1 is monotone);
it is reported once as ``spearman``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def r2(y: np.ndarray, p: np.ndarray) -> float:
    """Coefficient of determination (same definition as ``sklearn.metrics.r2_score``)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    ss_res = float(((y - p) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def regression_metrics(y_log1p: np.ndarray, pred_log1p: np.ndarray) -> dict[str, float]:
    """R², MAE, RMSE on log1p and raw scale, and Spearman, for log1p targets and predictions.

    Shapes: both ``(E,)``.
    """
    y = np.asarray(y_log1p, dtype=np.float64)
    p = np.asarray(pred_log1p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"targets and predictions differ in shape: {y.shape} vs {p.shape}")
    if y.size == 0:
        raise ValueError("no pairs to evaluate")
    p_clip = np.clip(p, 0.0, None)
    y_raw, p_raw = np.expm1(y), np.expm1(p_clip)
    # undefined (no ranks to correlate) when either side is constant: scipy would warn and give NaN
    ranked = y.size > 1 and np.ptp(y) > 0 and np.ptp(p) > 0
    rho = spearmanr(y, p).statistic if ranked else float("nan")
    return {
        "r2": r2(y, p),
        "mae": float(np.abs(y - p).mean()),
        "rmse": float(np.sqrt(((y - p) ** 2).mean())),
        "r2_raw": r2(y_raw, p_raw),
        "mae_raw": float(np.abs(y_raw - p_raw).mean()),
        "rmse_raw": float(np.sqrt(((y_raw - p_raw) ** 2).mean())),
        "spearman": float(rho) if np.isfinite(rho) else 0.0,
    }
