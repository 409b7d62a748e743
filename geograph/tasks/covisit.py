"""Co-visitation prediction: one pipeline for the NAICS-aware GNN and every baseline.

Lifecycle (shared by all model families, chosen by ``model.family``):

1. **prepare** – load or generate the world, build (or load from cache) the graph, split the
   co-visit pairs without leakage, fit feature / NAICS transforms on training POIs only,
   sample ranking candidates, and pack states into groups (state-wise decomposition).
2. **fit** – ``gnn``: walk the state groups each epoch; each step scores a slice of the
   group's training pairs while those pairs are hidden from the message graph; AdamW,
   ReduceLROnPlateau on validation R², early stopping, an atomic checkpoint every epoch,
   ``resume`` from it. ``gravity`` / ``gbt``: scikit-learn on pair features.
3. **evaluate** – test metrics from the best-validation state: R², MAE, RMSE (log1p and raw),
   Spearman, NDCG@10 and Recall@10.
4. **log** – everything to MLflow (config, tags, per-epoch metrics, test metrics, plots, the
   model as a pyfunc model).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import Tensor

from geograph.constants import POI
from geograph.data.world_io import World
from geograph.distributed import balanced_partition, dist_info, sum_across_ranks
from geograph.errors import CheckpointError, ConfigError
from geograph.graph.builder import pair_features
from geograph.graph.cache import cached_build, load_checked, save_checked
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.partition import StatePartitioner, StateSubgraph
from geograph.graph.split import SPLITS, CovisitSplit, PairSet, split_covisits
from geograph.graph.transforms import FeaturePreprocessor
from geograph.metrics import ranking_metrics, regression_metrics
from geograph.nn.covisit_model import CovisitGNN, ModelConfig
from geograph.tasks.config import CovisitConfig
from geograph.tasks.covisit_messages import GravityBaseline, MessageWeights, gravity_design
from geograph.utils.device import autocast_context, select_device

# ----------------------------------------------------------------------------------------
# data preparation
# ----------------------------------------------------------------------------------------


def load_world_for(cfg: CovisitConfig) -> World:
    """The world named by ``cfg.data`` (a folder, or the embedded world)."""
    if cfg.data.world_dir:
        from geograph.data import load_world

        return load_world(cfg.data.world_dir)
    from geograph.data.synthetic import generate_world

    return generate_world(n_pois=cfg.data.n_pois, seed=cfg.data.world_seed, n_images=cfg.data.n_images)


@dataclass
class GroupData:
    """A group of states packed into one graph, with its pairs in local indices.

    Attributes:
        sub: The state-group subgraph.
        pairs: Per split: indices into the global split pair list that belong to this group.
        local: Per split: local ``(2, E)`` pair indices.
        message: Per split: local message edges ``(2, M)`` and weights ``(M,)``.
        rank_ids / rank_local: Ranking candidates of the test and val splits in this group.
    """

    sub: StateSubgraph
    pairs: dict[str, Tensor] = field(default_factory=dict)
    local: dict[str, Tensor] = field(default_factory=dict)
    message: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    rank_ids: dict[str, Tensor] = field(default_factory=dict)
    rank_local: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Prepared:
    """Everything the fit / evaluate steps need."""

    cfg: CovisitConfig
    graph: GeoGraph  # preprocessed (x, naics)
    split: CovisitSplit
    pre: FeaturePreprocessor
    pair_feats: dict[str, Tensor]
    rank: dict[str, PairSet]  # extra zero candidates per split (val, test)
    rank_feats: dict[str, Tensor]
    groups: list[GroupData]
    fingerprint: str
    weight_scale: float
    shard: object | None = None  # covisit_sharded.ShardInfo when this rank loaded only its states
    baseline: GravityBaseline | None = None  # residuals of message rows (model.residual_features)


def rank_candidates(graph: GeoGraph, pairs: PairSet, n: int, seed: int, exclude: Tensor) -> PairSet:
    """Sampled non-visited candidates: for each source with a positive pair, ``n`` random POIs
    of the same state that have no co-visit row with it in either direction (relevance 0)."""
    empty = torch.zeros(0, dtype=torch.long)
    if n <= 0 or len(pairs) == 0:
        return PairSet(empty, empty, empty)
    p = graph.data[POI]
    n_poi = p.num_nodes
    sources = torch.unique(pairs.src[pairs.visitors > 0]).numpy()
    state = p.state.numpy()
    order = np.argsort(state, kind="stable")
    bounds = np.searchsorted(state[order], np.arange(state.max() + 2))
    rng = np.random.default_rng(seed)
    taken = set((exclude[0] * n_poi + exclude[1]).tolist())
    taken.update((exclude[1] * n_poi + exclude[0]).tolist())  # a row in either direction
    taken.update((pairs.src * n_poi + pairs.dst).tolist())
    out_s, out_d = [], []
    for s in sources.tolist():
        pool = order[bounds[state[s]] : bounds[state[s] + 1]]
        k = 0
        for d in pool[rng.permutation(len(pool))].tolist():
            if d == s or s * n_poi + d in taken:
                continue
            out_s.append(s)
            out_d.append(d)
            taken.add(s * n_poi + d)
            k += 1
            if k >= n:
                break
    s_t = torch.tensor(out_s, dtype=torch.long)
    return PairSet(s_t, torch.tensor(out_d, dtype=torch.long), torch.zeros(len(out_s), dtype=torch.long))


def prepare(cfg: CovisitConfig, world: World | None = None, progress: bool = False) -> Prepared:
    """Build graph, leak-free split, train-only transforms and state groups (see module doc).

    With no ``world`` and a state-partitioned ``data.world_dir`` (``data.loading``), each rank
    loads only its own states (:func:`geograph.tasks.covisit_sharded.prepare_sharded`).
    """
    if world is None:
        from geograph.tasks.covisit_sharded import prepare_sharded, uses_state_loading

        if uses_state_loading(cfg):
            return prepare_sharded(cfg)
    world = world if world is not None else load_world_for(cfg)
    graph = cached_build(world, cfg.graph, cfg.data.cache_dir)
    seed = cfg.train.seed
    s = cfg.split
    split = split_covisits(graph, s.protocol, s.val_frac, s.test_frac, s.neg_ratio, s.observed_frac, seed)
    if len(split.pairs["train"]) == 0:
        raise ConfigError("the split left no training pairs; check split fractions and the co-visit table")
    pre = FeaturePreprocessor().fit(graph, split.train_poi_mask)
    g = pre.transform(graph)
    feats = {k: pair_features(g, split.pairs[k].src, split.pairs[k].dst) for k in SPLITS}
    all_rows = graph.data[POI, "covisits", POI].edge_index
    rank = {k: rank_candidates(g, split.pairs[k], s.rank_negatives, seed + 7 + i, all_rows) for i, k in enumerate(("val", "test"))}
    rank_feats = {k: pair_features(g, rank[k].src, rank[k].dst) for k in rank}
    nz = split.pairs["train"].visitors[split.pairs["train"].visitors > 0].double()
    weight_scale = float(torch.log1p(nz).mean()) if nz.numel() else 1.0
    baseline = None
    if cfg.model.family == "gnn" and cfg.model.residual_features:
        tr = split.pairs["train"]
        baseline = GravityBaseline.fit(g, tr.src, tr.dst, tr.visitors, cfg.model.mass_feature, feats["train"])
    groups = _make_groups(g, split, rank, cfg, weight_scale, baseline)
    return Prepared(cfg, g, split, pre, feats, rank, rank_feats, groups, world.fingerprint(), weight_scale, baseline=baseline)


def _make_groups(
    g: GeoGraph,
    split: CovisitSplit,
    rank: dict[str, PairSet],
    cfg: CovisitConfig,
    weight_scale: float,
    baseline: GravityBaseline | None = None,
) -> list[GroupData]:
    part = StatePartitioner(g, cfg.graph.halo_km)
    n_per_state = torch.bincount(g.data[POI].state, minlength=len(part.states)).tolist()
    weights = dict(zip(part.states, n_per_state, strict=True))
    weights_for = MessageWeights(g, weight_scale, baseline)

    out = []
    max_pois = cfg.train.max_group_pois
    world_size = dist_info().world_size
    if world_size > 1:
        # at least two groups per rank, so every rank gets states to train
        max_pois = min(max_pois, max(1, g.num_pois // (2 * world_size)))
    for names in part.group_states(weights, max_pois):
        sidx = torch.tensor([part.states.index(x) for x in names])
        sel = {k: torch.nonzero(torch.isin(g.data[POI].state[split.pairs[k].src], sidx)).flatten() for k in SPLITS}
        rsel = {k: torch.nonzero(torch.isin(g.data[POI].state[rank[k].src], sidx)).flatten() for k in rank}
        ends = [split.pairs[k].dst[sel[k]] for k in SPLITS] + [rank[k].dst[rsel[k]] for k in rank]
        msel = {k: torch.isin(g.data[POI].state[split.message[k][0]], sidx) for k in SPLITS}
        ends += [split.message[k][1][msel[k]] for k in SPLITS]
        sub = part.subgraph(names, torch.cat(ends))
        gd = GroupData(sub=sub)
        for k in SPLITS:
            pk = split.pairs[k]
            gd.pairs[k] = sel[k]
            gd.local[k] = sub.to_local(pk.src[sel[k]], pk.dst[sel[k]])
            msg = split.message[k][:, msel[k]]
            gd.message[k] = (sub.to_local(msg[0], msg[1]), weights_for(msg))
        for k in rank:
            gd.rank_ids[k] = rsel[k]
            gd.rank_local[k] = sub.to_local(rank[k].src[rsel[k]], rank[k].dst[rsel[k]])
        out.append(gd)
    return out


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


def group_weights(prep: Prepared) -> list[int]:
    """Training pairs per state group (the load used to shard groups over ranks)."""
    return [int(gd.pairs["train"].numel()) + 1 for gd in prep.groups]


def rank_groups(prep: Prepared) -> list[int]:
    """Indices of the state groups this rank trains and scores (all of them in one process).

    Groups are assigned by a balanced partition of their training-pair counts, largest first
    (:func:`geograph.distributed.balanced_partition`).
    """
    info = dist_info()
    if not info.enabled or prep.shard is not None:  # per-state loading: every group here is this rank's
        return list(range(len(prep.groups)))
    w = {str(i): float(x) for i, x in enumerate(group_weights(prep))}
    return sorted(int(i) for i in balanced_partition(w, info.world_size)[info.rank])


@dataclass
class FitResult:
    """What fitting produced."""

    model: object
    scaler: TargetScaler
    history: list[dict]
    best_epoch: int
    train_time_s: float
    resumed_from: int | None = None


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


def default_checkpoint_dir(cfg: CovisitConfig) -> Path:
    return Path(cfg.train.checkpoint_dir or Path("mlruns") / "checkpoints" / f"{cfg.name}-{cfg.hash()}")


def fit_gnn(prep: Prepared, on_epoch=None, stop_after_epoch: int | None = None) -> FitResult:
    """Train the GNN state group by state group (see module docstring).

    Args:
        prep: Prepared data.
        on_epoch: Callback ``(epoch, metrics_dict)`` after every epoch (MLflow logging).
        stop_after_epoch: Stop (as if killed) after this epoch; used to test resume.
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
    ckpt_dir = default_checkpoint_dir(cfg)
    ckpt = ckpt_dir / "last.pt"
    start_epoch, best_val, best_epoch, bad = 1, -math.inf, 0, 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict] = []
    resumed_from = None
    train_time = 0.0
    if tc.resume and ckpt.exists():
        state = load_checked(ckpt)
        if state.get("config_hash") != cfg.hash():
            raise CheckpointError(f"{ckpt} was written by a different config; remove it or drop --resume")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler") is not None:
            sched.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        best_val, best_epoch, bad = float(state["best_val"]), int(state["best_epoch"]), int(state["bad_epochs"])
        best_state = state["best_state"]
        history = list(state["history"])
        train_time = float(state.get("train_time_s", 0.0))
        resumed_from = start_epoch - 1
    train = prep.split.pairs["train"]
    y_scaled = scaler.encode(train.visitors)
    feats = prep.pair_feats["train"]
    n_folds = max(1, int(round(1.0 / cfg.split.hide_frac))) if cfg.split.hide_frac > 0 else 1
    for epoch in range(start_epoch, tc.epochs + 1):
        if best_epoch and epoch - best_epoch > tc.patience:
            break
        t0 = time.perf_counter()
        # every random draw of an epoch comes from (seed, epoch): resume == uninterrupted
        torch.manual_seed(tc.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(tc.seed * 100_003 + epoch)
        model.train()
        total, count = 0.0, 0
        order = torch.randperm(len(prep.groups), generator=gen).tolist()
        join = train_model.join() if info.enabled else contextlib.nullcontext()
        with join:  # ranks may run different numbers of steps: DDP's Join keeps them in step
            for gi in order:
                gd = prep.groups[gi]
                ids = gd.pairs["train"]
                perm = torch.randperm(ids.numel(), generator=gen)  # drawn on every rank: same RNG stream
                if gi not in mine or ids.numel() == 0:
                    continue
                data = _group_to(gd, device)
                n_local = gd.sub.data[POI].num_nodes
                msg, w = gd.message["train"]
                msg_keys = msg[0] * n_local + msg[1]
                for fold in hiding_folds(gd.local["train"][0], perm, n_folds, cfg.split.hiding):
                    loc = gd.local["train"][:, fold]
                    keep = ~torch.isin(msg_keys, loc[0] * n_local + loc[1])
                    w_arg = w[keep].to(device) if cfg.model.weighted_covisits else None
                    with autocast_context(device):
                        out = train_model(data, msg[:, keep].to(device), w_arg, loc[0].to(device), loc[1].to(device),
                                          feats[ids[fold]].to(device))
                        loss = loss_fn(out.float(), y_scaled[ids[fold]].to(device), train.visitors[ids[fold]].to(device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if tc.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                    opt.step()
                    total += float(loss.detach()) * fold.numel()
                    count += fold.numel()
        if info.enabled:
            tot = torch.tensor([total, float(count)], dtype=torch.float64)
            torch.distributed.all_reduce(tot)
            total, count = float(tot[0]), int(tot[1])
        train_time += time.perf_counter() - t0
        val_pred, _ = predict_gnn(model, prep, "val", scaler, device)
        y_val = torch.log1p(prep.split.pairs["val"].visitors.double()).numpy()
        vm = regression_metrics(y_val, val_pred) if len(y_val) else {"r2": 0.0, "mae": 0.0, "spearman": 0.0}
        metrics = {
            "train_loss": total / max(count, 1),
            "val_r2": vm["r2"],
            "val_mae": vm["mae"],
            "val_spearman": vm["spearman"],
            "lr": opt.param_groups[0]["lr"],
            "epoch_time_s": time.perf_counter() - t0,
        }
        history.append({"epoch": epoch, **metrics})
        if sched is not None:
            sched.step(vm["r2"])
        if vm["r2"] > best_val:
            best_val, best_epoch, bad = vm["r2"], epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        if info.is_main:  # one writer; parameters are identical on every rank
            save_checked(
                {
                    "config_hash": cfg.hash(),
                    "epoch": epoch,
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "best_val": best_val,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad,
                    "best_state": best_state,
                    "history": history,
                    "train_time_s": train_time,
                },
                ckpt,
            )
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    model.load_state_dict(best_state)
    return FitResult(model, scaler, history, best_epoch, train_time, resumed_from)


# ----------------------------------------------------------------------------------------
# scikit-learn families: gravity and gradient-boosted trees
# ----------------------------------------------------------------------------------------


def sklearn_features_from(cfg: CovisitConfig, graph: GeoGraph, src: Tensor, dst: Tensor, pf: Tensor) -> np.ndarray:
    """Pair-feature matrix of the non-graph baselines.

    ``gravity``: ``[log1p km, log1p mass_src, log1p mass_dst]``. ``gbt``: ``[log1p km,
    same brand, NAICS prefix depth, neighbour rank (with ``model.pair_rank``), standardised POI
    features of both ends]`` plus, with
    ``gbt_naics_level``, the NAICS codes of both ends at that level (categorical).
    """
    if cfg.model.family == "gravity":
        return gravity_design(cfg.model.mass_feature, graph, src, dst, pf)
    dist = np.log1p(pf[:, 0].double().numpy())
    p = graph.data[POI]
    x = p.x.double().numpy()
    rest = pf[:, 1:] if cfg.model.pair_rank else pf[:, 1:3]  # same brand, depth (, neighbour rank)
    cols = [dist[:, None], rest.double().numpy(), x[src.numpy()], x[dst.numpy()]]
    lv = cfg.model.gbt_naics_level
    if lv:
        codes = p.naics_code.numpy() // 10 ** (6 - lv)
        cols += [codes[src.numpy()][:, None].astype(np.float64), codes[dst.numpy()][:, None].astype(np.float64)]
    return np.concatenate(cols, axis=1)


def sklearn_features(prep: Prepared, src: Tensor, dst: Tensor, pf: Tensor) -> np.ndarray:
    return sklearn_features_from(prep.cfg, prep.graph, src, dst, pf)


def fit_sklearn(prep: Prepared) -> FitResult:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    t0 = time.perf_counter()
    tr = prep.split.pairs["train"]
    X = sklearn_features(prep, tr.src, tr.dst, prep.pair_feats["train"])
    y = torch.log1p(tr.visitors.double()).numpy()
    if prep.cfg.model.family == "gravity":
        est = LinearRegression().fit(X, y)
    else:
        cat = [X.shape[1] - 2, X.shape[1] - 1] if prep.cfg.model.gbt_naics_level else None
        prep_codes = {}
        for c in cat or []:
            # categories must be small non-negative ints: index NAICS codes seen in training
            prep_codes[c] = np.unique(X[:, c])
            X[:, c] = np.searchsorted(prep_codes[c], X[:, c])
        est = HistGradientBoostingRegressor(
            max_iter=prep.cfg.model.gbt_max_iter,
            categorical_features=cat,
            early_stopping=True,
            validation_fraction=0.1,
            random_state=prep.cfg.train.seed,
        ).fit(X, y)
        est.geograph_codes_ = prep_codes
    return FitResult(est, TargetScaler(), [], 0, time.perf_counter() - t0)


def predict_sklearn(est, prep: Prepared, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    def run(src, dst, pf):
        if len(src) == 0:
            return np.zeros(0)
        X = sklearn_features(prep, src, dst, pf)
        for c, uniq in getattr(est, "geograph_codes_", {}).items():
            pos = np.searchsorted(uniq, X[:, c])
            known = (pos < len(uniq)) & (uniq[np.clip(pos, 0, len(uniq) - 1)] == X[:, c])
            X[:, c] = np.where(known, pos, np.nan)  # unseen categories -> missing
        return est.predict(X)

    pk = prep.split.pairs[split_name]
    pred = run(pk.src, pk.dst, prep.pair_feats[split_name])
    rk = prep.rank.get(split_name)
    rpred = run(rk.src, rk.dst, prep.rank_feats[split_name]) if rk is not None else np.zeros(0)
    return pred, rpred


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


def fit(prep: Prepared, on_epoch=None, stop_after_epoch: int | None = None) -> FitResult:
    if prep.cfg.model.family == "gnn":
        return fit_gnn(prep, on_epoch, stop_after_epoch)
    return fit_sklearn(prep)


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


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model (stated, so MLflow does not infer them slowly)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("torch", "torch_geometric", "polars", "pandas", "numpy", "scikit-learn", "scipy", "h3", "mlflow", "geograph"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def run_from_config(config: dict, *, tracking_uri: str | None = None, fast: bool = False,
                    world: World | None = None, stop_after_epoch: int | None = None) -> dict:
    """Train, evaluate and log one co-visitation run to MLflow.

    Args:
        config: Config dict (see :class:`~geograph.tasks.config.CovisitConfig`).
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
    import torch.distributed as tdist

    from geograph.distributed import cleanup, init_from_env
    from geograph.distributed.failures import rank_failures

    owned = not (tdist.is_available() and tdist.is_initialized())
    info = init_from_env(cfg.train.dist_timeout_s)
    ckpt = default_checkpoint_dir(cfg) / "last.pt" if cfg.model.family == "gnn" else None
    try:
        with rank_failures(info, cfg.train.dist_timeout_s, ckpt):
            return _run_rank(cfg, config, info, uri, world, stop_after_epoch)
    finally:
        if info.enabled and owned:
            cleanup()


def _run_rank(cfg: CovisitConfig, config: dict, info, uri: str | None, world: World | None,
              stop_after_epoch: int | None) -> dict:
    """One rank's part of :func:`run_from_config` (all of it in one process)."""
    from geograph.tracking import configure

    if info.is_main:
        configure(uri)  # fail before any work if the store is unreachable
    from geograph.tasks.covisit_sharded import uses_state_loading

    if world is None and not uses_state_loading(cfg):
        world = load_world_for(cfg)
    prep = prepare(cfg, world)  # per-state loading when world is still None
    if not info.is_main:
        # workers train their shard and join every collective; rank 0 alone logs
        fr, metrics, _ = fit_and_score(prep, None, stop_after_epoch)
        out = {"run_id": None, "metrics": metrics}
    else:
        fr, out = _tracked_run(cfg, config, prep, uri, info, stop_after_epoch)
    out.update(rank=info.rank, world_size=info.world_size,
               groups=[prep.groups[i].sub.state for i in rank_groups(prep)],
               loaded=prep.shard.loaded if prep.shard is not None else None,
               param_checksum=_param_checksum(fr.model))
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


def _param_checksum(model) -> str | None:
    import hashlib

    if not isinstance(model, torch.nn.Module):
        return None
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def fit_and_score(prep: Prepared, on_epoch, stop_after_epoch: int | None = None):
    """Fit, evaluate val / test and predict the test pairs; every rank runs exactly this
    (the same collectives in the same order)."""
    fr = fit(prep, on_epoch=on_epoch, stop_after_epoch=stop_after_epoch)
    metrics = evaluate(fr, prep)
    test_pred, _ = predict_split(fr, prep, "test")
    return fr, metrics, test_pred


def _tracked_run(cfg: CovisitConfig, config: dict, prep: Prepared, uri: str | None, info, stop_after_epoch):
    import tempfile

    import mlflow

    from geograph.distributed.failures import record_run
    from geograph.tasks.covisit_predictor import save_bundle
    from geograph.tracking import start_run
    from geograph.tracking.tags import run_tags

    device = select_device(cfg.train.device)
    tags = run_tags(device=str(device), data_fingerprint=prep.fingerprint, config=config)
    tags.update({"geograph.task": "covisit", "geograph.config_name": cfg.name, "geograph.model_family": cfg.model.family,
                 "geograph.world_size": str(info.world_size)})
    run_name = cfg.tracking.run_name or f"{cfg.name}-s{cfg.train.seed}"
    with start_run(cfg.tracking.experiment, run_name, params=cfg.to_dict(), tags=tags, tracking_uri=uri) as active:
        # for `geograph train --nproc`, which marks the run FAILED if this process is SIGKILLed
        ckpt = default_checkpoint_dir(cfg) / "last.pt" if cfg.model.family == "gnn" else None
        record_run(active.info.run_id, mlflow.get_tracking_uri(), ckpt)
        if prep.shard is not None:
            summary = {f"data_{k}": v for k, v in prep.shard.summary.items()}
            mlflow.set_tag("geograph.loading", "per_state")
            mlflow.log_dict({f"rank{r}": s for r, s in enumerate(prep.shard.assignment)}, "distributed/assignment.json")
        else:
            summary = {f"data_{k}": float(v) for k, v in prep.split.summary().items()}
            summary["data_pois"] = float(prep.graph.num_pois)
        mlflow.log_metrics(summary)
        if info.enabled and prep.shard is None:
            w = {str(i): float(x) for i, x in enumerate(group_weights(prep))}
            shards = balanced_partition(w, info.world_size)
            assignment = {f"rank{r}": [prep.groups[int(i)].sub.state for i in sorted(part, key=int)] for r, part in enumerate(shards)}
            mlflow.log_dict(assignment, "distributed/assignment.json")

        def on_epoch(epoch: int, m: dict) -> None:
            mlflow.log_metrics(m, step=epoch)

        fr, metrics, test_pred = fit_and_score(prep, on_epoch, stop_after_epoch)
        if fr.resumed_from:
            mlflow.set_tag("geograph.resumed_from_epoch", str(fr.resumed_from))
            for h in fr.history[: fr.resumed_from]:
                mlflow.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=int(h["epoch"]))
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

                from geograph.tasks.covisit_predictor import CovisitPredictor

                out = CovisitPredictor.load(mdir).predict_ids(example["src_poi_id"], example["dst_poi_id"])
                sig = infer_signature(example, pd.DataFrame({"predicted_visitors": out}))
                mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(Path(__file__).with_name("covisit_pyfunc_model.py")),
                    artifacts={"model_dir": str(mdir)},
                    signature=sig,
                    input_example=example,
                    pip_requirements=pip_requirements(),
                )
        run_id = active.info.run_id
    return fr, {"run_id": run_id, "metrics": metrics}
