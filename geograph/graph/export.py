"""Export (sub)graphs to networkx for graph analytics."""

from __future__ import annotations

import networkx as nx
import torch

from geograph.constants import COVISITS, POI
from geograph.graph.geograph_data import GeoGraph


def to_networkx(graph: GeoGraph, pois: torch.Tensor | None = None, relation: str = COVISITS) -> nx.DiGraph:
    """POI-to-POI relation (default co-visits) as a ``networkx.DiGraph``.

    Nodes are POI ids with ``state``, ``naics_code``, ``lat``, ``lon`` attributes; edges carry
    ``visitors`` (co-visits) or ``distance_km`` (near). ``pois`` (global indices) restricts the
    export to the induced subgraph.
    """
    p = graph.data[POI]
    store = graph.data[POI, relation, POI]
    ei = store.edge_index
    keep = torch.ones(p.num_nodes, dtype=torch.bool)
    if pois is not None:
        keep = torch.zeros(p.num_nodes, dtype=torch.bool)
        keep[pois] = True
    ids = graph.index["poi_ids"]
    states = graph.index["states"]
    g = nx.DiGraph()
    for i in torch.nonzero(keep).flatten().tolist():
        g.add_node(
            ids[i],
            state=states[int(p.state[i])],
            naics_code=f"{int(p.naics_code[i]):06d}",
            lat=float(p.pos[i, 0]),
            lon=float(p.pos[i, 1]),
        )
    m = keep[ei[0]] & keep[ei[1]]
    weight = store.visitors if "visitors" in store else store.edge_attr[:, 0]
    name = "visitors" if "visitors" in store else "distance_km"
    for s, d, w in zip(ei[0][m].tolist(), ei[1][m].tolist(), weight[m].tolist(), strict=True):
        g.add_edge(ids[s], ids[d], **{name: w})
    return g
