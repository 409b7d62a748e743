"""Geolocation training: the retrieval head fitted on the shared loop (:mod:`geograph.train`).

AdamW with a one-cycle schedule; the epoch with the best validation accuracy is kept
(GeoCLIP, https://arxiv.org/abs/2309.16020)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from geograph.constants import GEO_THRESHOLDS_KM
from geograph.geolocate.config import SELECT_METRIC, SELECT_METRICS, GeolocateConfig
from geograph.geolocate.data import GeoData
from geograph.geolocate.model import build_head
from geograph.metrics.geo import geo_metrics, prefixed, threshold_key
from geograph.retrieval import (
    Gallery,
    GeoPredictor,
    RetrievalHead,
    build_gallery_keys,
)


@dataclass
class FitResult:
    """A trained head and its history (one dict of metrics per epoch).

    ``resumed_from`` is the epoch of the checkpoint a resumed run started from (None: fresh).
    """

    head: RetrievalHead
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    train_time_s: float = 0.0
    train_embeddings: torch.Tensor | None = None  # final location embeddings of the training rows
    resumed_from: int | None = None


def acc_mean(metrics: dict[str, float]) -> float:
    """Mean accuracy over the geolocation thresholds."""
    return float(np.mean([metrics[threshold_key(t)] for t in GEO_THRESHOLDS_KM]))


def selection_score(metrics: dict[str, float], criterion: str) -> float:
    """Higher is better: ``-median_km`` or ``acc_mean`` of unprefixed validation metrics."""
    if criterion == "median_km":
        return -float(metrics["median_km"])
    if criterion == "acc_mean":
        return float(metrics.get(SELECT_METRIC, acc_mean(metrics)))
    raise ValueError(f"selection criterion must be one of {SELECT_METRICS}, got {criterion!r}")


def _quick_val(head: RetrievalHead, data: GeoData, device: torch.device) -> dict[str, float]:
    """Top-1 over the training-coordinates gallery: the per-epoch validation signal."""
    _, ll_tr = data.part("train")
    g = Gallery(ll_tr, name="train")
    if head.location_cache is not None:  # frozen encoder / trunk: the training coordinates are cached
        with torch.no_grad():
            g.set_embeddings(
                head.encode_locations(g.latlon, index=torch.arange(len(g), device=head.logit_scale.device))
            )
    else:
        g.set_embeddings(build_gallery_keys(head, g))
    q, ll = data.part("val")
    pred = GeoPredictor(head, g, top_k=1).predict(q).latlon
    m = geo_metrics(pred, ll)
    m[SELECT_METRIC] = acc_mean(m)
    return m


def fit(
    cfg: GeolocateConfig,
    data: GeoData,
    on_epoch: Callable[[int, dict], None] | None = None,
    stop_after_epoch: int | None = None,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> FitResult:
    """Train the retrieval head on the training split with :func:`geograph.train.fit_loop`.

    After every epoch the head (with its GPS queue), the optimizer, the learning-rate schedule,
    the torch RNG state, the best epoch so far and the history go to ``checkpoint`` (when
    given and ``train.checkpoint``); with ``resume`` a run continues after the checkpoint's
    epoch and ends with the same head and metrics as an uninterrupted run of the same seed.

    Args:
        cfg: The config.
        data: Prepared data.
        on_epoch: Called ``(epoch, metrics)`` after each epoch trained in this call.
        stop_after_epoch: Return after this epoch as if killed (tests of resume).
        checkpoint: ``last.pt`` path (None: no checkpoint).
        resume: Continue from ``checkpoint`` when it exists.

    Raises:
        CheckpointError: ``resume`` found a damaged checkpoint or one of another training config.
    """
    from geograph.distributed import dist_info, sum_across_ranks
    from geograph.train import fit_loop
    from geograph.utils import seed_everything, select_device

    seed_everything(cfg.train.seed)
    device = select_device(cfg.train.device)
    head = build_head(cfg, data.query_dim).to(device)
    tc = cfg.train
    idx_tr = data.split["train"]
    q = torch.as_tensor(data.queries[idx_tr], device=device)
    ll = torch.as_tensor(data.latlon[idx_tr], dtype=torch.float32, device=device)
    enc = head.location_encoder
    frozen = not enc.trainable or getattr(enc, "trunk_frozen", False)
    if frozen:  # encode the training coordinates (or their trunk features) once
        head.cache_locations(ll)
    enc_params = [p for p in head.location_encoder.parameters() if p.requires_grad]
    groups = [
        {
            "params": [
                p
                for n, p in head.named_parameters()
                if not n.startswith("location_encoder.") and p.requires_grad
            ],
            "lr": tc.lr,
        }
    ]
    if enc_params:
        groups.append({"params": enc_params, "lr": tc.encoder_lr if cfg.encoder.pretrained else tc.lr})
    opt = torch.optim.AdamW(groups, weight_decay=tc.weight_decay)
    info = dist_info()
    train_model: torch.nn.Module = head
    if info.enabled:  # under torchrun: gradients averaged over ranks, parameters start equal
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # the GPS queue buffers are kept equal by queueing the global batch: no per-step sync
        sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": False}
        )
        train_model = DistributedDataParallel(head, **sync)
    steps_per_epoch = math.ceil(len(idx_tr) / tc.batch_size)
    total_steps = tc.epochs * steps_per_epoch
    # one-cycle needs a few steps per phase; tiny (fast) runs keep a constant learning rate
    sched = (
        torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in groups], total_steps=total_steps, pct_start=0.1
        )
        if total_steps >= 20
        else None
    )

    def train_epoch(epoch: int) -> dict[str, float]:
        head.train()
        perm = torch.randperm(len(idx_tr), generator=torch.Generator().manual_seed(tc.seed * 1000 + epoch))
        total, n = 0.0, 0
        for s in range(0, len(perm), tc.batch_size):
            b = perm[s : s + tc.batch_size].to(device)
            if info.enabled:
                # data parallel: this rank's slice of the global batch; DDP averages the
                # gradients, and every rank queues the whole batch (the queues stay equal)
                if len(b) < info.world_size:
                    continue  # a last batch too small to give every rank a row
                mine = b.tensor_split(info.world_size)[info.rank]
                loss = train_model(q[mine], ll[mine], mine if frozen else None, False)
                head.enqueue(ll[b].detach(), b if frozen else None)
            else:
                mine = b
                loss = head.loss(q[b], ll[b], index=b if frozen else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(mine)
            n += len(mine)
        total, n = sum_across_ranks(np.array([total, float(n)]))
        return {"train_loss": float(total) / float(n), "train_logit_scale": float(head.scale.detach())}

    def validate(epoch: int) -> dict[str, float]:
        return prefixed(_quick_val(head, data, device), "val")

    res = fit_loop(
        head,
        epochs=tc.epochs,
        train_epoch=train_epoch,
        validate=validate,
        score=lambda m: selection_score(
            {k[4:]: v for k, v in m.items() if k.startswith("val_")}, cfg.predict.select_metric
        ),
        stateful={"optimizer": opt, "scheduler": sched},
        keep_best=tc.select_on_val,
        checkpoint=checkpoint if tc.checkpoint else None,
        key=cfg.training_key(),
        resume=resume,
        is_main=info.is_main,
        on_epoch=on_epoch,
        stop_after_epoch=stop_after_epoch,
        progress=tc.progress,
        monitor=f"val_{SELECT_METRIC}",
        label=cfg.name,
    )
    fr = FitResult(head, res.history, res.best_epoch, res.train_time_s, resumed_from=res.resumed_from)
    if head.location_cache is not None:  # reused as the "train" gallery's embeddings by select()
        with torch.no_grad():
            fr.train_embeddings = head.encode_locations(ll, index=torch.arange(len(ll), device=device))
    head.location_cache = None
    head.eval()
    return fr
