"""Per-state (out-of-core) preparation of co-visitation training: a rank loads only its states.

Selected by ``data.loading`` (``"per_state"``, or ``"auto"`` when ``data.world_dir`` is a
world whose ``pois`` and ``covisits`` are partitioned by state; see
:func:`uses_state_loading`). Steps, on every rank:

1. **plan** – rows per state from the Parquet footers (:func:`~geograph.data.state_scan.state_sizes`);
   states go to ranks by a balanced partition of their co-visit rows, largest first
   (:func:`~geograph.distributed.balanced_partition`). Nothing else has been read yet.
2. **load and build** – for each of its states, the rank scans that state's partitions (plus
   the halo POIs within ``graph.halo_km`` and cross-state co-visit targets) and builds the
   state's graph (cached per state under ``data.cache_dir``).
3. **split** – per state, seeded by ``(train.seed, state)``, so the pairs of a state do not depend
   on the number of ranks: ``edges`` holds out a share of the state's POIs as sources;
   ``states`` draws the held-out states exactly as the whole-graph split does (from the list of
   states with co-visits) and, in a held-out state, observes ``observed_frac`` of its pairs.
   Zero pairs and ranking candidates are drawn among the state's own POIs.
4. **train-only transforms** – feature standardisation and the NAICS vocabulary are fitted on
   the training states' POIs with cross-rank reductions (:class:`~geograph.distributed.Reduction`):
   every rank gets the statistics one process holding all training states would compute.
   The target scaler and the message-weight scale are reduced the same way.
5. **evaluation pairs** – the val / test pairs of every state are gathered (ids and counts only)
   into one global list in state order, so predictions are summed across ranks and the
   metrics are computed exactly as in the whole-graph path. Their pair features and the
   ranking candidates (with theirs) stay with the state group that scores them: candidates
   are ranked group by group (:func:`~geograph.covisit.model.predict_gnn`), so no rank holds
   the country's candidates, whose number grows with the square of a state's POIs by default.

A state's graph is the graph of its own sub-world (its POIs, halo and pair targets), so
features of cells on a border count the POIs loaded for that state; pairs of a state are
scored on that graph on whichever rank holds it, so the metrics do not depend on the number of
ranks. The whole-graph path (:func:`geograph.covisit.train.prepare`) stays the default for
in-memory worlds and single-file worlds.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import weakref
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from geograph.constants import CELL, COVISITS, POI
from geograph.covisit.config import CovisitConfig
from geograph.covisit.groups import GroupData, Prepared, split_rank_candidates
from geograph.covisit.messages import GravityBaseline, MessageWeights, gravity_design
from geograph.covisit.parts import load_part, owners, split_group
from geograph.data.state_scan import load_state_world, state_sizes
from geograph.distributed import Reduction, balanced_partition, dist_info
from geograph.errors import ConfigError
from geograph.graph.builder import PAIR_COLUMNS, pair_features
from geograph.graph.cache import cached_build
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.partition import StateSubgraph
from geograph.graph.split import SPLITS, CovisitSplit, PairSet, _unordered_key, sample_zero_pairs
from geograph.graph.transforms import FeaturePreprocessor, brand_names, raw_features
from geograph.utils.memory import release_free_memory

EVAL_SPLITS = ("val", "test")




def state_seed(seed: int, state: str) -> int:
    """Seed of one state's draws: a function of the run seed and the state code only."""
    return zlib.crc32(f"{seed}:{state}".encode())


def plan_states(sizes: dict[str, dict[str, int]], world_size: int, shared: Sequence[str] = ()) -> list[list[str]]:
    """States with co-visit rows per rank: balanced by co-visit rows, largest first. ``shared``
    states (trained by every rank, :func:`shared_states`) are left out; with any, a rank may get
    none of the others."""
    weights = {s: float(v["covisits"]) for s, v in sizes.items() if v["covisits"] > 0 and s not in shared}
    if len(weights) < world_size and not shared:
        raise ConfigError(
            f"{world_size} ranks but only {len(weights)} state(s) with co-visits ({sorted(weights)}); "
            "use at most as many ranks as states"
        )
    return [sorted(p) for p in balanced_partition(weights, world_size)]


