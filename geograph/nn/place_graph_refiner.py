"""Learned propagation over the place graph: a small GNN that refines the database places'
location embeddings before the query-side retrieval reads them.

The fixed variant smooths the ``z_j`` with APPNP (:func:`~geograph.nn.place_graph.propagate_values`);
this one learns the smoothing, end to end with the retrieval head: GraphSAGE layers
(Hamilton et al., https://arxiv.org/abs/1706.02216) with residual connections over the place
graph (:func:`~geograph.nn.place_graph.place_graph`), whose node features are each place's
location embedding and its query embedding. The output layer starts at zero (ReZero,
Bachlechner et al., https://arxiv.org/abs/2003.04887), so before training the refined
embeddings are the input ones.

Rows can be masked: their location embedding is hidden from the network (zeroed, with a
flag feature set), as in masked label prediction (UniMP, Shi et al.,
https://arxiv.org/abs/2009.03509). Training masks the batch, so a training query never sees
its own coordinates through the graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import SAGEConv


class PlaceGraphRefiner(nn.Module):
    """``z'_j = normalize(z_j + W_out h_j)``, ``h`` from residual SAGE layers over the place graph.

    ``h_0 = W_in [z_j, normalize(q_j), m_j]`` (``m_j = 1`` for a masked place, whose ``z_j`` is
    zeroed), ``h_l = h_{l-1} + relu(SAGE_l(h_{l-1}))``; ``W_out`` starts at zero.

    Args:
        value_dim: Size ``D`` of the location embeddings (the head's space).
        query_dim: Size ``Dq`` of the raw query embeddings of the places.
        hidden: Width of the hidden layers (default 64).
        num_layers: SAGE layers (default 2; the receptive field in hops).
        seed: Initialisation seed (default 0).

    Shapes: see :meth:`forward`.
    """

    def __init__(
        self, value_dim: int, query_dim: int, hidden: int = 64, num_layers: int = 2, seed: int = 0
    ) -> None:
        super().__init__()
        if value_dim < 1 or query_dim < 1 or hidden < 1 or num_layers < 1:
            raise ValueError(
                "need value_dim, query_dim, hidden and num_layers >= 1, got "
                f"{value_dim}, {query_dim}, {hidden}, {num_layers}"
            )
        self.value_dim, self.query_dim, self.hidden = value_dim, query_dim, hidden
        self.num_layers, self.seed = num_layers, seed
        self.lin_in = nn.Linear(value_dim + query_dim + 1, hidden)
        self.convs = nn.ModuleList(SAGEConv(hidden, hidden) for _ in range(num_layers))
        self.lin_out = nn.Linear(hidden, value_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Seeded initialisation; the output layer at zero (the identity map)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.lin_in.reset_parameters()
            for conv in self.convs:
                conv.reset_parameters()
        nn.init.zeros_(self.lin_out.weight)
        nn.init.zeros_(self.lin_out.bias)

    def forward(
        self,
        values: torch.Tensor,
        queries: torch.Tensor,
        edge_index: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Refined unit-norm location embeddings of every place.

        Args:
            values: Unit-norm location embeddings ``z`` of the places.
            queries: Their raw query embeddings.
            edge_index: The place graph.
            mask: True for places whose ``z`` is hidden (None: none).

        Shapes: ``values`` ``(N, D)``, ``queries`` ``(N, Dq)``, ``edge_index`` ``(2, E)``,
        ``mask`` ``(N,)``; returns ``(N, D)``.
        """
        if values.dim() != 2 or values.shape[1] != self.value_dim:
            raise ValueError(f"values must have shape (N, {self.value_dim}), got {tuple(values.shape)}")
        if queries.shape != (values.shape[0], self.query_dim):
            raise ValueError(
                f"queries must have shape ({values.shape[0]}, {self.query_dim}), got {tuple(queries.shape)}"
            )
        flag = torch.zeros(values.shape[0], 1, dtype=values.dtype, device=values.device)
        if mask is not None:
            flag = mask.to(values.dtype).unsqueeze(1)
            values = values * (1 - flag)
        x = torch.cat([values, F.normalize(queries.to(values.dtype), dim=-1), flag], 1)
        h = self.lin_in(x)
        ei = edge_index.to(values.device)
        for conv in self.convs:
            h = h + F.relu(conv(h, ei))
        return F.normalize(values + self.lin_out(h), dim=-1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(value_dim={self.value_dim}, query_dim={self.query_dim}, "
            f"hidden={self.hidden}, num_layers={self.num_layers})"
        )


__all__ = ["PlaceGraphRefiner"]
