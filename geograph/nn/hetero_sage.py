"""One heterogeneous GraphSAGE layer computed with one root product per destination node type.

PyG's ``HeteroConv({r: SAGEConv}, aggr="sum")`` gives each relation ``r`` into node type ``t``
its own ``lin_l`` (neighbours) and ``lin_r`` (root) and adds the results:

    out_t = sum_r (W_r agg_r(x_src) + b_r + R_r x_t)

that is, with the relations' weights side by side and their roots and biases summed,

    out_t = (sum_r R_r) x_t + sum_r b_r + W_r1 agg_r1(x) + W_r2 agg_r2(x) + ...

:class:`HeteroSAGE` keeps ``HeteroConv``'s parameters (one ``lin_l`` and one ``lin_r`` per
relation, under the same state-dict keys) and computes the second form: one root product per
destination type, then each relation's product added onto it in place (``addmm_``), instead of
two products per relation and a sum (the sums of the small weight matrices cost next to nothing).
Adding the products in turn is faster than one product of the concatenated aggregates, which
copies them. Parameters, gradients, and so the optimizer's steps, weight decay and gradient
clipping, are those of ``HeteroConv``; only the rounding of the sums differs. Only the
destination types asked for are computed: the last layer of a model that reads POI embeddings
needs no cell outputs.

Aggregation is the weighted mean / sum of :class:`~geograph.nn.weighted_sage_conv.WeightedSAGEConv`:
a sparse-dense product when a relation's edges are a CSR adjacency
(:func:`~geograph.nn.weighted_sage_conv.sparse_adjacency` or
:class:`~geograph.nn.weighted_sage_conv.Adjacency`), else PyG's gather-scatter (``mean``, ``sum``
or ``max`` of ``w_ij * x_j``). A relation without edges aggregates to zeros.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from geograph.nn.weighted_sage_conv import Adjacency, WeightedSAGEConv

EdgeType = tuple[str, str, str]


def aggregate(
    edges: Tensor | Adjacency, x_src: Tensor, n_dst: int, weight: Tensor | None = None, aggr: str = "mean"
) -> Tensor:
    """``aggr`` over each destination's incoming messages ``w_ij * x_j``; ``(n_dst, D)``.

    ``edges`` is a ``(2, E)`` edge index (source row 0), or a ``(n_dst, n_src)`` CSR adjacency
    or :class:`~geograph.nn.weighted_sage_conv.Adjacency` whose values already hold the weights
    and the mean (``weight`` is then ignored).
    """
    if isinstance(edges, Adjacency):
        return edges.matmul(x_src)
    if edges.layout == torch.sparse_csr:
        return WeightedSAGEConv._sparse_aggregate(edges, x_src)
    msg = x_src.index_select(0, edges[0])
    if weight is not None:
        msg = msg * weight.view(-1, 1).to(msg.dtype)
    return scatter(msg, edges[1], dim=0, dim_size=n_dst, reduce=aggr)


def add_product(y: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``y + a @ b``, in place on ``y`` (no copy of it) unless autocast is on, where in-place ops
    are not cast. ``y`` must be a fresh result that no autograd node keeps (as a product's is)."""
    if torch.is_autocast_enabled(y.device.type):
        return torch.addmm(y, a, b)
    return y.addmm_(a, b)


def relation_key(et: EdgeType) -> str:
    """``HeteroConv``'s module key of a relation: ``<src___rel___dst>``."""
    return "<" + "___".join(et) + ">"


class RelationSAGE(nn.Module):
    """The parameters of one relation: ``lin_l`` (neighbours, with bias), ``lin_r`` (root)."""

    def __init__(self, in_src: int, in_dst: int, out_dim: int) -> None:
        super().__init__()
        self.lin_l = nn.Linear(in_src, out_dim)
        self.lin_r = nn.Linear(in_dst, out_dim, bias=False)

    def reset_parameters(self) -> None:
        self.lin_l.reset_parameters()
        self.lin_r.reset_parameters()


