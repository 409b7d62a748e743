"""One tracked geolocation run: fit, select on validation, evaluate on test, log to MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geograph.config import undot
from geograph.geolocate.config import GeolocateConfig, apply_fast
from geograph.geolocate.data import prepare
from geograph.geolocate.evaluate import error_map_figure, evaluate, geo_metrics_errors, rva_figure
from geograph.geolocate.pyfunc import _log_pyfunc
from geograph.geolocate.select import select
from geograph.geolocate.train import fit
from geograph.metrics.geo import prefixed
from geograph.retrieval.search import distributed_search
from geograph.train import (
    log_resumed_history,
    param_checksum,
    phase,
    rank_session,
    resume_checkpoint,
    tracked_run,
)

# ----------------------------------------------------------------------------------------
# the runner
# ----------------------------------------------------------------------------------------


def run_on_files(
    train_file: str | Path,
    test_file: str | Path,
    *,
    val_file: str | Path | None = None,
    config: dict | None = None,
    tracking_uri: str | None = None,
    fast: bool = False,
) -> dict:
    """Train and log a geolocation run on your own tables (``data.source: files``).

    The Python form of ``geograph train geolocate --train FILE --test FILE``. Every file is
    read and checked before anything is trained.

    Args:
        train_file: CSV or Parquet: ``id``, ``lat``, ``lon`` and ``embedding`` (a list of numbers;
            in CSV a JSON list) or ``text`` (embedded with the offline MiniLM model).
        test_file: The test table, same columns (and embedding width) as ``train_file``.
        val_file: The validation table (default: a ``data.val_frac`` share of ``train_file``).
        config: Other settings (as :func:`run_from_config`; its ``data`` section may name the
            columns with ``embedding_column`` / ``text_column``).
        tracking_uri: Overrides ``tracking.tracking_uri``.
        fast: Few epochs and short grids (:func:`apply_fast`).

    Returns:
        As :func:`run_from_config`.

    Raises:
        DataValidationError: a bad file, naming the file, row and field.
    """
    cfg = undot(dict(config or {}))
    data = dict(cfg.get("data") or {})
    data.update(source="files", train_file=str(train_file), test_file=str(test_file))
    data["val_file"] = str(val_file) if val_file is not None else None
    cfg["data"] = data
    return run_from_config(cfg, tracking_uri=tracking_uri, fast=fast)


def run_from_config(config: dict, *, tracking_uri: str | None = None, fast: bool = False) -> dict:
    """Train, select on validation, evaluate on test and log one geolocation run to MLflow.

    Args:
        config: Config dict (see :class:`GeolocateConfig`; unknown keys raise ``ConfigError``).
        tracking_uri: Overrides ``tracking.tracking_uri``.
        fast: Shrink data, epochs and grids (:func:`apply_fast`) so the run takes seconds.

    Under ``torchrun`` (``geograph train geolocate --nproc N``) every rank trains its slice of
    each query batch (DistributedDataParallel), gallery embeddings and searches are split over
    the ranks (:func:`~geograph.retrieval.search.distributed_search`), and rank 0 alone logs.

    Returns:
        ``{"run_id": ..., "metrics": {...}}`` with ``train_`` / ``val_`` / ``test_`` keys, plus
        ``rank``, ``world_size`` and ``param_checksum`` (equal on every rank); ``run_id`` is
        None on ranks other than 0.
    """
    from geograph.tracking import configure

    raw = apply_fast(config) if fast else config
    cfg = GeolocateConfig.from_dict(raw)
    uri = tracking_uri or cfg.tracking.tracking_uri
    with rank_session(cfg.train.dist_timeout_s) as info:
        if info.is_main:
            configure(uri)  # fail before any work if the store is unreachable
            out = _tracked_run(cfg, uri, fast)
        else:  # the other ranks train their slices and join every collective; rank 0 alone logs
            data = prepare(cfg)
            with distributed_search():
                # every rank resumes from the run's checkpoint
                ckpt = resume_checkpoint(cfg.train.resume, uri, cfg.train.checkpoint_dir)
                fr = fit(cfg, data, checkpoint=ckpt, resume=ckpt is not None) if cfg.method == "head" else None
                sel = select(cfg, data, fr)
                test_m, _, _ = evaluate(cfg, data, sel, "test")
            out = {
                "run_id": None,
                "metrics": {**prefixed(sel.val_metrics, "val"), **prefixed(test_m, "test")},
            }
            out["head"] = fr.head if fr is not None else None
        head = out.pop("head", None)
        out.update(rank=info.rank, world_size=info.world_size, param_checksum=param_checksum(head))
        return out


def _tracked_run(cfg: GeolocateConfig, uri: str | None, fast: bool) -> dict:
    """Rank 0's (or the single process's) run: fit, select, evaluate under MLflow."""
    import tempfile

    import mlflow

    from geograph.distributed import dist_info
    from geograph.tracking.tags import run_tags

    show = cfg.train.progress
    with phase("preparing data (places, embeddings, splits)", show):
        data = prepare(cfg)
    tags = run_tags(data_fingerprint=data.fingerprint, config=cfg.to_dict())
    tags.update(
        {
            "geograph.task": "geolocate",
            "geograph.config_name": cfg.name,
            "geograph.method": cfg.method,
            "geograph.fast": str(bool(fast)).lower(),
            "geograph.world_size": str(dist_info().world_size),
        }
    )
    run_name = cfg.tracking.run_name or f"{cfg.name}-s{cfg.train.seed}"
    with tracked_run(
        experiment=cfg.tracking.experiment, run_name=run_name, params=cfg.to_dict(), tags=tags,
        key=cfg.training_key(), tracking_uri=uri, resume=cfg.train.resume,
        checkpoint_root=cfg.train.checkpoint_dir,
    ) as active:
        mlflow.log_metrics({f"data_{k}": float(len(v)) for k, v in data.split.items()})
        fr = None
        metrics: dict[str, float] = {}
        with distributed_search():  # the same collectives as the other ranks, in order
            if cfg.method == "head":
                fr = fit(cfg, data, on_epoch=lambda e, m: mlflow.log_metrics(m, step=e),
                         checkpoint=active.checkpoint, resume=active.resumed)
                log_resumed_history(fr.history, fr.resumed_from)  # epochs the killed run trained
                metrics["train_time_s"] = fr.train_time_s
                metrics["train_best_epoch"] = float(fr.best_epoch)
                metrics["train_parameters"] = float(sum(p.numel() for p in fr.head.parameters()))
            with phase("choosing inference settings on validation", show):
                sel = select(cfg, data, fr)
            mlflow.log_params({f"chosen.{k}": v for k, v in sel.choice.items()})
            metrics.update(prefixed(sel.val_metrics, "val"))
            with phase("scoring the test split", show):
                test_m, pred, area = evaluate(cfg, data, sel, "test")
        metrics.update(prefixed(test_m, "test"))
        mlflow.log_metrics(metrics)
        q_te, ll_te = data.part("test")
        err = geo_metrics_errors(pred, ll_te)
        with tempfile.TemporaryDirectory() as tmp:
            import polars as pl

            labels = [data.labels[i] for i in data.split["test"]]
            pl.DataFrame(
                {
                    "query": labels,
                    "true_lat": ll_te[:, 0],
                    "true_lon": ll_te[:, 1],
                    "pred_lat": pred[:, 0],
                    "pred_lon": pred[:, 1],
                    "error_km": err,
                }
            ).write_csv(Path(tmp) / "test_predictions.csv")
            mlflow.log_artifact(str(Path(tmp) / "test_predictions.csv"))
            if cfg.tracking.log_plots:
                import matplotlib.pyplot as plt

                fig = error_map_figure(ll_te, err, f"{cfg.name}: test error (median {np.median(err):.0f} km)")
                mlflow.log_figure(fig, "plots/error_map.png")
                plt.close(fig)
                if len(area):
                    fig = rva_figure({cfg.name: area})
                    mlflow.log_figure(fig, "plots/rva.png")
                    plt.close(fig)
            if cfg.tracking.log_model and cfg.method == "head":
                _log_pyfunc(cfg, sel, data, Path(tmp))
        run_id = active.run_id
    return {"run_id": run_id, "metrics": metrics, "head": fr.head if fr is not None else None}
