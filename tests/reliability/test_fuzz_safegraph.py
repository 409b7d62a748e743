"""Fuzzed SafeGraph / Advan Monthly Patterns files (read_patterns).

Two properties:

* the table mutations of fuzzlib (columns dropped, renamed, retyped; bad cells; duplicated
  placekeys; damaged bytes) load, or raise DataValidationError naming the file and the
  *Patterns* column and row to blame;
* a related-brand JSON map of any shape gives exactly the co-visit rows ``json.loads`` gives
  (brand -> percentage, visitors = round(pct / 100 * raw_visitor_counts), halves away from 0),
  or, when ``json.loads`` would not give a flat map of finite percentages in [0, 100], an
  error naming that row and map column (``on_error="skip"``: the row is listed as skipped).
  The fast vectorised regex path and the json.loads path must agree.
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geograph.constants import BRAND_COL, DST_BRAND, NAME, PERIOD, POI_ID, SRC_POI, STATE, VISITORS
from geograph.data import read_patterns
from geograph.data.safegraph import PCT, RELATED_SAME_DAY, RELATED_SAME_MONTH
from geograph.errors import DataValidationError

from .counting import bump
from .fuzzlib import FILE_KINDS, TableSpec, file_mutation, frame_mutation, judge, write_table
from .test_fuzz_readers import BUDGETS, fuzz_settings

FIXTURE = Path(__file__).parents[1] / "data" / "fixtures" / "patterns.csv"
MAPS = (RELATED_SAME_DAY, RELATED_SAME_MONTH)
VENDOR_TO_CONTRACT = {"placekey": POI_ID, "location_name": NAME, "brands": BRAND_COL, "region": STATE}

PATTERNS_SPEC = TableSpec(
    "patterns",
    required={
        c: c
        for c in (
            "placekey",
            "location_name",
            "brands",
            "naics_code",
            "latitude",
            "longitude",
            "region",
            "raw_visitor_counts",
            "poi_cbg",
            *MAPS,
        )
    },
    unique="placekey",
    id_col="placekey",
    strings=("placekey", "location_name", "brands", "naics_code", "region", "poi_cbg"),
    floats=("latitude", "longitude"),
    counts=("raw_visitor_counts",),
)


def clean_patterns() -> pl.DataFrame:
    """The fixture's five POIs, with row 3's truncated map replaced by a valid one."""
    df = pl.read_csv(FIXTURE, schema_overrides={c: pl.String for c in ("placekey", "poi_cbg", *MAPS)})
    fixed = df[RELATED_SAME_DAY].to_list()
    fixed[3] = '{"Target": 3}'
    return df.with_columns(pl.Series(RELATED_SAME_DAY, fixed, dtype=pl.String))


# ----------------------------------------------------------------------------------------
# the reference: what json.loads says a map holds
# ----------------------------------------------------------------------------------------


class Malformed(Exception):
    pass


def reference_map(text: str | None) -> dict[str, float]:
    """Brand -> pct per json.loads, or Malformed. Empty / ``{}`` / null maps are empty."""
    if text is None:
        return {}
    t = text.strip(" \t\n\r")
    if t in ("", "{}"):
        return {}
    try:
        value = json.loads(t)
    except ValueError as exc:
        raise Malformed(str(exc)) from None
    if not isinstance(value, dict):
        raise Malformed("not an object")
    for brand, pct in value.items():
        if not brand.strip():
            raise Malformed("empty brand")
        if any("\ud800" <= c <= "\udfff" for c in brand):
            raise Malformed("lone surrogate: not text")
        if isinstance(pct, bool) or not isinstance(pct, (int, float)):
            raise Malformed("not a number")
        try:
            if not math.isfinite(pct) or not 0 <= pct <= 100:
                raise Malformed("out of range")
        except OverflowError:
            raise Malformed("huge") from None
    return {k: float(v) for k, v in value.items()}


def visitors_ok(visitors: int, pct: float, raw: int) -> bool:
    """``visitors`` is round(pct / 100 * raw), halves away from zero: exact, except that float
    rounding may land on either neighbour a hair from a half (70 / 100 * 45 = 31.499999...)
    and is only good to ~1e-15 relative beyond 2**53."""
    exact = Fraction(pct) * raw / 100
    if exact > 2**52:
        return abs(visitors - exact) <= exact * Fraction(1, 10**15) + 1
    lo = math.floor(exact)
    if abs(exact - lo - Fraction(1, 2)) <= Fraction(1, 10**9) * max(1, exact):
        return visitors in (lo, lo + 1)
    return visitors == (lo + 1 if exact - lo > Fraction(1, 2) else lo)


# JSON maps: well-formed ones in many spellings, almost-valid ones, and junk
_brand = st.one_of(
    st.sampled_from(
        ["Walmart", "Target", "Starbucks", "Peet's Coffee", "Café", 'Say "hi"', "a:b", "x,y", "{}", " "]
    ),
    st.text(max_size=12),
)
_pct = st.one_of(
    st.floats(0, 100),
    st.integers(0, 100),
    st.sampled_from(
        [
            0,
            100,
            100.0,
            1e-9,
            1e2,
            12.5,
            -0.0,
            -1,
            100.0001,
            1e300,
            math.nan,
            math.inf,
            True,
            None,
            "12",
            [1],
            {"a": 1},
            10**400,
        ]
    ),
)


@st.composite
def map_texts(draw) -> str | None:
    kind = draw(st.sampled_from(["dumps", "dumps", "spaced", "raw", "edge", "null"]))
    if kind == "null":
        return None
    if kind == "raw":
        return draw(st.text(max_size=40))
    if kind == "edge":
        return draw(
            st.sampled_from(
                [
                    "{}",
                    "{ }",
                    "",
                    "  ",
                    "[]",
                    "null",
                    "1",
                    '"x"',
                    '{"a": 1,}',
                    "{'a': 1}",
                    '{"a": 01}',
                    '{"a": 1e}',
                    '{"a": .5}',
                    '{"a": 5.}',
                    '{"a": +5}',
                    '{"a": NaN}',
                    '{"a": Infinity}',
                    '{"a": -Infinity}',
                    '{"a":\u00a05}',
                    '{"a":\x0b5}',
                    '{"a": 5}\n',
                    '\ufeff{"a": 5}',
                    '{"a": 5} trailing',
                    '{"a": {"b": 1}}',
                    '{"a": [1]}',
                    '{"": 5}',
                    '{" ": 5}',
                    '{"a\\u0000b": 5}',
                    '{"a\x01": 5}',
                    '{"a": 1, "a": 200}',
                    '{"a": 200, "a": 1}',
                    '{"\\ud800": 5}',
                    '{"a": 1E2}',
                    '{"a": 1e-400}',
                    '{"a": -0}',
                    '{"a": 0e5}',
                    '{"a": 100.00000000000001}',
                    '{"a":' + "9" * 400 + "}",
                    '{"a": 5',
                    '"a": 5}',
                    "{{}}",
                ]
            )
        )
    d = draw(st.dictionaries(_brand, _pct, max_size=5))
    if kind == "spaced":
        ws = draw(st.sampled_from([" ", "\n", "\t", "  ", "\r\n"]))
        return (
            "{"
            + ws
            + ("," + ws).join(json.dumps(k) + ws + ":" + ws + json.dumps(v) for k, v in d.items())
            + ws
            + "}"
        )
    return json.dumps(d, ensure_ascii=draw(st.booleans()))


def _with_map(base: pl.DataFrame, row: int, col: str, text: str | None) -> pl.DataFrame:
    vals = base[col].to_list()
    vals[row] = text
    return base.with_columns(pl.Series(col, vals, dtype=pl.String))


@pytest.mark.parametrize(
    "budget", [pytest.param(50, id="fast"), pytest.param(800, id="slow", marks=pytest.mark.slow)]
)
def test_related_brand_maps_match_json_loads(budget: int) -> None:
    base = clean_patterns()
    raw = dict(zip(base["placekey"], base["raw_visitor_counts"], strict=True))

    @fuzz_settings(budget)
    @given(
        row=st.integers(0, base.height - 1),
        col=st.sampled_from(MAPS),
        text=map_texts(),
        raw_count=st.sampled_from([None, None, None, 0, 1, 7, 2**53 + 1, 2**62, 2**63 - 1]),
    )
    def case(row: int, col: str, text: str | None, raw_count: int | None) -> None:
        df = _with_map(base, row, col, text)
        counts = dict(raw)
        if raw_count is not None:
            values = base["raw_visitor_counts"].to_list()
            values[row] = raw_count
            df = df.with_columns(pl.Series("raw_visitor_counts", values, dtype=pl.Int64))
            counts[base["placekey"][row]] = raw_count
        try:
            expected = reference_map(text)
        except Malformed:
            expected = None
        # co-visitors pct / 100 x raw beyond 64 bits: an error naming raw_visitor_counts
        products = [Fraction(p) * counts[base["placekey"][row]] / 100 for p in (expected or {}).values()]
        too_big = any(x >= 2**63 for x in products)
        near = any(x >= 2**63 * (1 - Fraction(1, 10**12)) for x in products)  # float rounding: either
        period = "same_day" if col == RELATED_SAME_DAY else "same_month"
        bump("fuzz.patterns.maps")
        try:
            _, cv, report = read_patterns(df, periods=[period])
        except DataValidationError as exc:
            if near:
                assert (exc.row, exc.field) == (row, "raw_visitor_counts"), f"{text!r}: {exc}"
                return
            assert expected is None, f"{text!r}: json.loads reads {expected}, read_patterns refused: {exc}"
            assert (exc.row, exc.field) == (row, col), f"{text!r}: {exc}"
            _, cv, report = read_patterns(df, periods=[period], on_error="skip")
            assert [s["row"] for s in report["skipped"]] == [row]
            assert row not in [base["placekey"].to_list().index(p) for p in cv[SRC_POI].to_list()]
            return
        assert expected is not None, f"{text!r}: json.loads refuses it, read_patterns read {cv}"
        assert not too_big, f"{text!r} x {raw_count}: co-visitors beyond 64 bits were accepted"
        key = base["placekey"][row]
        mine = cv.filter(pl.col(SRC_POI) == key)
        got = dict(zip(mine[DST_BRAND].to_list(), mine[PCT].to_list(), strict=True))
        assert got == pytest.approx(expected), f"{text!r}"
        assert mine.height == len(expected)
        assert set(mine[PERIOD].to_list()) <= {period}
        for brand, pct, visitors in zip(mine[DST_BRAND], mine[PCT], mine[VISITORS], strict=True):
            assert visitors_ok(visitors, pct, counts[key]), (brand, pct, visitors)

    case()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("budget", BUDGETS)
def test_patterns_table_fuzz(fmt: str, budget: int, tmp_path: Path) -> None:
    base = clean_patterns()

    @fuzz_settings(budget)
    @given(data=st.data())
    def case(data) -> None:
        folder = tmp_path / uuid.uuid4().hex[:10]
        folder.mkdir()
        try:
            path = folder / f"patterns.{fmt}"
            if data.draw(st.integers(0, 3)) == 0:
                write_table(base, path)
                raw, m = data.draw(file_mutation(path.read_bytes(), fmt))
                path.write_bytes(raw)
                expected = None
            else:
                expected, m = data.draw(frame_mutation(base, PATTERNS_SPEC, fmt))
                if m.kind == "cell" and m.column in MAPS:
                    return  # maps have their own property above
                write_table(expected, path)

            def check(result) -> None:
                pois, cv, report = result
                assert pois.height == report["rows"] and report["file"] == str(path)
                assert pois[POI_ID].n_unique() == pois.height
                if expected is not None and m.kind not in FILE_KINDS:
                    assert pois.height == expected.height
                    if expected["placekey"].dtype == pl.String:
                        assert pois[POI_ID].to_list() == expected["placekey"].to_list()
                    if m.kind == "cell" and m.column in VENDOR_TO_CONTRACT and isinstance(m.value, str):
                        got = pois[VENDOR_TO_CONTRACT[m.column]][m.row]
                        want = m.value.strip().upper() if m.column == "region" else m.value
                        if m.column == "brands" and want == "":
                            want = None
                        assert got == want
                assert (cv[VISITORS] >= 0).all()

            judge(lambda: read_patterns(path), m, path, check)
            bump(f"fuzz.patterns.{fmt}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    case()
