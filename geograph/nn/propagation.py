"""Parameter-free propagation of embeddings over a graph, and RANGE retrieval augmentation.

- :class:`APPNPPropagation`: personalised-PageRank smoothing of node embeddings (PyG's
  ``APPNP``; Gasteiger et al., "Predict then Propagate", https://arxiv.org/abs/1810.05997 ),
  over a great-circle kNN graph of gallery points or the H3 adjacency of cells.
- :class:`RANGEAugmentation`: Dhakal et al., "RANGE: Retrieval Augmented Neural Fields for
  Multi-Resolution Geo-Embeddings", https://arxiv.org/abs/2502.19781 — estimate what a place
  looks like (or reads like) from a softmax-weighted mix of a database's embeddings; RANGE+
  blends in a geographic term over unit xyz vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import h3
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import APPNP
from torch_geometric.utils import to_undirected

from geograph.geo.sphere import check_lat_lon, latlon_to_xyz


def knn_graph_latlon(latlon: np.ndarray | torch.Tensor, k: int = 10) -> torch.Tensor:
    """Undirected great-circle kNN graph of points (sklearn ``BallTree`` with haversine).

    Shapes: ``latlon`` ``(N, 2)`` degrees; returns ``edge_index`` ``(2, E)`` without self loops.
    """
    from sklearn.neighbors import BallTree

    ll = np.asarray(latlon, dtype=np.float64)
    check_lat_lon(ll[:, 0], ll[:, 1], "knn_graph_latlon")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, len(ll) - 1)
    if k < 1:
        return torch.zeros(2, 0, dtype=torch.long)
    tree = BallTree(np.radians(ll), metric="haversine")
    _, nbr = tree.query(np.radians(ll), k=k + 1)
    src = np.repeat(np.arange(len(ll)), k + 1)
    dst = nbr.reshape(-1)
    keep = src != dst
    ei = torch.as_tensor(np.stack([src[keep], dst[keep]]), dtype=torch.long)
    return to_undirected(ei, num_nodes=len(ll))


def h3_adjacency_graph(cells: Sequence[str]) -> torch.Tensor:
    """Edges between cells of ``cells`` that touch (H3 grid distance 1), both directions.

    Shapes: returns ``edge_index`` ``(2, E)`` over positions in ``cells``.
    """
    pos = {c: i for i, c in enumerate(cells)}
    src, dst = [], []
    for i, c in enumerate(cells):
        for n in h3.grid_disk(c, 1):
            j = pos.get(n)
            if j is not None and j != i:
                src.append(i)
                dst.append(j)
    return torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)


class APPNPPropagation(nn.Module):
    """``x <- (1 - alpha) * A_hat x + alpha * x_0``, ``K`` times (no parameters).

    Gasteiger et al. 2019, https://arxiv.org/abs/1810.05997 ; wraps
    ``torch_geometric.nn.APPNP`` (symmetric GCN normalisation with self loops).

    Args:
        K: Propagation steps (default 10).
        alpha: Teleport (restart) probability (default 0.1); 1 returns the input.
        normalize_output: L2-normalise the rows afterwards (default True, for cosine search).
    """

    def __init__(self, K: int = 10, alpha: float = 0.1, normalize_output: bool = True) -> None:
        super().__init__()
        if K < 0 or not 0 <= alpha <= 1:
            raise ValueError(f"need K >= 0 and 0 <= alpha <= 1, got K={K}, alpha={alpha}")
        self.K, self.alpha, self.normalize_output = K, alpha, normalize_output
        self.prop = APPNP(K=K, alpha=alpha)

    def reset_parameters(self) -> None:
        self.prop.reset_parameters()

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Shapes: ``x`` ``(N, D)``, ``edge_index`` ``(2, E)``; returns ``(N, D)``."""
        out = self.prop(x, edge_index, edge_weight) if self.K > 0 and edge_index.numel() else x
        return F.normalize(out, dim=-1) if self.normalize_output else out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(K={self.K}, alpha={self.alpha:g})"


def _xyz(latlon: torch.Tensor) -> torch.Tensor:
    return latlon_to_xyz(latlon.to(torch.float64))


