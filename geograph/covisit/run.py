"""One tracked co-visitation run: prepare, fit, evaluate and log to MLflow (every rank under torchrun)."""

from __future__ import annotations

from pathlib import Path

from geograph.covisit.config import CovisitConfig
from geograph.covisit.data import prepare
from geograph.covisit.evaluate import (
    _plots,
    evaluate,
    evaluate_and_predict,
    per_state_metrics,
    predict_split,
    predictions_frame,
)
from geograph.covisit.groups import Prepared, group_weights, rank_groups
from geograph.covisit.model import FitResult
from geograph.covisit.train import fit
from geograph.data.world_io import World
from geograph.distributed import balanced_partition
from geograph.nn.covisit_model import ModelConfig
from geograph.train import (
    log_resumed_history,
    param_checksum,
    phase,
    pip_requirements,
    rank_session,
    resume_checkpoint,
    tracked_run,
)
from geograph.utils.device import select_device


def run(cfg: CovisitConfig, world: World | None = None, progress: bool = False) -> dict:
    """Prepare, fit and evaluate without tracking; returns metrics and the fitted pieces."""
    prep = prepare(cfg, world)
    fr = fit(prep)
    metrics = evaluate(fr, prep)
    metrics["train_time_s"] = fr.train_time_s
    return {"metrics": metrics, "fit": fr, "prep": prep}


def model_config_of(cfg: CovisitConfig) -> ModelConfig:
    return cfg.model


# ----------------------------------------------------------------------------------------
# tracked runs
# ----------------------------------------------------------------------------------------

FAST_OVERRIDES = {"data": {"n_pois": 300}, "train": {"epochs": 3}, "model": {"gbt_max_iter": 20}}


def _apply_fast(d: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    for sec, vals in FAST_OVERRIDES.items():
        cur = dict(out.get(sec) or {})
        for k, v in vals.items():
            if sec == "data" and k == "n_pois" and cur.get("world_dir"):
                continue
            cur[k] = min(cur.get(k, v), v) if isinstance(v, int) else v
        out[sec] = cur
    return out


PIP_PACKAGES = ("torch", "torch_geometric", "polars", "pandas", "numpy", "scikit-learn", "scipy", "h3", "mlflow")


def run_from_config(config: dict, *, tracking_uri: str | None = None, fast: bool = False,
                    world: World | None = None, stop_after_epoch: int | None = None) -> dict:
    """Train, evaluate and log one co-visitation run to MLflow.

    Args:
        config: Config dict (see :class:`~geograph.covisit.config.CovisitConfig`).
        tracking_uri: Overrides ``tracking.tracking_uri``.
        fast: Shrink the world and epochs (tests, smoke runs).
        world: Use this world instead of ``config.data``.
        stop_after_epoch: Stop after this epoch as if killed (resume tests).

    Returns:
        ``{"run_id": ..., "metrics": {...}}``.
    """
    raw = _apply_fast(config) if fast else config
    cfg = CovisitConfig.from_dict(raw)
    uri = tracking_uri or cfg.tracking.tracking_uri
    with rank_session(cfg.train.dist_timeout_s) as info:
        return _run_rank(cfg, config, info, uri, world, stop_after_epoch)


def _run_rank(cfg: CovisitConfig, config: dict, info, uri: str | None, world: World | None,
              stop_after_epoch: int | None) -> dict:
    """One rank's part of :func:`run_from_config` (all of it in one process)."""
    from geograph.tracking import configure

    if info.is_main:
        configure(uri)  # fail before any work if the store is unreachable
    with phase("preparing data (world, graph, pairs)", cfg.train.progress and info.is_main):
        prep = prepare(cfg, world)  # the world of cfg.data (per-state loading decided there) when None
    if not info.is_main:
        # workers train their shard and join every collective; rank 0 alone logs and writes
        # checkpoints, but every rank resumes from the run's checkpoint
        ckpt = resume_checkpoint(cfg.train.resume, uri, cfg.train.checkpoint_dir) if cfg.model.family == "gnn" else None
        fr, metrics, _ = fit_and_score(prep, None, stop_after_epoch, ckpt, bool(cfg.train.resume))
        out = {"run_id": None, "metrics": metrics}
    else:
        fr, out = _tracked_run(cfg, config, prep, uri, info, stop_after_epoch)
    out.update(rank=info.rank, world_size=info.world_size,
               groups=[prep.groups[i].sub.state for i in rank_groups(prep)],
               loaded=prep.shard.loaded if prep.shard is not None else None,
               param_checksum=param_checksum(fr.model))
    return out


def _weights_state(fr: FitResult, prep: Prepared) -> dict:
    """Model weights, fitted transforms and config of a run (tensors and plain values only)."""
    return {
        "config": prep.cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in fr.model.state_dict().items()},
        "preprocessor": prep.pre.state_dict(),
        "scaler": {"mode": fr.scaler.mode, "mean": fr.scaler.mean, "std": fr.scaler.std},
        "weight_scale": prep.weight_scale,
        "fingerprint": prep.fingerprint,
    }


def fit_and_score(prep: Prepared, on_epoch, stop_after_epoch: int | None = None,
                  checkpoint: Path | None = None, resume: bool = False):
    """Fit, evaluate val / test and predict the test pairs; every rank runs exactly this
    (the same collectives in the same order)."""
    fr = fit(prep, on_epoch=on_epoch, stop_after_epoch=stop_after_epoch, checkpoint=checkpoint, resume=resume)
    with phase("scoring validation and test pairs", prep.cfg.train.progress and on_epoch is not None):
        metrics, preds = evaluate_and_predict(fr, prep)
    return fr, metrics, preds["test"] if "test" in preds else predict_split(fr, prep, "test")


