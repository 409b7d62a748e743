"""A graph over geotagged database places whose edges carry signal, and propagation over it.

Edge kinds (any subset):

- ``knn``: each place to its ``k`` nearest places in query-embedding space (cosine): places
  described alike;
- ``h3``: places in the same or a touching H3 cell at a resolution: places that are close;
- ``group``: each place to ``group_degree`` random places of its group (country or admin
  region; a seeded sparse stand-in for the group's clique, which mixes across the group in a
  few propagation steps).

:func:`propagate_values` smooths per-place vectors over the graph with APPNP (Gasteiger et
al., https://arxiv.org/abs/1810.05997), the fixed propagation of the query-side retrieval
augmentation (:class:`~geograph.nn.query_retrieval.QueryRetrievalAugmentation`).
"""

from __future__ import annotations

from collections.abc import Sequence

import h3
import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.utils import coalesce, to_undirected

from geograph.geo.sphere import check_lat_lon

EDGE_KINDS = ("knn", "h3", "group")


def _knn_edges(embeddings: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    e = F.normalize(embeddings.float(), dim=-1)
    k = min(k, len(e) - 1)
    if k < 1:
        return torch.zeros(2, 0, dtype=torch.long)
    src, dst = [], []
    for s in range(0, len(e), chunk):
        sim = e[s : s + chunk] @ e.T
        rows = torch.arange(s, min(s + chunk, len(e)))
        sim[rows - s, rows] = -float("inf")  # no self loops
        _, idx = torch.topk(sim, k, dim=1)
        src.append(rows.repeat_interleave(k))
        dst.append(idx.reshape(-1))
    return torch.stack([torch.cat(src), torch.cat(dst)])


def _h3_edges(latlon: np.ndarray, resolution: int) -> torch.Tensor:
    cells = [h3.latlng_to_cell(float(a), float(b), resolution) for a, b in latlon]
    members: dict[str, list[int]] = {}
    for i, c in enumerate(cells):
        members.setdefault(c, []).append(i)
    src, dst = [], []
    for c, rows in members.items():
        near = [j for n in h3.grid_disk(c, 1) for j in members.get(n, [])]
        for i in rows:
            for j in near:
                if i != j:
                    src.append(i)
                    dst.append(j)
    return torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)


def _group_edges(groups: Sequence, degree: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    by: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    src, dst = [], []
    for rows in by.values():
        if len(rows) < 2:
            continue
        arr = np.asarray(rows)
        d = min(degree, len(rows) - 1)
        for i in rows:
            pick = rng.choice(arr[arr != i], size=d, replace=False)
            src.extend([i] * d)
            dst.extend(pick.tolist())
    return torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)


def place_graph(
    latlon: np.ndarray,
    *,
    kinds: Sequence[str] = ("knn", "h3"),
    embeddings: torch.Tensor | np.ndarray | None = None,
    groups: Sequence | None = None,
    knn: int = 10,
    h3_resolution: int = 4,
    group_degree: int = 10,
    seed: int = 0,
) -> torch.Tensor:
    """Undirected, coalesced ``edge_index`` over places from the edge ``kinds``.

    Args:
        latlon: Coordinates of the places, degrees.
        kinds: Subset of ``knn``, ``h3``, ``group`` (default ``knn`` and ``h3``).
        embeddings: Query embeddings per place (needed for ``knn``).
        groups: A label per place, e.g. its country (needed for ``group``).
        knn: Neighbours per place of the ``knn`` edges (default 10).
        h3_resolution: Cell resolution of the ``h3`` edges (default 4, cells of ~1,800 km²).
        group_degree: Random same-group partners per place (default 10).
        seed: Seed of the group partners (default 0).

    Shapes: ``latlon`` ``(N, 2)``, ``embeddings`` ``(N, D)``; returns ``(2, E)``.

    Raises:
        ValueError: an unknown kind, or a kind without its input.
    """
    ll = np.asarray(latlon, dtype=np.float64)
    check_lat_lon(ll[:, 0], ll[:, 1], "place_graph")
    bad = [k for k in kinds if k not in EDGE_KINDS]
    if bad:
        raise ValueError(f"edge kinds must be among {EDGE_KINDS}, got {bad}")
    n = len(ll)
    parts = [torch.zeros(2, 0, dtype=torch.long)]
    if "knn" in kinds:
        if embeddings is None or len(embeddings) != n:
            raise ValueError("'knn' edges need one embedding per place")
        parts.append(_knn_edges(torch.as_tensor(np.asarray(embeddings, dtype=np.float32)), knn))
    if "h3" in kinds:
        if not 0 <= h3_resolution <= 15:
            raise ValueError(f"h3 resolution must be 0..15, got {h3_resolution}")
        parts.append(_h3_edges(ll, h3_resolution))
    if "group" in kinds:
        if groups is None or len(groups) != n:
            raise ValueError("'group' edges need one group label (e.g. a country) per place")
        parts.append(_group_edges(groups, group_degree, seed))
    ei = torch.cat(parts, dim=1)
    return coalesce(to_undirected(ei, num_nodes=n), num_nodes=n)


@torch.no_grad()
def propagate_values(
    values: torch.Tensor, edge_index: torch.Tensor, K: int = 2, alpha: float = 0.5
) -> torch.Tensor:
    """APPNP smoothing of per-place vectors, rows renormalised to unit length.

    ``x <- (1 - alpha) * A_hat x + alpha * x_0``, ``K`` times (PyG ``APPNP``; symmetric
    normalisation with self loops).

    Shapes: ``values`` ``(N, D)``, ``edge_index`` ``(2, E)``; returns ``(N, D)``.
    """
    from torch_geometric.nn import APPNP

    if K == 0 or edge_index.numel() == 0:
        return values
    return F.normalize(APPNP(K=K, alpha=alpha)(values, edge_index.to(values.device)), dim=-1)


__all__ = ["EDGE_KINDS", "place_graph", "propagate_values"]
