"""The co-visitation GNN as a task sees it: target scaling, losses, building it, predicting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geograph.constants import POI
from geograph.covisit.groups import GroupData, Prepared, rank_groups
from geograph.distributed import sum_across_ranks
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
def predict_gnn(model: CovisitGNN, prep: Prepared, split_name: str, scaler: TargetScaler, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Predicted log1p for the pairs of ``split_name`` and its ranking candidates."""
    model.eval()
    n_pairs = len(prep.split.pairs[split_name])
    pred = np.zeros(n_pairs, dtype=np.float64)
    rank_pred = np.zeros(len(prep.rank[split_name]) if split_name in prep.rank else 0, dtype=np.float64)
    feats = prep.pair_feats[split_name]
    mine = set(rank_groups(prep))
    for gi, gd in enumerate(prep.groups):
        if gi not in mine:
            continue
        ids = gd.pairs[split_name]
        rids = gd.rank_ids.get(split_name, torch.zeros(0, dtype=torch.long))
        if ids.numel() == 0 and rids.numel() == 0:
            continue
        data = _group_to(gd, device)
        msg, w = gd.message[split_name]
        w_arg = w.to(device) if prep.cfg.model.weighted_covisits else None
        with autocast_context(device):
            h = model.encode(data, msg.to(device), w_arg)
            if ids.numel():
                loc = gd.local[split_name].to(device)
                out = model.head(h[loc[0]], h[loc[1]], model.pair_inputs(feats[ids].to(device)))
                pred[ids.numpy()] = _to_log1p(out.float(), prep.cfg.train.loss, scaler).cpu().double().numpy()
            if rids.numel():
                loc = gd.rank_local[split_name].to(device)
                rf = prep.rank_feats[split_name][rids].to(device)
                out = model.head(h[loc[0]], h[loc[1]], model.pair_inputs(rf))
                rank_pred[rids.numpy()] = _to_log1p(out.float(), prep.cfg.train.loss, scaler).cpu().double().numpy()
    # each pair belongs to exactly one group, hence one rank: the sum is exact
    return sum_across_ranks(pred), sum_across_ranks(rank_pred)


@dataclass
class FitResult:
    """What fitting produced."""

    model: object
    scaler: TargetScaler
    history: list[dict]
    best_epoch: int
    train_time_s: float
    resumed_from: int | None = None
