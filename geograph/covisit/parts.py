"""State groups trained by every rank together (``train.split_states_above``): node-parallel
full batch.

A state too large for one rank's memory is split into ``world_size`` spatially compact parts of
equal numbers of POIs (:class:`~geograph.nn.halo.SpatialBisection`; cells and images follow the
same cuts). Each rank keeps its own nodes, then a halo: the nodes of other parts that send its
own nodes messages (every relation, every co-visit row touching an own POI) and the
destinations of the pairs its own POIs send. Edges into own nodes are kept, the rest dropped.
The model exchanges halo rows after the inputs and after every layer
(:class:`~geograph.nn.halo.HaloPlan`), so each rank computes its own POIs' embeddings exactly as
one process holding the state would, and scores the pairs whose source it owns; the
destinations of those pairs that send it no message (zero pairs and ranking candidates are
drawn across the state) come once, as final embeddings (the plan's ``head``), and are not part
of the layers' inputs. The pair lists,
message rows and folds stay in the group's numbering on every rank (a few bytes per pair), so
every rank draws the same steps; each maps a step to its part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from geograph.constants import CELL, COVISITS, POI, REV_PREFIX
from geograph.nn.halo import HaloPlan, SpatialBisection

_COVISIT_RELATIONS = (COVISITS, REV_PREFIX + COVISITS)


@dataclass
class GroupPart:
    """This rank's part of a group that every rank trains.

    Attributes:
        data: Own nodes first, then the halo, of every node type; edges into own nodes only.
        own: ``(n_pois,)`` True for the group's POIs this rank owns.
        poi_local: ``(n_pois,)`` row of each group POI in the encoder's output (``-1``: not
            held): rows of ``data``, then the plan's ``head`` rows.
        plan: The halo exchange.
        n_pois: POIs of the whole group.
    """

    data: HeteroData
    own: Tensor
    poi_local: Tensor
    plan: HaloPlan
    n_pois: int

    def to_state(self) -> dict:
        return {"own": self.own, "poi_local": self.poi_local, "plan": self.plan.to_state(), "n_pois": self.n_pois}

    def local(self, pairs: Tensor) -> Tensor:
        """Group-numbered ``(2, E)`` pairs -> this part's rows (every endpoint must be held)."""
        out = self.poi_local[pairs]
        if (out < 0).any():
            raise ValueError("a pair refers to a POI that is neither own nor halo on this rank")
        return out

    def messages(self, rows: Tensor) -> Tensor:
        """Positions of the co-visit rows ``(2, M)`` (group numbering) that touch an own POI."""
        return torch.nonzero(self.own[rows[0]] | self.own[rows[1]]).flatten()

    def owned(self, src: Tensor) -> Tensor:
        """Positions of the pairs whose source (group numbering) this rank owns."""
        return torch.nonzero(self.own[src]).flatten()


def owners(data: HeteroData, world_size: int) -> dict[str, Tensor]:
    """Owner rank of every node: POIs by :class:`SpatialBisection` of their positions, cells and
    images by the same cuts."""
    pos = data[POI].pos.double().numpy()
    cuts = SpatialBisection(pos[:, 0], pos[:, 1], world_size)
    out = {}
    for nt in data.node_types:
        p = data[nt].get("pos")
        if p is None:
            out[nt] = torch.arange(int(data[nt].num_nodes)) % world_size
        else:
            p = p.double().numpy()
            out[nt] = torch.from_numpy(cuts.assign(p[:, 0], p[:, 1]))
    return out


def split_group(data: HeteroData, messages: Tensor, pairs: Tensor, rank: int, world_size: int) -> GroupPart:
    """This rank's :class:`GroupPart` of the group graph ``data``.

    Collective (builds the halo plan with every rank).

    Args:
        data: The group's graph (group numbering).
        messages: Every co-visit row a step may pass as a message, ``(2, M)``.
        pairs: Every pair a step may score (training, validation, test, ranking), ``(2, P)``.
        rank: This rank.
        world_size: Number of ranks.
    """
    owner = owners(data, world_size)
    mine = {nt: owner[nt] == rank for nt in data.node_types}
    wanted = {nt: m.clone() for nt, m in mine.items()}
    kept: dict[tuple, Tensor] = {}
    for et in data.edge_types:
        if et[1] in _COVISIT_RELATIONS:
            continue
        ei = data[et].edge_index
        keep = torch.nonzero(mine[et[2]][ei[1]]).flatten()
        kept[et] = keep
        wanted[et[0]][ei[0][keep]] = True
    own_poi = mine[POI]
    touch = own_poi[messages[0]] | own_poi[messages[1]]
    wanted[POI][messages[:, touch].flatten()] = True
    # destinations of own pairs that send no message here: their final embeddings only
    head = torch.zeros_like(own_poi)
    head[pairs[1][own_poi[pairs[0]]]] = True
    head = torch.nonzero(head & ~wanted[POI]).flatten()
    nodes, halo, local_of = {}, {}, {}
    for nt in data.node_types:
        own_idx = torch.nonzero(mine[nt]).flatten()
        halo[nt] = torch.nonzero(wanted[nt] & ~mine[nt]).flatten()
        nodes[nt] = torch.cat([own_idx, halo[nt]])
        lo = torch.full((int(data[nt].num_nodes),), -1, dtype=torch.long)
        lo[nodes[nt]] = torch.arange(len(nodes[nt]))
        local_of[nt] = lo
    out = HeteroData()
    for nt in data.node_types:
        n = int(data[nt].num_nodes)
        out[nt].num_nodes = len(nodes[nt])
        for key, val in data[nt].items():
            if key == "num_nodes":
                continue
            if torch.is_tensor(val) and val.dim() and val.size(0) == n:
                val = val[nodes[nt]]
                if nt == POI and key == "cell":
                    val = local_of[CELL][val]
            out[nt][key] = val
    for et, keep in kept.items():
        store = data[et]
        n_e = store.edge_index.size(1)
        for key, val in store.items():
            if key == "edge_index":
                out[et].edge_index = torch.stack([local_of[et[0]][val[0][keep]], local_of[et[2]][val[1][keep]]])
            elif torch.is_tensor(val) and val.dim() and val.size(0) == n_e:
                out[et][key] = val[keep]
            else:
                out[et][key] = val
    plan = HaloPlan.build(owner, halo, rank, world_size)
    plan.head = HaloPlan.build({POI: owner[POI]}, {POI: head}, rank, world_size)
    local_of[POI][head] = len(nodes[POI]) + torch.arange(len(head))
    return GroupPart(out, own_poi, local_of[POI], plan, int(data[POI].num_nodes))


def load_part(data: HeteroData, st: dict) -> GroupPart:
    """A :class:`GroupPart` from its graph and :meth:`GroupPart.to_state`."""
    return GroupPart(data, st["own"], st["poi_local"], HaloPlan.from_state(st["plan"]), int(st["n_pois"]))


__all__ = ["GroupPart", "load_part", "owners", "split_group"]
