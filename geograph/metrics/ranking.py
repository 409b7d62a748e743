"""Ranking metrics: per-source NDCG@k and Recall@k.

Protocol (documented in docs/guides/covisit.md): for every source POI with at least one positive
(visitors > 0) scored pair, its candidates are its scored pairs plus sampled POIs of the same
state with no co-visit row (relevance 0). Candidates are ranked by predicted count; the
relevance (gain) of a candidate is ``log1p(visitors)``. NDCG@k uses the standard
``gain / log2(rank + 1)`` discount with ties in the prediction broken pessimistically, as in
``sklearn.metrics.ndcg_score(ignore_ties=False)`` averaged over sources. Recall@k is the
share of a source's positive candidates ranked in its top k, averaged over sources.
"""

from __future__ import annotations

import numpy as np


def _dcg_at_k(gains_sorted: np.ndarray, k: int) -> float:
    g = gains_sorted[:k]
    return float((g / np.log2(np.arange(2, len(g) + 2))).sum())


def _tie_averaged_dcg(y_true: np.ndarray, y_score: np.ndarray, k: int) -> float:
    # Same tie handling as sklearn's _tie_averaged_dcg: tied scores share their average gain.
    _, inv, counts = np.unique(-y_score, return_inverse=True, return_counts=True)
    ranked = np.zeros(len(counts))
    np.add.at(ranked, inv, y_true)
    ranked /= counts
    groups = np.cumsum(counts) - 1
    discount = 1 / np.log2(np.arange(len(y_true)) + 2)
    discount[k:] = 0
    discount_cumsum = np.cumsum(discount)
    total = 0.0
    prev = -1
    for i, end in enumerate(groups):
        total += ranked[i] * (discount_cumsum[end] - (discount_cumsum[prev] if prev >= 0 else 0.0))
        prev = end
    return total


def ndcg_at_k(y_true: np.ndarray, y_score: np.ndarray, k: int = 10) -> float:
    """NDCG@k of one ranking (gains ``y_true`` >= 0); 0 when there is no positive gain."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    ideal = _dcg_at_k(np.sort(y_true)[::-1], k)
    if ideal == 0:
        return 0.0
    return _tie_averaged_dcg(y_true, y_score, k) / ideal


def ranking_metrics(
    group: np.ndarray, relevance: np.ndarray, score: np.ndarray, k: int = 10
) -> dict[str, float]:
    """Mean NDCG@k, Recall@k, Hit@k (a positive in the top k) and MRR (reciprocal rank of the
    first positive, stable order on ties) over groups (sources) that have a positive candidate.

    Shapes: all ``(E,)``; ``group`` holds the source id of each candidate.
    """
    group = np.asarray(group)
    relevance = np.asarray(relevance, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(group, kind="stable")
    g, rel, sc = group[order], relevance[order], score[order]
    bounds = np.flatnonzero(np.diff(g)) + 1
    ndcgs, recalls, hits, rr = [], [], [], []
    for r_part, s_part in zip(np.split(rel, bounds), np.split(sc, bounds), strict=True):
        pos = r_part > 0
        if not pos.any():
            continue
        ndcgs.append(ndcg_at_k(r_part, s_part, k))
        ranked = np.argsort(-s_part, kind="stable")
        recalls.append(float(pos[ranked[:k]].sum() / pos.sum()))
        hits.append(float(pos[ranked[:k]].any()))
        rr.append(1.0 / (1 + int(np.flatnonzero(pos[ranked])[0])))
    if not ndcgs:
        return {f"ndcg@{k}": 0.0, f"recall@{k}": 0.0, f"hit@{k}": 0.0, "mrr": 0.0, "ranked_sources": 0}
    return {f"ndcg@{k}": float(np.mean(ndcgs)), f"recall@{k}": float(np.mean(recalls)), f"hit@{k}": float(np.mean(hits)),
            "mrr": float(np.mean(rr)), "ranked_sources": len(ndcgs)}
