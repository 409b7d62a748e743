"""Exact top-k maximum-inner-product search in chunks (no index, no approximation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist


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


_SHARDING = [False]  # inside distributed_search(): galleries are split over the ranks


@contextlib.contextmanager
def distributed_search(enabled: bool = True) -> Iterator[None]:
    """Within this block, on every rank of a process group, gallery searches
    (:func:`sharded_topk`) and gallery embeddings (:func:`gather_shards`) are split over the
    ranks. Every rank must then make the same calls in the same order (they are collectives);
    outside it (e.g. rank 0 alone logging a model) each process searches the whole gallery."""
    before = _SHARDING[0]
    _SHARDING[0] = enabled
    try:
        yield
    finally:
        _SHARDING[0] = before


def _distributed() -> tuple[int, int]:
    """``(rank, world_size)`` inside :func:`distributed_search` with a process group, else ``(0, 1)``."""
    if _SHARDING[0] and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` that ``rank`` owns: contiguous, sizes differing by at most one."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


@torch.no_grad()
def sharded_topk(
    queries: torch.Tensor, keys: torch.Tensor, k: int, chunk_size: int = 65536
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`chunked_topk` with the gallery split over the ranks of a process group.

    Each rank scans only its contiguous shard of ``keys`` (:func:`shard_bounds`), then the
    ranks' ``(Q, k)`` candidates are gathered and merged by one more top-k, so every rank gets
    the exact top-k of the whole gallery (the same as one process, ties aside). Outside
    :func:`distributed_search` or a group of more than one rank it is :func:`chunked_topk`.

    Shapes: ``queries`` ``(Q, D)`` (the same on every rank), ``keys`` ``(G, D)`` (rows outside
    this rank's shard are not read); returns scores and global indices ``(Q, k)``.
    """
    rank, world = _distributed()
    if world == 1:
        return chunked_topk(queries, keys, k, chunk_size)
    n = keys.shape[0]
    k = min(k, n)
    lo, hi = shard_bounds(n, rank, world)
    s = torch.full((queries.shape[0], k), -torch.inf, dtype=queries.dtype, device=queries.device)
    i = torch.full((queries.shape[0], k), -1, dtype=torch.long, device=queries.device)
    if hi > lo:  # a shard smaller than k pads with -inf scores
        ls, li = chunked_topk(queries, keys[lo:hi], k, chunk_size)
        s[:, : ls.shape[1]], i[:, : li.shape[1]] = ls, li + lo
    all_s = [torch.empty_like(s) for _ in range(world)]
    all_i = [torch.empty_like(i) for _ in range(world)]
    dist.all_gather(all_s, s.contiguous())
    dist.all_gather(all_i, i.contiguous())
    cat_s, cat_i = torch.cat(all_s, 1), torch.cat(all_i, 1)
    best, j = torch.topk(cat_s, k, dim=1)
    return best, torch.gather(cat_i, 1, j)


@torch.no_grad()
def gather_shards(local: torch.Tensor, n: int) -> torch.Tensor:
    """Concatenate every rank's :func:`shard_bounds` rows of an ``(n, ...)`` result, in order.

    Each rank computes ``local`` for its own rows (e.g. the embeddings of its shard of a
    gallery); every rank gets all ``n`` rows. Without a process group it returns ``local``.
    """
    rank, world = _distributed()
    if world == 1:
        return local
    size = -(-n // world)  # the largest shard; smaller ones are padded for all_gather
    pad = torch.zeros((size, *local.shape[1:]), dtype=local.dtype, device=local.device)
    pad[: local.shape[0]] = local
    parts = [torch.empty_like(pad) for _ in range(world)]
    dist.all_gather(parts, pad)
    return torch.cat(
        [parts[r][: hi - lo] for r, (lo, hi) in enumerate(shard_bounds(n, r, world) for r in range(world))]
    )
