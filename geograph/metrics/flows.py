"""Flow-level agreement of predicted and observed co-visit counts.

* Common part of commuters (CPC, Lenormand et al. 2012, https://arxiv.org/abs/1206.5735):
  ``2 * sum(min(y, p)) / (sum(y) + sum(p))`` over the pairs, on raw counts; 1 when the two
  flow tables agree, 0 when they share nothing.
* Jensen-Shannon divergence (base 2, in [0, 1]) between each origin's observed and predicted
  distribution over its partners, averaged over origins with a positive observed total.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon


def common_part_of_commuters(y: np.ndarray, p: np.ndarray) -> float:
    """CPC of two flow vectors (raw counts >= 0). Shapes: both ``(E,)``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    total = y.sum() + p.sum()
    return float(2.0 * np.minimum(y, p).sum() / total) if total > 0 else 1.0


def origin_jsd(origin: np.ndarray, y: np.ndarray, p: np.ndarray) -> float:
    """Mean Jensen-Shannon divergence of each origin's partner distributions.

    Shapes: all ``(E,)``; ``origin`` holds the origin id of each pair. Origins whose observed or
    predicted total is 0 are skipped (no distribution to compare); NaN when none is left.
    """
    origin = np.asarray(origin)
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    order = np.argsort(origin, kind="stable")
    bounds = np.flatnonzero(np.diff(origin[order])) + 1
    out = []
    for yy, pp in zip(np.split(y[order], bounds), np.split(p[order], bounds), strict=True):
        if len(yy) < 2 or yy.sum() <= 0 or pp.sum() <= 0:
            continue
        out.append(float(jensenshannon(yy / yy.sum(), pp / pp.sum(), base=2)) ** 2)
    return float(np.mean(out)) if out else float("nan")


__all__ = ["common_part_of_commuters", "origin_jsd"]
