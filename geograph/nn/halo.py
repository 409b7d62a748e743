"""Node-parallel message passing: one graph split over ranks, border rows exchanged per layer.

Each rank *owns* a part of every node type and holds, after its own nodes, a *halo*: the nodes
of other ranks that send it messages. A layer computes the rows of the rank's own nodes only
(every edge into an own node is on that rank, so the aggregation is the whole graph's); before
the next layer, :class:`HaloExchange` replaces the halo rows with the values their owners
computed. With that exchange after the inputs and after every layer, the embeddings of a rank's
own nodes equal those of one process holding the whole graph, and the exchange's backward pass
sends each halo row's gradient back to its owner, so gradients summed over ranks equal the
whole graph's. Only the 1-hop halo of each layer is held, not the k-hop neighbourhood a sampled
subgraph needs.

The exchange uses point-to-point sends of ``torch.distributed`` on its own process group (of the
default group's backend: gloo on CPU), so it does not interleave with DDP's gradient all-reduces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from geograph.distributed.env import side_group


class SpatialBisection:
    """Parts of the plane by recursive coordinate bisection: each cut splits a box's points along
    its longer side at the size-weighted median, so the parts hold equal numbers of the points it
    was fitted on (to one, up to ties) and are spatially compact (few edges cross them). Other
    points (cells, images) are assigned by the same cuts.

    Args:
        lat: Latitudes of the points to balance (degrees).
        lon: Their longitudes.
        n_parts: Number of parts.
    """

    def __init__(self, lat: np.ndarray, lon: np.ndarray, n_parts: int) -> None:
        if n_parts < 1:
            raise ValueError(f"n_parts must be >= 1, got {n_parts}")
        lat = np.asarray(lat, dtype=np.float64)
        self.n_parts = n_parts
        self.cos = float(np.cos(np.radians(lat.mean()))) if len(lat) else 1.0
        xy = self._xy(lat, lon)
        # cuts[i] = (axis, threshold, first part, parts on the left, parts on the right)
        self.cuts: list[tuple[int, float, int, int, int]] = []
        stack = [(np.arange(len(xy)), 0, n_parts)]
        while stack:
            idx, first, k = stack.pop()
            if k == 1:
                continue
            k1 = k // 2
            if len(idx) < 2:
                axis, thr = 0, np.inf if len(idx) == 0 else float(xy[idx[0], 0])
                self.cuts.append((axis, thr, first, k1, k - k1))
                stack += [(idx[:0], first, k1), (idx[:0], first + k1, k - k1)]
                continue
            pts = xy[idx]
            axis = int(np.argmax(pts.max(0) - pts.min(0)))
            order = idx[np.argsort(pts[:, axis], kind="stable")]
            cut = max(1, len(idx) * k1 // k)
            thr = float((xy[order[cut - 1], axis] + xy[order[min(cut, len(idx) - 1)], axis]) / 2)
            self.cuts.append((axis, thr, first, k1, k - k1))
            left = pts[:, axis] <= thr
            stack += [(idx[left], first, k1), (idx[~left], first + k1, k - k1)]

    def _xy(self, lat, lon) -> np.ndarray:
        lat = np.asarray(lat, dtype=np.float64)
        return np.stack([np.asarray(lon, dtype=np.float64) * self.cos, lat], axis=1)

    def assign(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Part of each point (``0..n_parts-1``)."""
        xy = self._xy(lat, lon)
        out = np.zeros(len(xy), dtype=np.int64)
        by_box = {(c[2], c[3] + c[4]): c for c in self.cuts}
        stack = [(np.arange(len(xy)), 0, self.n_parts)]
        while stack:
            idx, first, k = stack.pop()
            if k == 1:
                out[idx] = first
                continue
            axis, thr, _, k1, k2 = by_box[first, k]
            left = xy[idx, axis] <= thr
            stack += [(idx[left], first, k1), (idx[~left], first + k1, k2)]
        return out


def exchange_group():
    """The process group of halo exchanges: a second group beside the default one, of its
    backend (gloo on CPU, nccl on CUDA). Every rank must call this the first time together."""
    return side_group("halo")


