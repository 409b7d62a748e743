"""Co-visitation training: the GNN fitted state group by state group on the shared loop
(:mod:`geograph.train`); each step scores a slice of a group's training pairs while those pairs
are hidden from the message graph. ``gravity`` / ``gbt`` fit in :mod:`~geograph.covisit.baselines`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from geograph.constants import POI
from geograph.covisit.baselines import fit_sklearn
from geograph.covisit.groups import Prepared, rank_groups
from geograph.covisit.minibatch import hop_fanouts, pair_batches, sampler_backend
from geograph.covisit.model import FitResult, TargetScaler, _loss_fn, build_model, predict_gnn
from geograph.distributed import dist_info, sum_across_ranks
from geograph.metrics import regression_metrics
from geograph.nn.halo import HaloPlan
from geograph.train import fit_loop
from geograph.utils.device import autocast_context, select_device


def hiding_folds(src: Tensor, perm: Tensor, n_folds: int, hide_by: str) -> list[Tensor]:
    """The training steps of one group: each fold's pairs are scored while hidden from messages.

    ``hide_by="pair"`` cuts the permuted pairs ``perm`` into ``n_folds`` chunks. ``"source"``
    puts all pairs of a source POI (``src``, local index per pair) in one fold, sources dealt to
    the folds in the order they first appear in ``perm``: a fold's sources then see none of their
    own rows as messages, only the rows other POIs send them, as a held-out source at test time.
    Uses no random draws beyond ``perm``.
    """
    if hide_by == "pair" or src.numel() == 0:
        return list(perm.chunk(min(n_folds, max(perm.numel(), 1))))
    uniq, inv = torch.unique(src, return_inverse=True)
    first = torch.full((len(uniq),), perm.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inv[perm], torch.arange(perm.numel()), reduce="amin")
    k = min(n_folds, len(uniq))
    fold_of = torch.empty(len(uniq), dtype=torch.long)
    fold_of[torch.argsort(first)] = torch.arange(len(uniq)) % k
    pair_fold = fold_of[inv[perm]]
    return [perm[pair_fold == f] for f in range(k)]


@dataclass
class Step:
    """One optimizer step of co-visitation training: a group's graph, its message edges with the
    step's target pairs hidden, and those targets (local ``src`` / ``dst``, ``ids`` into the
    split's training pairs)."""

    data: HeteroData
    message: Tensor
    weight: Tensor
    src: Tensor
    dst: Tensor
    ids: Tensor
    halo: HaloPlan | None = None
    scale: float = 1.0  # the step's loss weight: its share of the fold's pairs times the ranks (shared groups)


