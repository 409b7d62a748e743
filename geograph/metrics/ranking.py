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


RANKING_COLUMNS = ("ndcg", "recall", "hit", "rr")
"""Columns of :func:`ranking_per_source`'s values."""


def ranking_per_source(
    group: np.ndarray, relevance: np.ndarray, score: np.ndarray, k: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Per-source NDCG@k, Recall@k, Hit@k and reciprocal rank of the sources (``group`` values)
    that have a positive candidate: ``(sources (S,), values (S, 4))``, sources in ascending
    order, columns :data:`RANKING_COLUMNS`. Candidates keep their input order on tied scores.

    The metrics of :func:`ranking_metrics` are the column means; a caller that scores its
    candidates in pieces (state groups, ranks) can stack the pieces' rows and average them.
    """
    group = np.asarray(group)
    relevance = np.asarray(relevance, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(group, kind="stable")
    g, rel, sc = group[order], relevance[order], score[order]
    bounds = np.flatnonzero(np.diff(g)) + 1
    starts = np.concatenate([[0], bounds]).astype(np.int64) if len(g) else np.zeros(0, dtype=np.int64)
    sources, rows = [], []
    for start, r_part, s_part in zip(starts, np.split(rel, bounds), np.split(sc, bounds), strict=True):
        pos = r_part > 0
        if not pos.any():
            continue
        ranked = np.argsort(-s_part, kind="stable")
        sources.append(g[start])
        rows.append((
            ndcg_at_k(r_part, s_part, k),
            float(pos[ranked[:k]].sum() / pos.sum()),
            float(pos[ranked[:k]].any()),
            1.0 / (1 + int(np.flatnonzero(pos[ranked])[0])),
        ))
    return np.asarray(sources, dtype=group.dtype), np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def ranking_means(values: np.ndarray, k: int = 10) -> dict[str, float]:
    """The metrics of :func:`ranking_metrics` from per-source rows (``(S, 4)``, in source order)."""
    if len(values) == 0:
        return {f"ndcg@{k}": 0.0, f"recall@{k}": 0.0, f"hit@{k}": 0.0, "mrr": 0.0, "ranked_sources": 0}
    m = [float(np.mean(np.ascontiguousarray(values[:, j]))) for j in range(4)]
    return {f"ndcg@{k}": m[0], f"recall@{k}": m[1], f"hit@{k}": m[2], "mrr": m[3], "ranked_sources": len(values)}


def ranking_metrics(
    group: np.ndarray, relevance: np.ndarray, score: np.ndarray, k: int = 10
) -> dict[str, float]:
    """Mean NDCG@k, Recall@k, Hit@k (a positive in the top k) and MRR (reciprocal rank of the
    first positive, stable order on ties) over groups (sources) that have a positive candidate.

    Shapes: all ``(E,)``; ``group`` holds the source id of each candidate.
    """
    return ranking_means(ranking_per_source(group, relevance, score, k)[1], k)