def shared_states(sizes: dict[str, dict[str, int]], cfg: CovisitConfig, world_size: int) -> list[str]:
    """States every rank trains together (``train.split_states_above``; none on one rank)."""
    above = cfg.train.split_states_above
    if above <= 0 or world_size < 2:
        return []
    return sorted(s for s, v in sizes.items() if v["pois"] > above and v["covisits"] > 0)


def state_roles(states_with_rows: list[str], cfg: CovisitConfig) -> dict[str, str]:
    """Split of each state under the ``states`` protocol, drawn like
    :func:`~geograph.graph.split.split_covisits` draws it from the same sorted list."""
    s = cfg.split
    names = sorted(states_with_rows)
    rng = np.random.default_rng(cfg.train.seed)
    present = np.arange(len(names))[rng.permutation(len(names))]
    n_g = len(present)
    n_test = max(1, int(round(s.test_frac * n_g))) if s.test_frac > 0 and n_g >= 3 else 0
    n_val = max(1, int(round(s.val_frac * n_g))) if s.val_frac > 0 and n_g >= 3 else 0
    if n_g - n_val - n_test < 1 or (s.test_frac > 0 and n_test == 0) or (s.val_frac > 0 and n_val == 0):
        raise ConfigError(f"protocol 'states' needs at least 3 groups with co-visits, found {n_g}")
    roles = {names[i]: "train" for i in present[n_test + n_val :]}
    roles.update({names[i]: "test" for i in present[:n_test]})
    roles.update({names[i]: "val" for i in present[n_test : n_test + n_val]})
    return roles


def split_state(
    graph: GeoGraph, core: Tensor, cfg: CovisitConfig, seed: int, role: str | None
) -> CovisitSplit:
    """Leak-free split of one state's co-visit pairs (rules of :mod:`geograph.graph.split`).

    Args:
        graph: The state's graph; its co-visit rows all start at POIs of the state.
        core: ``(N,)`` mask of the state's own POIs (not halo / targets of other states).
        cfg: The task config (``split`` section).
        seed: :func:`state_seed` of the state.
        role: Under the ``states`` protocol, the state's split; None for ``edges``.
    """
    s = cfg.split
    store = graph.data[POI, COVISITS, POI]
    rows = PairSet(store.edge_index[0], store.edge_index[1], store.visitors)
    zeros = sample_zero_pairs(graph, int(round(s.neg_ratio * len(rows))), seed + 1, among=core)
    allp = PairSet.cat([rows, zeros])
    gen = torch.Generator().manual_seed(seed)
    n_poi = graph.num_pois
    empty = torch.zeros((2, 0), dtype=torch.long)
    _, pair_id = torch.unique(_unordered_key(allp.src, allp.dst, n_poi), return_inverse=True)
    if role is None:  # edges: held-out sources among the state's own POIs
        idx = torch.nonzero(core).flatten()
        perm = idx[torch.randperm(len(idx), generator=gen)]
        n_val, n_test = int(round(s.val_frac * len(idx))), int(round(s.test_frac * len(idx)))
        poi_split = torch.zeros(n_poi, dtype=torch.long)
        poi_split[perm[:n_val]] = 1
        poi_split[perm[n_val : n_val + n_test]] = 2
        unit = torch.zeros(int(pair_id.max()) + 1 if len(allp) else 0, dtype=torch.long)
        unit.scatter_reduce_(0, pair_id, poi_split[allp.src], reduce="amax")
        which = unit[pair_id]
        pairs = {k: allp.select(which == i) for i, k in enumerate(SPLITS)}
        tr = pairs["train"]
        msg = torch.stack([tr.src, tr.dst])[:, tr.visitors > 0]
        return CovisitSplit("edges", pairs, {k: msg for k in SPLITS}, core.clone())
    none = allp.select(torch.zeros(len(allp), dtype=torch.bool))
    pairs = {k: none for k in SPLITS}
    message = {k: empty for k in SPLITS}
    if role == "train":
        pairs["train"] = allp
        base = torch.stack([allp.src, allp.dst])[:, allp.visitors > 0]
        message = {k: base for k in SPLITS}
        return CovisitSplit("states", pairs, message, core.clone())
    nz_units = torch.unique(pair_id[allp.visitors > 0])
    pick = torch.randperm(len(nz_units), generator=gen)[: int(round(s.observed_frac * len(nz_units)))]
    in_obs = torch.isin(pair_id, nz_units[pick])
    obs = in_obs & (allp.visitors > 0)
    message[role] = torch.stack([allp.src[obs], allp.dst[obs]])
    pairs[role] = allp.select(~in_obs)
    return CovisitSplit("states", pairs, message, torch.zeros(n_poi, dtype=torch.bool))


