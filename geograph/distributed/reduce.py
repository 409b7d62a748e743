"""Exact cross-rank reductions: per-pair predictions, and the statistics of train-only transforms."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

_FLIP = 0x7FFF_FFFF_FFFF_FFFF


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sum_across_ranks(values: np.ndarray) -> np.ndarray:
    """Element-wise sum over ranks (float64). Each rank fills the entries it owns and leaves
    the rest at 0, so the result equals what one process computes on the same predictions."""
    if not _active():
        return values
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.numpy()


def _sortable(x: torch.Tensor) -> torch.Tensor:
    """float64 -> int64 keys in the same order (IEEE 754: flip the magnitude bits of negatives)."""
    bits = x.contiguous().view(torch.int64)
    return torch.where(bits < 0, bits ^ _FLIP, bits)


def _unsortable(key: torch.Tensor) -> torch.Tensor:
    return torch.where(key < 0, key ^ _FLIP, key).view(torch.float64)


class Reduction:
    """Reductions over the rows that all ranks hold together; in one process (or with
    ``enabled=False``) they reduce the local rows only, with the same results.

    Used to fit train-only transforms when each rank holds some of the training states: the
    statistics (sums, extremes, order statistics, vocabularies) equal those of one process
    holding every row, up to float summation order.

    Args:
        enabled: Reduce across the process group; default: when one with more than one rank
            is initialised.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = _active() if enabled is None else bool(enabled) and _active()

    def __repr__(self) -> str:
        return f"Reduction(enabled={self.enabled})"

    def _reduce(self, t: torch.Tensor, op) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t, op=op)
        return t

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks of ``t`` (a copy)."""
        return self._reduce(t.clone(), dist.ReduceOp.SUM)

    def max(self, t: torch.Tensor) -> torch.Tensor:
        return self._reduce(t.clone(), dist.ReduceOp.MAX)

    def min(self, t: torch.Tensor) -> torch.Tensor:
        return self._reduce(t.clone(), dist.ReduceOp.MIN)

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (``[obj]`` in one process)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out

    def kth_smallest(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Per column, the ``k``-th smallest value (0-based) among the rows of all ranks.

        Exact: a bisection on the order-preserving 64-bit keys of the values, one all-reduce
        of ``F`` counts per step (at most 64 steps), so no rank ever holds another's rows.
        ``torch.median`` is ``k = (n - 1) // 2``.

        Shapes: ``x`` is ``(n, F)`` (any float dtype, no NaN), ``k`` is ``(F,)``; returns ``(F,)`` float64.
        """
        key = _sortable(x.double())
        n_cols = x.size(1)
        big = torch.iinfo(torch.int64)
        lo = self.min(key.min(0).values if len(key) else torch.full((n_cols,), big.max))
        hi = self.max(key.max(0).values if len(key) else torch.full((n_cols,), big.min))
        hi = torch.maximum(hi, lo)
        while bool((lo < hi).any()):
            mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # floor((lo + hi) / 2) without overflow
            count = self.sum((key <= mid).sum(0))
            ok = count >= k + 1
            hi = torch.where(ok, mid, hi)
            lo = torch.where(ok, lo, mid + 1)
        return _unsortable(lo)
