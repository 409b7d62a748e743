"""State-wise decomposition: one subgraph per state, as in the NAICS co-visitation paper.

A state's subgraph holds the state's POIs (the *core*), optional *halo* POIs of other
states within ``halo_km`` (context only, never scored), any POI that a scored pair of the
state points to, the cells of all those POIs and the images in those cells. Every edge
whose two ends lie in the state's node sets is kept, so no edge inside a state is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import HeteroData

from geograph.constants import CELL, IMAGE, IN, POI
from geograph.errors import DataValidationError
from geograph.geo.sphere import km_to_chord, unit_xyz
from geograph.graph.geograph_data import GeoGraph


@dataclass
class StateSubgraph:
    """One state's piece of the graph.

    Attributes:
        state: State code.
        data: The induced ``HeteroData`` (node indices relabelled to ``0..n-1``).
        poi_index: Global POI index of each local POI; shape ``(n_local,)``.
        core_mask: True for POIs of this state, False for halo / pair-target POIs.
        local_of: Global -> local POI index lookup (``-1`` where absent); shape ``(n_global,)``.
    """

    state: str
    data: HeteroData
    poi_index: torch.Tensor
    core_mask: torch.Tensor
    local_of: torch.Tensor

    def to_local(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Map global POI pairs to local indices; raises if a POI is not in this subgraph."""
        ls, ld = self.local_of[src], self.local_of[dst]
        if (ls < 0).any() or (ld < 0).any():
            raise ValueError(f"pair refers to a POI outside the subgraph of state {self.state}")
        return torch.stack([ls, ld])


class StatePartitioner:
    """Yield per-state subgraphs of a :class:`GeoGraph`.

    Args:
        graph: The whole graph.
        halo_km: Border halo in km (0 = none).
    """

    def __init__(self, graph: GeoGraph, halo_km: float = 0.0) -> None:
        if halo_km < 0:
            raise ValueError(f"halo_km must be >= 0, got {halo_km}")
        self.graph = graph
        self.halo_km = float(halo_km)
        self.states: list[str] = list(graph.index["states"])
        self._state = graph.data[POI].state

    def __repr__(self) -> str:
        return f"StatePartitioner(states={len(self.states)}, halo_km={self.halo_km})"

    def state_of_pairs(self, src: torch.Tensor) -> torch.Tensor:
        """State index of each pair (the state of its source POI)."""
        return self._state[src]

    def edge_counts(self, src: torch.Tensor) -> dict[str, int]:
        """Number of pairs per state (for balanced sharding)."""
        counts = torch.bincount(self._state[src], minlength=len(self.states))
        return {s: int(c) for s, c in zip(self.states, counts.tolist(), strict=True)}

    def _halo(self, core: np.ndarray) -> np.ndarray:
        if self.halo_km <= 0:
            return np.zeros(0, dtype=np.int64)
        pos = self.graph.data[POI].pos.double().numpy()
        others = np.setdiff1d(np.arange(len(pos)), core)
        if len(others) == 0:
            return others
        tree = cKDTree(unit_xyz(pos[core, 0], pos[core, 1]))
        chord = km_to_chord(self.halo_km)
        d, _ = tree.query(unit_xyz(pos[others, 0], pos[others, 1]), k=1, distance_upper_bound=chord)
        return others[np.isfinite(d)]

    def subgraph(self, state: str | list[str], extra_pois: torch.Tensor | None = None) -> StateSubgraph:
        """The subgraph of one state, or of the disjoint union of several (``list``).

        ``extra_pois`` (global indices) join as context nodes.
        """
        names = [state] if isinstance(state, str) else list(state)
        for s in names:
            if s not in self.states:
                raise DataValidationError(f"unknown state {s!r}; graph has {self.states}", field="state")
        sidx = torch.tensor([self.states.index(s) for s in names])
        in_states = torch.isin(self._state, sidx)
        core = torch.nonzero(in_states).flatten()
        if core.numel() == 0:
            raise DataValidationError(f"state(s) {names} have no POIs", field="state")
        parts = [core, torch.from_numpy(self._halo(core.numpy()))]
        if extra_pois is not None and extra_pois.numel():
            parts.append(extra_pois.long())
        poi_idx = torch.unique(torch.cat(parts))
        data = self.graph.data
        cell_idx = torch.unique(data[POI].cell[poi_idx])
        nodes = {POI: poi_idx, CELL: cell_idx}
        if IMAGE in data.node_types:
            ei = data[IMAGE, IN, CELL].edge_index
            in_cells = torch.zeros(data[CELL].num_nodes, dtype=torch.bool)
            in_cells[cell_idx] = True
            nodes[IMAGE] = torch.unique(ei[0][in_cells[ei[1]]])
        sub = data.subgraph(nodes)
        cell_local = torch.full((data[CELL].num_nodes,), -1, dtype=torch.long)
        cell_local[cell_idx] = torch.arange(len(cell_idx))
        sub[POI].cell = cell_local[sub[POI].cell]  # keep the POI -> cell pointer local
        n_global = data[POI].num_nodes
        local_of = torch.full((n_global,), -1, dtype=torch.long)
        local_of[poi_idx] = torch.arange(len(poi_idx))
        return StateSubgraph("+".join(names), sub, poi_idx, in_states[poi_idx], local_of)

    def group_states(self, weights: dict[str, int], max_weight: int) -> list[list[str]]:
        """Pack states into groups of total weight <= ``max_weight`` (a state heavier than that
        stays alone), largest first, so small states share one forward pass."""
        groups: list[list[str]] = []
        loads: list[int] = []
        for s in sorted(self.states, key=lambda x: (-weights.get(x, 0), x)):
            w = weights.get(s, 0)
            for i in range(len(groups)):
                if loads[i] + w <= max_weight:
                    groups[i].append(s)
                    loads[i] += w
                    break
            else:
                groups.append([s])
                loads.append(w)
        return groups

    def __iter__(self) -> Iterator[StateSubgraph]:
        for s in self.states:
            yield self.subgraph(s)
