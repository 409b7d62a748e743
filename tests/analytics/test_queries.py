"""Exact answers of the data-only queries on the 12-POI hand-made world (see analytics_world.py)."""

from __future__ import annotations

import h3
import polars as pl
import pytest

from geograph.analytics import WorldSource, covisited, hotspots, naics_flow
from geograph.errors import ConfigError, DataValidationError
from geograph.geo import haversine_km


def _lift(flow: pl.DataFrame, a: str, b: str) -> float:
    return flow.filter((pl.col("src_naics") == a) & (pl.col("dst_naics") == b))["lift"].item()


# --- covisited -------------------------------------------------------------------------------
def test_covisited_poi_exact(source: WorldSource) -> None:
    out = covisited(source, "p00")
    assert out["poi_id"].to_list() == ["p01", "p03", "p02", "p07"]  # p07-p00 is stored as (p07, p00)
    assert out["visitors"].to_list() == [120, 80, 40, 10]
    assert out["rank"].to_list() == [1, 2, 3, 4]
    assert out["name"][0] == "Golden Crust Bakery #1"
    assert out["distance_km"][0] == pytest.approx(float(haversine_km(37.7793, -122.4193, 37.7800, -122.4180)))


def test_covisited_poi_filters(source: WorldSource) -> None:
    assert covisited(source, "p00", radius_km=0.7)["poi_id"].to_list() == ["p01", "p07"]
    assert covisited(source, "p00", top=2)["poi_id"].to_list() == ["p01", "p03"]
    assert covisited(source, "p00", state="NY").height == 0
    assert covisited(source, "p10", state="NY")["poi_id"].to_list() == ["p08", "p11", "p09"]  # 40, 10, 0


def test_covisited_brand_exact(source: WorldSource) -> None:
    out = covisited(source, brand="Bluebird Coffee")
    # partner brands of rows touching p00, p02, p08; unbranded partners (p05, p07, p09) left out
    assert out.select("brand", "visitors", "pairs", "pois").rows() == [
        ("Golden Crust Bakery", 180, 2, 1),  # p00-p01 120 + p02-p01 60
        ("Fresh Market", 120, 2, 2),  # p00-p03 80 + p08-p10 40
        ("Bluebird Coffee", 40, 1, 1),  # p00-p02
    ]
    ny = covisited(source, brand="Bluebird Coffee", state="NY")
    assert ny.select("brand", "visitors").rows() == [("Fresh Market", 40)]


def test_covisited_unknown_poi_suggests(source: WorldSource) -> None:
    with pytest.raises(DataValidationError, match=r"unknown POI id 'p011'; did you mean .*'p01'"):
        covisited(source, "p011")


