"""build_graph on hand-made worlds: exact node counts, edge indices, edge features and shapes."""

from __future__ import annotations

import h3
import polars as pl
import pytest
import torch
from graph_worlds import (
    CELL_COVISITS,
    CELL_POIS,
    LINE_KM,
    cell_world,
    cell_world_cells,
    line_world,
    poi_pos,
    ref_haversine_km,
)

from geograph.constants import (
    ADJACENT,
    CELL,
    COVISITS,
    H3_CELL,
    IMAGE,
    IN,
    NEAR,
    POI,
    REV_PREFIX,
    SIMILAR,
)
from geograph.errors import DataValidationError
from geograph.graph import GeoGraph, GraphConfig, build_graph, pair_features
from geograph.testing import hand_made_world

CFG = GraphConfig(cell_resolution=7, cell_k=1, near_k=1, near_radius_km=0.1, image_k=1)


def pairs(ei: torch.Tensor) -> list[tuple[int, int]]:
    return list(zip(ei[0].tolist(), ei[1].tolist(), strict=True))


@pytest.fixture(scope="module")
def cell_graph() -> GeoGraph:
    return build_graph(cell_world(), CFG)


@pytest.fixture(scope="module")
def cell_index() -> dict[str, int]:
    """Cell name (c0..c4) -> node index; cell nodes are numbered in sorted H3-id order."""
    cells = cell_world_cells()
    order = sorted(cells.values())
    return {name: order.index(cid) for name, cid in cells.items()}


def test_node_counts_and_id_tables(cell_graph, cell_index):
    d = cell_graph.data
    assert set(d.node_types) == {POI, CELL, IMAGE}
    assert (d[POI].num_nodes, d[CELL].num_nodes, d[IMAGE].num_nodes) == (6, 5, 4)
    assert cell_graph.index["poi_ids"] == ["a", "b", "c", "d", "e", "f"]
    assert cell_graph.index["cell_ids"] == sorted(cell_world_cells().values())
    assert cell_graph.index["image_ids"] == ["i0", "i1", "i2", "i3"]
    assert cell_graph.index["states"] == ["CA", "NY"]
    assert cell_graph.index["brands"] == ["Bluebird", "Crust"]
    assert cell_graph.stats == {"covisit_self_loops_dropped": 0, "covisit_duplicates_summed": 0}
    assert repr(cell_graph) == "GeoGraph(poi=6, cell=5, image=4, edge_types=9)"


def test_poi_in_cell_and_reverse(cell_graph, cell_index):
    d = cell_graph.data
    cells = [cell_index[r[3]] for r in CELL_POIS]  # a, b in c0; c in c1; d in c2; e, f in c3
    assert pairs(d[POI, IN, CELL].edge_index) == list(enumerate(cells))
    assert pairs(d[CELL, REV_PREFIX + IN, POI].edge_index) == [(c, i) for i, c in enumerate(cells)]
    assert d[POI].cell.tolist() == cells


def test_cell_adjacent_cell(cell_index):
    c = cell_index
    # k = 1: c0-c1 and c1-c2 touch (c2 is two steps from c0), and c3-c4; both directions
    g1 = build_graph(cell_world(), CFG)
    want1 = {(c["c0"], c["c1"]), (c["c1"], c["c2"]), (c["c3"], c["c4"])}
    want1 |= {(b, a) for a, b in want1}
    assert set(pairs(g1.data[CELL, ADJACENT, CELL].edge_index)) == want1
    assert g1.data[CELL, ADJACENT, CELL].edge_index.size(1) == 6  # no duplicates, no self-loops
    # k = 2 adds c0-c2
    g2 = build_graph(cell_world(), GraphConfig(cell_resolution=7, cell_k=2, near_k=0, image_k=0))
    want2 = want1 | {(c["c0"], c["c2"]), (c["c2"], c["c0"])}
    assert set(pairs(g2.data[CELL, ADJACENT, CELL].edge_index)) == want2
    # k = 0: no adjacency
    g0 = build_graph(cell_world(), GraphConfig(cell_resolution=7, cell_k=0, near_k=0, image_k=0))
    assert g0.data[CELL, ADJACENT, CELL].edge_index.shape == (2, 0)


