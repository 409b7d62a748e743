"""Awkward input: unknown ids, self-loops, duplicates, empty tables, brand-level co-visits."""

from __future__ import annotations

import warnings

import polars as pl
import pytest
import torch
from graph_worlds import brand_covisit_frame, covisit_frame

from geograph.constants import BRAND_COL, COVISITS, DST_BRAND, POI, SRC_BRAND, STATE, VISITORS
from geograph.data.brands import N_LOCATIONS, to_brand_level
from geograph.data.world_io import World
from geograph.errors import ConfigError, DataValidationError
from geograph.graph import GraphConfig, build_graph
from geograph.testing import hand_made_world

CFG = GraphConfig(near_k=0, image_k=0)


def with_covisits(cov: pl.DataFrame) -> World:
    w = hand_made_world()
    return World(pois=w.pois, covisits=cov, images=w.images, regions=w.regions)


def covisit_dict(g) -> dict[tuple[str, str], int]:
    ids = g.index["poi_ids"]
    store = g.data[POI, COVISITS, POI]
    return {
        (ids[s], ids[d]): v
        for s, d, v in zip(
            store.edge_index[0].tolist(), store.edge_index[1].tolist(), store.visitors.tolist(), strict=True
        )
    }


@pytest.mark.parametrize(
    ("rows", "row", "field", "bad"),
    [
        ([("p0", "p1", 1), ("p1", "p2", 2), ("p2", "zz", 3)], 2, "dst_poi_id", "zz"),
        ([("p0", "p1", 1), ("qq", "p2", 2), ("qq", "p3", 3)], 1, "src_poi_id", "qq"),
    ],
)
def test_covisit_naming_unknown_poi(rows, row, field, bad):
    with pytest.raises(DataValidationError) as err:
        build_graph(with_covisits(covisit_frame(rows)), CFG, file="covisits.csv")
    e = err.value
    assert (e.row, e.field, e.file) == (row, field, "covisits.csv")
    assert repr(bad) in str(e) and "not in the POI table" in str(e)
    assert f"row {row}" in str(e)


def test_self_loops_dropped_with_warning_and_count():
    cov = covisit_frame([("p0", "p1", 5), ("p2", "p2", 9), ("p3", "p3", 1), ("p1", "p2", 4)])
    with pytest.warns(UserWarning, match="dropped 2 co-visit self-loops"):
        g = build_graph(with_covisits(cov), CFG)
    assert g.stats["covisit_self_loops_dropped"] == 2
    assert covisit_dict(g) == {("p0", "p1"): 5, ("p1", "p2"): 4}


def test_duplicated_pairs_summed_with_warning_and_count():
    cov = covisit_frame([("p1", "p2", 4), ("p0", "p1", 5), ("p1", "p2", 6), ("p1", "p2", 1), ("p2", "p1", 7)])
    with pytest.warns(UserWarning, match="summed 2 duplicated co-visit pairs"):
        g = build_graph(with_covisits(cov), CFG)
    assert g.stats["covisit_duplicates_summed"] == 2
    # (p2, p1) is the other direction, not a duplicate
    assert covisit_dict(g) == {("p0", "p1"): 5, ("p1", "p2"): 11, ("p2", "p1"): 7}
    assert g.data[POI, COVISITS, POI].edge_attr.shape == (3, 4)


def test_clean_input_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = build_graph(hand_made_world(), GraphConfig())
    assert g.stats == {"covisit_self_loops_dropped": 0, "covisit_duplicates_summed": 0}


def test_empty_poi_table():
    w = hand_made_world()
    empty = World(pois=w.pois.clear(), covisits=w.covisits.clear())
    with pytest.raises(DataValidationError, match="the POI table is empty"):
        build_graph(empty, CFG)


def test_empty_covisit_table():
    w = hand_made_world()
    g = build_graph(World(pois=w.pois, covisits=w.covisits.clear()), GraphConfig(image_k=0))
    store = g.data[POI, COVISITS, POI]
    assert (
        store.edge_index.shape == (2, 0) and store.visitors.shape == (0,) and store.edge_attr.shape == (0, 4)
    )
    assert g.num_pois == 8


def test_duplicate_poi_ids():
    w = hand_made_world()
    pois = pl.concat([w.pois, w.pois.slice(3, 1)])
    with pytest.raises(DataValidationError, match="duplicate poi_id 'p3'") as err:
        build_graph(World(pois=pois, covisits=w.covisits), CFG)
    assert err.value.row == 3