class RANGEAugmentation(nn.Module):
    """Soft retrieval over a database: ``softmax(temperature * cos(query_key, db_keys)) @ db_values``.

    Dhakal et al. 2025 (RANGE), https://arxiv.org/abs/2502.19781 . RANGE uses the whole
    database (``top_k=None``) with temperature 15; RANGE+ mixes in a geographic term
    ``softmax(geo_temperature * <xyz_q, xyz_db>)`` (temperature 40) with weight ``geo_weight``
    (0.5) — the kernel width of that term is about ``1 / sqrt(geo_temperature)`` radians
    (40: ~1,000 km; 4,000: ~100 km).

    Args:
        temperature: Semantic softmax temperature (default 15).
        top_k: Keep only the ``k`` most similar database rows (default None: all of them).
        geo_temperature: Temperature of the geographic term (default 40).
        geo_weight: Weight of the geographic term, 0 (RANGE) .. 1 (default 0).
        chunk_size: Queries per block (memory is ``chunk_size * len(db)``; default 2,048).
        exclude_self: Drop database rows at distance 0 from the query (leave-one-out when the
            queries are the database; default False).
    """

    def __init__(
        self,
        temperature: float = 15.0,
        top_k: int | None = None,
        geo_temperature: float = 40.0,
        geo_weight: float = 0.0,
        chunk_size: int = 2048,
        exclude_self: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= geo_weight <= 1:
            raise ValueError(f"geo_weight must be in [0, 1], got {geo_weight}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        self.temperature, self.top_k = temperature, top_k
        self.geo_temperature, self.geo_weight = geo_temperature, geo_weight
        self.chunk_size, self.exclude_self = chunk_size, exclude_self

    def reset_parameters(self) -> None:  # parameter-free
        return None

    def _mix(self, logits: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``softmax(logits) @ values``, over the ``top_k`` largest logits only when set.

        The top-k path gathers ``k`` value rows per query instead of a dense product with the
        whole database (``Q * k * E`` work instead of ``Q * N * E``).
        """
        if self.top_k is not None and self.top_k < logits.shape[1]:
            v, i = torch.topk(logits, self.top_k, dim=1)
            p = torch.softmax(v, dim=1)
            return torch.einsum("qk,qke->qe", p, values[i])
        return torch.softmax(logits, dim=1) @ values

    @torch.no_grad()
    def forward(
        self,
        query_keys: torch.Tensor,
        db_keys: torch.Tensor,
        db_values: torch.Tensor,
        query_latlon: torch.Tensor | None = None,
        db_latlon: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Retrieved embedding per query.

        Shapes: ``query_keys`` ``(Q, D)``, ``db_keys`` ``(N, D)``, ``db_values`` ``(N, E)``,
        ``query_latlon`` ``(Q, 2)`` and ``db_latlon`` ``(N, 2)`` (needed when
        ``geo_weight > 0`` or ``exclude_self``); returns ``(Q, E)``.
        """
        if db_keys.shape[0] != db_values.shape[0]:
            raise ValueError(f"db_keys has {db_keys.shape[0]} rows but db_values {db_values.shape[0]}")
        need_geo = self.geo_weight > 0 or self.exclude_self
        if need_geo and (query_latlon is None or db_latlon is None):
            raise ValueError("geo_weight > 0 or exclude_self needs query_latlon and db_latlon")
        qk = F.normalize(query_keys, dim=-1)
        dk = F.normalize(db_keys, dim=-1).to(qk.dtype)
        dv = db_values.to(qk.dtype)
        dxyz = _xyz(db_latlon).to(qk.dtype) if need_geo else None
        out = []
        for s in range(0, qk.shape[0], self.chunk_size):
            q = qk[s : s + self.chunk_size]
            mask = None
            if self.exclude_self:  # exact coordinate equality (a float32 dot product is not)
                qll = query_latlon[s : s + self.chunk_size].to(db_latlon.dtype)
                mask = (qll[:, None, :] == db_latlon[None, :, :]).all(-1)
            res = torch.zeros(q.shape[0], dv.shape[1], dtype=dv.dtype, device=dv.device)
            if self.geo_weight < 1:  # the semantic (RANGE) term
                sem = self.temperature * (q @ dk.T)
                if mask is not None:
                    sem = sem.masked_fill(mask, float("-inf"))
                res += (1 - self.geo_weight) * self._mix(sem, dv)
            if self.geo_weight > 0:  # the geographic (RANGE+) term
                geo = self.geo_temperature * (
                    _xyz(query_latlon[s : s + self.chunk_size]).to(qk.dtype) @ dxyz.T
                )
                if mask is not None:
                    geo = geo.masked_fill(mask, float("-inf"))
                res += self.geo_weight * self._mix(geo, dv)
            out.append(res)
        return torch.cat(out)

    def __repr__(self) -> str:
        geo = (
            f", geo_temperature={self.geo_temperature:g}, geo_weight={self.geo_weight:g}"
            if self.geo_weight
            else ""
        )
        return f"{self.__class__.__name__}(temperature={self.temperature:g}, top_k={self.top_k}{geo})"


def augment(base: torch.Tensor, retrieved: torch.Tensor, weight: float) -> torch.Tensor:
    """``normalize(normalize(base) + weight * normalize(retrieved))`` (RANGE's mix, as a sum).

    RANGE concatenates; in a shared retrieval space the sum keeps the dimension, and a query's
    cosine with the result is a blend of its cosine with each part.
    """
    return F.normalize(F.normalize(base, dim=-1) + weight * F.normalize(retrieved, dim=-1), dim=-1)


__all__ = ["APPNPPropagation", "RANGEAugmentation", "augment", "h3_adjacency_graph", "knn_graph_latlon"]
