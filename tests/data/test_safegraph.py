"""SafeGraph / Advan Monthly Patterns adapter on a small hand-written file."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from geograph.constants import BRAND_COL, DST_BRAND, PERIOD, POI_ID, POI_REQUIRED, SRC_POI, STATE, VISITORS
from geograph.data import DATAFRAME, covisit_level, feature_columns, read_covisits, read_patterns
from geograph.data.safegraph import PCT, RELATED_SAME_DAY, RELATED_SAME_MONTH
from geograph.errors import ConfigError, DataValidationError

PATTERNS = Path(__file__).parent / "fixtures" / "patterns.csv"
BAD_ROW = 3  # its related_same_day_brand map is truncated JSON


def _row(**overrides) -> dict:
    row = {
        "placekey": "zzw-222@5vg-7gv-d7q",
        "location_name": "Starbucks",
        "brands": "Starbucks",
        "naics_code": 722515,
        "latitude": 37.7897,
        "longitude": -122.4011,
        "region": "CA",
        "raw_visitor_counts": 100,
        "poi_cbg": "060750117001",
        RELATED_SAME_DAY: "{}",
        RELATED_SAME_MONTH: "{}",
    }
    row.update(overrides)
    return row


def test_malformed_json_raises_by_default():
    with pytest.raises(DataValidationError) as ei:
        read_patterns(PATTERNS)
    exc = ei.value
    assert (exc.file, exc.row, exc.field) == (str(PATTERNS), BAD_ROW, RELATED_SAME_DAY)
    msg = str(exc)
    assert f"file {PATTERNS}, row {BAD_ROW}, field '{RELATED_SAME_DAY}'" in msg
    assert "malformed" in msg and '{"Target":3,' in msg and 'on_error="skip"' in msg


def test_skip_reports_malformed_rows_and_unknown_brands():
    pois, cv, report = read_patterns(PATTERNS, on_error="skip")
    assert report["skipped_maps"] == 1
    assert report["skipped"][0]["row"] == BAD_ROW and report["skipped"][0]["field"] == RELATED_SAME_DAY
    assert report["unknown_brands"] == ["Peet's Coffee"]
    assert report["unknown_brand_rows"] == 1 and report["unknown_brand_visitors"] == 14
    assert report["rows"] == report["pois"] == 5
    assert report["covisit_rows"] == cv.height == 10
    # the bad row's same-month map is still read
    assert cv.filter(pl.col(SRC_POI) == "zzw-225@627-wbz-tjv")[PERIOD].to_list() == ["same_month"]


def test_pois_follow_the_poi_contract():
    pois, _, _ = read_patterns(PATTERNS, on_error="skip")
    assert pois.columns == [*POI_REQUIRED, "raw_visitor_counts", "poi_cbg"]
    assert pois[POI_ID][0] == "zzw-222@5vg-7gv-d7q"
    assert pois["name"][1] == "Walmart Supercenter"
    assert pois[BRAND_COL].to_list() == ["Starbucks", "Walmart", None, "Starbucks", "Target"]
    assert pois[STATE].to_list() == ["CA", "CA", "CA", "NY", "NY"]
    assert pois["poi_cbg"][0] == "060750117001"  # leading zero kept: a CBG is text
    assert pois.schema["raw_visitor_counts"] == pl.Int64
    assert feature_columns(pois) == ["raw_visitor_counts"]


def test_brand_covisits_rows():
    _, cv, _ = read_patterns(PATTERNS, on_error="skip")
    assert cv.columns == [SRC_POI, DST_BRAND, STATE, VISITORS, PCT, PERIOD]
    first = cv.filter(pl.col(SRC_POI) == "zzw-222@5vg-7gv-d7q").sort(PERIOD, DST_BRAND)
    assert first.rows() == [
        ("zzw-222@5vg-7gv-d7q", "Peet's Coffee", "CA", 14, 7.0, "same_day"),
        ("zzw-222@5vg-7gv-d7q", "Walmart", "CA", 20, 10.0, "same_day"),
        ("zzw-222@5vg-7gv-d7q", "Starbucks", "CA", 80, 40.0, "same_month"),
        ("zzw-222@5vg-7gv-d7q", "Walmart", "CA", 50, 25.0, "same_month"),
    ]
    # 12.5 % of 1000 visitors; 11 % of 45 = 4.95 -> 5
    assert cv.filter(pl.col(PCT) == 12.5)[VISITORS].to_list() == [125]
    assert cv.filter(pl.col(PCT) == 11.0)[VISITORS].to_list() == [5]
    # the output is a valid poi_brand co-visit table for these POIs
    pois, _, _ = read_patterns(PATTERNS, on_error="skip")
    assert covisit_level(read_covisits(cv, pois=pois)) == "poi_brand"


def test_rounding_is_half_away_from_zero():
    df = pl.DataFrame([_row(raw_visitor_counts=100, **{RELATED_SAME_DAY: json.dumps({"A": 2.5, "B": 3.5})})])
    _, cv, _ = read_patterns(df)
    assert cv[VISITORS].to_list() == [3, 4]


def test_parquet_and_pandas_inputs(tmp_path):
    csv = read_patterns(PATTERNS, on_error="skip")
    frame = pl.read_csv(PATTERNS, schema_overrides={"poi_cbg": pl.String})
    frame.write_parquet(tmp_path / "patterns.parquet")
    pq = read_patterns(tmp_path / "patterns.parquet", on_error="skip")
    assert csv[0].equals(pq[0]) and csv[1].equals(pq[1])
    assert pq[2]["file"] == str(tmp_path / "patterns.parquet")
    pd_out = read_patterns(frame.to_pandas(), on_error="skip")
    assert pd_out[1].equals(csv[1]) and pd_out[2]["file"] == DATAFRAME


def test_periods_option():
    _, cv, _ = read_patterns(PATTERNS, periods=("same_month",))  # the malformed map is same-day
    assert set(cv[PERIOD]) == {"same_month"}
    df = pl.DataFrame([_row()]).drop(RELATED_SAME_MONTH)
    assert read_patterns(df, periods=["same_day"])[1].height == 0
    with pytest.raises(DataValidationError, match=RELATED_SAME_MONTH):
        read_patterns(df)
    with pytest.raises(ConfigError, match="periods"):
        read_patterns(df, periods=["weekly"])


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('["Walmart", 3]', "expected a JSON object"),
        ('{"Walmart": "lots"}', "must be a number"),
        ('{"Walmart": 140}', "must be in [0, 100]"),
        ('{"Walmart": -1}', "must be in [0, 100]"),
    ],
)
def test_bad_map_values(text, expect):
    df = pl.DataFrame([_row(), _row(placekey="b", **{RELATED_SAME_MONTH: text})])
    with pytest.raises(DataValidationError) as ei:
        read_patterns(df)
    assert (ei.value.row, ei.value.field) == (1, RELATED_SAME_MONTH)
    assert expect in str(ei.value)
    _, cv, report = read_patterns(df, on_error="skip")
    assert cv.height == 0 and report["skipped_maps"] == 1


def test_poi_errors_name_the_patterns_column():
    df = pl.DataFrame([_row(), _row(placekey="b", region="ZZ")])
    with pytest.raises(DataValidationError) as ei:
        read_patterns(df)
    assert (ei.value.file, ei.value.row, ei.value.field) == (DATAFRAME, 1, "region")
    assert "got 'ZZ'" in str(ei.value)


def test_skip_drops_a_row_with_an_unknown_region():
    related = json.dumps({"Starbucks": 10})
    df = pl.DataFrame([
        _row(**{RELATED_SAME_DAY: related}),
        _row(placekey="b", region="ZZ", **{RELATED_SAME_DAY: related}),
        _row(placekey="c", region="ON"),
    ])
    pois, cv, report = read_patterns(df, on_error="skip")
    assert pois[POI_ID].to_list() == ["zzw-222@5vg-7gv-d7q", "c"]
    assert pois[STATE].to_list() == ["CA", "CA-ON"]  # Canadian shorthand, canonical
    assert report["skipped_rows"] == 1 and report["skipped"][0]["row"] == 1
    assert report["skipped"][0]["field"] == "region" and "ZZ" in report["skipped"][0]["error"]
    assert cv[SRC_POI].to_list() == ["zzw-222@5vg-7gv-d7q"]  # the dropped row's co-visits go with it


def test_missing_columns_and_bad_option():
    df = pl.DataFrame([_row()]).drop("raw_visitor_counts")
    with pytest.raises(DataValidationError) as ei:
        read_patterns(df)
    assert ei.value.field == "raw_visitor_counts" and "columns found" in str(ei.value)
    with pytest.raises(ConfigError, match="on_error"):
        read_patterns(PATTERNS, on_error="ignore")


def test_column_map_for_upper_case_exports():
    df = pl.DataFrame([_row()]).rename(lambda c: c.upper())
    pois, _, _ = read_patterns(df, column_map={c.upper(): c for c in _row()})
    assert pois[POI_ID].to_list() == ["zzw-222@5vg-7gv-d7q"]


@pytest.mark.parametrize(
    "text",
    [
        '{"Walmart": 10, "Peet\'s Coffee": 7.5}',
        '{ "a:1" : 5 , "b,c" : 1e1 }',
        '{"Caf\\u00e9": 4, "Say \\"hi\\"": 2}',  # escaped keys: the json.loads path
        '{"x": 1, "x": 2}',  # a brand named twice: the last value wins, as in json.loads
        "{ }",
    ],
)
def test_vectorised_maps_match_json_loads(text):
    df = pl.DataFrame([_row(**{RELATED_SAME_DAY: text})])
    _, cv, _ = read_patterns(df, periods=["same_day"])
    assert dict(zip(cv[DST_BRAND], cv[PCT], strict=True)) == {
        k: float(v) for k, v in json.loads(text).items()
    }
