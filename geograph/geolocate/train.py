"""Geolocation training: the retrieval head (and, with ``propagation.graph_mode: learned``,
the place-graph GNN of the query retrieval) fitted on the shared loop (:mod:`geograph.train`).

AdamW with a one-cycle schedule; the epoch with the best validation accuracy is kept
(GeoCLIP, https://arxiv.org/abs/2309.16020)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geograph.constants import GEO_THRESHOLDS_KM
from geograph.errors import ConfigError
from geograph.geolocate.config import SELECT_METRIC, SELECT_METRICS, GeolocateConfig
from geograph.geolocate.data import GeoData
from geograph.geolocate.model import build_head, build_refiner, place_edges, query_augmentation
from geograph.metrics.geo import geo_metrics, prefixed, threshold_key
from geograph.nn.place_graph_refiner import PlaceGraphRefiner
from geograph.nn.query_retrieval import QueryRetrievalAugmentation, mix_values, retrieval_neighbours
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
    refiner: PlaceGraphRefiner | None = None  # the learned place-graph GNN (graph_mode: learned)
    query_values: torch.Tensor | None = None  # its refined z_j of the training places


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


def _quick_val(
    head: RetrievalHead,
    data: GeoData,
    device: torch.device,
    query_aug: QueryRetrievalAugmentation | None = None,
) -> dict[str, float]:
    """Top-1 over the training-coordinates gallery: the per-epoch validation signal (with the
    query retrieval when the head is trained with it)."""
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
    pred = GeoPredictor(head, g, top_k=1, query_aug=query_aug).predict(q).latlon
    m = geo_metrics(pred, ll)
    m[SELECT_METRIC] = acc_mean(m)
    return m


class LearnedRetrieval(torch.nn.Module):
    """The head and the place-graph GNN trained together (``propagation.graph_mode: learned``).

    A training query's key is ``normalize(f(q_i) + beta * normalize(sum_j p_ij z'_j))`` over
    its nearest training queries ``j != i`` (fixed neighbours and weights, from the raw
    embeddings), ``z' = GNN(z, q, graph)``. Leakage guard: the batch's own location
    embeddings are masked in the GNN input and the batch's H3 edges (built from their
    coordinates) are dropped, so no training query sees its own coordinates.

    Args:
        cfg: The config.
        head: The retrieval head.
        refiner: The GNN.
        data: Prepared data (the training split is the database).
        device: Where to keep the graph and the neighbours.
        neighbours: Find each training query's neighbours (needed to train; default True).
    """

    def __init__(
        self,
        cfg: GeolocateConfig,
        head: RetrievalHead,
        refiner: PlaceGraphRefiner,
        data: GeoData,
        device: torch.device,
        neighbours: bool = True,
    ) -> None:
        super().__init__()
        pc = cfg.propagation
        self.head, self.refiner, self.cfg = head, refiner, cfg
        idx = data.split["train"]
        self.queries = torch.as_tensor(data.queries[idx], device=device)
        free = [k for k in pc.graph_edges if k != "h3"]  # edges that do not read coordinates
        self.free_edges = (
            place_edges(cfg, data, free).to(device)
            if free
            else torch.zeros(2, 0, dtype=torch.long, device=device)
        )
        self.geo_edges = (
            place_edges(cfg, data, ["h3"]).to(device)
            if "h3" in pc.graph_edges
            else torch.zeros(2, 0, dtype=torch.long, device=device)
        )
        self.nbr = self.nbr_w = None
        if neighbours:  # fixed: the raw query embeddings do not train
            nbr, w = retrieval_neighbours(
                self.queries,
                self.queries,
                pc.query_top_k,
                pc.query_temperature,
                exclude=torch.arange(len(idx)),
            )
            self.nbr, self.nbr_w = nbr.to(device), w.to(device)

    @property
    def edge_index(self) -> torch.Tensor:
        """The whole place graph."""
        return torch.cat([self.free_edges, self.geo_edges], 1)

    def values(self, z: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Refined ``z'`` of every training place; ``batch`` rows masked (their H3 edges dropped)."""
        if batch is None:
            return self.refiner(z, self.queries, self.edge_index)
        mask = torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
        mask[batch] = True
        geo = self.geo_edges[:, ~(mask[self.geo_edges[0]] | mask[self.geo_edges[1]])]
        return self.refiner(z, self.queries, torch.cat([self.free_edges, geo], 1), mask)

    def forward(
        self, batch: torch.Tensor, latlon: torch.Tensor, z: torch.Tensor, frozen: bool
    ) -> torch.Tensor:
        """The loss of training rows ``batch`` (``z``: location embeddings of all training places)."""
        if self.nbr is None or self.nbr_w is None:
            raise RuntimeError("LearnedRetrieval was built with neighbours=False: it cannot train")
        zr = self.values(z, batch)
        r = mix_values(self.nbr_w[batch], self.nbr[batch], zr)
        keys = F.normalize(
            self.head.encode_queries(self.queries[batch]) + self.cfg.propagation.query_weight * r, dim=-1
        )
        return self.head.keyed_loss(keys, latlon[batch], batch if frozen else None)

    @torch.no_grad()
    def augmentation(self, z: torch.Tensor) -> QueryRetrievalAugmentation:
        """The inference-time retrieval over the refined values of the whole graph."""
        return query_augmentation(self.cfg, self.queries, self.values(z), self.cfg.propagation.query_weight)


