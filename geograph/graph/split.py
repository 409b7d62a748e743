"""Leak-free supervision splits of co-visit pairs.

Two protocols:

* ``"edges"`` (transductive): a random share of POIs are held-out *sources*; all rows they
  send (co-visits, explicit zeros and sampled zero pairs) are scored in val / test, both
  directions of a pair always in the same split. The message-passing graph at evaluation time holds only the
  non-zero *training* pairs, so a scored pair is never visible to the encoder.
* ``"states"`` (inductive, as in the NAICS co-visitation paper) or ``"h3:<res>"`` (spatial
  hold-out by parent H3 cell of the source POI): whole groups are held out (the two directions
  of one pair always share a split, the stricter one). In a held-out
  group a fraction ``observed_frac`` of its non-zero unordered pairs is *observed* (message
  edges only, neither direction scored) and the rest is scored, so the model meets a new region whose co-visits are
  partly known; it never trained on any pair of that group.

Zero pairs: rows with ``visitors == 0`` are kept, and ``neg_ratio`` x (number of rows) extra
pairs of POIs in the same state that have no co-visit row are sampled as zeros. During
training the trainer also hides each batch's own targets from the message graph
(see :mod:`geograph.covisit.train`).

Everything is seeded: the same seed gives the same split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from geograph.constants import COVISITS, POI
from geograph.errors import ConfigError
from geograph.geo.h3cells import cells_to_strings, latlng_to_cell_ids
from geograph.graph.geograph_data import GeoGraph

SPLITS = ("train", "val", "test")


@dataclass
class PairSet:
    """Supervision pairs. Shapes: every tensor is ``(E,)``.

    ``sampled`` marks the zero pairs drawn by :func:`sample_zero_pairs` (pairs with no co-visit
    row); the others are *observed* rows of the co-visit table. None: all observed.
    """

    src: torch.Tensor
    dst: torch.Tensor
    visitors: torch.Tensor
    sampled: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.src.numel())

    @property
    def observed(self) -> torch.Tensor:
        """``(E,)`` bool: the pairs that are rows of the co-visit table (not sampled zeros)."""
        if self.sampled is None:
            return torch.ones(len(self), dtype=torch.bool)
        return ~self.sampled

    def select(self, mask: torch.Tensor) -> PairSet:
        return PairSet(self.src[mask], self.dst[mask], self.visitors[mask],
                       None if self.sampled is None else self.sampled[mask])

    @staticmethod
    def cat(parts: list[PairSet]) -> PairSet:
        src, dst, vis = (torch.cat([getattr(p, k) for p in parts]) for k in ("src", "dst", "visitors"))
        if all(p.sampled is None for p in parts):
            return PairSet(src, dst, vis)
        return PairSet(src, dst, vis, torch.cat([~p.observed for p in parts]))


@dataclass
class CovisitSplit:
    """Result of :func:`split_covisits`.

    Attributes:
        protocol: ``"edges"``, ``"states"`` or ``"h3:<res>"``.
        pairs: Scored pairs per split.
        message: Message-passing co-visit edges ``(2, M)`` visible when scoring each split.
        train_poi_mask: POIs whose features and NAICS codes may be used to fit transforms.
        groups: Held-out group names per split (empty for ``"edges"``).
    """

    protocol: str
    pairs: dict[str, PairSet]
    message: dict[str, torch.Tensor]
    train_poi_mask: torch.Tensor
    groups: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        out = {f"pairs_{s}": len(self.pairs[s]) for s in SPLITS}
        out.update({f"message_{s}": int(self.message[s].size(1)) for s in SPLITS})
        return out


def sample_zero_pairs(
    graph: GeoGraph, count: int, seed: int, exclude: torch.Tensor | None = None, among: torch.Tensor | None = None
) -> PairSet:
    """Sample ``count`` distinct same-state POI pairs with no co-visit row (visitors 0).

    ``among`` (a ``(N,)`` bool mask, default all POIs) limits both ends to those POIs, e.g. a
    state's own POIs in a state graph that also holds halo POIs of its neighbours.
    """
    p = graph.data[POI]
    n = p.num_nodes
    state = p.state.numpy()
    top = int(state.max()) if len(state) else 0
    if among is not None:
        top += 1  # a pseudo-state for the POIs left out, never drawn (its weight is set to 0)
        state = np.where(among.numpy(), state, top)
    rng = np.random.default_rng(seed)
    existing = graph.data[POI, COVISITS, POI].edge_index if exclude is None else exclude
    # keys of unordered pairs: a row (a, b) also rules out (b, a), and (a, b), (b, a) are not
    # both sampled; otherwise a pair listed once would get a false zero label for its reverse
    taken = set(_unordered_key(existing[0], existing[1], n).tolist())
    order = np.argsort(state, kind="stable")
    bounds = np.searchsorted(state[order], np.arange(top + 2))
    sizes = np.diff(bounds)
    weights = sizes * np.maximum(sizes - 1, 0)
    if among is not None:
        weights[-1] = 0
    if count <= 0 or weights.sum() == 0:
        return PairSet(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                       torch.zeros(0, dtype=torch.bool))
    out_s: list[np.ndarray] = []
    out_d: list[np.ndarray] = []
    got = 0
    for _ in range(20):
        need = int((count - got) * 1.3) + 16
        st = rng.choice(len(weights), size=need, p=weights / weights.sum())
        a = order[bounds[st] + (rng.random(need) * sizes[st]).astype(np.int64)]
        b = order[bounds[st] + (rng.random(need) * sizes[st]).astype(np.int64)]
        key = np.minimum(a, b) * n + np.maximum(a, b)
        ok = a != b
        key, a, b = key[ok], a[ok], b[ok]
        _, first = np.unique(key, return_index=True)
        first.sort()
        keep = [i for i in first.tolist() if key[i] not in taken]
        keep = keep[: count - got]
        taken.update(key[keep].tolist())
        out_s.append(a[keep])
        out_d.append(b[keep])
        got += len(keep)
        if got >= count:
            break
    s = torch.from_numpy(np.concatenate(out_s)).long()
    d = torch.from_numpy(np.concatenate(out_d)).long()
    return PairSet(s, d, torch.zeros(len(s), dtype=torch.long), torch.ones(len(s), dtype=torch.bool))


def _unordered_key(src, dst, n: int):
    """``min * n + max``: one key for both directions of a pair (tensors or arrays)."""
    if isinstance(src, torch.Tensor):
        return torch.minimum(src, dst) * n + torch.maximum(src, dst)
    return np.minimum(src, dst) * n + np.maximum(src, dst)


def _group_keys(graph: GeoGraph, protocol: str) -> tuple[np.ndarray, list[str]]:
    p = graph.data[POI]
    if protocol == "states":
        return p.state.numpy(), list(graph.index["states"])
    res = int(protocol.split(":", 1)[1])
    if not 0 <= res <= 15:
        raise ConfigError(f"spatial hold-out resolution must be 0..15, got {res}")
    pos = p.pos.double().numpy()
    names, inv = np.unique(latlng_to_cell_ids(pos[:, 0], pos[:, 1], res), return_inverse=True)
    return inv, cells_to_strings(names)


def split_covisits(
    graph: GeoGraph,
    protocol: str = "edges",
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    neg_ratio: float = 1.0,
    observed_frac: float = 0.5,
    seed: int = 0,
) -> CovisitSplit:
    """Split co-visit pairs into train / val / test without leakage (see module docstring).

    Args:
        graph: A built graph.
        protocol: ``"edges"``, ``"states"`` or ``"h3:<res>"``.
        val_frac: Fraction of source POIs (``edges``) or groups (hold-out) for validation.
        test_frac: Same, for test.
        neg_ratio: Sampled zero pairs per co-visit row.
        observed_frac: In held-out groups, fraction of non-zero pairs used as message edges.
        seed: Random seed.
    """
    if protocol not in ("edges", "states") and not protocol.startswith("h3:"):
        raise ConfigError(f"split protocol must be 'edges', 'states' or 'h3:<res>', got {protocol!r}")
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ConfigError(f"val_frac + test_frac must be in [0, 1), got {val_frac} + {test_frac}")
    if not 0 <= observed_frac < 1:
        raise ConfigError(f"observed_frac must be in [0, 1), got {observed_frac}")
    store = graph.data[POI, COVISITS, POI]
    rows = PairSet(store.edge_index[0], store.edge_index[1], store.visitors)
    zeros = sample_zero_pairs(graph, int(round(neg_ratio * len(rows))), seed + 1)
    allp = PairSet.cat([rows, zeros])
    gen = torch.Generator().manual_seed(seed)
    n_poi = graph.num_pois

    if protocol == "edges":
        # Held-out sources: a random val_frac / test_frac of POIs are held-out *sources*; every
        # row they send goes to their split, so each held-out source keeps its whole candidate
        # list for ranking. Rows are grouped into unordered pairs and a pair takes the strictest
        # split of its rows (test > val > train), so the reverse of a scored pair is never a
        # message edge.
        perm = torch.randperm(n_poi, generator=gen)
        n_val = int(round(val_frac * n_poi))
        n_test = int(round(test_frac * n_poi))
        poi_split = torch.zeros(n_poi, dtype=torch.long)
        poi_split[perm[:n_val]] = 1
        poi_split[perm[n_val : n_val + n_test]] = 2
        lo = torch.minimum(allp.src, allp.dst)
        hi = torch.maximum(allp.src, allp.dst)
        _, pair_id = torch.unique(lo * n_poi + hi, return_inverse=True)
        row_split = poi_split[allp.src]
        unit_split = torch.zeros(int(pair_id.max()) + 1 if len(allp) else 0, dtype=torch.long)
        unit_split.scatter_reduce_(0, pair_id, row_split, reduce="amax")
        which = unit_split[pair_id]
        pairs = {s: allp.select(which == i) for i, s in enumerate(("train", "val", "test"))}
        tr = pairs["train"]
        msg = torch.stack([tr.src, tr.dst])[:, tr.visitors > 0]
        return CovisitSplit(protocol, pairs, {s: msg for s in SPLITS}, torch.ones(n_poi, dtype=torch.bool))

    key, names = _group_keys(graph, protocol)
    present = np.unique(key[allp.src.numpy()])
    rng = np.random.default_rng(seed)
    present = present[rng.permutation(len(present))]
    n_g = len(present)
    n_test = max(1, int(round(test_frac * n_g))) if test_frac > 0 and n_g >= 3 else 0
    n_val = max(1, int(round(val_frac * n_g))) if val_frac > 0 and n_g >= 3 else 0
    if n_g - n_val - n_test < 1 or (test_frac > 0 and n_test == 0) or (val_frac > 0 and n_val == 0):
        raise ConfigError(f"protocol {protocol!r} needs at least 3 groups with co-visits, found {n_g}")
    grp = {"test": present[:n_test], "val": present[n_test : n_test + n_val], "train": present[n_test + n_val :]}
    # a row goes to the split of its source's group; the rows of one unordered pair take the
    # strictest of their splits (test > val > train), so the reverse of a scored pair is never
    # a training message edge (directional data lists both directions, possibly across groups)
    group_split = np.zeros(len(names), dtype=np.int64)
    group_split[grp["val"]] = 1
    group_split[grp["test"]] = 2
    _, pair_id = torch.unique(_unordered_key(allp.src, allp.dst, n_poi), return_inverse=True)
    row_split = torch.from_numpy(group_split[key[allp.src.numpy()]])
    unit_split = torch.zeros(int(pair_id.max()) + 1 if len(allp) else 0, dtype=torch.long)
    unit_split.scatter_reduce_(0, pair_id, row_split, reduce="amax")
    which = unit_split[pair_id]
    pairs: dict[str, PairSet] = {}
    observed: dict[str, torch.Tensor] = {}
    for i, s in enumerate(SPLITS):
        sel_mask = which == i
        sel = allp.select(sel_mask)
        if s == "train":
            pairs[s] = sel
            continue
        # observe whole unordered pairs: both directions of an observed pair are message
        # edges (the non-zero ones) and neither is scored
        unit = pair_id[sel_mask]
        nz_units = torch.unique(unit[sel.visitors > 0])
        pick = torch.randperm(len(nz_units), generator=gen)[: int(round(observed_frac * len(nz_units)))]
        in_obs = torch.isin(unit, nz_units[pick])
        obs = in_obs & (sel.visitors > 0)
        observed[s] = torch.stack([sel.src[obs], sel.dst[obs]])
        pairs[s] = sel.select(~in_obs)
    tr = pairs["train"]
    base = torch.stack([tr.src, tr.dst])[:, tr.visitors > 0]
    message = {"train": base, "val": torch.cat([base, observed["val"]], 1), "test": torch.cat([base, observed["test"]], 1)}
    train_mask = torch.from_numpy(np.isin(key, grp["train"]))
    groups = {s: [names[i] for i in sorted(grp[s].tolist())] for s in SPLITS}
    return CovisitSplit(protocol, pairs, message, train_mask, groups)