class HeteroSAGE(nn.Module):
    """Heterogeneous GraphSAGE layer (see the module docstring for the function it computes).

    Args:
        edge_types: Relations ``(src, rel, dst)``.
        in_dims: Input width per node type.
        out_dim: Output width.
        dst_types: Destination node types to compute (default: every relation's destination);
            relations into other types are dropped.
        aggr: ``mean``, ``sum`` or ``max`` (``max`` needs ``(2, E)`` edge indices).

    Shapes:
        ``x_dict[t]`` ``(N_t, in_dims[t])``; ``edges[r]`` ``(2, E_r)``, a CSR ``(N_dst, N_src)``
        or an :class:`~geograph.nn.weighted_sage_conv.Adjacency`; ``weights[r]`` ``(E_r,)``;
        output ``{t: (N_t, out_dim)}`` for ``t`` in ``dst_types``. ``n_dst`` (optional): compute
        only the first ``n_dst[t]`` rows of each destination type (edges into them only).
    """

    def __init__(
        self,
        edge_types: Sequence[EdgeType],
        in_dims: dict[str, int],
        out_dim: int,
        dst_types: Sequence[str] | None = None,
        aggr: str = "mean",
    ) -> None:
        super().__init__()
        if aggr not in ("mean", "sum", "max"):
            raise ValueError(f"HeteroSAGE aggr must be mean, sum or max, got {aggr!r}")
        wanted = list(dict.fromkeys(et[2] for et in edge_types)) if dst_types is None else list(dst_types)
        self.edge_types = [tuple(et) for et in edge_types if et[2] in wanted]
        self.dst_types = [t for t in wanted if any(et[2] == t for et in self.edge_types)]
        self.in_dims, self.out_dim, self.aggr = dict(in_dims), out_dim, aggr
        self.convs = nn.ModuleDict(
            {
                relation_key(et): RelationSAGE(in_dims[et[0]], in_dims[et[2]], out_dim)
                for et in self.edge_types
            }
        )

    def relations_into(self, t: str) -> list[EdgeType]:
        """This layer's relations into node type ``t``, in column-block order."""
        return [et for et in self.edge_types if et[2] == t]

    def reset_parameters(self) -> None:
        for conv in self.convs.values():
            conv.reset_parameters()

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edges: dict[EdgeType, Tensor | Adjacency],
        weights: dict[EdgeType, Tensor] | None = None,
        n_dst: dict[str, int] | None = None,
    ) -> dict[str, Tensor]:
        weights = weights or {}
        out = {}
        for t in self.dst_types:
            x_t = x_dict[t] if n_dst is None else x_dict[t][: n_dst[t]]
            rels = self.relations_into(t)
            convs = [self.convs[relation_key(et)] for et in rels]
            parts = []
            for et in rels:
                x_s = x_dict[et[0]]
                e = edges.get(et)
                if e is None:
                    parts.append(x_s.new_zeros(x_t.size(0), x_s.size(1)))
                else:
                    parts.append(aggregate(e, x_s, x_t.size(0), weights.get(et), self.aggr).to(x_t.dtype))
            # the roots and biases summed into one product, then each relation's aggregate times
            # its own weight added to it: no concatenated copy of the aggregates
            if len(convs) == 1:
                b, r = convs[0].lin_l.bias, convs[0].lin_r.weight
            else:
                # a chain of adds, not stack().sum(): the backward of sum() hands every relation
                # a view of one gradient buffer, which in-place gradient clipping would then
                # scale once per relation
                b = functools.reduce(torch.add, [c.lin_l.bias for c in convs])
                r = functools.reduce(torch.add, [c.lin_r.weight for c in convs])
            y = torch.nn.functional.linear(x_t, r, b)
            for conv, agg in zip(convs, parts, strict=True):
                y = add_product(y, agg, conv.lin_l.weight.t())
            out[t] = y
        return out

    def __repr__(self) -> str:
        rels = ", ".join("__".join(et) for et in self.edge_types)
        return f"HeteroSAGE({self.in_dims} -> {self.out_dim}, aggr={self.aggr}, relations=[{rels}])"
