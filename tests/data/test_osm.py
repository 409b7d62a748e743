"""OpenStreetMap POIs (geograph.data.osm) on the real Helsinki extract that pyrosm ships, the
tag -> NAICS table, bad extracts, and synthetic co-visits over real POIs (generate_over_pois)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import polars as pl
import pytest

from geograph.constants import BRAND_COL, DST_POI, LAT, LON, NAICS_CODE, NAME, POI_ID, SRC_POI, STATE
from geograph.data import read_covisits, read_pois
from geograph.data.naics import NAICSTaxonomy, titles_2022
from geograph.data.osm import (
    BRAND_WIKIDATA,
    OSM_TAG,
    OSM_TAG_KEYS,
    _mapped_tag,
    import_osm,
    osm_naics_table,
    read_osm_pois,
)
from geograph.data.synthetic import VISITS, generate_over_pois
from geograph.data.synthetic.over_pois import nearest_kind
from geograph.data.world_io import verify_world
from geograph.errors import ConfigError, DataValidationError

pyrosm = pytest.importorskip("pyrosm")


# --- a minimal OSM PBF writer (dense nodes only), for extracts made to measure -------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload) -> bytes:
    key = _varint((num << 3) | wire)
    return key + (_varint(payload) if wire == 0 else _varint(len(payload)) + payload)


def _blob(kind: str, data: bytes) -> bytes:
    blob = _field(2, 0, len(data)) + _field(3, 2, zlib.compress(data))
    header = _field(1, 2, kind.encode()) + _field(3, 0, len(blob))
    return struct.pack(">I", len(header)) + header + blob


def write_pbf(path, nodes) -> None:
    """Write nodes ``(id, lat, lon, {key: value})`` as an OSM PBF file (fileformat.proto /
    osmformat.proto: one OSMHeader blob, one OSMData blob of DenseNodes)."""
    table = [""] + sorted({s for *_, tags in nodes for kv in tags.items() for s in kv})
    ids, lats, lons, kv, prev = [], [], [], [], (0, 0, 0)
    for nid, lat, lon, tags in nodes:
        la, lo = round(lat * 1e7), round(lon * 1e7)  # granularity 100 nanodegrees
        ids.append(nid - prev[0])
        lats.append(la - prev[1])
        lons.append(lo - prev[2])
        prev = (nid, la, lo)
        kv += [i for k, v in tags.items() for i in (table.index(k), table.index(v))] + [0]

    def sint(values):
        return b"".join(_varint((v << 1) ^ (v >> 63)) for v in values)

    dense = (
        _field(1, 2, sint(ids)) + _field(8, 2, sint(lats)) + _field(9, 2, sint(lons))
        + _field(10, 2, b"".join(_varint(v) for v in kv))
    )
    strings = _field(1, 2, b"".join(_field(1, 2, s.encode()) for s in table))
    header = _field(4, 2, b"OsmSchema-V0.6") + _field(4, 2, b"DenseNodes")
    path.write_bytes(_blob("OSMHeader", header) + _blob("OSMData", strings + _field(2, 2, _field(2, 2, dense))))


@pytest.fixture(scope="module")
def helsinki():
    pois, report = read_osm_pois(pyrosm.get_data("helsinki_pbf"))
    return pois, report


# --- the tag -> NAICS table ---------------------------------------------------------------------


def test_every_table_code_is_a_2022_naics_code_with_its_title():
    table = osm_naics_table()
    tax, titles = NAICSTaxonomy(), titles_2022()
    assert table.columns == ["tag_key", "tag_value", "naics_code", "title"]
    assert table.height >= 150
    for key, value, code, title in table.iter_rows():
        assert key in OSM_TAG_KEYS, (key, value)
        assert tax.is_valid(code), (key, value, code)
        assert titles[code] == title, (key, value, code)
    assert not table.select(pl.struct("tag_key", "tag_value").is_duplicated().any()).item()
    known = {(k, v): c for k, v, c, _ in table.iter_rows()}
    assert known["amenity", "cafe"] == "722515"
    assert known["amenity", "pharmacy"] == "456110"
    assert known["shop", "supermarket"] == "445110"
    assert known["shop", "clothes"] == "458110"
    assert known["tourism", "hotel"] == "721110"
    assert known["leisure", "fitness_centre"] == "713940"


def test_a_bad_table_row_is_named(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text("tag_key,tag_value,naics_code,title\namenity,cafe,722515,x\nshop,pets,459999,x\nshop,toys,999999,x\n")
    with pytest.raises(DataValidationError) as err:
        osm_naics_table(path)
    assert err.value.file == str(path) and err.value.row == 2 and err.value.field == "naics_code"
    assert "999999" in str(err.value)
    path.write_text("tag_key,tag_value,naics_code,title\nhighway,bus_stop,485113,x\n")
    with pytest.raises(DataValidationError, match="tag key 'highway'"):
        osm_naics_table(path)


def test_first_mapped_tag_wins_in_key_order_and_in_value_lists():
    table = osm_naics_table()
    df = pl.DataFrame(
        {
            "amenity": ["bench", "nightclub;restaurant", "bench", None],
            "shop": ["bakery", None, None, "yes"],
            "tourism": [None, None, "artwork", None],
            "leisure": [None, None, None, None],
        },
        schema={k: pl.String for k in OSM_TAG_KEYS},
    )
    out = _mapped_tag(df, table)
    assert out[OSM_TAG].to_list() == ["shop=bakery", "amenity=nightclub", None, None]
    assert out[NAICS_CODE].to_list() == ["311811", "722410", None, None]
    assert out["_first_tag"].to_list() == ["amenity=bench", "amenity=nightclub;restaurant", "amenity=bench", "shop=yes"]


# --- the real Helsinki extract ------------------------------------------------------------------


def test_helsinki_counts_naics_brands_and_regions(helsinki):
    pois, report = helsinki
    assert report.rows_read == 1751
    assert report.kept == pois.height == 1122
    assert report.unmapped_rows == report.rows_read - report.kept == 629
    assert list(report.unmapped.items())[:3] == [("amenity=bench", 162), ("amenity=vending_machine", 84), ("tourism=artwork", 61)]
    assert report.regions == {"FI-18": 1122} and set(pois[STATE]) == {"FI-18"}
    assert report.from_ways == 67 and report.unnamed == 75 and report.no_position == 0
    # the contract, as the readers check it
    assert pois.columns[:7] == [POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE]
    assert read_pois(pois).height == 1122
    assert pois[POI_ID].str.contains(r"^osm:(node|way|relation)/\d+$").all()
    # NAICS: restaurants lead, then clothing retail and cafes
    top = pois[NAICS_CODE].value_counts(sort=True).head(3)
    assert top.rows() == [("722511", 214), ("458110", 106), ("722515", 89)]
    # brands from `brand` / `brand:wikidata` (kept in pyrosm's JSON tags column)
    assert report.branded == 6
    cos = pois.filter(pl.col(BRAND_COL) == "COS").row(0, named=True)
    assert cos[BRAND_WIKIDATA] == "Q60772401" and cos[NAICS_CODE] == "458110"
    # a relation placed at its centroid, in central Helsinki
    marski = pois.filter(pl.col(POI_ID) == "osm:relation/5608").row(0, named=True)
    assert marski[BRAND_COL] == "Scandic" and marski[NAICS_CODE] == "721110" and marski[OSM_TAG] == "tourism=hotel"
    assert 60.15 < marski[LAT] < 60.18 and 24.93 < marski[LON] < 24.96
    assert pois[LAT].is_between(60.1, 60.3).all() and pois[LON].is_between(24.8, 25.1).all()
    # a POI without a name tag is named after its tag
    assert pois.filter(pl.col(NAME).str.starts_with("unnamed ")).height == 75


def test_ids_are_stable_across_reads(helsinki):
    again, _ = read_osm_pois(pyrosm.get_data("helsinki_pbf"))
    assert again.equals(helsinki[0])


def test_import_writes_a_pois_only_folder_with_a_manifest(tmp_path):
    out = tmp_path / "osm"
    report = import_osm(pyrosm.get_data("test_pbf"), out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "meta.json", "pois.parquet"]
    manifest = verify_world(out)
    assert manifest["tables"] == {"pois": "pois.parquet"}
    pois = read_pois(out / "pois.parquet")
    assert pois.height == report.kept > 0 and report.rows_read == 28
    assert "amenity=fuel" in set(pois[OSM_TAG]) and "amenity=parking" in set(pois[OSM_TAG])
    with pytest.raises(DataValidationError, match="not empty"):
        import_osm(pyrosm.get_data("test_pbf"), out)
    (out / "covisits.csv").write_text("src_poi_id,dst_poi_id,visitors\n")  # not geograph's
    with pytest.raises(DataValidationError, match="covisits.csv"):
        import_osm(pyrosm.get_data("test_pbf"), out, overwrite=True)
    import_osm(pyrosm.get_data("test_pbf"), out, overwrite=True, replace=["covisits.csv"])
    assert not (out / "covisits.csv").exists() and verify_world(out) is not None


# --- bad input ----------------------------------------------------------------------------------


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.osm.pbf"
    with pytest.raises(DataValidationError, match="not found") as err:
        read_osm_pois(path)
    assert err.value.file == str(path)


def test_a_file_that_is_not_pbf_is_named(tmp_path):
    for name, data in (("city.osm.pbf", b"<?xml version='1.0'?><osm></osm>"), ("empty.osm.pbf", b"")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataValidationError, match="not an OpenStreetMap PBF file") as err:
            read_osm_pois(path)
        assert err.value.file == str(path)
    # the right header, then garbage: pyrosm's error, named
    path = tmp_path / "cut.osm.pbf"
    with open(pyrosm.get_data("test_pbf"), "rb") as f:
        path.write_bytes(f.read(300))
    with pytest.raises(DataValidationError, match="cannot read the OpenStreetMap extract") as err:
        read_osm_pois(path)
    assert err.value.file == str(path)


def test_an_extract_without_pois_is_named(tmp_path):
    path = tmp_path / "roads.osm.pbf"
    write_pbf(path, [(1, 60.17, 24.94, {"highway": "crossing"}), (2, 60.171, 24.941, {})])
    with pytest.raises(DataValidationError, match="no element tagged amenity, shop, tourism, leisure") as err:
        read_osm_pois(path)
    assert err.value.file == str(path)
    path = tmp_path / "benches.osm.pbf"
    write_pbf(path, [(1, 60.17, 24.94, {"amenity": "bench"}), (2, 60.171, 24.941, {"leisure": "park"})])
    with pytest.raises(DataValidationError, match="none of the 2 tagged elements") as err:
        read_osm_pois(path)
    assert err.value.file == str(path) and "amenity=bench" in str(err.value)


def test_a_made_extract_reads_name_brand_and_position(tmp_path):
    path = tmp_path / "two.osm.pbf"
    write_pbf(
        path,
        [
            (5, 60.1701, 24.9401, {"amenity": "cafe", "name": "Kahvila", "brand": "Robert's Coffee",
                                   "brand:wikidata": "Q3434315"}),
            (9, 61.4981, 23.7610, {"shop": "books"}),
        ],
    )
    pois, report = read_osm_pois(path)
    assert report.rows_read == report.kept == 2 and report.unnamed == 1 and report.branded == 1
    assert pois.rows() == [
        ("osm:node/5", "Kahvila", "Robert's Coffee", "722515", 60.1701, 24.9401, "FI-18", "amenity=cafe", "Q3434315"),
        ("osm:node/9", "unnamed books", None, "459210", 61.4981, 23.761, "FI-11", "shop=books", None),
    ]


# --- synthetic co-visits over real POIs ---------------------------------------------------------


def test_nearest_kind_shares_the_longest_prefix():
    assert nearest_kind("722511").code == "722511"
    assert nearest_kind("722513").code == "722513"
    assert nearest_kind("459420").code == "459110"  # 3 digits shared: the first such catalogue code
    assert nearest_kind("928120") is None  # no catalogue code in sector 92


def test_covisits_over_helsinki_are_seeded_and_valid(helsinki):
    pois = helsinki[0]
    world = generate_over_pois(pois, seed=3)
    assert world.fingerprint() == generate_over_pois(pois, seed=3).fingerprint()
    assert world.fingerprint() != generate_over_pois(pois, seed=4).fingerprint()
    assert world.images is None and world.regions is None
    # the POIs keep their rows, ids and columns; four synthetic attributes are added
    assert sorted(world.pois[POI_ID]) == sorted(pois[POI_ID])
    assert world.pois.columns == [*pois.columns, VISITS, "median_dwell_min", "area_sqft", "open_hours"]
    assert world.pois.select(pois.columns).sort(POI_ID).equals(pois.sort(POI_ID))
    assert (world.pois[VISITS] >= 1).all()
    cov = read_covisits(world.covisits, pois=read_pois(world.pois))
    # n * covisits_per_poi / 2 pairs, half of them zero (zero_fraction 0.5), no self-pairs
    assert 0.9 * 1122 * 5 <= cov.height <= 1.1 * 1122 * 5
    assert 0.4 < (cov["visitors"] == 0).mean() < 0.6
    assert (cov[SRC_POI] != cov[DST_POI]).all()
    pairs = np.sort(cov.select(SRC_POI, DST_POI).to_numpy(), axis=1)
    assert len({tuple(p) for p in pairs}) == cov.height  # each unordered pair once
    assert world.meta["seed"] == 3 and world.meta["synthetic"][0] == "covisits"


def test_covisits_stay_within_a_region():
    pois = pl.DataFrame(
        {
            POI_ID: [f"p{i}" for i in range(40)],
            NAME: ["x"] * 40,
            BRAND_COL: [None] * 40,
            NAICS_CODE: ["722511", "445110"] * 20,
            LAT: np.linspace(60.1, 60.3, 40),
            LON: np.linspace(24.8, 25.0, 40),
            STATE: ["FI-18"] * 20 + ["CA-ON"] * 20,
        }
    )
    world = generate_over_pois(read_pois(pois), seed=0, covisits_per_poi=6)
    region = dict(zip(pois[POI_ID], pois[STATE], strict=True))
    assert all(region[a] == region[b] for a, b in world.covisits.select(SRC_POI, DST_POI).iter_rows())
    assert set(world.covisits[STATE]) == {"FI-18", "CA-ON"}
    with pytest.raises(ConfigError, match="unknown option"):
        generate_over_pois(pois, seed=0, n_images=3)
    with pytest.raises(ConfigError, match="empty"):
        generate_over_pois(pois.head(0))