@dataclass
class ShardInfo:
    """What this rank loaded and how the country is spread over ranks.

    Attributes:
        states: This rank's states.
        assignment: States of every rank (index = rank).
        loaded: Per own state: ``core_pois``, ``halo_pois``, ``endpoint_pois``, ``covisit_rows``,
            ``files`` (the part files read).
        sizes: Rows per state from the Parquet metadata (``pois``, ``covisits``).
        summary: Whole-run data counts (``pairs_train``, ``message_train``, ``pois``, ...).
        eval_poi_ids: POI ids of the global val / test index space.
        train_pairs: Training pairs over all ranks.
        peak_state_pois: Largest number of POIs (core + halo + targets) of one state graph here.
        shared: States every rank trains together (``train.split_states_above``).
        part_pois: Per shared state: this rank's ``own`` POIs, its ``halo`` POIs (they send
            its own POIs messages), its ``head`` POIs (destinations of its pairs that send none:
            final embeddings only) and the ``state``'s (its graph's POIs, halo and pair targets
            included).
    """

    states: list[str]
    assignment: list[list[str]]
    loaded: dict[str, dict]
    sizes: dict[str, dict[str, int]]
    summary: dict[str, float] = field(default_factory=dict)
    eval_poi_ids: list[str] = field(default_factory=list)
    train_pairs: int = 0
    peak_state_pois: int = 0
    shared: list[str] = field(default_factory=list)
    part_pois: dict[str, dict[str, int]] = field(default_factory=dict)


def disjoint_union(graphs: list[HeteroData]) -> tuple[HeteroData, list[int]]:
    """One ``HeteroData`` holding ``graphs`` side by side (no edge between them); returns it and
    each graph's first POI index. Node attributes are concatenated, edge indices and the
    POI -> cell pointer shifted."""
    out = HeteroData()
    node_types = graphs[0].node_types
    offsets = {nt: np.cumsum([0] + [int(g[nt].num_nodes) for g in graphs]).tolist() for nt in node_types}
    for nt in node_types:
        out[nt].num_nodes = offsets[nt][-1]
        for key in graphs[0][nt].keys():
            if key == "num_nodes":
                continue
            vals = [g[nt][key] for g in graphs]
            if nt == POI and key == "cell":
                vals = [v + offsets[CELL][i] for i, v in enumerate(vals)]
            out[nt][key] = torch.cat(vals)
    for et in graphs[0].edge_types:
        s, _, d = et
        for key in graphs[0][et].keys():
            vals = [g[et][key] for g in graphs]
            if key == "edge_index":
                vals = [v + torch.tensor([[offsets[s][i]], [offsets[d][i]]]) for i, v in enumerate(vals)]
                out[et][key] = torch.cat(vals, 1)
            else:
                out[et][key] = torch.cat(vals)
    return out, offsets[POI][:-1]


def pack_states(pois: dict[str, int], max_pois: int) -> list[list[str]]:
    """First-fit packing of states into groups of at most ``max_pois`` POIs, largest first (a
    state above the limit stays alone), as :meth:`StatePartitioner.group_states` packs them."""
    groups: list[list[str]] = []
    loads: list[int] = []
    for s in sorted(pois, key=lambda x: (-pois[x], x)):
        for i in range(len(groups)):
            if loads[i] + pois[s] <= max_pois:
                groups[i].append(s)
                loads[i] += pois[s]
                break
        else:
            groups.append([s])
            loads.append(pois[s])
    return groups


