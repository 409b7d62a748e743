"""Insert a hypothetical POI into a built graph, placed the way :func:`build_graph` places a POI.

"What if a pharmacy opened here?": the new POI gets the node inputs and edges a fresh build of
the POI table plus that row would give it, read from the same :class:`GraphConfig`:

* **features**: the row's values of the graph's POI features (NaN where missing, as a null
  in the table gives);
* **cell**: the H3 cell at ``cell_resolution``; its ``log1p_pois`` counts one more POI. A cell
  the graph lacks is added with the features of a cell without region data (the regions table
  is not part of the graph) and ``adjacent`` edges to the graph's cells within ``cell_k``;
* **near**: edges both ways to its ``near_k`` nearest POIs within ``near_radius_km`` and, with
  ``reverse_near`` (the default, as a fresh build does), to every POI that would count the new
  one among its own ``near_k`` nearest. The existing POIs keep their other edges (a fresh build
  could drop the neighbour the new POI pushes out of a list);
* **knn_km**: distances to its ``rank_k`` nearest POIs of its state (the other POIs keep theirs);
* **co-visits**: none (a new venue has no observed co-visits: the cold-start case).

:meth:`PoiInserter.plan` computes all of this without copying the graph (what-if analysis
applies it to a small neighbourhood); :func:`insert_poi` returns a new graph with the POI added.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
import polars as pl
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import HeteroData

from geograph.constants import (
    ADJACENT,
    BRAND_COL,
    CELL,
    IN,
    LAT,
    LON,
    NAICS_CODE,
    NEAR,
    POI,
    POI_ID,
    REV_PREFIX,
    STATE,
)
from geograph.data.poi_tables import NON_FEATURE_COLUMNS
from geograph.errors import ConfigError, DataValidationError
from geograph.geo.sphere import check_lat_lon, chord_to_km, km_to_chord, unit_xyz
from geograph.graph.config import GraphConfig
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.nodes import CELL_COUNT_FEATURE, cell_positions
from geograph.graph.pairs import pair_features
from geograph.graph.transforms import raw_features

# GraphConfig fields that decide where a POI goes; an explicit config must agree with the graph's
_PLACEMENT_KEYS = ("granularity", "cell_resolution", "cell_k", "near_k", "near_radius_km", "rank_k")
# node attributes of a built graph that insertion extends (anything else: not a built graph)
_BUILT_POI_ATTRS = {"x", "pos", "state", "brand", "naics_code", "cell", "knn_km", "num_nodes"}
_BUILT_CELL_ATTRS = {"x", "pos", "num_nodes"}
_REQUIRED = (LAT, LON, NAICS_CODE, STATE)


@dataclass
class PoiInsertion:
    """Where a new POI enters a graph: its node inputs and the edges a fresh build gives it.

    Attributes:
        poi_id: Its id (None when the row has none).
        lat: Latitude as given (float64).
        lon: Longitude as given.
        state: State code.
        brand: Brand name (None: unbranded).
        naics_code: 6-digit NAICS code as an integer.
        x: The builder's POI features; shape ``(1, F_poi)`` float32.
        pos: Stored position; shape ``(1, 2)`` float32.
        knn_km: Great-circle km to its ``rank_k`` nearest POIs of its state; ``(1, rank_k)``.
        cell_id: H3 id of its cell.
        cell: Index of its cell: an existing cell, or ``num_cells`` for a new one.
        new_cell: True when the graph has no node for the cell yet.
        cell_x: The builder's features of its cell with the new POI counted; ``(1, F_cell)``.
        cell_neighbours: Existing cells a new cell is ``adjacent`` to (sorted; empty for an
            existing cell).
        near: POIs joined to it by ``near`` edges (both directions), nearest first.
    """

    poi_id: str | None
    lat: float
    lon: float
    state: str
    brand: str | None
    naics_code: int
    x: torch.Tensor
    pos: torch.Tensor
    knn_km: torch.Tensor
    cell_id: str
    cell: int
    new_cell: bool
    cell_x: torch.Tensor
    cell_neighbours: np.ndarray
    near: np.ndarray


class PoiInserter:
    """Place new POIs in one graph (the k-d trees over its POIs are built once, on first use).

    Args:
        graph: A built graph (or, for :meth:`plan` only, a preprocessed one).
        config: The builder's settings; default: the config the graph was built with. A config
            that disagrees with the graph's on a setting that places POIs is refused.

    Raises:
        ConfigError: ``config`` differs from the graph's own on ``cell_resolution``, ``cell_k``,
            ``near_k``, ``near_radius_km``, ``rank_k`` or ``granularity``.
    """

    def __init__(self, graph: GeoGraph, config: GraphConfig | None = None) -> None:
        self.graph = graph
        self.config = _config_of(graph, config)
        p = graph.data[POI]
        self.pos = p.pos.double().numpy()
        self.state_idx = p.state.numpy()
        self.cell_pos = {c: i for i, c in enumerate(graph.index["cell_ids"])}
        self.feature_names: list[str] = list(graph.index["poi_feature_names"])
        self._tree: tuple[np.ndarray, cKDTree] | None = None
        self._state_trees: dict[str, cKDTree | None] = {}

    def __repr__(self) -> str:
        return f"PoiInserter(pois={len(self.pos)}, near_k={self.config.near_k}, cell_resolution={self.config.cell_resolution})"

    def _xyz_tree(self) -> tuple[np.ndarray, cKDTree]:
        if self._tree is None:
            xyz = unit_xyz(self.pos[:, 0], self.pos[:, 1])
            self._tree = (xyz, cKDTree(xyz))
        return self._tree

    def plan(self, poi_row: Mapping[str, Any] | pl.DataFrame, *, reverse_near: bool = True) -> PoiInsertion:
        """Node inputs and edges of a new POI (see the module docstring); the graph is unchanged.

        Args:
            poi_row: One POI: a mapping (or a one-row table) with ``latitude``, ``longitude``,
                ``naics_code``, ``state``, optionally ``poi_id``, ``name``, ``brand`` and the
                graph's POI feature columns.
            reverse_near: Also join the POIs that would count the new one among their own
                ``near_k`` nearest, as a fresh build does. Default True.

        Raises:
            DataValidationError: a missing column, bad coordinates or NAICS code, or a column
                that is not one of the graph's POI features.
        """
        row = _row_of(poi_row, self.feature_names)
        lat, lon, state = row[LAT], row[LON], row[STATE]
        cfg = self.config
        x = torch.tensor([[_feature(row.get(f)) for f in self.feature_names]], dtype=torch.float64)
        pos = torch.tensor([[lat, lon]], dtype=torch.float32)
        cell_id = h3.latlng_to_cell(lat, lon, int(cfg.cell_resolution))
        cell = self.cell_pos.get(cell_id)
        new_cell = cell is None
        ring: list[int] = []
        if new_cell:
            cell = len(self.cell_pos)
            if int(cfg.cell_k) > 0:
                ring = sorted(self.cell_pos[c] for c in h3.grid_disk(cell_id, int(cfg.cell_k)) if c in self.cell_pos)
        return PoiInsertion(
            poi_id=None if row.get(POI_ID) is None else str(row[POI_ID]),
            lat=lat,
            lon=lon,
            state=state,
            brand=row.get(BRAND_COL),
            naics_code=row[NAICS_CODE],
            x=x.float(),
            pos=pos,
            knn_km=self._knn_km(pos, state),
            cell_id=cell_id,
            cell=int(cell),
            new_cell=new_cell,
            cell_x=self._cell_row(cell, new_cell),
            cell_neighbours=np.asarray(ring, dtype=np.int64),
            near=self._near(lat, lon, reverse_near),
        )

    def _near(self, lat: float, lon: float, reverse_near: bool) -> np.ndarray:
        """``near`` neighbours of a point, nearest first (the builder's query, see
        :func:`~geograph.graph.edges.knn_geo_edges`)."""
        n, k = len(self.pos), int(self.config.near_k)
        if n == 0 or k == 0:
            return np.zeros(0, dtype=np.int64)
        xyz, tree = self._xyz_tree()
        here = unit_xyz(np.array([lat]), np.array([lon]))
        chord = km_to_chord(float(self.config.near_radius_km))
        dist, nbr = tree.query(here, k=min(k, n), distance_upper_bound=chord)
        dist, nbr = np.atleast_1d(dist[0]), np.atleast_1d(nbr[0])
        ok = nbr < n
        near, near_d = nbr[ok].astype(np.int64), dist[ok]
        if reverse_near:
            # POIs within the radius whose k nearest others would include the new point: it is
            # closer to them than their present k-th neighbour (or they have fewer than k)
            cand = np.asarray(tree.query_ball_point(here[0], chord), dtype=np.int64)
            cand = np.sort(cand[~np.isin(cand, near)])
            if len(cand):
                to_new, _ = cKDTree(here).query(xyz[cand], k=1)  # the builder's distance arithmetic
                kth, _ = tree.query(xyz[cand], k=k + 1, distance_upper_bound=chord)  # column 0: itself
                kth = np.asarray(kth).reshape(len(cand), k + 1)[:, k]
                take = (to_new < kth) & (to_new < chord)
                near = np.concatenate([near, cand[take]])
                near_d = np.concatenate([near_d, to_new[take]])
                near = near[np.argsort(near_d, kind="stable")]
        return near

    def _knn_km(self, pos: torch.Tensor, state: str) -> torch.Tensor:
        """``knn_km`` row of a point: km to the ``rank_k`` nearest POIs of ``state``, from the
        stored (float32) positions as the builder measures them."""
        k = int(self.config.rank_k)
        out = np.full((1, k), np.inf, dtype=np.float32)
        tree = self._state_tree(state) if k else None
        if tree is not None:
            kk = min(k, tree.n)
            here = pos.double().numpy()
            chord, _ = tree.query(unit_xyz(here[:, 0], here[:, 1]), k=kk)
            out[0, :kk] = chord_to_km(np.atleast_1d(chord[0]))
        return torch.from_numpy(out)

    def _state_tree(self, state: str) -> cKDTree | None:
        """k-d tree over the POIs of ``state`` (None when the graph has none), built once."""
        if state not in self._state_trees:
            states = list(self.graph.index["states"])
            members = np.flatnonzero(self.state_idx == states.index(state)) if state in states else []
            self._state_trees[state] = (
                cKDTree(unit_xyz(self.pos[members, 0], self.pos[members, 1])) if len(members) else None
            )
        return self._state_trees[state]

    def _cell_row(self, cell: int, new_cell: bool) -> torch.Tensor:
        """The builder's features of the POI's cell once it holds the POI."""
        cx = raw_features(self.graph.data[CELL])
        names = list(self.graph.index.get("cell_feature_names", []))
        col = names.index(CELL_COUNT_FEATURE) if CELL_COUNT_FEATURE in names else None
        if new_cell:
            row = torch.zeros(1, cx.size(1), dtype=cx.dtype)
            count = 0
        else:
            row = cx[cell : cell + 1].clone()
            # the stored value is float32 log1p(count): exact back to the count below ~1e5 POIs a cell
            count = round(float(np.expm1(float(row[0, col])))) if col is not None else 0
        if col is not None:
            row[0, col] = float(np.log1p(float(count + 1)))
        return row

    def insert(self, poi_row: Mapping[str, Any] | pl.DataFrame, *, reverse_near: bool = True) -> GeoGraph:
        """A new graph: this one plus the POI of ``poi_row`` (see :meth:`plan`).

        The POI is the last ``poi`` node; a new cell is the last ``cell`` node; a state or brand
        the graph does not list is appended to ``index["states"]`` / ``index["brands"]``.

        Raises:
            DataValidationError: as :meth:`plan`, or a missing / repeated ``poi_id``.
            ValueError: the graph is not a built one (e.g. it was preprocessed).
        """
        g = self.graph
        _check_built(g)
        ins = self.plan(poi_row, reverse_near=reverse_near)
        if ins.poi_id is None:
            raise DataValidationError("poi_row has no 'poi_id'; a POI added to a graph needs one", field=POI_ID)
        if ins.poi_id in set(g.index["poi_ids"]):
            raise DataValidationError(f"duplicate poi_id {ins.poi_id!r}: the graph already has it", field=POI_ID)
        index = {k: list(v) for k, v in g.index.items()}
        data = copy.copy(g.data)  # new stores; the tensors below are new, so ``g`` is unchanged
        p, c = data[POI], data[CELL]
        n = int(p.num_nodes)
        if ins.state not in index["states"]:
            index["states"].append(ins.state)
        brand = -1
        if ins.brand is not None:
            if ins.brand not in index["brands"]:
                index["brands"].append(ins.brand)
            brand = index["brands"].index(ins.brand)
        p.num_nodes = n + 1
        p.x = torch.cat([p.x, ins.x])
        p.pos = torch.cat([p.pos, ins.pos])
        p.state = torch.cat([p.state, torch.tensor([index["states"].index(ins.state)])])
        p.brand = torch.cat([p.brand, torch.tensor([brand])])
        p.naics_code = torch.cat([p.naics_code, torch.tensor([ins.naics_code])])
        p.cell = torch.cat([p.cell, torch.tensor([ins.cell])])
        p.knn_km = torch.cat([p.knn_km, ins.knn_km])
        if ins.new_cell:
            c.num_nodes = int(c.num_nodes) + 1
            c.pos = torch.cat([c.pos, cell_positions([ins.cell_id])])
            c.x = torch.cat([c.x, ins.cell_x])
            index["cell_ids"].append(ins.cell_id)
        else:
            c.x = c.x.clone()
            c.x[ins.cell] = ins.cell_x[0]
        index["poi_ids"].append(ins.poi_id)
        _add_edges(data, (POI, IN, CELL), [n], [ins.cell])
        _add_edges(data, (CELL, REV_PREFIX + IN, POI), [ins.cell], [n])
        if ins.new_cell and len(ins.cell_neighbours):
            ring = ins.cell_neighbours.tolist()
            _add_edges(data, (CELL, ADJACENT, CELL), [ins.cell] * len(ring) + ring, ring + [ins.cell] * len(ring))
        near = ins.near.tolist()
        src, dst = [n] * len(near) + near, near + [n] * len(near)
        attr = pair_features(p, torch.tensor(src, dtype=torch.long), torch.tensor(dst, dtype=torch.long))
        _add_edges(data, (POI, NEAR, POI), src, dst, attr, sort_nodes=n + 1)
        stats = dict(g.stats, inserted_pois=int(g.stats.get("inserted_pois", 0)) + 1)
        return GeoGraph(data=data, index=index, config=dict(g.config), stats=stats)


def insert_poi(
    graph: GeoGraph,
    poi_row: Mapping[str, Any] | pl.DataFrame,
    config: GraphConfig | None = None,
    *,
    reverse_near: bool = True,
) -> GeoGraph:
    """A new graph: ``graph`` plus one POI, placed as :func:`build_graph` would place it.

    Args:
        graph: A built graph (not preprocessed: insert first, then apply the
            :class:`~geograph.graph.transforms.FeaturePreprocessor`).
        poi_row: The POI: a mapping or a one-row table with ``poi_id``, ``latitude``,
            ``longitude``, ``naics_code``, ``state``, optionally ``name``, ``brand`` and values of
            the graph's POI features.
        config: The builder's settings; default: the config the graph was built with.
        reverse_near: Also join the POIs that would count the new one among their own
            ``near_k`` nearest, as a fresh build does. Default True.

    Returns:
        The new graph; the new POI is its last ``poi`` node. ``graph`` is unchanged.

    Raises:
        DataValidationError: a missing column or ``poi_id``, a repeated ``poi_id``, bad
            coordinates or NAICS code, or an unknown feature column.
        ConfigError: ``config`` disagrees with the graph's own placement settings.
        ValueError: ``graph`` is not a built graph.
    """
    return PoiInserter(graph, config).insert(poi_row, reverse_near=reverse_near)


def _config_of(graph: GeoGraph, config: GraphConfig | None) -> GraphConfig:
    recorded = GraphConfig.from_dict(graph.config) if graph.config else None
    if config is None:
        return recorded or GraphConfig()
    if recorded is not None:
        for key in _PLACEMENT_KEYS:
            mine, built = getattr(config, key), getattr(recorded, key)
            if mine != built:
                raise ConfigError(
                    f"graph.{key} is {mine!r} but the graph was built with {built!r}; "
                    "a POI is inserted with the settings the graph was built with"
                )
    return config


def _row_of(poi_row: Mapping[str, Any] | pl.DataFrame, feature_names: list[str]) -> dict[str, Any]:
    """The row as a checked dict: float coordinates, integer NAICS code, string state."""
    if isinstance(poi_row, pl.DataFrame):
        if poi_row.height != 1:
            raise DataValidationError(f"poi_row must be one row, got a table of {poi_row.height}")
        poi_row = poi_row.row(0, named=True)
    row = dict(poi_row)
    for name in _REQUIRED:
        if row.get(name) is None:
            raise DataValidationError(f"poi_row has no {name!r}", field=name)
    unknown = sorted(set(row) - NON_FEATURE_COLUMNS - set(feature_names))
    if unknown:
        raise DataValidationError(
            f"poi_row has column(s) {unknown} that are not POI features of the graph; its features are "
            f"{feature_names}",
            field=unknown[0],
        )
    try:
        row[LAT], row[LON] = float(row[LAT]), float(row[LON])
        check_lat_lon(np.array([row[LAT]]), np.array([row[LON]]), "poi_row")
    except (TypeError, ValueError) as exc:
        raise DataValidationError(str(exc), field=LAT) from exc
    code = str(row[NAICS_CODE]).strip()
    if len(code) != 6 or not code.isdigit():
        raise DataValidationError(f"NAICS code must have 6 digits, got {row[NAICS_CODE]!r}", field=NAICS_CODE)
    row[NAICS_CODE] = int(code)
    row[STATE] = str(row[STATE])
    if row.get(BRAND_COL) is not None:
        row[BRAND_COL] = str(row[BRAND_COL])
    return row


def _feature(value: Any) -> float:
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"POI feature values must be numbers, got {value!r}") from exc


def _check_built(graph: GeoGraph) -> None:
    for node_type, allowed in ((POI, _BUILT_POI_ATTRS), (CELL, _BUILT_CELL_ATTRS)):
        extra = sorted(set(graph.data[node_type].keys()) - allowed)
        if extra:
            raise ValueError(
                f"insert_poi takes a built graph, but its {node_type} nodes carry {extra} (a preprocessed "
                "graph?); insert into the built graph, then apply the FeaturePreprocessor"
            )


def _add_edges(
    data: HeteroData,
    edge_type: tuple[str, str, str],
    src: list[int],
    dst: list[int],
    attr: torch.Tensor | None = None,
    sort_nodes: int | None = None,
) -> None:
    """Append edges (and their ``edge_attr``) to a relation; with ``sort_nodes``, keep the
    relation sorted by ``(src, dst)`` as the builder leaves it."""
    store = data[edge_type]
    ei = torch.cat([store.edge_index, torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)], dim=1)
    has_attr = attr is not None and "edge_attr" in store
    ea = torch.cat([store.edge_attr, attr]) if has_attr else None
    if sort_nodes is not None:
        order = torch.from_numpy(np.argsort((ei[0] * sort_nodes + ei[1]).numpy(), kind="stable"))
        ei = ei[:, order]
        ea = ea[order] if ea is not None else None
    store.edge_index = ei
    if ea is not None:
        store.edge_attr = ea