@pytest.mark.parametrize(
    ("k", "radius", "want"),
    [
        # line world at 0, 1, 2.2, 3.7, 10 km: each POI's nearest, then symmetrised
        (1, 2.0, {(0, 1), (1, 2), (2, 3)}),
        (2, 2.0, {(0, 1), (1, 2), (2, 3)}),  # the 2nd neighbours are all farther than 2 km
        (2, 3.0, {(0, 1), (0, 2), (1, 2), (2, 3), (1, 3)}),
        (1, 100.0, {(0, 1), (1, 2), (2, 3), (3, 4)}),  # 10 km POI reaches 3.7 km POI
        (1, 0.5, set()),
    ],
)
def test_poi_near_poi_symmetric_within_radius(k, radius, want):
    world = line_world()
    g = build_graph(world, GraphConfig(near_k=k, near_radius_km=radius, image_k=0))
    store = g.data[POI, NEAR, POI]
    got = pairs(store.edge_index)
    full = want | {(b, a) for a, b in want}
    assert got == sorted(full)  # sorted, symmetric, no duplicates
    assert store.edge_attr.shape == (len(full), 4)
    pos = poi_pos(world)
    for (s, t), attr in zip(got, store.edge_attr.tolist(), strict=True):
        assert attr[0] == pytest.approx(abs(LINE_KM[s] - LINE_KM[t]), abs=1e-3)
        # positions are stored as float32 (~0.4 m at this latitude), hence 1 m
        assert attr[0] == pytest.approx(ref_haversine_km(pos[s], pos[t]), abs=1e-3)
        assert attr[0] <= radius
        assert attr[1:3] == [0.0, 6.0]  # no brand; one NAICS code
        assert attr[3] == line_rank(s, t)


def line_rank(s: int, t: int) -> int:
    """Intervening opportunities on the line world (one state), by brute force."""
    d = abs(LINE_KM[s] - LINE_KM[t])

    def closer(a: int) -> int:
        return sum(1 for j in range(len(LINE_KM)) if j != a and abs(LINE_KM[j] - LINE_KM[a]) < d - 1e-6)

    return min(closer(s), closer(t))


def test_neighbour_rank_counts_same_state_pois_and_caps():
    world = line_world()
    g = build_graph(world, GraphConfig(image_k=0, rank_k=2))
    knn = g.data[POI].knn_km
    assert knn.shape == (len(LINE_KM), 2)
    # each row ascending, the k nearest distances on the line
    for i in range(len(LINE_KM)):
        want = sorted(abs(LINE_KM[j] - LINE_KM[i]) for j in range(len(LINE_KM)) if j != i)[:2]
        assert knn[i].tolist() == pytest.approx(want, abs=1e-3)
    n = len(LINE_KM)
    src = torch.tensor([s for s in range(n) for t in range(n) if s != t])
    dst = torch.tensor([t for s in range(n) for t in range(n) if s != t])
    rank = pair_features(g, src, dst)[:, 3]
    assert rank.tolist() == [min(line_rank(s, t), 2) for s, t in zip(src.tolist(), dst.tolist(), strict=True)]
    # without neighbour distances (a store from before they existed) the column is NaN
    store = g.data[POI]
    bare = type("Store", (), {k: store[k] for k in ("pos", "brand", "naics_code")})
    assert torch.isnan(pair_features(bare, src, dst)[:, 3]).all()


def test_near_matches_brute_force_on_hand_made_world():
    world = hand_made_world()
    k, radius = 2, 3.0
    g = build_graph(world, GraphConfig(near_k=k, near_radius_km=radius, image_k=0))
    pos = poi_pos(world)
    n = len(pos)
    want = set()
    for i in range(n):
        d = sorted((ref_haversine_km(pos[i], pos[j]), j) for j in range(n) if j != i)
        want |= {(i, j) for dist, j in d[:k] if dist <= radius}
    want |= {(b, a) for a, b in want}
    assert pairs(g.data[POI, NEAR, POI].edge_index) == sorted(want)