def epoch_steps(prep: Prepared, epoch: int, mine: set[int] | None = None, shared: bool | None = None) -> Iterator[Step]:
    """The steps of one epoch, in order; every random draw comes from ``(seed, epoch)``.

    The groups are walked in a seeded order; in each, the training pairs are permuted and cut
    into ``round(1 / split.hide_frac)`` folds (:func:`hiding_folds`). The permutation is drawn
    for every group on every rank (one RNG stream), and only groups in ``mine`` yield steps.
    With ``train.batch_size > 0`` a fold's pairs (hidden from the messages together, as in
    full batch) are cut, in their permuted order, into batches scored on sampled subgraphs
    (:func:`geograph.covisit.minibatch.pair_batches`).

    ``shared`` selects the groups every rank trains together (True: only those, False: only the
    others, None: all). In such a group every rank draws the same folds and takes the pairs whose
    source it owns, on its part (:class:`~geograph.covisit.parts.GroupPart`), with the co-visit
    rows that touch its POIs.
    """
    cfg = prep.cfg
    seed = cfg.train.seed * 100_003 + epoch
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n_folds = max(1, int(round(1.0 / cfg.split.hide_frac))) if cfg.split.hide_frac > 0 else 1
    counts = getattr(prep.groups, "train_pairs", None)
    parts = getattr(prep.groups, "shared", set())
    if shared:  # ranks hold different numbers of own groups: the shared ones get their own order
        idx = sorted(parts) if counts is not None else [i for i, g in enumerate(prep.groups) if g.part is not None]
        gen = torch.Generator().manual_seed(seed * 1_000_003 + 17)
        order = [idx[i] for i in torch.randperm(len(idx), generator=gen).tolist()]
    else:
        order = torch.randperm(len(prep.groups), generator=gen).tolist()
    for gi in order:
        # spilled groups (per-state loading) know their sizes and which are shared without a load
        n_pairs = counts[gi] if counts is not None else prep.groups[gi].pairs["train"].numel()
        perm = torch.randperm(n_pairs, generator=gen)  # drawn on every rank: same RNG stream
        if (mine is not None and gi not in mine) or n_pairs == 0:
            continue
        if shared is not None and shared != (gi in parts if counts is not None else prep.groups[gi].part is not None):
            continue
        gd = prep.groups[gi]
        ids = gd.pairs["train"]
        n_local = gd.part.n_pois if gd.part is not None else gd.sub.data[POI].num_nodes
        msg, w = gd.message["train"]
        msg_keys = msg[0] * n_local + msg[1]
        for fi, fold in enumerate(hiding_folds(gd.local["train"][0], perm, n_folds, cfg.split.hiding)):
            loc = gd.local["train"][:, fold]
            keep = ~torch.isin(msg_keys, loc[0] * n_local + loc[1])
            if gd.part is not None:
                part = gd.part
                rows = torch.nonzero(keep).flatten()
                rows = rows[part.messages(msg[:, rows])]
                sel = part.owned(loc[0])
                own = part.local(loc[:, sel])
                yield Step(gd.sub.data, part.local(msg[:, rows]), w[rows], own[0], own[1], ids[fold][sel],
                           part.plan, part.plan.world_size * sel.numel() / max(fold.numel(), 1))
                continue
            if cfg.train.batch_size == 0:
                yield Step(gd.sub.data, msg[:, keep], w[keep], loc[0], loc[1], ids[fold])
                continue
            # the sampler's draws depend on (seed, epoch, group, fold) only, not on the rank
            fold_seed = (seed * 1_000_003 + gi) * 1_009 + fi
            if sampler_backend() == "pyg":
                torch.manual_seed(fold_seed)  # PyG's NeighborSampler draws from torch's global RNG
            for b in pair_batches(gd.sub.data, msg[:, keep], w[keep], loc[0], loc[1],
                                  batch_size=cfg.train.batch_size,
                                  num_neighbors=hop_fanouts(cfg.train.num_neighbors, cfg.model.layers),
                                  relations=cfg.model.relations, generator=torch.Generator().manual_seed(fold_seed)):
                yield Step(b.data, b.message, b.weight, b.src, b.dst, ids[fold][b.pos])


