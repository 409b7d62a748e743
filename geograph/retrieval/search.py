"""Exact top-k maximum-inner-product search in chunks (no index, no approximation)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.distributed as dist


def _block_size(rows: int, k: int) -> int:
    """Rows per block of the block-max prefilter for a chunk of ``rows`` scores per query: a
    power of two near ``sqrt(rows / k)`` (64 for 65,536 rows and k = 10), so the block maxima
    (``rows / B``) and the candidates (``k * B``) are both small next to the chunk; 0 when the
    chunk has too few blocks for a prefilter to pay (then a plain ``topk``)."""
    b = 1 << max(3, min(10, round(math.log2(max(rows / k, 1.0)) / 2)))
    return b if rows // b >= 4 * k else 0


_CACHE_BYTES = 2 << 20
"""Scores per partial product of a chunk in :func:`chunked_topk`: each part is reduced to its
block maxima right after it is computed, while its scores are still in the CPU's cache."""


def _part_rows(n_queries: int, itemsize: int, block: int) -> int:
    """Gallery rows per partial product: a multiple of ``block`` whose scores fill about
    ``_CACHE_BYTES`` (at least one block)."""
    return max(block, _CACHE_BYTES // max(n_queries * itemsize, 1) // block * block)


def _chunk_topk(s: torch.Tensor, k: int, bsz: int, bmax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` along dim 0 of one chunk's scores ``s`` ``(C, Q)`` (gallery rows x queries),
    given the block size ``bsz`` (:func:`_block_size`) and the block maxima ``bmax``
    ``(C // bsz, Q)`` of its rows.

    Returns scores and chunk-local row indices ``(Q, k)``, best first. Block-max prefilter: the
    rows are cut into blocks of ``B``; only the ``k`` blocks with the largest maxima can hold
    the top ``k`` (an element above the ``k``-th block maximum lies in a block ranked above it,
    and those ``k`` blocks hold at least ``k`` elements at or above it), so ``topk`` runs over
    ``k * B`` candidates (plus the ``C mod B`` rows of a ragged tail) instead of ``C``. The
    scores are the exact top ``k``; among equal scores the index kept may differ from a
    ``topk`` over the whole row.
    """
    c, q = s.shape
    nb = c // bsz
    body = s[: nb * bsz].view(nb, bsz, q)
    bi = torch.topk(bmax.T, k, dim=1)[1]  # (Q, k) best blocks per query
    cols = torch.arange(q, device=s.device)
    cand = body[bi.T, :, cols].transpose(0, 1).reshape(q, k * bsz)  # (Q, k * B) candidate scores
    rows = (bi.unsqueeze(2) * bsz + torch.arange(bsz, device=s.device)).reshape(q, k * bsz)
    if nb * bsz < c:  # ragged tail: every row is a candidate
        cand = torch.cat([cand, s[nb * bsz :].T], 1)
        rows = torch.cat([rows, torch.arange(nb * bsz, c, device=s.device).expand(q, -1)], 1)
    v, j = torch.topk(cand, k, dim=1)
    return v, torch.gather(rows, 1, j)


@torch.no_grad()
def chunked_topk(
    queries: torch.Tensor, keys: torch.Tensor, k: int, chunk_size: int = 65536
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` keys by inner product for each query, scanning ``keys`` in chunks.

    Each chunk's scores ``keys[chunk] @ queries.T`` are written into one reused buffer, then
    a block-max prefilter and a ``topk`` over the few surviving candidates
    (:func:`_chunk_topk`) keep its best ``k``; the running best ``k`` are merged after every
    chunk, so peak memory is ``Q * (chunk_size + k)`` scores whatever the gallery size. The
    product is computed in parts of about 2 MB of scores, each reduced to its block maxima at
    once, while it is still in cache: one pass over the chunk's scores from memory saved (3-4%
    of a bfloat16 search of a 1M gallery; no measurable change in float32, whose product
    dominates). Scores are in the dtype of the inputs (bfloat16 inputs use the bfloat16 matrix
    product).

    The scores returned are exactly the top ``k`` of ``queries @ keys.T`` (as computed by the
    matrix product); among equal scores (ties, common in bfloat16) the indices kept may differ
    from those of one ``torch.topk`` over the whole score matrix.

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
    n, nq = keys.shape[0], queries.shape[0]
    k = min(k, n)
    buf = torch.empty(min(chunk_size, n) * nq, dtype=queries.dtype, device=queries.device)
    bmax_buf: torch.Tensor | None = None
    best_s: torch.Tensor | None = None
    best_i: torch.Tensor | None = None
    for start in range(0, n, chunk_size):
        kc = keys[start : start + chunk_size]
        c = kc.shape[0]
        kk = min(k, c)
        bsz = _block_size(c, kk)
        if bsz:  # gallery rows x queries: the faster orientation, and the prefilter's
            s = buf[: c * nq].view(c, nq)
            nb = c // bsz
            if bmax_buf is None or bmax_buf.shape[0] < nb:
                bmax_buf = torch.empty(nb, nq, dtype=queries.dtype, device=queries.device)
            bmax = bmax_buf[:nb]
            # parts on CPU, where they were measured; one product per chunk on other devices
            step = _part_rows(nq, buf.element_size(), bsz) if buf.device.type == "cpu" else nb * bsz
            for a in range(0, nb * bsz, step):
                b = min(a + step, nb * bsz)
                torch.mm(kc[a:b], queries.T, out=s[a:b])
                torch.amax(s[a:b].view((b - a) // bsz, bsz, nq), 1, out=bmax[a // bsz : b // bsz])
            if nb * bsz < c:  # the ragged tail: no block maxima
                torch.mm(kc[nb * bsz :], queries.T, out=s[nb * bsz :])
            v, i = _chunk_topk(s, kk, bsz, bmax)
        else:  # few rows per k: a plain topk along contiguous query rows
            v, i = torch.topk(torch.mm(queries, kc.T, out=buf[: c * nq].view(nq, c)), kk, dim=1)
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
