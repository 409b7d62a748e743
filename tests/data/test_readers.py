"""Data contracts: readers, column mapping, one test per validation error, world folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from geograph.constants import (
    BRAND_COL,
    EMBEDDING,
    H3_CELL,
    IMAGE_ID,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    PATH,
    POI_ID,
    POI_REQUIRED,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.data import (
    DATAFRAME,
    US_STATES,
    World,
    covisit_level,
    feature_columns,
    load_world,
    read_covisits,
    read_images,
    read_pois,
    read_regions,
    scan_table,
    write_world,
)
from geograph.errors import DataValidationError

FIXTURES = Path(__file__).parent / "fixtures"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def base_pois() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "pois.csv", schema_overrides={NAICS_CODE: pl.Int64})


def save(df: pl.DataFrame, folder: Path, fmt: str, name: str = "t") -> Path:
    path = folder / f"{name}.{fmt}"
    if fmt == "csv":
        df.write_csv(path)
    else:
        df.write_parquet(path)
    return path


def check_error(exc: DataValidationError, file, row: int | None, field: str | None, *fragments: str) -> str:
    """The error carries and prints file, row and field, plus the given message fragments."""
    msg = str(exc)
    assert exc.file == str(file), msg
    assert str(file) in msg
    assert exc.row == row, msg
    if row is not None:
        assert f"row {row}" in msg
    assert exc.field == field, msg
    if field is not None:
        assert f"field '{field}'" in msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------------------------
# POIs: happy paths
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_read_pois_csv_and_parquet(tmp_path, fmt):
    path = FIXTURES / "pois.csv" if fmt == "csv" else save(base_pois(), tmp_path, fmt)
    pois = read_pois(path)
    assert pois.columns[:7] == list(POI_REQUIRED)
    assert pois.schema[NAICS_CODE] == pl.String
    assert pois.schema[LAT] == pl.Float64 and pois.schema[LON] == pl.Float64
    assert pois[NAICS_CODE].to_list()[:3] == ["722515", "722515", "455211"]
    assert pois[BRAND_COL][3] is None  # empty brand -> null
    assert pois[STATE].to_list() == ["CA"] * 4 + ["NY"] * 2
    assert feature_columns(pois) == ["sqft"]  # "opened" is text: kept, not a feature
    assert "opened" in pois.columns


def test_csv_and_parquet_give_the_same_table(tmp_path):
    a = read_pois(FIXTURES / "pois.csv")
    b = read_pois(save(base_pois(), tmp_path, "parquet"))
    assert a.equals(b)


def test_in_memory_polars_and_pandas():
    df = base_pois()
    a = read_pois(df)
    b = read_pois(df.to_pandas())
    assert a.equals(b)
    with pytest.raises(DataValidationError) as ei:
        read_pois(df.with_columns(pl.lit(95.0).alias(LAT)).to_pandas())
    check_error(ei.value, DATAFRAME, 0, LAT)


@pytest.mark.parametrize("code", [722515, "722515", " 722515 ", 722515.0, "722515.0"])
def test_naics_codes_are_normalised(code):
    df = base_pois().head(1).drop(NAICS_CODE).with_columns(pl.Series(NAICS_CODE, [code]))
    assert read_pois(df)[NAICS_CODE].to_list() == ["722515"]


def test_state_is_upper_cased_and_dc_pr_accepted():
    df = base_pois().head(3).with_columns(pl.Series(STATE, ["ca", "DC", "pr"]))
    assert read_pois(df)[STATE].to_list() == ["CA", "DC", "PR"]
    assert len(US_STATES) == 52


def test_integer_ids_become_text():
    df = base_pois().with_columns(pl.int_range(100, 106).alias(POI_ID))
    assert read_pois(df)[POI_ID].to_list()[:2] == ["100", "101"]


def test_column_map(tmp_path):
    renamed = base_pois().rename({POI_ID: "id", LAT: "lat", LON: "lng", NAICS_CODE: "naics"})
    path = save(renamed, tmp_path, "csv")
    pois = read_pois(path, column_map={"id": POI_ID, "lat": LAT, "lng": LON, "naics": NAICS_CODE})
    assert pois.equals(read_pois(FIXTURES / "pois.csv"))


def test_column_map_names_a_missing_column(tmp_path):
    path = FIXTURES / "pois.csv"
    with pytest.raises(DataValidationError) as ei:
        read_pois(path, column_map={"lat": LAT})
    check_error(ei.value, path, None, "lat", "not in the table", "columns found")


def test_column_map_collision():
    df = base_pois().with_columns(pl.col(LAT).alias("lat"))
    with pytest.raises(DataValidationError) as ei:
        read_pois(df, column_map={"lat": LAT})
    check_error(ei.value, DATAFRAME, None, LAT, "already has")


def test_reading_never_modifies_inputs(tmp_path):
    csv = tmp_path / "pois.csv"
    csv.write_bytes((FIXTURES / "pois.csv").read_bytes())
    pq = save(base_pois(), tmp_path, "parquet", "pois")
    before = {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in (csv, pq)}
    pdf = base_pois().to_pandas()
    pdf_copy = pdf.copy()
    for src in (csv, pq, pdf):
        read_pois(src)
    for p, (data, mtime) in before.items():
        assert p.read_bytes() == data and os.stat(p).st_mtime_ns == mtime
    pd.testing.assert_frame_equal(pdf, pdf_copy)
    assert sorted(os.listdir(tmp_path)) == ["pois.csv", "pois.parquet"]


# --------------------------------------------------------------------------------------------
# POIs: one test per validation error
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_missing_required_columns(tmp_path, fmt):
    path = save(base_pois().drop(LAT, LON), tmp_path, fmt)
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    msg = check_error(ei.value, path, None, LAT, "missing required column(s) ['latitude', 'longitude']")
    assert "columns found: ['poi_id', 'name'" in msg


def test_latitude_not_numeric_in_csv(tmp_path):
    path = tmp_path / "pois.csv"
    text = (FIXTURES / "pois.csv").read_text().replace("40.6848", "forty")
    path.write_text(text)
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, 5, LAT, "latitude must be a number, got 'forty'")


def test_latitude_wrong_dtype_in_memory():
    df = base_pois().with_columns(pl.lit(True).alias(LAT))
    with pytest.raises(DataValidationError) as ei:
        read_pois(df)
    check_error(ei.value, DATAFRAME, 0, LAT, "must be numeric", "Boolean")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("col", "value", "expect"),
    [
        (LAT, 90.5, "latitude must be in [-90, 90], got 90.5"),
        (LON, -180.25, "longitude must be in [-180, 180]"),
    ],
)
def test_coordinates_out_of_range(tmp_path, fmt, col, value, expect):
    df = base_pois().with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(value).otherwise(pl.col(col)).alias(col)
    )
    path = save(df, tmp_path, fmt)
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, 2, col, expect)


@pytest.mark.parametrize("value", [None, float("nan")])
def test_null_or_nan_coordinate(value):
    df = base_pois().with_columns(pl.Series(LON, [1.0, 2.0, 3.0, value, 5.0, 6.0], dtype=pl.Float64))
    with pytest.raises(DataValidationError) as ei:
        read_pois(df)
    check_error(ei.value, DATAFRAME, 3, LON, "missing longitude")


def test_null_required_text(tmp_path):
    path = tmp_path / "pois.csv"
    path.write_text((FIXTURES / "pois.csv").read_text().replace("Walmart Supercenter", ""))
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, 2, NAME, "missing name")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_unknown_naics_names_closest_prefix(tmp_path, fmt):
    df = base_pois().with_columns(pl.Series(NAICS_CODE, [722515, 722515, 722599, 722511, 722515, 455211]))
    path = save(df, tmp_path, fmt)
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(
        ei.value,
        path,
        2,
        NAICS_CODE,
        "unknown NAICS code '722599'",
        "closest valid prefix is 7225 (Restaurants and Other Eating Places)",
    )


@pytest.mark.parametrize(
    ("code", "expect"),
    [
        ("7225155", "must have 2 to 6 digits, got '7225155' (7 digits)"),
        ("72x515", "digits only"),
    ],
)
def test_malformed_naics(code, expect):
    df = base_pois().with_columns(pl.Series(NAICS_CODE, ["722515"] * 5 + [code]))
    with pytest.raises(DataValidationError) as ei:
        read_pois(df)
    check_error(ei.value, DATAFRAME, 5, NAICS_CODE, expect)


def test_unknown_state():
    df = base_pois().with_columns(pl.Series(STATE, ["CA", "CA", "CA", "ZZ", "NY", "NY"]))
    with pytest.raises(DataValidationError) as ei:
        read_pois(df)
    check_error(ei.value, DATAFRAME, 3, STATE, "state must be a region key", "got 'ZZ'")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_ids_name_both_rows(tmp_path, fmt):
    df = base_pois().with_columns(pl.Series(POI_ID, ["p1", "p2", "p3", "p2", "p5", "p6"]))
    path = save(df, tmp_path, fmt)
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, 3, POI_ID, "duplicate poi_id 'p2' in rows 1 and 3")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_empty_file_zero_bytes(tmp_path, fmt):
    path = tmp_path / f"pois.{fmt}"
    path.write_bytes(b"")
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, None, None, "file is empty (0 bytes)")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_empty_file_zero_rows(tmp_path, fmt):
    path = save(base_pois().clear(), tmp_path, fmt)
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, None, None, "pois table is empty (0 data rows)")


def test_empty_dataframe():
    with pytest.raises(DataValidationError) as ei:
        read_pois(base_pois().clear())
    check_error(ei.value, DATAFRAME, None, None, "0 data rows")


def test_truncated_parquet(tmp_path):
    path = save(base_pois(), tmp_path, "parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, None, None, "cannot read Parquet file", "truncated")


def test_csv_that_is_not_csv(tmp_path):
    path = tmp_path / "pois.csv"
    path.write_bytes(b"\xff\xfe\x00\x81 not utf-8 \x00\xff\n\x80\x80")
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, None, None, "cannot read CSV file")


def test_missing_file_and_unsupported_suffix(tmp_path):
    with pytest.raises(DataValidationError, match="file not found"):
        read_pois(tmp_path / "nope.csv")
    path = tmp_path / "pois.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(DataValidationError, match="unsupported file type '.xlsx'"):
        read_pois(path)
    with pytest.raises(TypeError, match="got int"):
        read_pois(3)


def test_late_type_mismatch_in_large_csv(tmp_path):
    """A bad value past polars' inference window still gets a row-precise error."""
    n = 12_000
    df = pl.concat([base_pois()] * (n // 6)).with_columns(
        pl.format("p{}", pl.int_range(pl.len())).alias(POI_ID)
    )
    df = df.with_columns(pl.col(LAT).cast(pl.String))
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) == n - 2).then(pl.lit("north")).otherwise(LAT).alias(LAT)
    )
    path = save(df, tmp_path, "csv")
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    check_error(ei.value, path, n - 2, LAT, "got 'north'")


