"""GraphSAGE with optional edge weights (co-visit counts scale their messages).

Aggregation runs as a sparse-dense matrix product when the edges are given as a CSR adjacency
(:func:`sparse_adjacency`): ``A @ x`` with ``A[i, j] = w_ij / deg(i)`` is the weighted mean
``mean_j(w_ij * x_j)`` without materialising one message per edge. On this project's CPU a
forward + backward of that product over 400K edges x 64 features takes 0.06 s against 0.36 s
for PyG's gather-scatter (``benchmarks/train_covisit.py`` measures the whole model).
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor
from torch_geometric.nn import SAGEConv
from torch_geometric.typing import OptPairTensor

SPARSE_AGGRS = ("mean", "sum")


def sparse_adjacency(
    edge_index: Tensor, edge_weight: Tensor | None, num_src: int, num_dst: int, aggr: str = "mean"
) -> Tensor:
    """The ``(num_dst, num_src)`` CSR matrix ``A`` with ``A @ x_src`` = the ``aggr`` of messages.

    ``A[i, j]`` is ``w_ij`` (``aggr="sum"``) or ``w_ij / in-degree(i)`` (``aggr="mean"``, the
    count of edges into ``i``, as PyG's mean); ``w`` is 1 without weights. Duplicate edges add up,
    as they do in PyG's scatter. Shapes: ``edge_index (2, E)`` (source row 0, target row 1),
    ``edge_weight (E,)``.
    """
    if aggr not in SPARSE_AGGRS:
        raise ValueError(f"sparse aggregation supports {SPARSE_AGGRS}, got {aggr!r}")
    src, dst = edge_index[0], edge_index[1]
    dev = edge_index.device
    w = torch.ones(src.numel(), device=dev) if edge_weight is None else edge_weight.float()
    counts = torch.bincount(dst, minlength=num_dst)
    if aggr == "mean":
        w = w / counts.clamp(min=1)[dst].to(w.dtype)
    order = torch.argsort(dst, stable=True)
    crow = torch.zeros(num_dst + 1, dtype=torch.long, device=dev)
    crow[1:] = torch.cumsum(counts, 0)
    with warnings.catch_warnings():  # torch flags every CSR tensor as "beta" once per process
        warnings.filterwarnings(
            "ignore", message="Sparse CSR tensor support is in beta", category=UserWarning
        )
        return torch.sparse_csr_tensor(crow, src[order], w[order], (num_dst, num_src), check_invariants=False)


def csr_mm(csr: Tensor, x: Tensor) -> Tensor:
    """``csr @ x`` for a CSR matrix and a dense ``x`` (strided allowed).

    On the CPU it is written straight into a new tensor (``addmm`` with ``beta=0``, whose output
    is ignored, NaN included): ``torch.mm`` on a CSR matrix zero-fills its output and then copies
    it, two passes over the output as long as the product's own in a co-visit training step.
    Not differentiable itself (``out=``): :meth:`Adjacency.matmul` is, with it on both sides.
    """
    if x.device.type != "cpu":
        return torch.mm(csr, x)
    out = x.new_empty(csr.size(0), x.size(1))
    return torch.addmm(out, csr, x, beta=0, out=out)


class _AdjacencyMatmul(torch.autograd.Function):
    """``A @ x`` whose backward is ``A^T @ grad`` with the adjacency's own cached transpose
    (``torch.sparse.mm``'s backward converts ``A`` to a transposed CSR on every call)."""

    @staticmethod
    def forward(ctx, adj: Adjacency, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        # not torch.sparse.mm, which copies its output (see csr_mm)
        return csr_mm(adj.csr, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        if not ctx.needs_input_grad[1]:
            return None, None
        return None, csr_mm(ctx.adj.transposed(), grad)


class Adjacency:
    """The CSR matrix of :func:`sparse_adjacency` and, built on the first backward pass and then
    kept, its transpose, so that the layers and steps sharing one relation's adjacency sort its
    edges for the backward pass once.

    Shapes: ``csr`` ``(num_dst, num_src)``; :meth:`matmul` ``(num_src, D) -> (num_dst, D)``.
    """

    def __init__(
        self, edge_index: Tensor, edge_weight: Tensor | None, num_src: int, num_dst: int, aggr: str = "mean"
    ) -> None:
        self.csr = sparse_adjacency(edge_index, edge_weight, num_src, num_dst, aggr)
        self.shape = (num_dst, num_src)
        self._t: Tensor | None = None

    def transposed(self) -> Tensor:
        """``csr.T`` as a CSR matrix ``(num_src, num_dst)`` (built once)."""
        if self._t is None:
            crow, col, val = self.csr.crow_indices(), self.csr.col_indices(), self.csr.values()
            row = torch.repeat_interleave(torch.arange(self.shape[0], device=col.device), crow.diff())
            # entry (row, col) of A is entry (col, row) of its transpose: the CSR of the edges
            # row -> col with A's values as weights, summed (no mean: A's values hold it)
            self._t = sparse_adjacency(torch.stack([row, col]), val, self.shape[0], self.shape[1], "sum")
        return self._t

    def matmul(self, x: Tensor) -> Tensor:
        """``csr @ x`` in float32 (sparse kernels do not all take bf16), differentiable in ``x``."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return _AdjacencyMatmul.apply(self, x.float())


class WeightedSAGEConv(SAGEConv):
    """PyG ``SAGEConv`` whose messages are multiplied by ``edge_weight`` when one is given.

    With mean aggregation the neighbourhood term becomes ``mean_j(w_ij * x_j)``; without
    weights it is exactly ``SAGEConv`` (Hamilton et al., https://arxiv.org/abs/1706.02216).
    ``edge_index`` may also be a CSR adjacency from :func:`sparse_adjacency` (weights and the
    mean already in its values; ``edge_weight`` is then ignored), which computes the same
    function as a sparse matrix product.

    Shapes:
        x ``(N, in)`` or a ``(src, dst)`` pair; edge_index ``(2, E)`` or CSR ``(N_dst, N_src)``;
        edge_weight ``(E,)``; output ``(N_dst, out)``.
    """

    # PyG generates ``propagate`` from this signature at construction time.
    propagate_type = {"x": OptPairTensor, "edge_weight": Optional[Tensor]}  # noqa: UP045 - PyG parses this annotation

    def forward(self, x, edge_index: Tensor, edge_weight: Tensor | None = None, size=None) -> Tensor:  # type: ignore[override]
        if isinstance(x, Tensor):
            x = (x, x)
        if self.project and hasattr(self, "lin"):
            x = (self.lin(x[0]).relu(), x[1])
        if edge_index.layout == torch.sparse_csr:
            out = self._sparse_aggregate(edge_index, x[0])
        else:
            out = self.propagate(edge_index, x=x, edge_weight=edge_weight, size=size)
        out = self.lin_l(out)
        x_r = x[1]
        if self.root_weight and x_r is not None:
            out = out + self.lin_r(x_r)
        if self.normalize:
            out = torch.nn.functional.normalize(out, p=2.0, dim=-1)
        return out

    @staticmethod
    def _sparse_aggregate(adj: Tensor, x_src: Tensor) -> Tensor:
        # float32 product even under autocast (sparse kernels do not all take bf16)
        with torch.autocast(device_type=x_src.device.type, enabled=False):
            return torch.sparse.mm(adj, x_src.float())

    def message(self, x_j: Tensor, edge_weight: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return x_j if edge_weight is None else x_j * edge_weight.view(-1, 1)
