"""Mini-batch co-visitation training: a step's target pairs cut into batches of
``train.batch_size``, each scored on the subgraph around its pairs' endpoints.

The batches come from PyG's ``LinkLoader``. Its sampler is PyG's ``NeighborSampler``
(``LinkNeighborLoader``) when ``pyg-lib`` or ``torch-sparse`` is installed; without them that
sampler raises ``ImportError: 'NeighborSampler' requires either 'pyg-lib' or 'torch-sparse'``
at the first batch, and :class:`~geograph.covisit.khop_sampler.KHopSampler` (plain torch)
samples instead. Both see the same graph: the step's nodes, the model's static relations and
the step's co-visit message edges in both directions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.loader import LinkLoader, LinkNeighborLoader
from torch_geometric.typing import WITH_PYG_LIB, WITH_TORCH_SPARSE

from geograph.constants import COVISITS, POI, REV_PREFIX
from geograph.covisit.khop_sampler import KHopSampler
from geograph.nn.covisit_model import RELATIONS

COVISIT_EDGE = (POI, COVISITS, POI)
REV_COVISIT_EDGE = (POI, REV_PREFIX + COVISITS, POI)


def sampler_backend() -> str:
    """``"pyg"`` (``LinkNeighborLoader``) when ``pyg-lib`` or ``torch-sparse`` is importable,
    else ``"khop"`` (:class:`~geograph.covisit.khop_sampler.KHopSampler`)."""
    return "pyg" if WITH_PYG_LIB or WITH_TORCH_SPARSE else "khop"


def hop_fanouts(num_neighbors: list[int], layers: int) -> list[int]:
    """Fan-out per hop: ``num_neighbors``, or (empty) every neighbour for ``layers + 1`` hops.

    The extra hop gives the outermost nodes the message passing reaches all their co-visit
    rows, so their degree and strength inputs, and with them the seed embeddings, are those of
    the whole graph (the k-hop sampler keeps every edge among its nodes).
    """
    return list(num_neighbors) if num_neighbors else [-1] * (layers + 1)


def message_graph(data: HeteroData, message: Tensor, relations: list[str]) -> HeteroData:
    """The graph a sampler walks: ``data``'s nodes, its edges of ``relations`` and the message
    edges ``message`` as co-visits in both directions (always: the model's degree inputs read
    them), in place of ``data``'s own co-visit rows."""
    g = HeteroData({nt: dict(data[nt].items()) for nt in data.node_types})
    for et in {et for name in relations for et in RELATIONS[name]}:
        if et[1] not in (COVISITS, REV_PREFIX + COVISITS) and et in data.edge_types:
            g[et].edge_index = data[et].edge_index
    g[COVISIT_EDGE].edge_index = message
    g[REV_COVISIT_EDGE].edge_index = message.flip(0)
    return g


class PairBatch(NamedTuple):
    """One mini-batch: the subgraph, its local message edges and weights, the batch's pairs in
    subgraph indices, and their positions in the step's pairs."""

    data: HeteroData
    message: Tensor
    weight: Tensor
    src: Tensor
    dst: Tensor
    pos: Tensor


def pair_loader(data: HeteroData, message: Tensor, src: Tensor, dst: Tensor, *, batch_size: int,
                num_neighbors: list[int], relations: list[str], generator: torch.Generator | None = None,
                backend: str | None = None) -> LinkLoader:
    """A ``LinkLoader`` over the pairs ``(src, dst)`` in order (no shuffling), ``batch_size`` a batch.

    Args:
        data: The state group's graph.
        message: Visible co-visit rows ``(2, M)`` (local indices).
        src: Target pairs' sources; shape ``(E,)``.
        dst: Target pairs' destinations; shape ``(E,)``.
        batch_size: Pairs per batch.
        num_neighbors: Fan-out per hop (``-1``: all).
        relations: The model's relation groups (``model.relations``).
        generator: Random source of the k-hop sampler's capped hops.
        backend: ``"pyg"`` or ``"khop"``; None: :func:`sampler_backend`.
    """
    g = message_graph(data, message, relations)
    label_index = (COVISIT_EDGE, torch.stack([src, dst]))
    if (backend or sampler_backend()) == "pyg":
        return LinkNeighborLoader(g, num_neighbors=num_neighbors, edge_label_index=label_index,
                                  batch_size=batch_size, shuffle=False)
    return LinkLoader(g, link_sampler=KHopSampler(g, num_neighbors, generator), edge_label_index=label_index,
                      batch_size=batch_size, shuffle=False)


def pair_batches(data: HeteroData, message: Tensor, weight: Tensor, src: Tensor, dst: Tensor, *,
                 batch_size: int, num_neighbors: list[int], relations: list[str],
                 generator: torch.Generator | None = None, backend: str | None = None) -> Iterator[PairBatch]:
    """The batches of :func:`pair_loader` in the model's terms: each batch's message edges are
    the sampled co-visit rows of either direction, with their weights (``(M,)`` or ``(M, 2)``)."""
    n = int(data[POI].num_nodes)
    loader = pair_loader(data, message, src, dst, batch_size=batch_size, num_neighbors=num_neighbors,
                         relations=relations, generator=generator, backend=backend)
    for b in loader:
        rows = torch.cat([b[COVISIT_EDGE].e_id, b[REV_COVISIT_EDGE].e_id]).unique()
        local = torch.full((n,), -1, dtype=torch.long)
        local[b[POI].n_id] = torch.arange(b[POI].n_id.numel())
        msg = local[message[:, rows]]
        label = b[COVISIT_EDGE].edge_label_index
        yield PairBatch(b, msg, weight[rows], label[0], label[1], b[COVISIT_EDGE].input_id)