def test_poi_covisits_poi_visitors_and_edge_attr(cell_graph):
    d = cell_graph.data
    idx = {r[0]: i for i, r in enumerate(CELL_POIS)}
    rows = sorted((idx[s], idx[t], v) for s, t, v in CELL_COVISITS)  # edges are sorted by (src, dst)
    store = d[POI, COVISITS, POI]
    assert pairs(store.edge_index) == [(s, t) for s, t, _ in rows]
    assert store.visitors.tolist() == [v for _, _, v in rows]
    assert store.visitors.dtype == torch.long
    # [distance_km, same_brand, NAICS prefix depth], worked out by hand:
    # a-b Bluebird/Bluebird 722515/722513 -> 1, 5; a-c Bluebird/Crust 722515/722330 -> 0, 3;
    # a-d Bluebird/none 722515/721110 -> 0, 2; c-d 722330/721110 -> 0, 2; e-f 722515/445110 -> 0, 0
    want = {(0, 1): (1, 5), (0, 2): (0, 3), (0, 3): (0, 2), (1, 0): (1, 5), (2, 3): (0, 2), (4, 5): (0, 0)}
    pos = poi_pos(cell_world())
    assert store.edge_attr.shape == (6, 4) and store.edge_attr.dtype == torch.float32
    for (s, t), attr in zip(pairs(store.edge_index), store.edge_attr.tolist(), strict=True):
        assert attr[0] == pytest.approx(ref_haversine_km(pos[s], pos[t]), abs=1e-3)
        assert tuple(attr[1:3]) == want[(s, t)]
    # a -> b is 0.0005 degrees of latitude: ~56 m
    assert store.edge_attr[0, 0].item() == pytest.approx(0.0556, abs=1e-3)
    rev = d[POI, REV_PREFIX + COVISITS, POI]
    assert torch.equal(rev.edge_index, store.edge_index.flip(0))
    assert torch.equal(rev.visitors, store.visitors)
    # pair_features on arbitrary pairs agrees with the stored edge features
    torch.testing.assert_close(
        pair_features(cell_graph, store.edge_index[0], store.edge_index[1]), store.edge_attr
    )


def test_image_in_cell_and_similar(cell_graph, cell_index):
    d = cell_graph.data
    # i3 lies in c4, a cell with no POI: it still gets a cell node, with log1p(0) = 0 POIs
    want = [(0, cell_index["c0"]), (1, cell_index["c1"]), (2, cell_index["c3"]), (3, cell_index["c4"])]
    assert pairs(d[IMAGE, IN, CELL].edge_index) == want
    assert pairs(d[CELL, REV_PREFIX + IN, IMAGE].edge_index) == [(c, i) for i, c in want]
    assert d[CELL].x[cell_index["c4"], 0].item() == 0.0
    # cosine nearest: i0 ~ i1 and i2 ~ i3, symmetrised
    assert pairs(d[IMAGE, SIMILAR, IMAGE].edge_index) == [(0, 1), (1, 0), (2, 3), (3, 2)]


def test_feature_shapes_and_dtypes(cell_graph):
    d = cell_graph.data
    assert d[POI].x.shape == (6, 1) and d[POI].x.dtype == torch.float32
    assert d[POI].x[:, 0].tolist() == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert cell_graph.index["poi_feature_names"] == ["visits"]
    assert d[POI].pos.shape == (6, 2)
    assert d[POI].state.tolist() == [0, 0, 0, 0, 1, 1]
    assert d[POI].brand.tolist() == [0, 0, 1, -1, 0, -1]  # -1: no brand
    assert d[POI].naics_code.tolist() == [722515, 722513, 722330, 721110, 722515, 445110]
    assert d[POI].naics_code.dtype == torch.long
    assert d[CELL].x.shape == (5, 1) and cell_graph.index["cell_feature_names"] == ["log1p_pois"]
    assert d[CELL].x[:, 0].tolist() == pytest.approx(
        torch.log1p(torch.tensor([2.0, 1, 1, 0, 2])).tolist()
    )
    assert d[CELL].pos.shape == (5, 2)
    cells = cell_graph.index["cell_ids"]
    want_pos = torch.tensor([h3.cell_to_latlng(c) for c in cells])
    torch.testing.assert_close(d[CELL].pos, want_pos, rtol=0, atol=1e-5)
    assert d[IMAGE].x.shape == (4, 3) and d[IMAGE].pos.shape == (4, 2)


def test_without_images_or_near():
    g = build_graph(cell_world(images=False), GraphConfig(cell_resolution=7, near_k=0, image_k=0))
    assert IMAGE not in g.data.node_types
    assert g.num_cells == 4  # c4 only held an image
    assert g.data[POI, NEAR, POI].edge_index.shape == (2, 0)
    assert g.data[POI, NEAR, POI].edge_attr.shape == (0, 4)
    g2 = build_graph(cell_world(), GraphConfig(cell_resolution=7, include_images=False))
    assert IMAGE not in g2.data.node_types


def _regions(cells: list[str], cols: dict[str, list]) -> pl.DataFrame:
    return pl.DataFrame({H3_CELL: cells, **cols})