# --------------------------------------------------------------------------------------------
# co-visits
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_read_covisits_poi_level(tmp_path, fmt):
    pois = read_pois(FIXTURES / "pois.csv")
    src = FIXTURES / "covisits.csv"
    if fmt == "parquet":
        src = save(pl.read_csv(src), tmp_path, fmt)
    cv = read_covisits(src, pois=pois)
    assert covisit_level(cv) == "poi"
    assert cv.columns == ["src_poi_id", "dst_poi_id", "visitors", "period"]
    assert cv.schema[VISITORS] == pl.Int64
    assert cv[VISITORS].to_list() == [12, 5, 0, 7, 5]


def test_covisits_unknown_poi(tmp_path):
    pois = read_pois(FIXTURES / "pois.csv")
    path = tmp_path / "covisits.csv"
    path.write_text((FIXTURES / "covisits.csv").read_text().replace("p5,p6", "p5,p99"))
    with pytest.raises(DataValidationError) as ei:
        read_covisits(path, pois=pois)
    check_error(ei.value, path, 3, "dst_poi_id", "unknown POI id 'p99'", "not a poi_id of the POI table")
    read_covisits(path)  # without pois, ids are not checked


@pytest.mark.parametrize(
    ("values", "row", "expect"),
    [
        ([3, -1, 2], 1, "visitors must be >= 0, got -1"),
        ([3.0, 2.5, 2.0], 1, "whole number of visitors, got 2.5"),
        (["3", "2", "lots"], 2, "non-negative integer count, got 'lots'"),
        ([3, None, 1], 1, "missing visitors"),
    ],
)
def test_bad_counts(values, row, expect):
    cv = pl.DataFrame({"src_poi_id": ["p1", "p2", "p3"], "dst_poi_id": ["p2", "p3", "p1"], VISITORS: values})
    with pytest.raises(DataValidationError) as ei:
        read_covisits(cv)
    check_error(ei.value, DATAFRAME, row, VISITORS, expect)