def test_covisited_unknown_brand_suggests(source: WorldSource) -> None:
    with pytest.raises(DataValidationError, match=r"unknown brand 'Bluebird Cofee'; did you mean 'Bluebird Coffee'"):
        covisited(source, brand="Bluebird Cofee")
    with pytest.raises(DataValidationError, match="did you mean 'Fresh Market'"):
        covisited(source, brand="fresh market")


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"poi": "p00", "brand": "Fresh Market"}, ConfigError, "exactly one"),
        ({}, ConfigError, "exactly one"),
        ({"poi": "p00", "top": 0}, ConfigError, "top must be"),
        ({"poi": "p00", "radius_km": -1.0}, ConfigError, "radius_km must be > 0"),
        ({"poi": "p00", "state": "XX"}, DataValidationError, "unknown state code"),
        ({"poi": "p00", "rank_by": "predicted"}, ConfigError, "needs a model"),
    ],
)
def test_covisited_bad_arguments(source: WorldSource, kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        covisited(source, **kwargs)


# --- naics-flow --------------------------------------------------------------------------------
def test_naics_flow_sector_lift_by_hand(source: WorldSource) -> None:
    flow = naics_flow(source, 2)
    # symmetric flow F (each row both ways, 2v on the diagonal), total T = 2 x 550 = 1100;
    # row sums R72 = 270+100+120+20 = 510, R31 = 270+30 = 300, R44 = 120+100+30+10 = 260, R71 = 30
    assert flow["visitors"].sum() == 1100
    # only category pairs with a co-visit row are listed: 31-31, 71-71, 31-71 and 71-31 are not
    missing = (300 * 300 + 30 * 30 + 2 * 300 * 30) / 1100
    assert flow["expected"].sum() == pytest.approx(1100 - missing)
    assert _lift(flow, "72", "31") == pytest.approx(270 * 1100 / (510 * 300))  # 1.94118
    assert _lift(flow, "31", "72") == pytest.approx(270 * 1100 / (510 * 300))
    assert _lift(flow, "72", "72") == pytest.approx(100 * 1100 / (510 * 510))  # 0.42291
    assert _lift(flow, "44", "44") == pytest.approx(100 * 1100 / (260 * 260))  # 1.62722
    assert _lift(flow, "44", "31") == pytest.approx(30 * 1100 / (260 * 300))  # 0.42308
    assert _lift(flow, "71", "44") == pytest.approx(10 * 1100 / (30 * 260))  # 1.41026
    row = flow.filter((pl.col("src_naics") == "72") & (pl.col("dst_naics") == "31")).row(0, named=True)
    assert row["visitors"] == 270 and row["pairs"] == 3
    assert row["expected"] == pytest.approx(510 * 300 / 1100)
    assert row["src_title"] == "Accommodation and Food Services" and row["dst_title"] == "Manufacturing"
    diag = flow.filter((pl.col("src_naics") == "72") & (pl.col("dst_naics") == "72")).row(0, named=True)
    assert diag["visitors"] == 100 and diag["pairs"] == 2  # p00-p02 40 and p07-p00 10, each counted twice
    assert flow["visitors"].to_list() == sorted(flow["visitors"].to_list(), reverse=True)


def test_naics_flow_state_and_level(source: WorldSource) -> None:
    ny = naics_flow(source, 3, state="NY")
    # NY rows: 722-311 90, 722-445 40, 311-445 0, 445-713 10; T = 280, R722 = 130, R311 = 90,
    # R445 = 50, R713 = 10
    assert ny["visitors"].sum() == 280
    assert _lift(ny, "722", "311") == pytest.approx(90 * 280 / (130 * 90))
    assert _lift(ny, "445", "713") == pytest.approx(10 * 280 / (50 * 10))  # 5.6
    assert _lift(ny, "311", "445") == pytest.approx(0.0)
    assert naics_flow(source, 6, min_visitors=100)[["src_naics", "dst_naics"]].rows() == [
        ("311811", "722515"), ("722515", "311811"), ("445110", "722515"), ("722515", "445110"),
        ("445110", "445110"), ("722515", "722515"),
    ]
    assert naics_flow(source, 2, top=1).height == 1


@pytest.mark.parametrize("level", [1, 7, "2"])
def test_naics_flow_bad_level(source: WorldSource, level: object) -> None:
    with pytest.raises(ConfigError, match="NAICS level must be 2..6"):
        naics_flow(source, level)  # type: ignore[arg-type]


# --- hotspots ------------------------------------------------------------------------------------
def test_hotspots_volume_exact(source: WorldSource) -> None:
    out = hotspots(source, 8, top=3)
    top = out.row(0, named=True)
    # p00 and p01 share a resolution-8 cell; pairs touching it: p00-p01 (inside), p00-p02,
    # p01-p02, p00-p03, p07-p00 = 120 + 40 + 60 + 80 + 10
    assert top["h3_cell"] == h3.latlng_to_cell(37.7793, -122.4193, 8)
    assert h3.latlng_to_cell(37.7800, -122.4180, 8) == top["h3_cell"]
    assert (top["pois"], top["pairs"], top["visitors"], top["internal_visitors"]) == (2, 5, 310, 120)
    assert top["share"] == pytest.approx(310 / 550)
    assert (top["latitude"], top["longitude"]) == pytest.approx(h3.cell_to_latlng(top["h3_cell"]))
    assert out["visitors"].to_list() == [310, 160, 130]  # p03's cell: 80 + 50 + 30; p08's: 90 + 40


def test_hotspots_coarse_and_state(source: WorldSource) -> None:
    out = hotspots(source, 3)
    assert out.select("pairs", "visitors", "internal_visitors").rows() == [(10, 410, 410), (4, 140, 140)]
    ny = hotspots(source, 3, state="NY")
    assert ny.select("pois", "visitors").rows() == [(4, 140)]
    assert hotspots(source, 8, min_pairs=3).height == 4


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"resolution": 16}, "resolution must be 0..15"), ({"by": "heat"}, "by must be one of"),
     ({"by": "residual"}, "needs a model")],
)
def test_hotspots_bad_arguments(source: WorldSource, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        hotspots(source, **kwargs)


# --- sources ---------------------------------------------------------------------------------------
def test_folder_source_matches_memory(source: WorldSource, world_dir) -> None:
    for cache in (False, True):
        folder = WorldSource.from_folder(world_dir, cache=cache)
        assert covisited(folder, "p00").equals(covisited(source, "p00"))
        assert naics_flow(folder, 4).equals(naics_flow(source, 4))
        assert hotspots(folder, 7).equals(hotspots(source, 7))


def test_source_rejects_brand_level_covisits(tmp_path, world) -> None:
    world.pois.write_parquet(tmp_path / "pois.parquet")
    pl.DataFrame({"src_poi_id": ["p00"], "dst_brand": ["Fresh Market"], "visitors": [3]}).write_parquet(
        tmp_path / "covisits.parquet"
    )
    with pytest.raises(DataValidationError, match=r"lacks column\(s\) \['dst_poi_id'\].*POI-to-POI"):
        covisited(WorldSource.from_folder(tmp_path), "p00")
    with pytest.raises(DataValidationError, match="world folder not found"):
        WorldSource.from_folder(tmp_path / "nope")
