"""The co-visitation GNN as a task sees it: target scaling, losses, building it, predicting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geograph.constants import POI
from geograph.covisit.groups import GroupData, Prepared, rank_groups
from geograph.distributed import sum_across_ranks
from geograph.metrics.ranking import ranking_means, ranking_per_source
from geograph.nn.covisit_model import CovisitGNN
from geograph.utils.device import autocast_context

# ----------------------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------------------


@dataclass
class TargetScaler:
    """log1p target, optionally z-scored with *training* statistics only."""

    mode: str = "none"
    mean: float = 0.0
    std: float = 1.0

    def fit(self, visitors: Tensor, across_ranks: bool = False) -> TargetScaler:
        """Fit on training counts; ``across_ranks``: each rank passes its own, all get the same."""
        y = torch.log1p(visitors.double())
        if self.mode == "zscore" and across_ranks:
            from geograph.distributed import Reduction

            red = Reduction()
            tot = red.sum(torch.stack([y.sum(), torch.tensor(float(y.numel()), dtype=torch.float64)]))
            mean = tot[0] / tot[1]
            ss = red.sum(((y - mean) ** 2).sum().reshape(1))[0]
            self.mean, self.std = float(mean), float(torch.sqrt(ss / (tot[1] - 1)).clamp(min=1e-9))
        elif self.mode == "zscore":
            self.mean, self.std = float(y.mean()), float(y.std().clamp(min=1e-9))
        return self

    def encode(self, visitors: Tensor) -> Tensor:
        return ((torch.log1p(visitors.float()) - self.mean) / self.std).float()

    def decode(self, out: Tensor) -> Tensor:
        """Model output -> predicted log1p(visitors)."""
        return out * self.std + self.mean


def _loss_fn(name: str):
    if name == "mse":
        return lambda out, y_scaled, counts: torch.nn.functional.mse_loss(out, y_scaled)
    if name == "huber":
        return lambda out, y_scaled, counts: torch.nn.functional.huber_loss(out, y_scaled, delta=1.0)
    return lambda out, y_scaled, counts: torch.nn.functional.poisson_nll_loss(out, counts.float(), log_input=True)


def _to_log1p(out: Tensor, loss: str, scaler: TargetScaler) -> Tensor:
    if loss == "poisson":
        return torch.log1p(torch.exp(out.clamp(max=20)))
    return scaler.decode(out)


# ----------------------------------------------------------------------------------------
# the GNN family
# ----------------------------------------------------------------------------------------


def build_model(prep: Prepared) -> CovisitGNN:
    d = prep.graph.data
    image_in = int(d["image"].x.size(1)) if "image" in d.node_types else 0
    sizes = [prep.pre.vocab.sizes()[lv] for lv in prep.pre.vocab.levels]
    n_brands = len(prep.pre.brands) + 2
    return CovisitGNN(prep.cfg.model, int(d[POI].x.size(1)), int(d["cell"].x.size(1)), image_in, sizes, n_brands)


def _group_to(gd: GroupData, device: torch.device):
    return gd.sub.data.to(device)


@torch.no_grad()
def predict_gnn(model: CovisitGNN, prep: Prepared, split_name: str, scaler: TargetScaler, device: torch.device,
                ranking: bool = True) -> tuple[np.ndarray, np.ndarray | dict[str, float]]:
    """Predicted log1p for the pairs of ``split_name`` and its ranking candidates.

    Returns the pairs' predictions (in the split's pair order) and, with ``ranking``, the
    candidates' predictions in the order of ``prep.rank[split_name]``. Under per-state
    loading (``prep.shard`` set) there is no country-wide candidate list: each group's
    candidates are ranked where they are scored and the second item is the ranking metrics
    (``ndcg@10``, ``recall@10``, ``hit@10``, ``mrr``, ``ranked_sources``; the values
    :func:`~geograph.metrics.ranking_metrics` gives on the same predictions, whatever the
    number of ranks). ``ranking=False`` scores the pairs only (the second item is an empty
    array): per-epoch validation monitors regression metrics, and the candidates (every POI of
    a source's state by default) would cost more than the pairs themselves.
    """
    model.eval()
    pairs = prep.split.pairs[split_name]
    pred = np.zeros(len(pairs), dtype=np.float64)
    stream = ranking and prep.shard is not None
    n_rank = len(prep.rank[split_name]) if ranking and not stream and split_name in prep.rank else 0
    rank_pred = np.zeros(n_rank, dtype=np.float64)
    # per-state loading: per-source ranking rows at the source's global endpoint id (+ a flag)
    per_source = np.zeros((len(prep.shard.eval_poi_ids), 5)) if stream else None
    empty = torch.zeros(0, dtype=torch.long)
    mine = set(rank_groups(prep))
    for gi, gd in enumerate(prep.groups):
        if gi not in mine:
            continue
        ids = gd.pairs[split_name]
        rids = gd.rank_ids.get(split_name, empty) if (n_rank or stream) else empty
        if ids.numel() == 0 and rids.numel() == 0:
            continue
        data = _group_to(gd, device)
        msg, w = gd.message[split_name]
        loc_p = gd.local[split_name]
        loc_r = gd.rank_local.get(split_name, torch.zeros((2, 0), dtype=torch.long))
        p_feats = _pair_feats(prep, gd, split_name, ids) if ids.numel() else None
        r_feats = _pair_feats(prep, gd, f"rank_{split_name}", rids) if rids.numel() else None
        part, halo = gd.part, None
        if part is not None:  # a shared state: this rank scores the pairs whose source it owns
            halo = part.plan
            rows = part.messages(msg)
            msg, w = part.local(msg[:, rows]), w[rows]
            sel = part.owned(loc_p[0]) if ids.numel() else empty
            ids, loc_p = ids[sel], loc_p[:, sel]
            p_feats = p_feats[sel] if p_feats is not None else None
            rsel = part.owned(loc_r[0]) if rids.numel() else empty
            rids, loc_r = rids[rsel], loc_r[:, rsel]
            r_feats = r_feats[rsel] if r_feats is not None else None
        w_arg = w.to(device) if prep.cfg.model.weighted_covisits else None
        p_out, r_out = np.zeros(0), np.zeros(0)
        with autocast_context(device):
            h = model.encode(data, msg.to(device), w_arg, halo)
            if ids.numel():
                loc = (part.local(loc_p) if part is not None else loc_p).to(device)
                out = model.head.score(h, loc[0], loc[1], model.pair_inputs(p_feats.to(device)))
                p_out = _to_log1p(out.float(), prep.cfg.train.loss, scaler).cpu().double().numpy()
                pred[ids.numpy()] = p_out
            if rids.numel():
                loc = (part.local(loc_r) if part is not None else loc_r).to(device)
                out = model.head.score(h, loc[0], loc[1], model.pair_inputs(r_feats.to(device)))
                r_out = _to_log1p(out.float(), prep.cfg.train.loss, scaler).cpu().double().numpy()
                if not stream:
                    rank_pred[rids.numpy()] = r_out
        if stream and ids.numel():
            # a source's pairs and candidates are all in its state's group (and, in a shared
            # state, on the rank owning the source): rank them here, the pairs first and then the
            # candidates, as the country-wide concatenation orders them
            src = pairs.src[ids]
            n_group = part.n_pois if part is not None else int(gd.sub.data[POI].num_nodes)
            to_global = torch.full((n_group,), -1, dtype=torch.long)
            to_global[loc_p[0]] = src
            rank_src = to_global[loc_r[0]] if rids.numel() else empty
            sources, rows = ranking_per_source(
                torch.cat([src, rank_src]).numpy(),
                np.concatenate([np.log1p(pairs.visitors[ids].double().numpy()), np.zeros(len(rank_src))]),
                np.concatenate([p_out, r_out]),
                k=10,
            )
            per_source[sources, :4] = rows
            per_source[sources, 4] = 1.0
    # each pair belongs to exactly one group, hence one rank: the sum is exact
    if stream:
        per_source = sum_across_ranks(per_source)
        return sum_across_ranks(pred), ranking_means(per_source[per_source[:, 4] > 0, :4], k=10)
    return sum_across_ranks(pred), sum_across_ranks(rank_pred)


def _pair_feats(prep: Prepared, gd: GroupData, key: str, ids: Tensor) -> Tensor:
    """Pair features of a group's pairs of ``key`` (a split, or ``rank_<split>``): kept with
    the group under per-state loading, else rows ``ids`` of the prepared tables."""
    if key in gd.feats:
        return gd.feats[key]
    if key.startswith("rank_"):
        return prep.rank_feats[key[5:]][ids]
    return prep.pair_feats[key][ids]


@dataclass
class FitResult:
    """What fitting produced."""

    model: object
    scaler: TargetScaler
    history: list[dict]
    best_epoch: int
    train_time_s: float
    resumed_from: int | None = None