def test_whole_float_counts_are_accepted():
    cv = pl.DataFrame({"src_poi_id": ["p1"], "dst_poi_id": ["p2"], VISITORS: [4.0]})
    assert read_covisits(cv)[VISITORS].to_list() == [4]


def test_covisit_forms():
    brand = read_covisits(FIXTURES / "brand_covisits.csv")
    assert covisit_level(brand) == "brand"
    assert brand.columns == ["src_brand", "dst_brand", "visitors", "state"]
    pb = pl.DataFrame({"src_poi_id": ["p1"], "dst_brand": ["Walmart"], VISITORS: [3], STATE: ["ca"]})
    out = read_covisits(pb, pois=read_pois(FIXTURES / "pois.csv"))
    assert covisit_level(out) == "poi_brand" and out[STATE].to_list() == ["CA"]
    with pytest.raises(DataValidationError, match="cannot tell the co-visit form"):
        covisit_level(pl.DataFrame({"a": [1]}))


def test_brand_level_needs_state():
    cv = pl.DataFrame({"src_brand": ["A"], "dst_brand": ["B"], VISITORS: [3]})
    with pytest.raises(DataValidationError) as ei:
        read_covisits(cv)
    check_error(ei.value, DATAFRAME, None, STATE, "missing required column(s) ['state']", "co-visit forms")


