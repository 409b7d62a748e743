"""insert_poi: one POI added as a fresh build of the table plus that row would place it."""

from __future__ import annotations

import h3
import numpy as np
import polars as pl
import pytest
import torch
from graph_worlds import covisit_frame, poi_frame

from geograph.constants import (
    ADJACENT,
    BRAND_COL,
    CELL,
    COVISITS,
    IN,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    NEAR,
    POI,
    POI_ID,
    REV_PREFIX,
    STATE,
)
from geograph.data.world_io import World
from geograph.errors import ConfigError, DataValidationError
from geograph.graph import FeaturePreprocessor, GeoGraph, GraphConfig, PoiInserter, build_graph, insert_poi

# POIs on one meridian at multiples of 1/512 degree (~217 m), exact in float32 so that the
# graph's stored positions and the table's agree. With near_k = 2 the new POI x (at 8) has d
# and e as its own nearest, and g (at 5) gains x among its two nearest: a fresh build joins
# x and g, and so must insert_poi.
STEP = 1 / 512
ORIGIN = (37.0, -120.0)
UNITS = {"a": 0, "b": 1, "g": 5, "d": 9.5, "e": 10, "f": 30}
CFG = GraphConfig(near_k=2, near_radius_km=50.0, cell_resolution=7, cell_k=1, rank_k=3, include_images=False)


def lat_of(units: float) -> float:
    return ORIGIN[0] + units * STEP


def line_world() -> World:
    rows = [(pid, "Bluebird" if pid in "ad" else None, "722515", lat_of(u), ORIGIN[1], "CA", 10.0 * i)
            for i, (pid, u) in enumerate(UNITS.items())]
    rows.append(("ny", None, "445110", 40.75, -74.0, "NY", 5.0))
    return World(pois=poi_frame(rows), covisits=covisit_frame([("a", "b", 3), ("d", "e", 0)]))


def new_row(pid: str = "x", lat: float = lat_of(8), lon: float = ORIGIN[1], **extra) -> dict:
    row = {POI_ID: pid, NAME: "new", BRAND_COL: "Bluebird", NAICS_CODE: "722513", LAT: lat, LON: lon, STATE: "CA",
           "visits": 7.0}
    return row | extra


def fresh_build(world: World, row: dict) -> GeoGraph:
    table = pl.concat([world.pois, pl.DataFrame([row], schema=world.pois.schema)])
    return build_graph(World(pois=table, covisits=world.covisits), CFG)


def near_ids(graph: GeoGraph, i: int) -> set[str]:
    ei = graph.data[POI, NEAR, POI].edge_index
    ids = graph.index["poi_ids"]
    out = {ids[j] for j in ei[1][ei[0] == i].tolist()}
    assert out == {ids[j] for j in ei[0][ei[1] == i].tolist()}, "near edges are symmetric"
    return out


def cell_row(graph: GeoGraph, cell_id: str) -> torch.Tensor:
    return graph.data[CELL].x[graph.index["cell_ids"].index(cell_id)]


def adjacent_ids(graph: GeoGraph, cell_id: str) -> set[str]:
    ei = graph.data[CELL, ADJACENT, CELL].edge_index
    ids = graph.index["cell_ids"]
    c = ids.index(cell_id)
    return {ids[j] for j in ei[1][ei[0] == c].tolist()} | {ids[j] for j in ei[0][ei[1] == c].tolist()}


def near_pair_features(graph: GeoGraph, i: int) -> dict[str, torch.Tensor]:
    """``[distance_km, same_brand, naics_depth]`` of the near edges leaving POI ``i``, by other end."""
    store = graph.data[POI, NEAR, POI]
    mine = store.edge_index[0] == i
    ids = graph.index["poi_ids"]
    return {ids[d]: a[:3] for d, a in zip(store.edge_index[1][mine].tolist(), store.edge_attr[mine], strict=True)}


@pytest.fixture
def world() -> World:
    return line_world()


@pytest.fixture
def graph(world) -> GeoGraph:
    return build_graph(world, CFG)


def assert_matches_fresh_build(got: GeoGraph, fresh: GeoGraph, pid: str) -> None:
    i, j = got.index["poi_ids"].index(pid), fresh.index["poi_ids"].index(pid)
    p, q = got.data[POI], fresh.data[POI]
    assert near_ids(got, i) == near_ids(fresh, j)
    for key in ("x", "pos", "naics_code", "knn_km"):
        torch.testing.assert_close(p[key][i], q[key][j], rtol=0, atol=0, equal_nan=True, msg=key)
    assert got.index["states"][int(p.state[i])] == fresh.index["states"][int(q.state[j])]
    assert got.index["brands"][int(p.brand[i])] == fresh.index["brands"][int(q.brand[j])]
    cell_id = got.index["cell_ids"][int(p.cell[i])]
    assert cell_id == fresh.index["cell_ids"][int(q.cell[j])]
    assert torch.equal(cell_row(got, cell_id), cell_row(fresh, cell_id))  # its POI counted
    assert adjacent_ids(got, cell_id) == adjacent_ids(fresh, cell_id)
    # distance, same brand, NAICS depth of its near edges as a fresh build measures them (the
    # neighbour rank may differ: the other ends keep their own neighbour distances)
    ours, theirs = near_pair_features(got, i), near_pair_features(fresh, j)
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key])