def refined_values(
    cfg: GeolocateConfig,
    head: RetrievalHead,
    refiner: PlaceGraphRefiner,
    data: GeoData,
    embeddings: torch.Tensor | None = None,
) -> torch.Tensor:
    """``z'`` of the training places from a trained GNN (the database values of the query
    retrieval); ``embeddings``: their location embeddings when known."""
    device = head.logit_scale.device
    lr = LearnedRetrieval(cfg, head, refiner, data, device, neighbours=False)
    with torch.no_grad():
        z = (
            embeddings
            if embeddings is not None
            else head.encode_locations(
                torch.as_tensor(data.latlon[data.split["train"]], dtype=torch.float32, device=device)
            )
        )
        refiner.eval()
        return lr.values(z.to(device))


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

    With ``propagation.graph_mode: learned`` the place-graph GNN trains with the head
    (:class:`LearnedRetrieval`; its refined values end in :attr:`FitResult.query_values`) and
    the per-epoch validation searches with the query retrieval.

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

    info = dist_info()
    learned = cfg.method == "head" and cfg.propagation.learned
    if learned and info.enabled:
        raise ConfigError(
            "propagation.graph_mode 'learned' trains on one process; it does not run under torchrun"
        )
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
    joint: LearnedRetrieval | None = None
    if learned:  # the place-graph GNN trains with the head at the head's learning rate
        refiner = build_refiner(cfg, head.location_encoder.out_dim, data.query_dim).to(device)
        joint = LearnedRetrieval(cfg, head, refiner, data, device)
        groups.append({"params": list(refiner.parameters()), "lr": tc.lr})
    opt = torch.optim.AdamW(groups, weight_decay=tc.weight_decay)
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

    all_rows = torch.arange(len(idx_tr), device=device)

    def train_epoch(epoch: int) -> dict[str, float]:
        head.train()
        if joint is not None:
            joint.refiner.train()
        perm = torch.randperm(len(idx_tr), generator=torch.Generator().manual_seed(tc.seed * 1000 + epoch))
        total, n = 0.0, 0
        for s in range(0, len(perm), tc.batch_size):
            b = perm[s : s + tc.batch_size].to(device)
            if joint is not None:
                mine = b
                z = head.encode_locations(ll, all_rows if frozen else None)
                loss = joint(b, ll, z, frozen)
            elif info.enabled:
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
        aug = None
        if joint is not None:
            joint.refiner.eval()
            with torch.no_grad():
                aug = joint.augmentation(head.encode_locations(ll, all_rows if frozen else None))
        return prefixed(_quick_val(head, data, device, aug), "val")

    res = fit_loop(
        joint if joint is not None else head,
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
    if joint is not None:  # the refined database values of the query retrieval
        joint.refiner.eval()
        with torch.no_grad():
            z = fr.train_embeddings if fr.train_embeddings is not None else head.encode_locations(ll)
            fr.refiner, fr.query_values = joint.refiner, joint.values(z)
    head.location_cache = None
    head.eval()
    return fr
