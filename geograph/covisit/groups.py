"""Co-visitation state groups: the prepared data a task run trains on.

State-wise decomposition: each state (or a pack of small states) is one group with its own
subgraph, message edges and pairs; training walks the groups, ranks own disjoint sets of them."""


from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from geograph.constants import POI
from geograph.covisit.config import CovisitConfig
from geograph.covisit.messages import GravityBaseline, MessageWeights
from geograph.covisit.parts import GroupPart
from geograph.distributed import balanced_partition, dist_info
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.partition import StatePartitioner, StateSubgraph
from geograph.graph.split import SPLITS, CovisitSplit, PairSet
from geograph.graph.transforms import FeaturePreprocessor


# ----------------------------------------------------------------------------------------
# data preparation
# ----------------------------------------------------------------------------------------
@dataclass
class GroupData:
    """A group of states packed into one graph, with its pairs in local indices.

    Attributes:
        sub: The state-group subgraph.
        pairs: Per split: indices into the global split pair list that belong to this group.
        local: Per split: local ``(2, E)`` pair indices.
        message: Per split: local message edges ``(2, M)`` and weights ``(M,)``.
        rank_ids / rank_local: Ranking candidates of the test and val splits in this group.
        feats: Pair features of this group's val / test pairs (``"val"``, ``"test"``) and
            ranking candidates (``"rank_val"``, ``"rank_test"``), in the order of ``pairs`` /
            ``rank_ids``, when they are kept with the group (per-state loading) instead of in
            :attr:`Prepared.pair_feats` / :attr:`Prepared.rank_feats`.
        part: For a state every rank trains (``train.split_states_above``): this rank's part
            (:class:`~geograph.covisit.parts.GroupPart`); ``sub.data`` is then the part's graph,
            while ``pairs``, ``local``, ``message`` and ``rank_local`` keep the whole state's
            numbering: all its training pairs (every rank draws the same folds), the message
            rows that touch this rank's POIs, and the val / test pairs and candidates whose
            source it owns.
    """

    sub: StateSubgraph
    pairs: dict[str, Tensor] = field(default_factory=dict)
    local: dict[str, Tensor] = field(default_factory=dict)
    message: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    rank_ids: dict[str, Tensor] = field(default_factory=dict)
    rank_local: dict[str, Tensor] = field(default_factory=dict)
    feats: dict[str, Tensor] = field(default_factory=dict)
    part: GroupPart | None = None


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
    # ranking candidates per source of each split (-1: every POI of the state), after rank_max_pairs
    rank_negatives: dict[str, int] = field(default_factory=dict)


def rank_negatives_for(graph: GeoGraph, pairs: PairSet, n: int, max_pairs: int) -> int:
    """``n`` (candidates per source, ``-1``: every POI of the source's state), or when ``-1``
    would make more than ``max_pairs`` candidates for the sources of ``pairs``, the count per
    source that stays within it (``max_pairs // sources``, at least 1)."""
    if n != -1 or len(pairs) == 0:
        return n
    state = graph.data[POI].state
    sources = torch.unique(pairs.src[pairs.visitors > 0])
    every = int(torch.bincount(state)[state[sources]].sum())  # an upper bound: rows not excluded
    return -1 if every <= max_pairs else max(1, max_pairs // max(len(sources), 1))


def split_rank_candidates(
    graph: GeoGraph, pairs: dict[str, PairSet], cfg: CovisitConfig, seed: int, exclude: Tensor, where: str = ""
) -> tuple[dict[str, PairSet], dict[str, int]]:
    """:func:`rank_candidates` of each split in ``pairs`` (the split ``i`` seeded ``seed + 7 + i``),
    with ``split.rank_negatives`` cut to ``split.rank_max_pairs`` (:func:`rank_negatives_for`),
    which a warning says, naming the split and ``where``. Returns the candidates and the count
    per source each split got (-1: every POI of the state)."""
    s = cfg.split
    per_source = {k: rank_negatives_for(graph, pk, s.rank_negatives, s.rank_max_pairs) for k, pk in pairs.items()}
    for k, n in per_source.items():
        if s.rank_negatives == -1 and n != -1:
            warnings.warn(
                f"ranking metrics of {k}{where}: every POI of each source's state would make more than "
                f"split.rank_max_pairs={s.rank_max_pairs:,} candidates; each source is ranked against "
                f"{n:,} random POIs of its state instead (set split.rank_max_pairs higher to rank them all)",
                stacklevel=2,
            )
    rank = {k: rank_candidates(graph, pk, per_source[k], seed + 7 + i, exclude) for i, (k, pk) in enumerate(pairs.items())}
    return rank, per_source


def rank_candidates(graph: GeoGraph, pairs: PairSet, n: int, seed: int, exclude: Tensor) -> PairSet:
    """Non-visited ranking candidates: for each source with a positive pair, ``n`` random POIs
    of the same state that have no co-visit row with it in either direction (relevance 0);
    ``n = -1``: all of them, so each source is ranked against every POI of its state."""
    empty = torch.zeros(0, dtype=torch.long)
    if n == 0 or len(pairs) == 0:
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
        # n = -1 walks a permutation of the whole state; n > 0 draws positions until n are
        # taken (O(n) per source instead of O(state), which decides the cost at 1M POIs)
        draws = _permuted(pool, rng) if n < 0 else _drawn(pool, rng, n)
        k = 0
        for d in draws:
            if d == s or s * n_poi + d in taken:
                continue
            out_s.append(s)
            out_d.append(d)
            taken.add(s * n_poi + d)
            k += 1
            if k == n:
                break
    s_t = torch.tensor(out_s, dtype=torch.long)
    return PairSet(s_t, torch.tensor(out_d, dtype=torch.long), torch.zeros(len(out_s), dtype=torch.long))


def _permuted(pool: np.ndarray, rng: np.random.Generator):
    yield from pool[rng.permutation(len(pool))].tolist()


def _drawn(pool: np.ndarray, rng: np.random.Generator, n: int):
    """Distinct members of ``pool`` in random order, drawn in batches of about ``2 n``."""
    seen: set[int] = set()
    while len(seen) < len(pool):
        for j in rng.integers(0, len(pool), size=2 * n + 8).tolist():
            if j not in seen:
                seen.add(j)
                yield int(pool[j])
        if len(seen) * 2 > len(pool):  # nearly exhausted: finish with a permutation of the rest
            rest = np.setdiff1d(np.arange(len(pool)), np.fromiter(seen, dtype=np.int64, count=len(seen)))
            yield from pool[rest[rng.permutation(len(rest))]].tolist()
            return


def make_groups(
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
