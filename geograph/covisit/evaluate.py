"""Co-visitation evaluation: regression and ranking metrics, prediction tables, plots."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from geograph.constants import POI
from geograph.covisit.baselines import predict_sklearn
from geograph.covisit.groups import Prepared
from geograph.covisit.model import FitResult, predict_gnn
from geograph.metrics import covisit_metrics
from geograph.utils.device import select_device

# ----------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------


def evaluate_predictions(prep: Prepared, split_name: str, pred: np.ndarray, rank_pred: np.ndarray | dict[str, float],
                         prefix: str) -> dict[str, float]:
    """Every metric of a split (:func:`geograph.metrics.covisit_metrics`): regression on its
    observed pairs, ranking with its ranking candidates, flows. ``rank_pred`` is the
    candidates' predictions, or the ranking metrics themselves where they were computed group
    by group (per-state loading, :func:`~geograph.covisit.model.predict_gnn`)."""
    pk = prep.split.pairs[split_name]
    if isinstance(rank_pred, dict):
        return covisit_metrics(pk.src.numpy(), pk.visitors.numpy(), pred, pk.observed.numpy(), np.zeros(0),
                               np.zeros(0), prefix, ranking=rank_pred)
    rk = prep.rank.get(split_name)
    rank_src = rk.src.numpy() if rk is not None else np.zeros(0, dtype=np.int64)
    return covisit_metrics(pk.src.numpy(), pk.visitors.numpy(), pred, pk.observed.numpy(), rank_src, rank_pred, prefix)


def predict_split(fit: FitResult, prep: Prepared, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    if prep.cfg.model.family == "gnn":
        return predict_gnn(fit.model, prep, split_name, fit.scaler, select_device(prep.cfg.train.device))
    return predict_sklearn(fit.model, prep, split_name)


def evaluate(fit_result: FitResult, prep: Prepared) -> dict[str, float]:
    """Validation and test metrics of the fitted (best-validation) model."""
    return evaluate_and_predict(fit_result, prep)[0]


def evaluate_and_predict(fit_result: FitResult, prep: Prepared) -> tuple[dict[str, float], dict[str, tuple]]:
    """:func:`evaluate` plus the predictions it scored: ``{split: (pred, rank_pred)}`` for the
    non-empty splits, so a caller that also needs them does not predict again."""
    metrics: dict[str, float] = {}
    preds: dict[str, tuple] = {}
    for split_name in ("val", "test"):
        if len(prep.split.pairs[split_name]) == 0:
            continue
        preds[split_name] = predict_split(fit_result, prep, split_name)
        metrics.update(evaluate_predictions(prep, split_name, *preds[split_name], split_name))
    return metrics, preds


def predictions_frame(fit_result: FitResult, prep: Prepared, split_name: str = "test", pred: np.ndarray | None = None) -> pl.DataFrame:
    """Per-pair predictions of a split as a table: ids, observed visitors, whether the pair is an
    observed co-visit row (else a sampled zero pair), the prediction on the log1p scale the
    metrics use, and the predicted visitors (``expm1`` of it clipped at 0, as the raw-count
    metrics use)."""
    if pred is None:
        pred, _ = predict_split(fit_result, prep, split_name)
    pk = prep.split.pairs[split_name]
    ids = np.asarray(prep.shard.eval_poi_ids if prep.shard is not None else prep.graph.index["poi_ids"], dtype=object)
    return pl.DataFrame(
        {
            "src_poi_id": ids[pk.src.numpy()].tolist(),
            "dst_poi_id": ids[pk.dst.numpy()].tolist(),
            "visitors": pk.visitors.numpy(),
            "observed": pk.observed.numpy(),
            "predicted_log1p": np.asarray(pred, dtype=np.float64),
            "predicted_visitors": np.expm1(np.clip(pred, 0, None)),
        }
    )


def _plots(prep: Prepared, fr: FitResult, pred: np.ndarray):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = prep.split.pairs["test"]
    obs = test.observed.numpy()
    y = torch.log1p(test.visitors.double()).numpy()[obs]
    pred = np.asarray(pred)[obs]  # observed co-visit rows only, as the headline metrics
    fig1, ax = plt.subplots(figsize=(5, 5))
    ax.hexbin(y, pred, gridsize=40, bins="log", cmap="viridis", mincnt=1)
    hi = float(max(y.max(initial=1), pred.max(initial=1)))
    ax.plot([0, hi], [0, hi], "r--", lw=1)
    ax.set_xlabel("observed log1p(visitors)")
    ax.set_ylabel("predicted log1p(visitors)")
    ax.set_title(f"{prep.cfg.name}: observed test pairs")
    fig1.tight_layout()
    figs = {"pred_vs_actual.png": fig1}
    if fr.history:
        fig2, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        ep = [h["epoch"] for h in fr.history]
        ax[0].plot(ep, [h["train_loss"] for h in fr.history])
        ax[0].set_title("train loss")
        monitor = prep.cfg.train.monitor
        ax[1].plot(ep, [h.get(monitor, np.nan) for h in fr.history])
        ax[1].axvline(fr.best_epoch, color="r", ls="--", lw=1, label="best")
        ax[1].set_title(monitor)
        ax[1].legend()
        for a in ax:
            a.set_xlabel("epoch")
        fig2.tight_layout()
        figs["learning_curves.png"] = fig2
    return figs


def per_state_metrics(prep: Prepared, split_name: str, pred: np.ndarray, rank_pred: np.ndarray) -> pl.DataFrame:
    """The split's metrics per state of the source POI (one row a state, plus ``all``)."""
    pk = prep.split.pairs[split_name]
    rk = prep.rank.get(split_name)
    states = np.asarray(prep.graph.index["states"], dtype=object)
    poi_state = prep.graph.data[POI].state.numpy()
    src, rsrc = pk.src.numpy(), (rk.src.numpy() if rk is not None else np.zeros(0, dtype=np.int64))
    rows = []
    for code in [*np.unique(poi_state[src]).tolist(), None]:
        m = np.ones(len(src), bool) if code is None else poi_state[src] == code
        r = np.ones(len(rsrc), bool) if code is None else poi_state[rsrc] == code
        if not (m & pk.observed.numpy()).any():
            continue
        met = covisit_metrics(src[m], pk.visitors.numpy()[m], pred[m], pk.observed.numpy()[m], rsrc[r],
                              np.asarray(rank_pred)[r], split_name)
        rows.append({"state": "all" if code is None else str(states[code]), **met})
    return pl.DataFrame(rows)
