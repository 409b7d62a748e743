"""GraphSAGE with optional edge weights (co-visit counts scale their messages)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.nn import SAGEConv
from torch_geometric.typing import OptPairTensor


class WeightedSAGEConv(SAGEConv):
    """PyG ``SAGEConv`` whose messages are multiplied by ``edge_weight`` when one is given.

    With mean aggregation the neighbourhood term becomes ``mean_j(w_ij * x_j)``; without
    weights it is exactly ``SAGEConv`` (Hamilton et al., https://arxiv.org/abs/1706.02216).

    Shapes:
        x ``(N, in)`` or a ``(src, dst)`` pair; edge_index ``(2, E)``; edge_weight ``(E,)``;
        output ``(N_dst, out)``.
    """

    # PyG generates ``propagate`` from this signature at construction time.
    propagate_type = {"x": OptPairTensor, "edge_weight": Optional[Tensor]}  # noqa: UP045 - PyG parses this annotation

    def forward(self, x, edge_index: Tensor, edge_weight: Tensor | None = None, size=None) -> Tensor:  # type: ignore[override]
        if isinstance(x, Tensor):
            x = (x, x)
        if self.project and hasattr(self, "lin"):
            x = (self.lin(x[0]).relu(), x[1])
        out = self.propagate(edge_index, x=x, edge_weight=edge_weight, size=size)
        out = self.lin_l(out)
        x_r = x[1]
        if self.root_weight and x_r is not None:
            out = out + self.lin_r(x_r)
        if self.normalize:
            out = torch.nn.functional.normalize(out, p=2.0, dim=-1)
        return out

    def message(self, x_j: Tensor, edge_weight: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return x_j if edge_weight is None else x_j * edge_weight.view(-1, 1)

    def message_and_aggregate(self, adj_t, x):  # pragma: no cover - sparse path unused
        raise NotImplementedError
