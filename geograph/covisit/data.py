"""Co-visitation data: world -> graph -> leakage-free pair splits -> state groups.

:func:`uses_state_loading` is the one place that decides between the whole world in every
process and per-state loading (:mod:`~geograph.covisit.sharded`)."""


from __future__ import annotations

import torch

from geograph.constants import POI
from geograph.covisit.config import CovisitConfig

# ----------------------------------------------------------------------------------------
# data preparation
# ----------------------------------------------------------------------------------------
from geograph.covisit.groups import (
    Prepared,
    make_groups,
    split_rank_candidates,
)
from geograph.covisit.messages import GravityBaseline
from geograph.covisit.sharded import prepare_sharded
from geograph.data.state_scan import is_state_partitioned
from geograph.data.world_io import World
from geograph.distributed import dist_info
from geograph.errors import ConfigError
from geograph.graph.builder import pair_features
from geograph.graph.cache import cached_build
from geograph.graph.split import SPLITS, split_covisits
from geograph.graph.transforms import FeaturePreprocessor

LOADING_MODES = ("auto", "whole", "per_state")



def load_world_for(cfg: CovisitConfig) -> World:
    """The world named by ``cfg.data``: a folder, or the generated world of ``data.generator``."""
    if cfg.data.world_dir:
        from geograph.data import load_world

        return load_world(cfg.data.world_dir)
    if cfg.data.generator == "latent":
        from geograph.data.latent_world import generate_latent_world

        return generate_latent_world(n_pois=cfg.data.n_pois, seed=cfg.data.world_seed)
    from geograph.data.synthetic import generate_world

    return generate_world(n_pois=cfg.data.n_pois, seed=cfg.data.world_seed, n_images=cfg.data.n_images)



def uses_state_loading(cfg: CovisitConfig) -> bool:
    """Whether ``cfg`` trains from per-state loads (see the module docstring).

    ``data.loading``: ``"whole"`` never, ``"per_state"`` always (``data.world_dir`` must be a
    state-partitioned world), ``"auto"`` when ``data.world_dir`` is one and the model family
    is ``gnn`` (the scikit-learn baselines need the whole pair table in one process).
    """
    mode = cfg.data.loading
    if mode == "whole":
        return False
    partitioned = bool(cfg.data.world_dir) and is_state_partitioned(cfg.data.world_dir)
    if mode == "per_state":
        if not partitioned:
            raise ConfigError(
                f"data.loading=per_state needs data.world_dir to be a world partitioned by state "
                f"(pois/state=XX/..., covisits/state=XX/...), got {cfg.data.world_dir!r}; "
                "write one with `geograph world --partition-by state`"
            )
        if cfg.model.family != "gnn":
            raise ConfigError(
                f"data.loading=per_state trains the gnn family only, got model.family={cfg.model.family!r}"
            )
        return True
    return partitioned and cfg.model.family == "gnn"

def prepare(cfg: CovisitConfig, world: World | None = None, progress: bool = False) -> Prepared:
    """Build graph, leak-free split, train-only transforms and state groups (see module doc).

    With no ``world`` and a state-partitioned ``data.world_dir`` (``data.loading``), each rank
    loads only its own states (:func:`geograph.covisit.sharded.prepare_sharded`).
    """
    if world is None and uses_state_loading(cfg):
        return prepare_sharded(cfg)
    if cfg.train.split_states_above > 0 and dist_info().world_size > 1:
        raise ConfigError(
            "train.split_states_above splits states of per-state loading; set data.loading=per_state "
            "with a data.world_dir partitioned by state (`geograph world --partition-by state`), or "
            "train.split_states_above=0"
        )
    if world is None:
        world = load_world_for(cfg)
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
    rank, per_source = split_rank_candidates(g, {k: split.pairs[k] for k in ("val", "test")}, cfg, seed, all_rows)
    rank_feats = {k: pair_features(g, rank[k].src, rank[k].dst) for k in rank}
    nz = split.pairs["train"].visitors[split.pairs["train"].visitors > 0].double()
    weight_scale = float(torch.log1p(nz).mean()) if nz.numel() else 1.0
    baseline = None
    if cfg.model.family == "gnn" and cfg.model.residual_features:
        tr = split.pairs["train"]
        baseline = GravityBaseline.fit(g, tr.src, tr.dst, tr.visitors, cfg.model.mass_feature, feats["train"])
    groups = make_groups(g, split, rank, cfg, weight_scale, baseline)
    return Prepared(cfg, g, split, pre, feats, rank, rank_feats, groups, world.fingerprint(), weight_scale,
                    baseline=baseline, rank_negatives=per_source)