def test_covisits_missing_columns_lists_forms():
    with pytest.raises(DataValidationError) as ei:
        read_covisits(pl.DataFrame({"src_poi_id": ["p1"], "count": [1]}))
    check_error(
        ei.value, DATAFRAME, None, "dst_poi_id", "['dst_poi_id', 'visitors']", "(src_brand, dst_brand"
    )


def test_covisits_column_map():
    cv = pl.DataFrame({"from": ["p1"], "to": ["p2"], "n": [3]})
    out = read_covisits(cv, column_map={"from": "src_poi_id", "to": "dst_poi_id", "n": VISITORS})
    assert out.columns == ["src_poi_id", "dst_poi_id", "visitors"]


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def test_read_images_csv_json_embeddings_and_parquet(tmp_path):
    images = read_images(FIXTURES / "images.csv")
    assert images.schema[EMBEDDING] == pl.List(pl.Float32)
    assert images[EMBEDDING].to_list()[2] == [1.0, 2.0, 3.0]
    assert images["text"][2] is None
    pq = save(images, tmp_path, "parquet")
    assert read_images(pq).equals(images)
    arr = images.with_columns(pl.col(EMBEDDING).cast(pl.Array(pl.Float64, 3)))
    assert read_images(arr).equals(images)


def test_images_path_only():
    df = pl.DataFrame({IMAGE_ID: ["a", "b"], LAT: [1.0, 2.0], LON: [3.0, 4.0], PATH: ["a.jpg", "b.jpg"]})
    assert read_images(df).columns == [IMAGE_ID, LAT, LON, PATH]
    with pytest.raises(DataValidationError) as ei:
        read_images(df.with_columns(pl.Series(PATH, ["a.jpg", None])))
    check_error(ei.value, DATAFRAME, 1, PATH, "missing path")


def test_images_need_embedding_or_path():
    df = pl.DataFrame({IMAGE_ID: ["a"], LAT: [1.0], LON: [3.0]})
    with pytest.raises(DataValidationError) as ei:
        read_images(df)
    check_error(ei.value, DATAFRAME, None, EMBEDDING, "embedding or a path")


def _images(emb) -> pl.DataFrame:
    n = len(emb)
    return pl.DataFrame(
        {IMAGE_ID: [f"i{k}" for k in range(n)], LAT: [0.0] * n, LON: [0.0] * n, EMBEDDING: emb}
    )


def test_embedding_lengths_differ():
    with pytest.raises(DataValidationError) as ei:
        read_images(_images([[0.1, 0.2], [0.3, 0.4], [0.5]]))
    check_error(ei.value, DATAFRAME, 2, EMBEDDING, "has 1 values but row 0 has 2")


