"""Every co-visitation metric of a split, from one function (tasks, saved predictors, benchmarks).

Regression metrics are computed on the *observed* pairs only (rows of the co-visit table) and
logged under names that say so (``test_observed_r2_log1p``); sampled zero pairs never enter
them. Zeros are scored as what they are, a ranking task: each held-out source's candidates are
its scored pairs plus POIs of its state with no co-visit row (``split.rank_negatives`` of them,
or all of them with ``-1``), ranked by the prediction (``test_ndcg10``, ``test_recall10``,
``test_hit10``, ``test_mrr``). Flow-level agreement on observed pairs:
``test_observed_cpc`` and ``test_observed_jsd`` (:mod:`geograph.metrics.flows`).
``test_r2`` / ``test_mae`` / ``test_rmse`` / ``test_spearman`` stay the figures over *all scored
pairs* (observed rows and sampled zeros), as logged before the observed-pair metrics existed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geograph.metrics.flows import common_part_of_commuters, origin_jsd
from geograph.metrics.ranking import ranking_metrics
from geograph.metrics.regression import regression_metrics


def covisit_metrics(
    src: np.ndarray,
    visitors: np.ndarray,
    pred_log1p: np.ndarray,
    observed: np.ndarray,
    rank_src: np.ndarray,
    rank_pred_log1p: np.ndarray,
    prefix: str,
    ranking: dict[str, float] | None = None,
) -> dict[str, float]:
    """All metrics of one split.

    Args:
        src: Source POI of each scored pair. Shapes: ``(E,)`` (as ``visitors``, ``pred_log1p``,
            ``observed``).
        visitors: Observed counts (0 for sampled zero pairs).
        pred_log1p: Predicted ``log1p(visitors)``.
        observed: True for rows of the co-visit table, False for sampled zero pairs.
        rank_src: Source of each extra ranking candidate (no co-visit row). Shapes: ``(R,)``.
        rank_pred_log1p: Its prediction. Shapes: ``(R,)``.
        prefix: ``val`` or ``test``.
        ranking: Ranking metrics already computed from the same predictions (``ndcg@10``,
            ``recall@10``, ``hit@10``, ``mrr``, ``ranked_sources``), e.g. state group by state
            group; ``rank_src`` / ``rank_pred_log1p`` are then not used.
    """
    src = np.asarray(src)
    visitors = np.asarray(visitors, dtype=np.float64)
    pred = np.asarray(pred_log1p, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    y = np.log1p(visitors)
    out = {f"{prefix}_{k}": v for k, v in regression_metrics(y, pred).items()}
    out[f"{prefix}_pairs"] = float(len(y))
    if observed.any():
        om = regression_metrics(y[observed], pred[observed])
        for k, v in om.items():
            name = k if k.endswith("_raw") or k == "spearman" else f"{k}_log1p"
            out[f"{prefix}_observed_{name}"] = v
        p_raw = np.expm1(np.clip(pred[observed], 0.0, None))
        out[f"{prefix}_observed_cpc"] = common_part_of_commuters(visitors[observed], p_raw)
        out[f"{prefix}_observed_jsd"] = origin_jsd(src[observed], visitors[observed], p_raw)
    out[f"{prefix}_observed_pairs"] = float(observed.sum())
    if ranking is not None:
        rm = ranking
    else:
        rank_src = np.asarray(rank_src)
        group = np.concatenate([src, rank_src])
        rel = np.concatenate([y, np.zeros(len(rank_src))])
        rm = ranking_metrics(group, rel, np.concatenate([pred, np.asarray(rank_pred_log1p, dtype=np.float64)]), k=10)
    out[f"{prefix}_ndcg10"] = rm["ndcg@10"]
    out[f"{prefix}_recall10"] = rm["recall@10"]
    out[f"{prefix}_hit10"] = rm["hit@10"]
    out[f"{prefix}_mrr"] = rm["mrr"]
    out[f"{prefix}_ranked_sources"] = float(rm["ranked_sources"])
    return out


# What a tracked co-visitation run logs besides covisit_metrics (geograph.covisit.run and the
# training loop): per-epoch train_loss / lr / epoch_time_s and the validation metrics of
# geograph.covisit.train (also covisit_metrics names), and once at the end the fit summary.
TRAINING_METRICS = (
    "train_loss",
    "lr",
    "epoch_time_s",
    "train_time_s",
    "best_epoch",
    "n_parameters",
    "train_pairs_per_s",
)
BEST_PREFIX = "best_"
"""The final value of a ``val_*`` metric of a run with a training history is logged as ``best_val_*``."""


def covisit_metric_names(prefixes: Sequence[str] = ("val", "test")) -> tuple[str, ...]:
    """Every metric name a co-visitation run logs that a comparison can rank by, sorted.

    That is each :func:`covisit_metrics` name for every prefix (the names are read off a call
    on four made-up pairs, so they never drift from the function), its ``best_`` twin for the
    ``val`` prefix, and :data:`TRAINING_METRICS`. The ``data_*`` sizes of the split are not
    included.

    Args:
        prefixes: Split prefixes (``val``, ``test``).
    """
    src = np.array([0, 0, 1, 1])
    visitors = np.array([1.0, 3.0, 0.0, 2.0])
    pred = np.array([0.5, 1.0, 0.1, 0.9])
    observed = np.array([True, True, False, True])
    names: set[str] = set(TRAINING_METRICS)
    for prefix in prefixes:
        keys = covisit_metrics(src, visitors, pred, observed, np.array([0]), np.array([0.2]), prefix)
        names.update(keys)
        if prefix == "val":
            names.update(BEST_PREFIX + k for k in keys)
    return tuple(sorted(names))


__all__ = ["TRAINING_METRICS", "covisit_metric_names", "covisit_metrics"]