def prepare_sharded(cfg: CovisitConfig):
    """Build this rank's :class:`~geograph.covisit.train.Prepared` from its states only."""
    info = dist_info()
    red = Reduction()
    folder = Path(str(cfg.data.world_dir))
    if cfg.split.protocol not in ("edges", "states"):
        raise ConfigError(
            f"per-state loading supports split.protocol 'edges' or 'states', got {cfg.split.protocol!r}; "
            "set data.loading=whole for spatial hold-outs"
        )
    sizes = state_sizes(folder)
    shared = shared_states(sizes, cfg, info.world_size)
    assignment = plan_states(sizes, info.world_size, shared)
    mine = assignment[info.rank]
    # a shared state is loaded, built and split by every rank (the same draws everywhere); its
    # statistics, counts and evaluation pairs are contributed by one rank only
    counted = set(mine) | {s for i, s in enumerate(shared) if i % info.world_size == info.rank}
    with_rows = sorted(s for s, v in sizes.items() if v["covisits"] > 0)
    roles = state_roles(with_rows, cfg) if cfg.split.protocol == "states" else {}
    seed = cfg.train.seed

    spill = Path(tempfile.mkdtemp(prefix=f"geograph-rank{info.rank}-"))
    # pass 1, one state in memory at a time: load, build, split; keep only what the
    # transforms and the evaluation index need, spill the rest to disk
    poi_x, cell_x, codes, train_vis = [], [], [], []
    brands: set[str] = set()
    log_nz_sum, log_nz_n = 0.0, 0
    use_baseline = cfg.model.family == "gnn" and cfg.model.residual_features
    ata, aty = np.zeros((4, 4)), np.zeros(4)  # normal equations of the residual baseline
    mine_eval: dict[str, dict] = {}
    loaded_all: dict[str, dict] = {}
    core_pois: dict[str, int] = {}
    train_start: dict[str, int] = {}
    n_train, n_msg, peak_pois = 0, 0, 0
    train_ids: dict[str, Tensor] = {}  # per shared state: its training pairs' rows here (-1: another rank's)
    for name in mine + shared:
        count = name in counted
        load = load_state_world(folder, name, cfg.graph.halo_km)
        graph = cached_build(load.world, cfg.graph, cfg.data.cache_dir)
        core = torch.zeros(graph.num_pois, dtype=torch.bool)
        core[: load.core_pois] = True  # the state's own POIs are the first rows of its POI table
        ss = state_seed(seed, name)
        split = split_state(graph, core, cfg, ss, roles.get(name))
        rows = graph.data[POI, COVISITS, POI].edge_index
        # split.rank_max_pairs holds per state here: what a state ranks does not depend on the ranks
        rank, _ = split_rank_candidates(graph, {k: split.pairs[k] for k in EVAL_SPLITS}, cfg, ss, rows, f" in {name}")
        info_of = {
            "core_pois": load.core_pois,
            "halo_pois": load.halo_pois,
            "endpoint_pois": load.endpoint_pois,
            "covisit_rows": int(load.world.covisits.height),
            "files": load.files,
            "fingerprint": load.world.fingerprint(),
        }
        if count:
            loaded_all[name] = info_of
        del load
        p = graph.data[POI]
        m = split.train_poi_mask if count else torch.zeros_like(split.train_poi_mask)
        poi_x.append(raw_features(p)[m])
        cell_x.append(raw_features(graph.data[CELL])[torch.unique(p.cell[m])])
        codes.append(p.naics_code[m])
        brands.update(brand_names(graph, m))
        tr = split.pairs["train"]
        if name in shared:  # a rank holds the training pairs whose source its part owns
            kept = owners(graph.data, info.world_size)[POI][tr.src] == info.rank
            train_ids[name] = torch.full((len(tr),), -1, dtype=torch.long)
            train_ids[name][kept] = n_train + torch.arange(int(kept.sum()))
            tr = tr.select(kept)
        nz = torch.log1p(tr.visitors[tr.visitors > 0].double())
        log_nz_sum, log_nz_n = log_nz_sum + float(nz.sum()), log_nz_n + nz.numel()
        if use_baseline and len(tr):
            x = gravity_design(cfg.model.mass_feature, graph, tr.src, tr.dst)
            a, b = GravityBaseline.normal_equations(x, np.log1p(tr.visitors.double().numpy()))
            ata, aty = ata + a, aty + b
        train_start[name] = n_train
        n_train += len(tr)
        n_msg += int(split.message["train"].size(1)) if count else 0
        train_vis.append(tr.visitors)
        if name not in shared:
            core_pois[name] = int(core.sum())
        peak_pois = max(peak_pois, graph.num_pois)
        if count:
            mine_eval[name] = _eval_entry(graph, split, rank)
        torch.save(
            {
                "graph": graph.to_state(),
                "core": core,
                "pairs": {
                    k: (split.pairs[k].src, split.pairs[k].dst, split.pairs[k].visitors) for k in SPLITS
                },
                "message": dict(split.message),
                "rank": {k: (rank[k].src, rank[k].dst) for k in EVAL_SPLITS},
            },
            spill / f"state-{name}.pt",
        )
        del graph, split, rank
        release_free_memory()  # the next state's graph starts from the pages this one held

    # train-only transforms and scales, reduced over ranks
    pre = FeaturePreprocessor().fit_arrays(
        torch.cat(poi_x), torch.cat(cell_x), torch.cat(codes), red, brands=sorted(brands)
    )
    del poi_x, cell_x, codes
    tot = red.sum(torch.tensor([log_nz_sum, float(log_nz_n)], dtype=torch.float64))
    weight_scale = float(tot[0] / tot[1]) if tot[1] > 0 else 1.0
    baseline = None
    if use_baseline:  # the same least-squares fit as one process over all training pairs
        sums = red.sum(torch.from_numpy(np.concatenate([ata.ravel(), aty])))
        baseline = GravityBaseline.solve(sums[:16].reshape(4, 4).numpy(), sums[16:].numpy(), cfg.model.mass_feature)

    # global val / test index space: every state's pairs (ids and counts only), in state order;
    # ranking candidates get none: each group ranks its own (predict_gnn), so a rank holds the
    # candidates of one group at a time, not the country's
    everything: dict[str, dict] = {}
    for part in red.gather(mine_eval):
        everything.update(part)
    del mine_eval
    eval_ids: list[str] = []
    glob: dict[str, list[PairSet]] = {k: [] for k in EVAL_SPLITS}
    start = {}  # (state, split) -> first global pair id
    count = dict.fromkeys(EVAL_SPLITS, 0)
    n_rank = dict.fromkeys(EVAL_SPLITS, 0)
    for name in sorted(everything):
        e = everything[name]
        off = len(eval_ids)
        eval_ids.extend(e["ids"])
        for k in EVAL_SPLITS:
            s_, d_, v_, z_ = e[k]
            glob[k].append(PairSet(s_ + off, d_ + off, v_, z_))
            start[name, k] = count[k]
            count[k] += len(s_)
            n_rank[k] += e[f"rank_{k}"]
    del everything
    eval_pairs = {k: PairSet.cat(glob[k]) for k in EVAL_SPLITS}
    # pair features of the val / test pairs and ranking candidates stay with their state group
    # (spilled with it, scored by the rank that holds it); only this rank's training pairs'
    # features are kept in memory, as training indexes them by pair id
    feats = {k: torch.zeros(0, PAIR_COLUMNS) for k in EVAL_SPLITS}
    feats["train"] = torch.zeros(n_train, PAIR_COLUMNS)
    zeros = torch.zeros(0, dtype=torch.long)
    # this rank's training pairs: only their counts and features are used (indices stay per state)
    tv = torch.cat(train_vis) if train_vis else zeros
    train = PairSet(torch.zeros(n_train, dtype=torch.long), torch.zeros(n_train, dtype=torch.long), tv)

    # pass 2, one group in memory at a time: transform, pair features, disjoint union, spill
    paths, dims, n_pairs, shared_idx = [], None, [], set()
    part_pois: dict[str, dict[str, int]] = {}
    # own states packed into groups, then every shared state alone, in the same order on every rank
    for names in pack_states(core_pois, cfg.train.max_group_pois) + [[s] for s in shared]:
        members = sorted(names)
        graphs, splits = [], []
        for name in members:
            st = torch.load(spill / f"state-{name}.pt", weights_only=True)
            (spill / f"state-{name}.pt").unlink()
            g = pre.transform(GeoGraph.from_state(st["graph"]))
            graphs.append(g)
            splits.append(st)
            src, dst, _ = st["pairs"]["train"]
            if name in train_ids:
                kept = train_ids[name] >= 0
                feats["train"][train_ids[name][kept]] = pair_features(g, src[kept], dst[kept])
            else:
                feats["train"][train_start[name] : train_start[name] + len(src)] = pair_features(g, src, dst)
            st["feats"] = {k: pair_features(g, *st["pairs"][k][:2]) for k in EVAL_SPLITS}
            st["feats"].update({f"rank_{k}": pair_features(g, *st["rank"][k]) for k in EVAL_SPLITS})
        data, offs = disjoint_union([g.data for g in graphs])
        if dims is None:
            dims = _dims(data)
        out: dict = {
            "state": "+".join(members),
            "data": GeoGraph(data=data, index={}).to_state(),
            "core": torch.cat([st["core"] for st in splits]),
            "pairs": {},
            "local": {},
            "message": {},
            "rank_ids": {},
            "rank_local": {},
            "feats": {k: torch.cat([st["feats"][k] for st in splits]) for k in splits[0]["feats"]},
        }
        weights_of = [MessageWeights(g, weight_scale, baseline) for g in graphs]
        for k in SPLITS:
            ids, loc, msgs, ws = [], [], [], []
            for name, weights, st, off in zip(members, weights_of, splits, offs, strict=True):
                src, dst, _ = st["pairs"][k]
                first = train_start[name] if k == "train" else start[name, k]
                ids.append(train_ids[name] if k == "train" and name in train_ids else torch.arange(first, first + len(src)))
                loc.append(torch.stack([src, dst]) + off)
                msgs.append(st["message"][k] + off)
                ws.append(weights(st["message"][k]))
            out["pairs"][k] = torch.cat(ids)
            out["local"][k] = torch.cat(loc, 1)
            out["message"][k] = (torch.cat(msgs, 1), torch.cat(ws))
        for k in EVAL_SPLITS:  # candidates are numbered within the group
            loc = [torch.stack(st["rank"][k]) + off for st, off in zip(splits, offs, strict=True)]
            out["rank_local"][k] = torch.cat(loc, 1)
            out["rank_ids"][k] = torch.arange(out["rank_local"][k].size(1))
        if members[0] in shared:  # this rank keeps its part of the state and the part's halo
            msgs = torch.cat([out["message"][k][0] for k in SPLITS], 1)
            every = torch.cat([out["local"][k] for k in SPLITS] + [out["rank_local"][k] for k in EVAL_SPLITS], 1)
            part = split_group(data, msgs, every, info.rank, info.world_size)
            if not torch.equal(part.own[out["local"]["train"][0]], out["pairs"]["train"] >= 0):
                raise RuntimeError(f"the parts of state {members[0]} differ between preparing and splitting")
            out["data"] = GeoGraph(data=part.data, index={}).to_state()
            out["part"] = part.to_state()
            # keep what this rank uses: message rows touching its POIs, and the val / test pairs
            # and candidates whose source it owns (the training pairs stay whole: every rank
            # draws the same folds over them)
            for k in SPLITS:
                m, w = out["message"][k]
                keep = part.messages(m)
                out["message"][k] = (m[:, keep], w[keep])
            for k in EVAL_SPLITS:
                sel = part.owned(out["local"][k][0])
                out["pairs"][k], out["local"][k] = out["pairs"][k][sel], out["local"][k][:, sel]
                out["feats"][k] = out["feats"][k][sel]
                sel = part.owned(out["rank_local"][k][0])
                out["rank_local"][k], out["rank_ids"][k] = out["rank_local"][k][:, sel], out["rank_ids"][k][sel]
                out["feats"][f"rank_{k}"] = out["feats"][f"rank_{k}"][sel]
            shared_idx.add(len(paths))
            n_own = int(part.plan.n_own[POI])
            part_pois[members[0]] = {"own": n_own, "halo": int(part.data[POI].num_nodes) - n_own,
                                     "head": int(part.plan.head.n_halo[POI]), "state": int(part.n_pois)}
            del part
        n_pairs.append(int(out["pairs"]["train"].numel()))
        path = spill / f"group-{len(paths)}.pt"
        torch.save(out, path)
        paths.append(path)
        del graphs, splits, data, out
        release_free_memory()
    groups = SpilledGroups(paths, spill, n_pairs, shared_idx)

    # whole-run counts (one all-reduce) and a fingerprint of every state's data
    n_core = sum(v["core_pois"] for v in loaded_all.values())
    tot = red.sum(torch.tensor([n_train, n_msg, n_core], dtype=torch.float64))
    summary = {
        "pairs_train": float(tot[0]),
        "pairs_val": float(len(eval_pairs["val"])),
        "pairs_test": float(len(eval_pairs["test"])),
        "rank_candidates_val": float(n_rank["val"]),
        "rank_candidates_test": float(n_rank["test"]),
        "message_train": float(tot[1]),
        "pois": float(tot[2]),
    }
    fps = sorted(
        x for part in red.gather([(n, v["fingerprint"]) for n, v in loaded_all.items()]) for x in part
    )
    fingerprint = hashlib.sha256(repr(fps).encode()).hexdigest()[:16]
    shard = ShardInfo(
        states=mine,
        assignment=assignment,
        loaded=loaded_all,
        sizes=sizes,
        summary=summary,
        eval_poi_ids=eval_ids,
        train_pairs=int(tot[0]),
        peak_state_pois=peak_pois,
        shared=shared,
        part_pois=part_pois,
    )
    graph = GeoGraph(data=dims, index={"states": mine}, config=cfg.graph.to_dict())
    split = CovisitSplit(
        cfg.split.protocol,
        {"train": train, **eval_pairs},
        {k: torch.zeros((2, 0), dtype=torch.long) for k in SPLITS},
        torch.zeros(0, dtype=torch.bool),
        {},
    )
    return Prepared(cfg, graph, split, pre, feats, {}, {}, groups, fingerprint, weight_scale, shard, baseline)