def test_embedding_not_finite():
    with pytest.raises(DataValidationError) as ei:
        read_images(_images([[0.1, 0.2], [0.3, float("nan")]]))
    check_error(ei.value, DATAFRAME, 1, EMBEDDING, "value 1 is nan", "finite")


def test_embedding_malformed_json(tmp_path):
    path = tmp_path / "images.csv"
    path.write_text((FIXTURES / "images.csv").read_text().replace("[0.0, -1.5, 2.25]", "[0.0, -1.5,"))
    with pytest.raises(DataValidationError) as ei:
        read_images(path)
    check_error(ei.value, path, 1, EMBEDDING, "JSON list of numbers")


def test_duplicate_image_ids():
    df = _images([[0.1], [0.2]]).with_columns(pl.lit("same").alias(IMAGE_ID))
    with pytest.raises(DataValidationError) as ei:
        read_images(df)
    check_error(ei.value, DATAFRAME, 1, IMAGE_ID, "rows 0 and 1")


# --------------------------------------------------------------------------------------------
# regions
# --------------------------------------------------------------------------------------------
def test_read_regions_h3_and_latlon():
    import h3

    regions = read_regions(FIXTURES / "regions.csv")
    assert regions.columns == [H3_CELL, "population", "median_income", "county"]
    assert feature_columns(regions) == ["population", "median_income"]
    as_int = regions.with_columns(pl.Series(H3_CELL, [h3.str_to_int(c) for c in regions[H3_CELL]], pl.UInt64))
    assert read_regions(as_int).equals(regions)
    ll = pl.DataFrame({"lat": [37.7], "lon": [-122.4], "population": [10]})
    assert read_regions(ll, column_map={"lat": LAT, "lon": LON}).columns == [LAT, LON, "population"]


def test_invalid_h3_cell():
    df = pl.DataFrame({H3_CELL: ["8828308281fffff", "not-a-cell"], "population": [1, 2]})
    with pytest.raises(DataValidationError) as ei:
        read_regions(df)
    check_error(ei.value, DATAFRAME, 1, H3_CELL, "valid H3 cell", "'not-a-cell'")


def test_regions_need_numeric_columns():
    with pytest.raises(DataValidationError, match="no numeric column"):
        read_regions(pl.DataFrame({H3_CELL: ["8828308281fffff"], "county": ["SF"]}))


# --------------------------------------------------------------------------------------------
# world folders
# --------------------------------------------------------------------------------------------
@pytest.fixture
def world() -> World:
    pois = read_pois(FIXTURES / "pois.csv")
    return World(
        pois=pois,
        covisits=read_covisits(FIXTURES / "covisits.csv", pois=pois),
        images=read_images(FIXTURES / "images.csv"),
        regions=read_regions(FIXTURES / "regions.csv"),
    )


def test_load_world_round_trip(tmp_path, world):
    write_world(world, tmp_path / "w")
    loaded = load_world(tmp_path / "w")
    assert loaded.fingerprint() == world.fingerprint()
    assert loaded.meta["source"]["files"]["pois"].endswith("pois.parquet")
    world.meta = {"generator": "test", "seed": 3}
    write_world(world, tmp_path / "w", overwrite=True)
    assert load_world(tmp_path / "w").meta["seed"] == 3
    (tmp_path / "w" / "meta.json").write_text("{oops")
    with pytest.raises(DataValidationError, match="does not match manifest.json"):
        load_world(tmp_path / "w")  # meta.json is covered by the manifest's checksums
    (tmp_path / "w" / "manifest.json").unlink()  # a folder edited by hand: read unchecked
    with pytest.raises(DataValidationError, match="meta.json is not valid JSON"):
        load_world(tmp_path / "w")


def test_load_world_hive_partitions(tmp_path, world):
    write_world(world, tmp_path / "w", partition_by="state")
    assert (tmp_path / "w" / "pois" / "state=CA" / "part-0.parquet").exists()
    loaded = load_world(tmp_path / "w")
    assert loaded.pois.sort(POI_ID).equals(world.pois.sort(POI_ID))
    # co-visits without a state column go to their source POI's state (the per-state layout)
    assert STATE not in world.covisits.columns and (tmp_path / "w" / "covisits" / "state=CA").is_dir()
    key = list(world.covisits.columns)
    assert loaded.covisits.select(key).sort(key).equals(world.covisits.sort(key))
    src_state = dict(zip(world.pois[POI_ID].to_list(), world.pois[STATE].to_list(), strict=True))
    assert loaded.covisits[STATE].to_list() == [src_state[s] for s in loaded.covisits[SRC_POI].to_list()]


