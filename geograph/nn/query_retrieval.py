"""Query-side retrieval augmentation: mix a query's key with the locations of its nearest
database queries.

RANGE (Dhakal et al. 2025, https://arxiv.org/abs/2502.19781) augments an embedding with a
similarity-weighted mix of a database's embeddings. Here the augmented side is the query: its
``k`` nearest database queries in raw embedding space (cosine) vote with the location
embeddings of their coordinates, weighted by ``softmax(temperature * cos)``, and the query's
search key becomes ``normalize(f(q) + weight * normalize(sum_j p_j z_j))``. Its cosine with a
gallery key ``e(g)`` is then a blend of the head's score and a kernel density of the
neighbours' locations around ``g``, so the retrieval ranks, the KDE over the top-k and the
Recall-vs-Area regions all use the neighbours. ``z_j`` are the neighbours' location
embeddings, optionally propagated over a graph of database places first
(:func:`~geograph.nn.place_graph.propagate_values`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class QueryRetrievalAugmentation(nn.Module):
    """``normalize(key + weight * normalize(softmax(temperature * cos(q, db)) @ values))``.

    Args:
        database_queries: Raw embeddings of the database queries (e.g. the training texts).
        database_values: Unit-norm location embeddings of their coordinates, in the head's
            space (or those propagated over a place graph).
        weight: Mix weight ``beta`` of the retrieved part (default 1; 0 returns the key).
        temperature: Softmax temperature over the cosines (default 20).
        top_k: Neighbours per query (default 32).
        chunk_size: Queries per block (memory ``chunk_size * len(database)``; default 2,048).

    Shapes: ``database_queries`` ``(N, Dq)``, ``database_values`` ``(N, D)``.
    """

    def __init__(
        self,
        database_queries: torch.Tensor,
        database_values: torch.Tensor,
        weight: float = 1.0,
        temperature: float = 20.0,
        top_k: int = 32,
        chunk_size: int = 2048,
    ) -> None:
        super().__init__()
        if database_queries.dim() != 2 or database_values.dim() != 2:
            raise ValueError(
                "database_queries and database_values must be 2-D, got "
                f"{tuple(database_queries.shape)} and {tuple(database_values.shape)}"
            )
        if database_queries.shape[0] == 0:
            raise ValueError("database_queries is empty: the augmentation needs at least one database row")
        if database_queries.shape[0] != database_values.shape[0]:
            raise ValueError(
                f"database_queries has {database_queries.shape[0]} rows but database_values "
                f"{database_values.shape[0]}"
            )
        if weight < 0 or temperature <= 0 or top_k < 1:
            raise ValueError(
                f"need weight >= 0, temperature > 0 and top_k >= 1, got {weight}, {temperature}, {top_k}"
            )
        self.weight, self.temperature, self.top_k, self.chunk_size = weight, temperature, top_k, chunk_size
        self.register_buffer("db_keys", F.normalize(database_queries.float(), dim=-1))
        self.register_buffer("db_values", database_values.float())

    def reset_parameters(self) -> None:  # parameter-free
        return None

    @property
    def query_dim(self) -> int:
        return int(self.db_keys.shape[1])

    @torch.no_grad()
    def retrieve(self, queries: torch.Tensor) -> torch.Tensor:
        """Unit-norm retrieved location embedding per query.

        Shapes: ``queries`` ``(Q, Dq)`` raw; returns ``(Q, D)``.
        """
        q = F.normalize(queries.to(self.db_keys), dim=-1)
        k = min(self.top_k, self.db_keys.shape[0])
        out = []
        for s in range(0, q.shape[0], self.chunk_size):
            sim, idx = torch.topk(q[s : s + self.chunk_size] @ self.db_keys.T, k, dim=1)
            p = torch.softmax(self.temperature * sim, dim=1)
            out.append(torch.einsum("qk,qkd->qd", p, self.db_values[idx]))
        return F.normalize(torch.cat(out), dim=-1) if out else q.new_zeros(0, self.db_values.shape[1])

    @torch.no_grad()
    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Augmented unit-norm keys.

        Shapes: ``queries`` ``(Q, Dq)`` raw query embeddings, ``keys`` ``(Q, D)`` the head's
        unit-norm query keys; returns ``(Q, D)``.
        """
        if self.weight == 0:
            return keys
        r = self.retrieve(queries).to(keys)
        return F.normalize(keys + self.weight * r, dim=-1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(database={self.db_keys.shape[0]}, weight={self.weight:g}, "
            f"temperature={self.temperature:g}, top_k={self.top_k})"
        )


@torch.no_grad()
def retrieval_neighbours(
    queries: torch.Tensor,
    database_queries: torch.Tensor,
    top_k: int = 32,
    temperature: float = 20.0,
    exclude: torch.Tensor | None = None,
    chunk_size: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's ``top_k`` nearest database rows (cosine of raw embeddings) and their
    ``softmax(temperature * cos)`` weights, as :meth:`QueryRetrievalAugmentation.retrieve` uses.

    Args:
        queries: Raw query embeddings.
        database_queries: Raw database embeddings.
        top_k: Neighbours per query (default 32; at most the database rows left).
        temperature: Softmax temperature (default 20).
        exclude: Database row of each query never to return (``-1``: none), e.g. the query's
            own row when the queries are the database (training without self-retrieval).
        chunk_size: Queries per block (default 2,048).

    Shapes: ``queries`` ``(Q, Dq)``, ``database_queries`` ``(N, Dq)``, ``exclude`` ``(Q,)``;
    returns indices ``(Q, k)`` and weights ``(Q, k)``.
    """
    if queries.dim() != 2 or database_queries.dim() != 2 or queries.shape[1] != database_queries.shape[1]:
        raise ValueError(
            "queries and database_queries must be 2-D of one width, got "
            f"{tuple(queries.shape)} and {tuple(database_queries.shape)}"
        )
    if exclude is not None and exclude.shape != (queries.shape[0],):
        raise ValueError(f"exclude must have shape ({queries.shape[0]},), got {tuple(exclude.shape)}")
    db = F.normalize(database_queries.float(), dim=-1)
    q = F.normalize(queries.to(db), dim=-1)
    k = min(top_k, db.shape[0] - (1 if exclude is not None else 0))
    if k < 1:
        raise ValueError("the database has no row left to retrieve")
    idx_out, w_out = [], []
    for s in range(0, q.shape[0], chunk_size):
        sim = q[s : s + chunk_size] @ db.T
        if exclude is not None:
            ex = exclude[s : s + chunk_size].to(sim.device)
            rows = torch.nonzero(ex >= 0).squeeze(1)
            sim[rows, ex[rows]] = -float("inf")
        top, idx = torch.topk(sim, k, dim=1)
        idx_out.append(idx)
        w_out.append(torch.softmax(temperature * top, dim=1))
    if not idx_out:
        return torch.zeros(0, k, dtype=torch.long), q.new_zeros(0, k)
    return torch.cat(idx_out), torch.cat(w_out)


def mix_values(weights: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``normalize(sum_k weights[:, k] * values[index[:, k]])`` (differentiable in ``values``).

    Shapes: ``weights`` and ``index`` ``(Q, k)``, ``values`` ``(N, D)``; returns ``(Q, D)``.
    """
    return F.normalize(torch.einsum("qk,qkd->qd", weights.to(values), values[index]), dim=-1)


__all__ = ["QueryRetrievalAugmentation", "mix_values", "retrieval_neighbours"]
