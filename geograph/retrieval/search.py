"""Exact top-k maximum-inner-product search in chunks (no index, no approximation)."""

from __future__ import annotations

import torch


@torch.no_grad()
def chunked_topk(
    queries: torch.Tensor, keys: torch.Tensor, k: int, chunk_size: int = 65536
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` keys by inner product for each query, scanning ``keys`` in chunks.

    Each chunk is one matrix product ``queries @ keys[chunk].T`` followed by ``topk``; the
    running best ``k`` are merged after every chunk, so peak memory is
    ``Q * (chunk_size + k)`` scores whatever the gallery size.

    Args:
        queries: Query vectors.
        keys: Gallery vectors.
        k: Neighbours per query (clipped to the gallery size).
        chunk_size: Gallery rows per matrix product (default 65,536).

    Shapes: ``queries`` ``(Q, D)``, ``keys`` ``(G, D)``; returns scores and indices ``(Q, k)``,
    best first.
    """
    if queries.dim() != 2 or keys.dim() != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(
            f"need queries (Q, D) and keys (G, D), got {tuple(queries.shape)} and {tuple(keys.shape)}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = keys.shape[0]
    k = min(k, n)
    best_s: torch.Tensor | None = None
    best_i: torch.Tensor | None = None
    for start in range(0, n, chunk_size):
        s = queries @ keys[start : start + chunk_size].T
        kk = min(k, s.shape[1])
        v, i = torch.topk(s, kk, dim=1)
        i = i + start
        if best_s is None:
            best_s, best_i = v, i
        else:
            cat_s = torch.cat([best_s, v], 1)
            cat_i = torch.cat([best_i, i], 1)
            v, j = torch.topk(cat_s, min(k, cat_s.shape[1]), dim=1)
            best_s, best_i = v, torch.gather(cat_i, 1, j)
    assert best_s is not None and best_i is not None
    return best_s, best_i


@torch.no_grad()
def loop_topk(queries: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: one query at a time, a dot product per gallery row via ``mv``; for benchmarks."""
    out_s, out_i = [], []
    for q in queries:
        v, i = torch.topk(keys @ q, min(k, keys.shape[0]))
        out_s.append(v)
        out_i.append(i)
    return torch.stack(out_s), torch.stack(out_i)
