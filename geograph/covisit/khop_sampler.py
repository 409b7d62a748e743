"""A k-hop link sampler in plain torch, for PyG's ``LinkLoader`` where ``pyg-lib`` and
``torch-sparse`` are not installed (PyG's ``NeighborSampler`` needs one of them)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.sampler import (
    BaseSampler,
    EdgeSamplerInput,
    HeteroSamplerOutput,
    NegativeSampling,
    NodeSamplerInput,
)
from torch_geometric.typing import EdgeType, NodeType


def cap_per_target(target: Tensor, fanout: int, generator: torch.Generator | None = None) -> Tensor:
    """Positions of at most ``fanout`` entries per distinct value of ``target``, drawn at random.

    Shapes: ``target`` ``(E,)``; returns sorted positions into it.
    """
    if target.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.argsort(torch.rand(target.numel(), generator=generator))
    order = order[torch.argsort(target[order], stable=True)]
    _, counts = torch.unique_consecutive(target[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(target.numel()) - torch.repeat_interleave(starts, counts)
    return torch.sort(order[rank < fanout]).values


class KHopSampler(BaseSampler):
    """Seed pairs (or nodes) -> the nodes their in-edges reach in ``len(num_neighbors)`` hops, and every
    edge among those nodes.

    Hop ``i`` follows, for every edge type ``(s, r, d)``, the edges into the frontier nodes of
    type ``d``: all of them when ``num_neighbors[i]`` is ``-1``, else at most that many per
    frontier node per edge type (drawn from ``generator``), as PyG's ``NeighborSampler`` does.
    Unlike it, the subgraph keeps every edge among the sampled nodes (an induced subgraph), so
    with ``-1`` everywhere a node within ``len(num_neighbors) - 1`` hops sees all its in-edges.
    The seed nodes come first in the output, in ascending order, so ``edge_label_index`` indexes
    them as PyG's samplers do.

    Args:
        data: The graph (node counts and ``edge_index`` of every edge type are read).
        num_neighbors: Fan-out per hop (``-1``: every neighbour).
        generator: Random source of the capped hops (None: torch's global one).
    """

    def __init__(self, data: HeteroData, num_neighbors: list[int], generator: torch.Generator | None = None) -> None:
        bad = [k for k in num_neighbors if k < -1 or k == 0]
        if bad:
            raise ValueError(f"num_neighbors entries must be -1 (all) or > 0, got {num_neighbors}")
        self.num_neighbors = list(num_neighbors)
        self.generator = generator
        self.num_nodes: dict[NodeType, int] = {nt: int(data[nt].num_nodes) for nt in data.node_types}
        self.edges: dict[EdgeType, Tensor] = {et: data[et].edge_index for et in data.edge_types}

    def __repr__(self) -> str:
        return f"KHopSampler(num_neighbors={self.num_neighbors})"

    def sample_from_nodes(self, inputs: NodeSamplerInput) -> HeteroSamplerOutput:
        """Seed nodes (distinct, kept in their order first) -> their k-hop subgraph
        (for PyG's ``NodeLoader``)."""
        if inputs.node.unique().numel() != inputs.node.numel():
            raise ValueError("KHopSampler.sample_from_nodes needs distinct seed nodes")
        node = self.expand({inputs.input_type: inputs.node})
        row, col, edge = self.induced(node)
        return HeteroSamplerOutput(node=node, row=row, col=col, edge=edge, metadata=(inputs.input_id, inputs.time))

    def sample_from_edges(self, inputs: EdgeSamplerInput,
                          neg_sampling: NegativeSampling | None = None) -> HeteroSamplerOutput:
        if neg_sampling is not None:
            raise ValueError("KHopSampler samples no negatives; pass neg_sampling=None")
        src_type, _, dst_type = inputs.input_type
        if src_type != dst_type:
            raise ValueError(f"KHopSampler needs seed pairs of one node type, got {inputs.input_type}")
        seeds, inverse = torch.cat([inputs.row, inputs.col]).unique(return_inverse=True)
        node = self.expand({src_type: seeds})
        row, col, edge = self.induced(node)
        metadata = (inputs.input_id, inverse.view(2, -1), inputs.label, inputs.time)
        return HeteroSamplerOutput(node=node, row=row, col=col, edge=edge, metadata=metadata)

    def expand(self, seeds: dict[NodeType, Tensor]) -> dict[NodeType, Tensor]:
        """Seed nodes first, then each hop's new nodes in ascending order; every node type."""
        seen = {nt: torch.zeros(n, dtype=torch.bool) for nt, n in self.num_nodes.items()}
        order: dict[NodeType, list[Tensor]] = {nt: [] for nt in self.num_nodes}
        frontier = dict(seeds)
        for nt, s in seeds.items():
            seen[nt][s] = True
            order[nt].append(s)
        for fanout in self.num_neighbors:
            found: dict[NodeType, list[Tensor]] = {}
            for et, ei in self.edges.items():
                f = frontier.get(et[2])
                if f is None or f.numel() == 0:
                    continue
                into = torch.zeros(self.num_nodes[et[2]], dtype=torch.bool)
                into[f] = True
                e = torch.nonzero(into[ei[1]]).flatten()
                if fanout > 0:
                    e = e[cap_per_target(ei[1][e], fanout, self.generator)]
                found.setdefault(et[0], []).append(ei[0][e])
            frontier = {}
            for nt, parts in found.items():
                cand = torch.cat(parts).unique()
                cand = cand[~seen[nt][cand]]
                seen[nt][cand] = True
                order[nt].append(cand)
                frontier[nt] = cand
        return {nt: torch.cat(p) if p else torch.zeros(0, dtype=torch.long) for nt, p in order.items()}

    def induced(self, node: dict[NodeType, Tensor]) -> tuple[dict, dict, dict]:
        """Every edge among ``node``: local ``row`` / ``col`` and the edge ids, per edge type."""
        local = {}
        for nt, idx in node.items():
            m = torch.full((self.num_nodes[nt],), -1, dtype=torch.long)
            m[idx] = torch.arange(idx.numel())
            local[nt] = m
        row, col, edge = {}, {}, {}
        for et, ei in self.edges.items():
            r, c = local[et[0]][ei[0]], local[et[2]][ei[1]]
            e = torch.nonzero((r >= 0) & (c >= 0)).flatten()
            row[et], col[et], edge[et] = r[e], c[e], e
        return row, col, edge