def test_region_features_coarser_than_cells(cell_index):
    cells = cell_world_cells()
    p6 = {k: h3.cell_to_parent(v, 6) for k, v in cells.items()}
    assert p6["c0"] == p6["c1"] and len({p6["c0"], p6["c2"], p6["c3"], p6["c4"]}) == 4
    regions = _regions([p6["c0"], p6["c3"]], {"population": [100, 300], "income": [1.5, 3.5]})
    g = build_graph(cell_world(regions), CFG)
    assert g.index["cell_feature_names"] == ["log1p_pois", "population", "income", "has_region"]
    x = g.data[CELL].x
    assert x.shape == (5, 4)
    want = {"c0": [100, 1.5, 1], "c1": [100, 1.5, 1], "c2": [0, 0, 0], "c3": [300, 3.5, 1], "c4": [0, 0, 0]}
    for name, row in want.items():
        assert x[cell_index[name], 1:].tolist() == row, name


def test_region_features_finer_than_cells(cell_index):
    cells = cell_world_cells()
    kids0 = sorted(h3.cell_to_children(cells["c0"], 8))  # 7 children
    kids3 = sorted(h3.cell_to_children(cells["c3"], 8))[:2]
    regions = _regions(kids0 + kids3, {"population": [1, 2, 3, 4, 5, 6, 7, 10, 20]})
    g = build_graph(cell_world(regions), CFG)
    x = g.data[CELL].x
    assert g.index["cell_feature_names"] == ["log1p_pois", "population", "has_region"]
    want = {"c0": [4.0, 1], "c1": [0, 0], "c2": [0, 0], "c3": [15.0, 1], "c4": [0, 0]}  # means of children
    for name, row in want.items():
        assert x[cell_index[name], 1:].tolist() == row, name


def test_region_with_null_value_still_counts_as_present(cell_index):
    cells = cell_world_cells()
    p6 = h3.cell_to_parent(cells["c0"], 6)
    regions = pl.DataFrame(
        {H3_CELL: [p6], "population": [None], "income": [2.5]},
        schema={H3_CELL: pl.Utf8, "population": pl.Float64, "income": pl.Float64},
    )
    x = build_graph(cell_world(regions), CFG).data[CELL].x
    assert x[cell_index["c0"], 1:].tolist() == [0.0, 2.5, 1.0]  # null -> 0, has_region 1
    assert x[cell_index["c2"], 1:].tolist() == [0.0, 0.0, 0.0]


def test_region_points_are_averaged_per_cell(cell_index):
    cells = cell_world_cells()
    (la0, lo0), (la3, lo3) = h3.cell_to_latlng(cells["c0"]), h3.cell_to_latlng(cells["c3"])
    regions = pl.DataFrame(
        {"latitude": [la0, la0 + 0.001, la3], "longitude": [lo0, lo0, lo3], "population": [10.0, 30.0, 7.0]}
    )
    g = build_graph(cell_world(regions), CFG)
    assert g.index["cell_feature_names"] == ["log1p_pois", "population", "has_region"]
    x = g.data[CELL].x
    assert x[cell_index["c0"], 1:].tolist() == [20.0, 1.0]
    assert x[cell_index["c3"], 1:].tolist() == [7.0, 1.0]
    assert x[cell_index["c1"], 1:].tolist() == [0.0, 0.0]


def test_regions_of_mixed_resolution_are_an_error():
    cells = cell_world_cells()
    regions = _regions(
        [h3.cell_to_parent(cells["c0"], 6), h3.cell_to_parent(cells["c3"], 5)], {"population": [1, 2]}
    )
    with pytest.raises(DataValidationError, match=r"regions mix H3 resolutions \[5, 6\]"):
        build_graph(cell_world(regions), CFG)


def test_region_features_same_resolution_hand_made_world():
    world = hand_made_world()  # regions are the resolution-6 cells of the POIs
    g = build_graph(world, GraphConfig(cell_resolution=6, near_k=0, image_k=0))
    x = g.data[CELL].x
    reg = dict(zip(world.regions[H3_CELL], world.regions["population"], strict=True))
    for i, cid in enumerate(g.index["cell_ids"]):
        if cid in reg:
            assert x[i, 1].item() == reg[cid] and x[i, 3].item() == 1.0
        else:  # a cell holding only an image
            assert x[i, 1:].tolist() == [0.0, 0.0, 0.0]
    assert g.num_pois == 8


def test_build_is_deterministic():
    a, b = build_graph(hand_made_world()), build_graph(hand_made_world())
    for et in a.data.edge_types:
        assert torch.equal(a.data[et].edge_index, b.data[et].edge_index), et
    assert a.index == b.index