def test_load_world_error_names_the_part_file(tmp_path, world):
    bad = world.pois.with_columns(pl.when(pl.col(POI_ID) == "p6").then(123.0).otherwise(LAT).alias(LAT))
    write_world(World(pois=bad, covisits=world.covisits), tmp_path / "w", partition_by="state")
    part = tmp_path / "w" / "pois" / "state=NY" / "part-0.parquet"
    with pytest.raises(DataValidationError) as ei:
        load_world(tmp_path / "w")
    check_error(ei.value, part, 1, LAT, "got 123.0")


def test_load_world_csv_and_checks(tmp_path, world):
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "pois.csv").write_bytes((FIXTURES / "pois.csv").read_bytes())
    with pytest.raises(DataValidationError, match="world has no covisits table"):
        load_world(folder)
    (folder / "covisits.csv").write_text("src_poi_id,dst_poi_id,visitors\np1,p2,3\np1,zz,1\n")
    with pytest.raises(DataValidationError) as ei:
        load_world(folder)
    check_error(ei.value, folder / "covisits.csv", 1, "dst_poi_id", "'zz'")
    (folder / "covisits.csv").write_text("src_poi_id,dst_poi_id,visitors\np1,p2,3\n")
    loaded = load_world(folder)
    assert loaded.images is None and loaded.regions is None
    world.covisits.write_parquet(folder / "covisits.parquet")
    with pytest.raises(DataValidationError, match="stored twice"):
        load_world(folder)
    with pytest.raises(DataValidationError, match="world folder not found"):
        load_world(tmp_path / "missing")


def test_scan_table_filters_states(tmp_path, world):
    write_world(world, tmp_path / "hive", partition_by="state")
    write_world(world, tmp_path / "flat")
    for folder in (tmp_path / "hive", tmp_path / "flat"):
        ny = scan_table(folder, "pois", ["ny"])
        assert isinstance(ny, pl.LazyFrame)
        assert sorted(ny.collect()[POI_ID].to_list()) == ["p5", "p6"]
        cv = scan_table(folder, "covisits", ["NY"]).collect()  # no state column: by source POI
        assert cv[SRC_POI].to_list() == ["p5"]
        assert scan_table(folder, "pois").collect().height == 6
    with pytest.raises(DataValidationError, match="unknown state code"):
        scan_table(tmp_path / "flat", "pois", ["ZZ"])
    with pytest.raises(DataValidationError, match="cannot be filtered by state"):
        scan_table(tmp_path / "flat", "images", ["CA"])


# --------------------------------------------------------------------------------------------
# speed
# --------------------------------------------------------------------------------------------
def _big_pois(n: int) -> pl.DataFrame:
    from geograph.data import NAICSTaxonomy

    rng = np.random.default_rng(0)
    codes = np.array(NAICSTaxonomy().codes(6))
    return pl.DataFrame(
        {
            POI_ID: pl.int_range(n, eager=True).cast(pl.String),
            NAME: ["venue"] * n,
            BRAND_COL: rng.choice(np.array(["A", "B", ""]), n),
            NAICS_CODE: rng.choice(codes, n),
            LAT: rng.uniform(-90, 90, n),
            LON: rng.uniform(-180, 180, n),
            STATE: rng.choice(np.array(sorted(US_STATES)), n),
            "visits": rng.integers(0, 1000, n),
        }
    )


def test_validation_is_vectorised():
    import time

    df = _big_pois(200_000)
    t = time.perf_counter()
    assert read_pois(df).height == 200_000
    assert time.perf_counter() - t < 5.0


@pytest.mark.slow
def test_one_million_pois_in_a_few_seconds(tmp_path):
    import time

    path = save(_big_pois(1_000_000), tmp_path, "parquet")
    t = time.perf_counter()
    assert read_pois(path).height == 1_000_000
    assert time.perf_counter() - t < 5.0
