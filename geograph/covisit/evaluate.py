"""Co-visitation evaluation: regression and ranking metrics, prediction tables, plots."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from geograph.covisit.baselines import predict_sklearn
from geograph.covisit.groups import Prepared
from geograph.covisit.model import FitResult, predict_gnn
from geograph.metrics import ranking_metrics, regression_metrics
from geograph.utils.device import select_device

# ----------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------


def evaluate_predictions(prep: Prepared, split_name: str, pred: np.ndarray, rank_pred: np.ndarray, prefix: str) -> dict[str, float]:
    """Regression metrics on the split's pairs, ranking metrics with its ranking candidates."""
    pk = prep.split.pairs[split_name]
    y = torch.log1p(pk.visitors.double()).numpy()
    out = {f"{prefix}_{k}": v for k, v in regression_metrics(y, pred).items()}
    rk = prep.rank.get(split_name)
    group = np.concatenate([pk.src.numpy(), rk.src.numpy() if rk is not None else np.zeros(0, dtype=np.int64)])
    rel = np.concatenate([y, np.zeros(len(rank_pred))])
    score = np.concatenate([pred, rank_pred])
    rm = ranking_metrics(group, rel, score, k=10)
    out[f"{prefix}_ndcg10"] = rm["ndcg@10"]
    out[f"{prefix}_recall10"] = rm["recall@10"]
    out[f"{prefix}_ranked_sources"] = float(rm["ranked_sources"])
    out[f"{prefix}_pairs"] = float(len(y))
    return out


def predict_split(fit: FitResult, prep: Prepared, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    if prep.cfg.model.family == "gnn":
        return predict_gnn(fit.model, prep, split_name, fit.scaler, select_device(prep.cfg.train.device))
    return predict_sklearn(fit.model, prep, split_name)


def evaluate(fit_result: FitResult, prep: Prepared) -> dict[str, float]:
    """Validation and test metrics of the fitted (best-validation) model."""
    metrics: dict[str, float] = {}
    for split_name in ("val", "test"):
        if len(prep.split.pairs[split_name]) == 0:
            continue
        pred, rpred = predict_split(fit_result, prep, split_name)
        metrics.update(evaluate_predictions(prep, split_name, pred, rpred, split_name))
    return metrics


def predictions_frame(fit_result: FitResult, prep: Prepared, split_name: str = "test", pred: np.ndarray | None = None) -> pl.DataFrame:
    """Per-pair predictions of a split as a table (ids, observed and predicted visitors)."""
    if pred is None:
        pred, _ = predict_split(fit_result, prep, split_name)
    pk = prep.split.pairs[split_name]
    ids = np.asarray(prep.shard.eval_poi_ids if prep.shard is not None else prep.graph.index["poi_ids"], dtype=object)
    return pl.DataFrame(
        {
            "src_poi_id": ids[pk.src.numpy()].tolist(),
            "dst_poi_id": ids[pk.dst.numpy()].tolist(),
            "visitors": pk.visitors.numpy(),
            "predicted_visitors": np.expm1(np.clip(pred, 0, None)),
        }
    )


def _plots(prep: Prepared, fr: FitResult, pred: np.ndarray):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = torch.log1p(prep.split.pairs["test"].visitors.double()).numpy()
    fig1, ax = plt.subplots(figsize=(5, 5))
    ax.hexbin(y, pred, gridsize=40, bins="log", cmap="viridis", mincnt=1)
    hi = float(max(y.max(initial=1), pred.max(initial=1)))
    ax.plot([0, hi], [0, hi], "r--", lw=1)
    ax.set_xlabel("observed log1p(visitors)")
    ax.set_ylabel("predicted log1p(visitors)")
    ax.set_title(f"{prep.cfg.name}: test pairs")
    fig1.tight_layout()
    figs = {"pred_vs_actual.png": fig1}
    if fr.history:
        fig2, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        ep = [h["epoch"] for h in fr.history]
        ax[0].plot(ep, [h["train_loss"] for h in fr.history])
        ax[0].set_title("train loss")
        ax[1].plot(ep, [h["val_r2"] for h in fr.history])
        ax[1].axvline(fr.best_epoch, color="r", ls="--", lw=1, label="best")
        ax[1].set_title("validation R²")
        ax[1].legend()
        for a in ax:
            a.set_xlabel("epoch")
        fig2.tight_layout()
        figs["learning_curves.png"] = fig2
    return figs