def _tracked_run(cfg: CovisitConfig, config: dict, prep: Prepared, uri: str | None, info, stop_after_epoch):
    import tempfile

    import mlflow

    from geograph.covisit.predict import save_bundle
    from geograph.tracking.tags import run_tags

    device = select_device(cfg.train.device)
    tags = run_tags(device=str(device), data_fingerprint=prep.fingerprint, config=config)
    tags.update({"geograph.task": "covisit", "geograph.config_name": cfg.name, "geograph.model_family": cfg.model.family,
                 "geograph.world_size": str(info.world_size)})
    run_name = cfg.tracking.run_name or f"{cfg.name}-s{cfg.train.seed}"
    with tracked_run(experiment=cfg.tracking.experiment, run_name=run_name, params=cfg.to_dict(), tags=tags,
                     key=cfg.hash(), tracking_uri=uri, resume=cfg.train.resume,
                     checkpoint_root=cfg.train.checkpoint_dir) as active:
        ckpt = active.checkpoint if cfg.model.family == "gnn" else None
        if prep.shard is not None:
            summary = {f"data_{k}": v for k, v in prep.shard.summary.items()}
            mlflow.set_tag("geograph.loading", "per_state")
            mlflow.log_dict({f"rank{r}": s for r, s in enumerate(prep.shard.assignment)}, "distributed/assignment.json")
        else:
            summary = {f"data_{k}": float(v) for k, v in prep.split.summary().items()}
            summary["data_pois"] = float(prep.graph.num_pois)
            # ranking candidates per source (-1: every POI of the state), after split.rank_max_pairs
            summary.update({f"data_rank_negatives_{k}": float(n) for k, n in prep.rank_negatives.items()})
        mlflow.log_metrics(summary)
        if info.enabled and prep.shard is None:
            w = {str(i): float(x) for i, x in enumerate(group_weights(prep))}
            shards = balanced_partition(w, info.world_size)
            assignment = {f"rank{r}": [prep.groups[int(i)].sub.state for i in sorted(part, key=int)] for r, part in enumerate(shards)}
            mlflow.log_dict(assignment, "distributed/assignment.json")

        def on_epoch(epoch: int, m: dict) -> None:
            mlflow.log_metrics(m, step=epoch)

        fr, metrics, (test_pred, test_rank_pred) = fit_and_score(prep, on_epoch, stop_after_epoch, ckpt, active.resumed)
        log_resumed_history(fr.history, fr.resumed_from)
        metrics["train_time_s"] = fr.train_time_s
        metrics["best_epoch"] = float(fr.best_epoch)
        if cfg.model.family == "gnn":
            metrics["n_parameters"] = float(sum(p.numel() for p in fr.model.parameters()))
            n_train = prep.shard.train_pairs if prep.shard is not None else len(prep.split.pairs["train"])
            metrics["train_pairs_per_s"] = n_train * len(fr.history) / fr.train_time_s if fr.train_time_s else 0.0
        if fr.history:
            # per-epoch val_* curves are already logged; the best-state values go under best_val_*
            final = {(f"best_{k}" if k.startswith("val_") else k): v for k, v in metrics.items()}
        else:
            final = metrics
        mlflow.log_metrics(final)
        import matplotlib.pyplot as plt

        for name, fig in _plots(prep, fr, test_pred).items():
            mlflow.log_figure(fig, f"plots/{name}")
            plt.close(fig)
        with tempfile.TemporaryDirectory() as tmp:
            pf = predictions_frame(fr, prep, "test", test_pred)
            pf.write_csv(Path(tmp) / "test_predictions.csv")
            mlflow.log_artifact(str(Path(tmp) / "test_predictions.csv"))
            if prep.shard is None and len(prep.split.pairs["test"]):
                per_state_metrics(prep, "test", test_pred, test_rank_pred).write_csv(Path(tmp) / "per_state_metrics.csv")
                mlflow.log_artifact(str(Path(tmp) / "per_state_metrics.csv"))
            if cfg.tracking.log_model and prep.shard is not None:
                # the pyfunc bundle embeds the whole country's graph, which no rank holds here:
                # log the weights and the fitted transforms (a checksummed torch file) instead
                from geograph.graph.cache import save_checked

                save_checked(_weights_state(fr, prep), Path(tmp) / "model_state.pt")
                mlflow.log_artifact(str(Path(tmp) / "model_state.pt"), "model_state")
            elif cfg.tracking.log_model:
                mdir = save_bundle(fr, prep, Path(tmp) / "model_dir")
                example = pf.select("src_poi_id", "dst_poi_id").head(5).to_pandas()
                import pandas as pd
                from mlflow.models import infer_signature

                from geograph.covisit.predict import CovisitPredictor

                out = CovisitPredictor.load(mdir).predict_ids(example["src_poi_id"], example["dst_poi_id"])
                sig = infer_signature(example, pd.DataFrame({"predicted_visitors": out}))
                mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                    artifacts={"model_dir": str(mdir)},
                    signature=sig,
                    input_example=example,
                    pip_requirements=pip_requirements(PIP_PACKAGES),
                )
        run_id = active.run_id
    return fr, {"run_id": run_id, "metrics": metrics}