@dataclass
class HaloPlan:
    """What one rank sends and receives, per node type.

    Attributes:
        rank: This rank.
        world_size: Number of ranks.
        n_own: Own nodes per node type (the first rows of the rank's local tensors).
        n_halo: Halo nodes per node type (the rows after them).
        send: Per node type, per peer rank: rows of the own nodes that peer holds as halo.
        recv: Per node type, per peer rank: halo rows (counted from the first halo row) that
            peer owns, in the order that peer sends them.
        head: Optional second plan for rows needed only after the last layer (the destinations
            of pairs a rank scores that send it no message): :meth:`extend` appends them to the
            output, so they are never part of the layers' inputs.
    """

    rank: int
    world_size: int
    n_own: dict[str, int]
    n_halo: dict[str, int]
    send: dict[str, list[Tensor]]
    recv: dict[str, list[Tensor]]
    head: HaloPlan | None = None

    @classmethod
    def build(cls, owner: dict[str, Tensor], halo: dict[str, Tensor], rank: int, world_size: int) -> HaloPlan:
        """The plan from every node type's owner rank (``owner[t]``: rank of each node of the
        whole graph) and this rank's halo nodes (``halo[t]``: whole-graph indices, in local
        row order). Collective: every rank calls it with the same ``owner``."""
        needs: list = [None] * world_size
        dist.all_gather_object(needs, {t: h.numpy() for t, h in halo.items()}, group=exchange_group())
        n_own, n_halo, send, recv = {}, {}, {}, {}
        for t, own_of in owner.items():
            mine = torch.nonzero(own_of == rank).flatten()
            row = torch.full((len(own_of),), -1, dtype=torch.long)
            row[mine] = torch.arange(len(mine))
            n_own[t] = len(mine)
            h = halo.get(t, torch.zeros(0, dtype=torch.long))
            n_halo[t] = len(h)
            send[t], recv[t] = [], []
            for q in range(world_size):
                theirs = torch.from_numpy(needs[q].get(t, np.zeros(0, dtype=np.int64))).long()
                send[t].append(row[theirs[own_of[theirs] == rank]] if q != rank else row[:0])
                recv[t].append(torch.nonzero(own_of[h] == q).flatten() if q != rank else row[:0])
        return cls(rank, world_size, n_own, n_halo, send, recv)

    def to_state(self) -> dict:
        return {"rank": self.rank, "world_size": self.world_size, "n_own": self.n_own, "n_halo": self.n_halo,
                "send": self.send, "recv": self.recv, "head": self.head.to_state() if self.head else None}

    @classmethod
    def from_state(cls, st: dict) -> HaloPlan:
        head = cls.from_state(st["head"]) if st.get("head") else None
        return cls(st["rank"], st["world_size"], dict(st["n_own"]), dict(st["n_halo"]),
                   {t: list(v) for t, v in st["send"].items()}, {t: list(v) for t, v in st["recv"].items()}, head)

    def extend(self, x: Tensor, t: str) -> Tensor:
        """``x`` (rows of type ``t``: own, then halo) with this plan's :attr:`head` rows appended,
        taken from their owners' own rows; differentiable."""
        if self.head is None:
            return x
        n = self.head.n_own[t]
        return torch.cat([x, HaloExchange.apply(x[:n], self.head, t)[n:]])

    def fill(self, x: dict[str, Tensor], types=None) -> dict[str, Tensor]:
        """``x`` with the halo rows of ``types`` (default: every planned type) replaced by their
        owners' rows; differentiable."""
        out = dict(x)
        for t in types if types is not None else list(x):
            if t in self.n_own and t in x:
                out[t] = HaloExchange.apply(x[t][: self.n_own[t]], self, t)
        return out


def _swap(plan: HaloPlan, t: str, outgoing: list[Tensor], sizes: list[int], like: Tensor) -> list[Tensor]:
    """Send ``outgoing[q]`` to every peer ``q`` and receive ``sizes[q]`` rows from it."""
    group = exchange_group()
    width = like.shape[1:]
    incoming = [like.new_empty((n, *width)) for n in sizes]
    reqs = []
    for q in range(plan.world_size):
        if q == plan.rank:
            continue
        if outgoing[q].size(0):
            reqs.append(dist.isend(outgoing[q].contiguous(), dist.get_global_rank(group, q), group=group))
        if sizes[q]:
            reqs.append(dist.irecv(incoming[q], dist.get_global_rank(group, q), group=group))
    for r in reqs:
        r.wait()
    return incoming


class HaloExchange(torch.autograd.Function):
    """``(n_own, ...)`` own rows -> ``(n_own + n_halo, ...)`` local rows (see :class:`HaloPlan`)."""

    @staticmethod
    def forward(ctx, x_own: Tensor, plan: HaloPlan, t: str) -> Tensor:
        ctx.plan, ctx.t = plan, t
        got = _swap(plan, t, [x_own[i] for i in plan.send[t]], [len(i) for i in plan.recv[t]], x_own)
        halo = x_own.new_empty((plan.n_halo[t], *x_own.shape[1:]))
        for idx, rows in zip(plan.recv[t], got, strict=True):
            if len(idx):
                halo[idx] = rows
        return torch.cat([x_own, halo])

    @staticmethod
    def backward(ctx, grad: Tensor):
        plan, t = ctx.plan, ctx.t
        n = plan.n_own[t]
        grad_own, grad_halo = grad[:n].clone(), grad[n:]
        got = _swap(plan, t, [grad_halo[i] for i in plan.recv[t]], [len(i) for i in plan.send[t]], grad)
        for idx, rows in zip(plan.send[t], got, strict=True):
            if len(idx):
                grad_own.index_add_(0, idx, rows)
        return grad_own, None, None
