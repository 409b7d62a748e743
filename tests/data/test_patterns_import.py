"""import_patterns: Monthly / Weekly Patterns files -> world folder, row-level errors, column maps."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import polars as pl
import pytest

from geograph.constants import DST_POI, NAICS_CODE, PERIOD, POI_ID, SRC_POI, VISITORS
from geograph.data import ImportSummary, import_patterns, load_world, verify_world
from geograph.data.patterns_import import BRAND_COVISITS_FILE, REJECTED_FILE, SUMMARY_FILE, WINDOW
from geograph.errors import ConfigError, DataValidationError

HEADER = [
    "placekey", "location_name", "brands", "naics_code", "latitude", "longitude", "region",
    "raw_visitor_counts", "poi_cbg", "related_same_day_brand", "related_same_month_brand",
    "date_range_start", "date_range_end", "visits_by_day",
]  # fmt: skip
MONTHS = {
    "2023-01": ("2023-01-01T00:00:00-08:00", "2023-02-01T00:00:00-08:00"),
    "2023-02": ("2023-02-01T00:00:00-08:00", "2023-03-01T00:00:00-08:00"),
}
# Two Starbucks and two Walmarts in San Francisco; each names the other brand in its maps.
BASE = [
    ("a@1", "Starbucks", "Starbucks", "722515", "37.78", "-122.40", "CA", "200", '{"Walmart":10}', '{"Walmart":25,"Starbucks":40}'),
    ("b@1", "Walmart", "Walmart", "452311", "37.70", "-122.46", "CA", "1000", '{"Starbucks":5}', '{"Starbucks":12.5}'),
    ("c@1", "Starbucks", "Starbucks", "722515", "37.71", "-122.45", "CA", "300", "{}", '{"Walmart":6}'),
    ("d@1", "Walmart", "Walmart", "452311", "37.75", "-122.43", "CA", "500", "{}", '{"Starbucks":8}'),
]  # fmt: skip


def _rows(month: str, **changes: dict[int, dict[str, str]]) -> list[list[str]]:
    start, end = MONTHS[month]
    out = []
    for pk, name, brand, naics, lat, lon, region, raw, day, mon in BASE:
        row = dict(zip(HEADER, [pk, name, brand, naics, lat, lon, region, raw, "060750117001", day, mon,
                                start, end, "[1,2,3]"], strict=True))  # fmt: skip
        out.append(row)
    for i, change in changes.get("rows", {}).items():
        out[i].update(change)
    return [[r[c] for c in HEADER] for r in out]


def _text(rows: list[list[str]], header: list[str] = HEADER) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _months(tmp_path: Path, **changes) -> list[Path]:
    return [
        _write(tmp_path / "2023-01.csv", _text(_rows("2023-01", rows=changes.get("jan", {})))),
        _write(tmp_path / "2023-02.csv.gz", _text(_rows("2023-02", rows=changes.get("feb", {})))),
    ]


def _rejected(out: Path) -> list[dict]:
    return pl.read_csv(out / REJECTED_FILE, infer_schema=False).to_dicts()


def test_two_months_become_one_world(tmp_path):
    out = tmp_path / "world"
    summary = import_patterns(_months(tmp_path), out)
    assert isinstance(summary, ImportSummary)
    assert (summary.files, summary.rows_read, summary.rows_kept, summary.rows_rejected) == (2, 8, 8, 0)
    assert summary.periods == ["2023-01", "2023-02"] and summary.pois == 4
    assert summary.naics_recoded == 4  # Walmart's 2017 452311 is 2022 455211, in both months
    world = load_world(out)  # the contract folder: manifest checked, tables validated
    assert world.pois[NAICS_CODE].to_list() == ["722515", "455211", "722515", "455211"]
    cv = world.covisits
    assert cv.columns == [SRC_POI, DST_POI, VISITORS, PERIOD, WINDOW]
    # a@1's same-month 25% of 200 = 50 Walmart visitors, split over b@1 and d@1; 40% Starbucks -> c@1
    jan = cv.filter((pl.col(PERIOD) == "2023-01") & (pl.col(SRC_POI) == "a@1")).sort(DST_POI)
    assert jan.select(DST_POI, VISITORS).rows() == [("b@1", 25), ("c@1", 80), ("d@1", 25)]
    assert set(cv[WINDOW]) == {"same_month"} and summary.covisit_rows == cv.height
    brand = pl.read_parquet(out / BRAND_COVISITS_FILE)
    assert brand.height == summary.brand_covisit_rows == 10
    manifest = verify_world(out)
    assert set(manifest["extra_files"]) == {BRAND_COVISITS_FILE, REJECTED_FILE, SUMMARY_FILE}
    assert set(manifest["owned"]) >= {BRAND_COVISITS_FILE, REJECTED_FILE, SUMMARY_FILE}
    saved = json.loads((out / SUMMARY_FILE).read_text())
    assert saved["rows_read"] == 8 and saved["out"] == str(out) and saved["rows_per_s"] > 0
    assert _rejected(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "2023-01.csv",
        "2023-02.csv.gz",
        "world",
    ]  # no temp left


def test_periods_are_chosen_and_checked(tmp_path):
    files = _months(tmp_path)
    summary = import_patterns(files, tmp_path / "feb", periods=["2023-02"])
    assert summary.periods == ["2023-02"] and summary.rows_other_periods == 4 and summary.rows_kept == 4
    assert set(load_world(tmp_path / "feb").covisits[PERIOD]) == {"2023-02"}
    with pytest.raises(
        DataValidationError, match=r"no row of period\(s\) \['2023-03'\].*'2023-01', '2023-02'"
    ):
        import_patterns(files, tmp_path / "mar", periods=["2023-02", "2023-03"])
    with pytest.raises(ConfigError, match="YYYY-MM"):
        import_patterns(files, tmp_path / "bad", periods=["Jan 2023"])
    assert not (tmp_path / "mar").exists() and not (tmp_path / "bad").exists()


def test_weekly_rows_get_iso_weeks_and_the_week_map(tmp_path):
    header = [("related_same_week_brand" if c == "related_same_month_brand" else c) for c in HEADER]
    rows = _rows("2023-01")
    for r in rows:
        r[-3:-1] = ["2023-01-30T00:00:00-05:00", "2023-02-06T00:00:00-05:00"]
    summary = import_patterns([_write(tmp_path / "w.csv", _text(rows, header))], tmp_path / "out")
    assert summary.periods == ["2023-W05"]
    assert set(pl.read_parquet(tmp_path / "out" / BRAND_COVISITS_FILE)[WINDOW]) == {"same_week"}


def test_malformed_quoting_rejects_that_line_only(tmp_path):
    good = _text(_rows("2023-01")).splitlines()
    good[2] = good[2].replace('"{""Starbucks"":5}"', '"{""Starbucks"":5}')  # quote opened, never closed
    files = [_write(tmp_path / "m.csv", "\n".join(good) + "\n")]
    summary = import_patterns(files, tmp_path / "out")
    assert (
        summary.rows_read == 4 and summary.rows_kept == 3 and summary.rejected_by_kind == {"malformed_csv": 1}
    )
    [rej] = _rejected(tmp_path / "out")
    assert (rej["file"], rej["line"], rej["kind"]) == (str(files[0]), "3", "malformed_csv")
    assert "quot" in rej["reason"] and "b@1" in rej["reason"]
    with pytest.raises(DataValidationError) as ei:
        import_patterns(files, tmp_path / "fail", on_error="fail")
    assert ei.value.file == str(files[0]) and "line 3:" in str(ei.value) and "quoting" in str(ei.value)
    assert not (tmp_path / "fail").exists()


def test_a_json_map_that_does_not_parse_drops_the_map_not_the_poi(tmp_path):
    files = _months(tmp_path, feb={1: {"related_same_month_brand": '{"Starbucks":12.5'}})
    summary = import_patterns(files, tmp_path / "out")
    assert summary.rows_rejected == 0 and summary.maps_dropped == 1 and summary.rows_kept == 8
    [rej] = _rejected(tmp_path / "out")
    assert (rej["file"], rej["line"], rej["field"]) == (str(files[1]), "3", "related_same_month_brand")
    assert rej["action"] == "map dropped" and rej["kind"] == "bad_json"
    feb = pl.read_parquet(tmp_path / "out" / BRAND_COVISITS_FILE).filter(pl.col(PERIOD) == "2023-02")
    assert "b@1" not in feb[SRC_POI].to_list()
    with pytest.raises(DataValidationError) as ei:
        import_patterns(files, tmp_path / "fail", on_error="fail")
    assert (ei.value.file, ei.value.field) == (str(files[1]), "related_same_month_brand")
    assert "line 3:" in str(ei.value)


def test_latitude_out_of_range_and_bad_values_are_rejected_rows(tmp_path):
    files = _months(
        tmp_path,
        jan={0: {"latitude": "123.4"}, 2: {"raw_visitor_counts": "-3"}, 3: {"region": "ZZ"}},
        feb={3: {"naics_code": "999999"}},
    )
    summary = import_patterns(files, tmp_path / "out")
    by_line = {(Path(r["file"]).name, int(r["line"])): r for r in _rejected(tmp_path / "out")}
    assert by_line[("2023-01.csv", 2)]["field"] == "latitude"
    assert "latitude must be in [-90, 90], got 123.4" in by_line[("2023-01.csv", 2)]["reason"]
    assert by_line[("2023-01.csv", 4)]["kind"] == "bad_count"
    assert (
        by_line[("2023-01.csv", 5)]["field"] == "region" and "'ZZ'" in by_line[("2023-01.csv", 5)]["reason"]
    )
    assert by_line[("2023-02.csv.gz", 5)]["kind"] == "bad_naics"
    assert summary.rows_rejected == 4 and summary.rows_kept == 4
    assert summary.rejected_by_kind == {"bad_count": 1, "bad_naics": 1, "bad_region": 1, "out_of_range": 1}
    # a@1 was rejected in January but read in February: still a POI; d@1 was rejected in both
    assert sorted(load_world(tmp_path / "out").pois[POI_ID]) == ["a@1", "b@1", "c@1"]
    with pytest.raises(DataValidationError) as ei:
        import_patterns(files, tmp_path / "fail", on_error="fail")
    assert (ei.value.file, ei.value.field) == (str(files[0]), "latitude") and "line 2:" in str(ei.value)


def test_duplicate_placekey_across_months_keeps_the_latest(tmp_path):
    files = _months(tmp_path, feb={0: {"location_name": "Starbucks Reserve", "latitude": "37.79"}})
    summary = import_patterns(files, tmp_path / "out")
    assert summary.placekey_conflicts == 1 and summary.rows_rejected == 0
    pois = load_world(tmp_path / "out").pois
    assert pois.filter(pl.col(POI_ID) == "a@1").select("name", "latitude").row(0) == (
        "Starbucks Reserve",
        37.79,
    )
    # files given latest first: the latest period still wins
    assert import_patterns(files[::-1], tmp_path / "rev").placekey_conflicts == 1
    rev = load_world(tmp_path / "rev").pois
    assert rev.filter(pl.col(POI_ID) == "a@1")["name"].item() == "Starbucks Reserve"


def test_duplicate_placekey_in_one_period_is_rejected(tmp_path):
    rows = _rows("2023-01")
    rows.append(list(rows[1]))
    first = _write(tmp_path / "a.csv", _text(rows))
    again = _write(tmp_path / "b.csv", _text(_rows("2023-01")[:1]))
    summary = import_patterns([first, again], tmp_path / "out")
    rej = _rejected(tmp_path / "out")
    assert [(Path(r["file"]).name, r["line"], r["kind"]) for r in rej] == [
        ("a.csv", "6", "duplicate_placekey"),
        ("b.csv", "2", "duplicate_placekey"),
    ]
    assert "first at line 3" in rej[0]["reason"] and "a.csv line 2" in rej[1]["reason"]
    assert summary.rows_kept == 4 and summary.rows_rejected == 2


def test_a_gzip_file_cut_short(tmp_path):
    text = _text(_rows("2023-01") * 1)
    whole = gzip.compress(text.encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) - 30])  # the end of the deflate stream and the trailer are gone
    data = gzip.decompress(whole)
    summary = import_patterns([path], tmp_path / "out")
    [rej] = _rejected(tmp_path / "out")
    assert rej["kind"] == "file_cut_short" and "cut short" in rej["reason"]
    line = int(rej["line"])
    assert 2 <= line <= data.count(b"\n") and summary.rows_kept == line - 2
    with pytest.raises(DataValidationError) as ei:
        import_patterns([path], tmp_path / "fail", on_error="fail")
    assert ei.value.file == str(path) and f"line {line}:" in str(ei.value) and "cut short" in str(ei.value)
    assert not (tmp_path / "fail").exists()


def test_column_map_renames_vendor_columns_and_names_what_is_missing(tmp_path):
    vendor = {"placekey": "PK", "latitude": "LAT", "longitude": "LON", "region": "STATE_CODE"}
    header = [vendor.get(c, c) for c in HEADER]
    files = [_write(tmp_path / "v.csv", _text(_rows("2023-01"), header))]
    good = tmp_path / "map.yaml"
    good.write_text("PK: placekey\nLAT: latitude\nLON: longitude\nSTATE_CODE: region\n")
    assert import_patterns(files, tmp_path / "out", column_map=good).pois == 4
    short = tmp_path / "short.yaml"
    short.write_text("PK: placekey\nLAT: latitude\nLON: longitude\n")
    with pytest.raises(DataValidationError) as ei:
        import_patterns(files, tmp_path / "o2", column_map=short)
    assert ei.value.field == "region" and str(short) in str(ei.value) and "STATE_CODE" in str(ei.value)
    typo = tmp_path / "typo.yaml"
    typo.write_text("PK: placekey\nLAT: latitude\nLON: longitude\nSTATE: region\n")
    with pytest.raises(DataValidationError, match=r"maps 'STATE' to it but the file has no 'STATE'"):
        import_patterns(files, tmp_path / "o3", column_map=typo)
    bad = tmp_path / "bad.yaml"
    bad.write_text("PK: poi_key\n")
    with pytest.raises(
        ConfigError, match=rf"{bad}: 'PK' is mapped to 'poi_key', which is not a Patterns column"
    ):
        import_patterns(files, tmp_path / "o4", column_map=bad)


def test_naics_vintage_option(tmp_path):
    files = _months(tmp_path)
    assert import_patterns(files, tmp_path / "auto").naics_recoded == 4
    with pytest.raises(DataValidationError, match="452311"):
        import_patterns(files, tmp_path / "v22", naics_vintage="2022", on_error="fail")
    summary = import_patterns(files, tmp_path / "v22s", naics_vintage="2022")
    assert summary.rejected_by_kind == {"bad_naics": 4}
    with pytest.raises(ValueError, match="vintage"):
        import_patterns(files, tmp_path / "v99", naics_vintage="1997")


def test_output_folder_rules(tmp_path):
    files = _months(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataValidationError, match="overwrite"):
        import_patterns(files, out)
    import_patterns(files, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and load_world(out).pois.height == 4
    summary = import_patterns(
        files, out, overwrite=True, periods=["2023-01"]
    )  # geograph's own files: replaced
    assert json.loads((out / SUMMARY_FILE).read_text())["periods"] == summary.periods == ["2023-01"]
    other = tmp_path / "other"
    other.mkdir()
    (other / REJECTED_FILE).write_text("not geograph's")
    with pytest.raises(DataValidationError, match=REJECTED_FILE):
        import_patterns(files, other, overwrite=True)
    assert (other / REJECTED_FILE).read_text() == "not geograph's"
    import_patterns(files, other, overwrite=True, replace=[REJECTED_FILE])
    assert _rejected(other) == []


def test_every_row_rejected_writes_nothing(tmp_path):
    files = _months(
        tmp_path, jan={i: {"latitude": "x"} for i in range(4)}, feb={i: {"latitude": "x"} for i in range(4)}
    )
    with pytest.raises(DataValidationError, match="every one of the 8 rows was rejected"):
        import_patterns(files, tmp_path / "out")
    assert not (tmp_path / "out").exists()