def fit_gnn(prep: Prepared, on_epoch=None, stop_after_epoch: int | None = None, *,
            checkpoint: Path | None = None, resume: bool = False) -> FitResult:
    """Train the GNN state group by state group on :func:`geograph.train.fit_loop`.

    Every random draw of an epoch comes from (seed, epoch), so a resumed run equals an
    uninterrupted one. AdamW, ReduceLROnPlateau on validation R², early stopping after
    ``train.patience`` epochs without a better validation R², the best epoch's weights kept.

    Args:
        prep: Prepared data.
        on_epoch: Callback ``(epoch, metrics_dict)`` after every epoch (MLflow logging).
        stop_after_epoch: Stop (as if killed) after this epoch; used to test resume.
        checkpoint: ``last.pt`` written after every epoch (None: no checkpoint).
        resume: Continue from ``checkpoint`` when it exists.
    """
    cfg = prep.cfg
    tc = cfg.train
    device = select_device(tc.device)
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    model = build_model(prep).to(device)
    info = dist_info()
    mine = set(rank_groups(prep))
    shared = bool(prep.shard is not None and prep.shard.shared)
    train_model = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # gradients are averaged over ranks; parameters start equal (same seed, and DDP broadcasts)
        train_model = DistributedDataParallel(model, find_unused_parameters=True)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=tc.lr_patience)
        if tc.lr_patience > 0
        else None
    )
    scaler = TargetScaler(tc.target_scaling).fit(prep.split.pairs["train"].visitors, across_ranks=prep.shard is not None)
    loss_fn = _loss_fn(tc.loss)
    train = prep.split.pairs["train"]
    y_scaled = scaler.encode(train.visitors)
    feats = prep.pair_feats["train"]
    val = prep.split.pairs["val"]
    y_val = torch.log1p(val.visitors.double()).numpy()
    obs_val = val.observed.numpy()

    def train_epoch(epoch: int) -> dict[str, float]:
        model.train()
        total, count = 0.0, 0
        join = train_model.join() if info.enabled else contextlib.nullcontext()
        host, data = None, None

        def run(step: Step) -> None:
            nonlocal total, count, host, data
            if step.data is not host:  # a group's graph moves to the device once
                host, data = step.data, step.data.to(device)
            with autocast_context(device):
                out = train_model(data, step.message.to(device),
                                  step.weight.to(device) if cfg.model.weighted_covisits else None,
                                  step.src.to(device), step.dst.to(device), feats[step.ids].to(device),
                                  halo=step.halo)
                if step.ids.numel():
                    loss = loss_fn(out.float(), y_scaled[step.ids].to(device), train.visitors[step.ids].to(device))
                else:  # a rank that owns none of a shared step's pairs still takes part in it
                    loss = out.float().sum()
            opt.zero_grad(set_to_none=True)
            (loss * step.scale if step.scale != 1.0 else loss).backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            total += float(loss.detach()) * step.ids.numel()
            count += step.ids.numel()

        if shared:  # every rank runs the same steps of the shared groups, before its own
            for step in epoch_steps(prep, epoch, mine, shared=True):
                run(step)
        with join:  # ranks may run different numbers of steps: DDP's Join keeps them in step
            for step in epoch_steps(prep, epoch, mine, shared=False if shared else None):
                run(step)
        total, count = sum_across_ranks(np.array([total, float(count)]))
        return {"train_loss": float(total) / max(float(count), 1.0)}

    def validate(epoch: int) -> dict[str, float]:
        val_pred, _ = predict_gnn(model, prep, "val", scaler, device, ranking=False)
        vm = regression_metrics(y_val, val_pred) if len(y_val) else {"r2": 0.0, "mae": 0.0, "spearman": 0.0}
        om = regression_metrics(y_val[obs_val], val_pred[obs_val]) if obs_val.any() else {"r2": 0.0}
        return {"val_r2": vm["r2"], "val_mae": vm["mae"], "val_spearman": vm["spearman"],
                "val_observed_r2_log1p": om["r2"], "lr": opt.param_groups[0]["lr"]}

    res = fit_loop(
        model,
        epochs=tc.epochs,
        train_epoch=train_epoch,
        validate=validate,
        score=lambda m: m[tc.monitor],
        stateful={"optimizer": opt, "scheduler": sched},
        after_validate=(lambda m: sched.step(m[tc.monitor])) if sched is not None else None,
        patience=tc.patience,
        checkpoint=checkpoint,
        key=cfg.hash(),
        resume=resume,
        is_main=info.is_main,
        on_epoch=on_epoch,
        stop_after_epoch=stop_after_epoch,
        progress=tc.progress,
        monitor=tc.monitor,
        label=cfg.name,
    )
    return FitResult(model, scaler, res.history, res.best_epoch, res.train_time_s, res.resumed_from)


def fit(prep: Prepared, on_epoch=None, stop_after_epoch: int | None = None, *,
        checkpoint: Path | None = None, resume: bool = False) -> FitResult:
    """Fit the configured model family: the GNN on the shared loop, or a scikit-learn baseline."""
    if prep.cfg.model.family == "gnn":
        return fit_gnn(prep, on_epoch, stop_after_epoch, checkpoint=checkpoint, resume=resume)
    return fit_sklearn(prep)