def test_brand_level_covisits_expanded_by_the_documented_rule():
    # Bluebird Coffee: p0, p2 (CA), p5 (NY); Golden Crust Bakery: p1, p4 (CA only)
    cov = brand_covisit_frame(
        [
            ("p0", "Bluebird Coffee", 10),  # the other CA Bluebird, p2, gets it all (p0 is excluded)
            ("p1", "Bluebird Coffee", 7),  # p0 4, p2 3: even split, remainder to the first poi_id
            ("p3", "Golden Crust Bakery", 5),  # p1 3, p4 2
            ("p5", "Golden Crust Bakery", 9),  # no Golden Crust in NY: dropped, counted
            ("p5", "Bluebird Coffee", 4),  # the only NY Bluebird is p5 itself: dropped, counted
            ("p6", "Bluebird Coffee", 3),  # p5 gets 3
        ]
    )
    with pytest.warns(UserWarning, match="dropped 2 brand-level co-visit rows"):
        g = build_graph(with_covisits(cov), CFG)
    assert covisit_dict(g) == {
        ("p0", "p2"): 10,
        ("p1", "p0"): 4,
        ("p1", "p2"): 3,
        ("p3", "p1"): 3,
        ("p3", "p4"): 2,
        ("p6", "p5"): 3,
    }
    assert g.stats["brand_rows_without_target"] == 2
    assert g.stats["brand_rows_expanded_to"] == 6


def test_brand_level_covisits_with_unknown_source_poi():
    cov = brand_covisit_frame([("p0", "Bluebird Coffee", 10), ("nope", "Bluebird Coffee", 1)])
    with pytest.raises(DataValidationError, match="'nope' which is not in the POI table") as err:
        build_graph(with_covisits(cov), CFG)
    assert (err.value.row, err.value.field) == (1, "src_poi_id")


def test_brand_granularity_nodes_and_summed_covisits():
    w = hand_made_world()
    bw = to_brand_level(w)
    # CA: Bluebird (p0, p2), Golden Crust (p1, p4), unbranded p3; NY: Bluebird (p5), p6, p7
    assert bw.pois["poi_id"].to_list() == [
        "CA:Bluebird Coffee",
        "CA:Golden Crust Bakery",
        "CA:poi:p3",
        "NY:Bluebird Coffee",
        "NY:poi:p6",
        "NY:poi:p7",
    ]
    assert bw.pois[N_LOCATIONS].to_list() == [2, 2, 1, 1, 1, 1]
    assert bw.pois["visits"].to_list() == [2400 + 1800, 900 + 700, 500, 3000, 1100, 400]  # summed
    assert bw.pois["latitude"][0] == pytest.approx((37.7793 + 37.7850) / 2)  # mean position
    g = build_graph(w, GraphConfig(granularity="brand", near_k=0, image_k=0))
    assert g.num_pois == 6 and g.config["granularity"] == "brand"
    assert g.index["poi_feature_names"] == [N_LOCATIONS, "visits"]
    # POI co-visits summed per brand pair; pairs inside one brand (p0-p2, p1-p4) are dropped
    assert covisit_dict(g) == {
        ("CA:Bluebird Coffee", "CA:Golden Crust Bakery"): 120,  # p0 -> p1
        ("CA:Golden Crust Bakery", "CA:Bluebird Coffee"): 60,  # p1 -> p2
        ("CA:Bluebird Coffee", "CA:poi:p3"): 0 + 2,  # p0 -> p3, p2 -> p3
        ("CA:poi:p3", "CA:Golden Crust Bakery"): 0,  # p3 -> p4
        ("NY:Bluebird Coffee", "NY:poi:p6"): 80,
        ("NY:Bluebird Coffee", "NY:poi:p7"): 1,
        ("NY:poi:p6", "NY:poi:p7"): 0,
    }
    assert g.data[POI].naics_code.tolist() == [722515, 311811, 441110, 722515, 311811, 441110]
    assert g.data[POI].brand.tolist() == [0, 1, -1, 0, -1, -1]


def test_brand_granularity_with_vendor_brand_level_covisits():
    w = hand_made_world()
    cov = pl.DataFrame(
        {
            SRC_BRAND: ["Bluebird Coffee", "Golden Crust Bakery", "Bluebird Coffee"],
            DST_BRAND: ["Golden Crust Bakery", "Bluebird Coffee", "Golden Crust Bakery"],
            STATE: ["CA", "CA", "CA"],
            VISITORS: [50, 20, 5],
        }
    )
    g = build_graph(World(pois=w.pois, covisits=cov), GraphConfig(granularity="brand", near_k=0, image_k=0))
    assert covisit_dict(g) == {
        ("CA:Bluebird Coffee", "CA:Golden Crust Bakery"): 55,  # used directly, duplicates summed
        ("CA:Golden Crust Bakery", "CA:Bluebird Coffee"): 20,
    }


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="granularity"):
        GraphConfig(granularity="venue")
    with pytest.raises(ConfigError, match="0..15, got 16"):
        GraphConfig(cell_resolution=16)
    with pytest.raises(ConfigError, match="unknown graph config key"):
        GraphConfig.from_dict({"cell_res": 7})
    assert GraphConfig.from_dict(GraphConfig(near_k=3).to_dict()) == GraphConfig(near_k=3)


def test_unbranded_pois_never_share_a_brand():
    g = build_graph(hand_made_world(), CFG)
    p3, p6 = 3, 6  # both unbranded (brand -1)
    from geograph.graph import pair_features

    assert pair_features(g, torch.tensor([p3]), torch.tensor([p6]))[0, 1].item() == 0.0
    assert hand_made_world().pois[BRAND_COL].null_count() == 3