def _eval_entry(graph: GeoGraph, split: CovisitSplit, rank: dict[str, PairSet]) -> dict:
    """A state's val / test pairs over its own endpoint list (ids), and its number of ranking
    candidates per split."""
    ends = torch.unique(torch.cat([torch.cat([split.pairs[k].src, split.pairs[k].dst]) for k in EVAL_SPLITS]))
    local = torch.full((graph.num_pois,), -1, dtype=torch.long)
    local[ends] = torch.arange(len(ends))
    out: dict = {"ids": np.asarray(graph.index["poi_ids"], dtype=object)[ends.numpy()].tolist()}
    for k in EVAL_SPLITS:
        pk = split.pairs[k]
        out[k] = (local[pk.src], local[pk.dst], pk.visitors, ~pk.observed)
        out[f"rank_{k}"] = len(rank[k])
    return out


def _dims(data: HeteroData) -> HeteroData:
    """Zero-row feature tensors of the widths the model is built for."""
    out = HeteroData()
    for nt in data.node_types:
        if "x" in data[nt]:
            out[nt].x = data[nt].x[:0]
    return out


class SpilledGroups(Sequence):
    """This rank's state groups, kept on disk and loaded one at a time (the last one stays
    loaded), so a rank's memory holds one group's graph, not all of its states'. ``train_pairs``
    (training pairs per group) and ``shared`` (indices of the groups every rank trains) are known
    without a load.

    Files are plain tensors and containers (``torch.load(weights_only=True)``) in a private
    temporary folder, removed when this object goes away.
    """

    def __init__(self, paths: list[Path], folder: Path, train_pairs: list[int] | None = None,
                 shared: set[int] | None = None) -> None:
        self.paths = list(paths)
        self.train_pairs = list(train_pairs) if train_pairs is not None else None
        self.shared = set(shared or ())
        self._cache: tuple[int, object] | None = None
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"SpilledGroups(groups={len(self.paths)})"

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]
        if self._cache is not None and self._cache[0] == i:
            return self._cache[1]
        st = torch.load(self.paths[i], weights_only=True)
        data = GeoGraph.from_state(st["data"]).data
        n = data[POI].num_nodes
        core = st["core"]
        if "part" in st:  # this rank's part of a shared state: its rows' group POIs
            of_row = torch.zeros(n, dtype=torch.long)
            loc = st["part"]["poi_local"]
            held = torch.nonzero((loc >= 0) & (loc < n)).flatten()
            of_row[st["part"]["poi_local"][held]] = held
            core = core[of_row]
        gd = GroupData(sub=StateSubgraph(st["state"], data, torch.arange(n), core, torch.arange(n)))
        gd.pairs, gd.local, gd.rank_ids, gd.rank_local = (
            st["pairs"],
            st["local"],
            st["rank_ids"],
            st["rank_local"],
        )
        gd.message = {k: tuple(v) for k, v in st["message"].items()}
        gd.feats = st["feats"]
        if "part" in st:
            gd.part = load_part(data, st["part"])
        self._cache = (i, gd)
        return gd