def test_near_edges_equal_a_fresh_build_including_reverse_neighbours(world, graph):
    row = new_row()
    got = insert_poi(graph, row)
    fresh = fresh_build(world, row)
    assert near_ids(got, got.num_pois - 1) == {"d", "e", "g"}  # g: x is now one of its two nearest
    assert_matches_fresh_build(got, fresh, "x")
    # without reverse_near only its own nearest, as when the existing POIs keep their lists
    own = PoiInserter(graph).plan(row, reverse_near=False)
    assert [graph.index["poi_ids"][k] for k in own.near] == ["d", "e"]


def test_adds_exactly_one_poi_and_leaves_the_rest(graph):
    before = {(s._key, k): v.clone() for s in graph.data.stores for k, v in s.items() if isinstance(v, torch.Tensor)}
    got = insert_poi(graph, new_row())
    n = graph.num_pois
    assert got.num_pois == n + 1 and got.index["poi_ids"] == graph.index["poi_ids"] + ["x"]
    assert got.num_cells == graph.num_cells  # x lies in an existing cell
    assert got.stats["inserted_pois"] == 1
    # the input graph is unchanged
    for (key, attr), v in before.items():
        assert torch.equal(graph.data[key][attr], v), (key, attr)
    # the existing POIs' rows, co-visits and cell edges are as they were
    p, q = got.data[POI], graph.data[POI]
    for key in ("x", "pos", "state", "brand", "naics_code", "cell", "knn_km"):
        assert torch.equal(p[key][:n], q[key]), key
    assert torch.equal(got.data[POI, COVISITS, POI].edge_index, graph.data[POI, COVISITS, POI].edge_index)
    assert got.data[POI, IN, CELL].edge_index[:, -1].tolist() == [n, int(p.cell[n])]
    assert got.data[CELL, REV_PREFIX + IN, POI].edge_index[:, -1].tolist() == [int(p.cell[n]), n]
    # every old near edge is still there, the new ones all touch x, and the relation stays sorted
    old = set(map(tuple, graph.data[POI, NEAR, POI].edge_index.T.tolist()))
    new = list(map(tuple, got.data[POI, NEAR, POI].edge_index.T.tolist()))
    assert old <= set(new) and all(n in e for e in set(new) - old) and new == sorted(new)
    assert got.data[POI, NEAR, POI].edge_attr.shape == (len(new), 4)


def test_a_poi_in_a_new_cell_gets_the_cell_and_its_adjacency(world, graph):
    c0 = h3.latlng_to_cell(lat_of(UNITS["f"]), ORIGIN[1], 7)
    free = sorted(c for c in h3.grid_ring(c0, 1) if c not in graph.index["cell_ids"])[0]
    lat, lon = (float(np.float32(v)) for v in h3.cell_to_latlng(free))
    row = new_row("y", lat, lon, brand="Brand New", state="TX", visits=None)
    plan = PoiInserter(graph).plan(row)
    assert plan.new_cell and plan.cell_id == free and plan.cell == graph.num_cells
    got = insert_poi(graph, row)
    assert got.num_cells == graph.num_cells + 1 and got.index["cell_ids"][-1] == free
    assert got.index["states"][-1] == "TX" and got.index["brands"][-1] == "Brand New"
    assert torch.isnan(got.data[POI].x[-1, 0])  # a missing feature is NaN, as a null in the table
    assert torch.isinf(got.data[POI].knn_km[-1]).all()  # the only POI of its state
    assert_matches_fresh_build(got, fresh_build(world, row), "y")


def test_takes_a_one_row_table_and_the_graph_config(world, graph):
    row = new_row()
    table = pl.DataFrame([row])
    a = insert_poi(graph, table)
    b = insert_poi(graph, row, CFG)
    assert torch.equal(a.data[POI, NEAR, POI].edge_index, b.data[POI, NEAR, POI].edge_index)


@pytest.mark.parametrize(
    ("change", "error", "pattern"),
    [
        ({"poi_id": "a"}, DataValidationError, "duplicate poi_id 'a'"),
        ({"poi_id": None}, DataValidationError, "needs one"),
        ({"latitude": None}, DataValidationError, "no 'latitude'"),
        ({"latitude": 91.0}, DataValidationError, r"latitude must be in \[-90, 90\]"),
        ({"naics_code": "7225"}, DataValidationError, "6 digits, got '7225'"),
        ({"seats": 3}, DataValidationError, r"column\(s\) \['seats'\]"),
        ({"visits": "many"}, DataValidationError, "must be numbers, got 'many'"),
    ],
)
def test_bad_rows_are_named(graph, change, error, pattern):
    with pytest.raises(error, match=pattern):
        insert_poi(graph, new_row() | change)


def test_refuses_other_settings_and_preprocessed_graphs(graph):
    with pytest.raises(ConfigError, match="graph.near_k is 5 but the graph was built with 2"):
        insert_poi(graph, new_row(), GraphConfig(near_k=5, near_radius_km=50.0, rank_k=3))
    done = FeaturePreprocessor().fit(graph)(graph)
    with pytest.raises(ValueError, match="insert into the built graph, then apply the FeaturePreprocessor"):
        insert_poi(done, new_row())
    # planning (what-if analysis on a model's preprocessed graph) reads the builder's values
    assert torch.equal(PoiInserter(done).plan(new_row()).cell_x, PoiInserter(graph).plan(new_row()).cell_x)
    assert "PoiInserter(pois=7, near_k=2" in repr(PoiInserter(graph))
