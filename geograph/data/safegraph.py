"""Adapter for SafeGraph / Advan *Monthly Patterns* files.

One patterns row is one POI in one month. It becomes one row of the POI contract and, from
the ``related_same_day_brand`` / ``related_same_month_brand`` JSON maps (brand name ->
percentage of this POI's visitors who also visited that brand, listed only where the
overlap stands out from the national average), brand-level co-visit rows
``(src_poi_id, dst_brand, state, visitors, pct, period)``.
See docs/guides/data.md for the rules and the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_BRAND,
    NAICS_CODE,
    NAME,
    PERIOD,
    POI_ID,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.data.naics import NAICSTaxonomy, check_vintage
from geograph.data.readers import Source, _count_col, _first, _load, _require, _show, _validate_pois
from geograph.errors import ConfigError, DataValidationError

PLACEKEY = "placekey"
LOCATION_NAME = "location_name"
BRANDS = "brands"
REGION = "region"
RAW_VISITOR_COUNTS = "raw_visitor_counts"
POI_CBG = "poi_cbg"
RELATED_SAME_DAY = "related_same_day_brand"
RELATED_SAME_MONTH = "related_same_month_brand"
RELATED_SAME_WEEK = "related_same_week_brand"
"""Weekly Patterns' counterpart of ``related_same_month_brand``."""
DATE_RANGE_START = "date_range_start"
DATE_RANGE_END = "date_range_end"
PCT = "pct"
"""Column of the brand co-visits holding the vendor's percentage (0..100)."""

WINDOWS: dict[str, str] = {
    RELATED_SAME_DAY: "same_day",
    RELATED_SAME_MONTH: "same_month",
    RELATED_SAME_WEEK: "same_week",
}
"""JSON column -> ``period`` value of the co-visit rows it yields (``same_week``: Weekly Patterns)."""

PATTERNS_REQUIRED = (
    PLACEKEY,
    LOCATION_NAME,
    BRANDS,
    "naics_code",
    "latitude",
    "longitude",
    REGION,
    RAW_VISITOR_COUNTS,
    POI_CBG,
)
_RENAME = {PLACEKEY: POI_ID, LOCATION_NAME: NAME, BRANDS: BRAND_COL, REGION: STATE}


def _finite(x: int | float) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer beyond float range, e.g. 1 followed by 400 zeros
        return False


def _parse_map(text: str) -> dict[str, float]:
    """Parse one related-brand JSON map; raise ``ValueError`` saying what is wrong."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    for brand, pct in value.items():
        if not brand.strip():
            raise ValueError("empty brand name")
        if any("\ud800" <= c <= "\udfff" for c in brand):
            raise ValueError(f"brand name {brand!r} holds a lone surrogate escape (not Unicode text)")
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not _finite(pct):
            raise ValueError(f"percentage of {brand!r} must be a number, got {_show(pct)}")
        if not 0 <= pct <= 100:
            raise ValueError(f"percentage of {brand!r} must be in [0, 100], got {pct!r}")
    return value


# A flat JSON object of "brand": number pairs whose keys hold no escapes: the shape of nearly
# every vendor map. Such maps are parsed with polars regexes over the whole column; any other
# text goes through json.loads. Measured on 1M rows x 2 maps x 5 brands (2 shared cores):
# json.loads per row 35 s, polars str.json_decode of a rewritten list 14 s, these regexes 6 s.
_KEY = r'"[^"\\\x00-\x1f]*"'
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_WS = r"[ \t\n\r]"  # JSON's whitespace; regex \s would also take e.g. a no-break space, json.loads does not
_PAIR = rf"{_KEY}{_WS}*:{_WS}*{_NUM}"
_FLAT_MAP = rf"^\{{{_WS}*(?:{_PAIR}{_WS}*(?:,{_WS}*{_PAIR}{_WS}*)*)?\}}$"
_PAIR_GROUPS = rf'^"([^"\\\x00-\x1f]*)"{_WS}*:{_WS}*({_NUM})$'


def _map_entries(texts: pl.Series) -> tuple[pl.DataFrame, dict[int, str]]:
    """Entries ``(_row, dst_brand, pct)`` of one related-brand column, and bad rows -> reason."""
    col = texts.name
    t = texts.cast(pl.String).str.strip_chars(" \t\n\r")
    present = t.is_not_null() & (t != "") & (t != "{}")
    flat = t.str.contains(_FLAT_MAP).fill_null(False)
    frame = pl.DataFrame({"_row": pl.int_range(len(t), eager=True, dtype=pl.UInt32), "_text": t})
    fast = (
        frame.filter(present & flat)
        .with_columns(pl.col("_text").str.extract_all(_PAIR))
        .explode("_text")
        .drop_nulls("_text")
        .with_columns(pl.col("_text").str.extract_groups(_PAIR_GROUPS))
        .unnest("_text")
        .select("_row", pl.col("1").alias(DST_BRAND), pl.col("2").cast(pl.Float64).alias(PCT))
    )
    # a map naming a brand twice goes through json.loads (last value wins), like any odd map
    dup = fast.group_by("_row").agg((pl.col(DST_BRAND).n_unique() < pl.len()).alias("_dup")).filter("_dup")
    if dup.height:
        fast = fast.filter(~pl.col("_row").is_in(dup["_row"].implode()))
    errors: dict[int, str] = {}
    bad = fast.filter((pl.col(PCT) < 0) | (pl.col(PCT) > 100) | (pl.col(DST_BRAND).str.strip_chars() == ""))
    for row, brand, pct in bad.rows():
        if row not in errors:
            what = (
                "empty brand name"
                if not brand.strip()
                else f"percentage of {brand!r} must be in [0, 100], got {pct:g}"
            )
            errors[row] = f"malformed {col} map ({what}): got {_show(texts[row])}"
    slow_rows, slow_brand, slow_pct = [], [], []
    odd = (present & ~flat) | frame["_row"].is_in(dup["_row"].implode())
    for row, text in frame.filter(odd).rows():
        try:
            for brand, pct in _parse_map(text).items():
                slow_rows.append(row)
                slow_brand.append(brand)
                slow_pct.append(float(pct))
        except (ValueError, TypeError, AttributeError) as exc:
            errors[row] = f"malformed {col} map ({exc}): got {_show(text)}"
    if not slow_rows:
        return fast, errors
    slow = pl.DataFrame(
        {"_row": slow_rows, DST_BRAND: slow_brand, PCT: slow_pct},
        schema={"_row": pl.UInt32, DST_BRAND: pl.String, PCT: pl.Float64},
    )
    return pl.concat([fast, slow]).sort("_row", maintain_order=True), errors


def _naics_counts(raw: pl.Series, stored: pl.Series, taxonomy: NAICSTaxonomy) -> dict[str, int]:
    """``naics_recoded`` and ``naics_short`` of the report, over the rows kept.

    ``raw``: the input codes of those rows; ``stored``: their 6-char 2022 codes.
    """
    text = raw.cast(pl.String).str.strip_chars().str.replace(r"\.0+$", "")
    levels = {c: taxonomy.level_of(c) for c in stored.unique().to_list()}
    return {
        "naics_recoded": int((text.str.pad_end(6, "0") != stored).sum()),
        "naics_short": sum(1 for c in stored.to_list() if levels[c] < 6),
    }


def read_patterns(
    source: Source,
    taxonomy: NAICSTaxonomy | None = None,
    on_error: Literal["raise", "fail", "skip"] = "raise",
    column_map: Mapping[str, str] | None = None,
    periods: Sequence[str] = ("same_day", "same_month"),
    naics_vintage: str = "auto",
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Read a Monthly Patterns file into POIs, brand-level co-visits and a report.

    POIs follow the POI contract: ``poi_id`` = ``placekey``, ``name`` = ``location_name``,
    ``brand`` = ``brands`` (null when empty), ``state`` = ``region``, plus
    ``raw_visitor_counts`` (Int64, a feature) and ``poi_cbg`` (text, not a feature).

    Each entry ``{brand: pct}`` of a POI's related-brand map gives one co-visit row
    ``src_poi_id`` = the POI, ``dst_brand`` = brand, ``state`` = the POI's state,
    ``visitors = round(pct / 100 * raw_visitor_counts)`` (halves away from zero), ``pct``,
    and ``period`` = ``"same_day"`` or ``"same_month"``.

    Args:
        source: Patterns CSV / Parquet path, or a polars / pandas DataFrame.
        taxonomy: NAICS taxonomy for the POI check (default: 2022 edition).
        on_error: What to do with a row-level error, a malformed JSON map or a NAICS code
            that is missing, malformed or unknown: ``"raise"`` (default; ``"fail"`` is the
            same) raises :class:`~geograph.errors.DataValidationError` naming file, row
            and field; ``"skip"`` drops that row's map, or the whole row for a NAICS code,
            and lists it in ``report["skipped"]``.
        column_map: Your column names -> the Patterns names above. Default none.
        periods: Which maps to read: ``"same_day"`` and / or ``"same_month"`` (default
            both; ``"same_week"`` reads Weekly Patterns' ``related_same_week_brand``). The same-day overlap is part of the same-month one, so pick one period
            before summing visitors over a POI pair.
        naics_vintage: NAICS edition of ``naics_code`` (default ``"auto"``: 2022 codes
            stay, others go through the 2017, then the 2012 concordance; Patterns files
            carry 2017 codes). Codes of 2 to 5 digits are kept at their own level. See
            :mod:`geograph.data.naics`.

    Returns:
        ``(pois, brand_covisits, report)``. The report holds ``file``, ``rows``, ``pois``,
        ``covisit_rows``, ``skipped`` (list of ``{row, field, error}``), ``skipped_maps``,
        ``skipped_rows`` (rows dropped for their NAICS code), ``naics_recoded`` (rows whose
        code became a different 2022 code), ``naics_short`` (rows whose 2022 code has fewer
        than 6 digits),
        ``unknown_brands`` (sorted brands named in a map but carried by no POI row: they
        cannot become POI-to-POI edges), ``unknown_brand_rows`` and
        ``unknown_brand_visitors``.
    """
    if on_error not in ("raise", "fail", "skip"):
        raise ConfigError(f"on_error must be 'raise', 'fail' or 'skip', got {on_error!r}")
    naics_vintage = check_vintage(naics_vintage)
    bad = [p for p in periods if p not in WINDOWS.values()]
    if bad or not periods:
        raise ConfigError(
            f"periods must be a non-empty subset of {tuple(WINDOWS.values())}, got {tuple(periods)!r}"
        )
    df, ctx = _load(
        source,
        "patterns",
        column_map,
        string_columns=(PLACEKEY, LOCATION_NAME, BRANDS, "naics_code", REGION, POI_CBG, *WINDOWS),
    )
    _require(df, PATTERNS_REQUIRED, ctx)
    windows = [c for c, p in WINDOWS.items() if p in periods]
    _require(df, windows, ctx, hint=f" (periods={tuple(periods)!r} reads {windows})")

    raw = _count_col(df, RAW_VISITOR_COUNTS, ctx)
    cbg = df[POI_CBG]
    if cbg.dtype != pl.String:  # a CBG is a 12-digit FIPS id: keep it as text
        cbg = cbg.cast(pl.String)
    base = df.select(PATTERNS_REQUIRED).with_columns(raw, cbg.rename(POI_CBG)).rename(_RENAME)
    naics_errors: dict[int, str] | None = {} if on_error == "skip" else None
    state_errors: dict[int, str] | None = {} if on_error == "skip" else None
    try:
        pois = _validate_pois(base, ctx, taxonomy, naics_vintage, naics_errors, state_errors)
    except DataValidationError as exc:  # name the Patterns column, not geograph's
        if exc.field == NAICS_CODE:
            raise DataValidationError(
                f'{exc.reason}. Pass on_error="skip" to drop such rows',
                file=exc.file,
                row=exc.row,
                field=exc.field,
            ) from None
        vendor = {v: k for k, v in _RENAME.items()}.get(exc.field or "")
        if vendor is None:
            raise
        raise DataValidationError(
            f"{exc.reason} (Patterns column {vendor!r} becomes geograph's {exc.field!r})",
            file=exc.file,
            row=exc.row,
            field=vendor,
        ) from None

    naics_errors, state_errors = naics_errors or {}, state_errors or {}
    dropped = sorted(set(naics_errors) | set(state_errors))
    skipped = [
        {"row": i, "field": NAICS_CODE, "error": naics_errors[i]}
        if i in naics_errors
        else {"row": i, "field": REGION, "error": state_errors[i]}
        for i in dropped
    ]
    parts = []
    for col in windows:
        entries, errors = _map_entries(df[col])
        for i in dropped:
            errors.pop(i, None)  # the row is gone: its map does not count
        if dropped:
            entries = entries.filter(~pl.col("_row").is_in(dropped))
        if errors:
            if on_error != "skip":
                i = min(errors)
                raise ctx.error(
                    f"{errors[i]}; expected a JSON object of brand name -> percentage, e.g. "
                    '{"Walmart": 12}. Pass on_error="skip" to drop such maps',
                    row=i,
                    field=col,
                )
            skipped += [{"row": i, "field": col, "error": errors[i]} for i in sorted(errors)]
            entries = entries.filter(~pl.col("_row").is_in(list(errors)))
        parts.append(entries.with_columns(pl.lit(WINDOWS[col]).alias(PERIOD)))

    entries = pl.concat(parts)
    rows = entries["_row"]
    pct = entries[PCT]
    raw_rows = pois[RAW_VISITOR_COUNTS].gather(rows).cast(pl.Float64)
    visitors = (pct / 100.0 * raw_rows).round(0, mode="half_away_from_zero")
    i = _first(visitors >= 2.0**63)  # only a raw count near 2**63 gets here
    if i is not None:
        raise ctx.error(
            f"{RAW_VISITOR_COUNTS} {pois[RAW_VISITOR_COUNTS][int(rows[i])]} x {pct[i]:g}% does not fit in a 64-bit integer",
            row=int(rows[i]),
            field=RAW_VISITOR_COUNTS,
        )
    covisits = pl.DataFrame(
        [
            pois[POI_ID].gather(rows).rename(SRC_POI),
            entries[DST_BRAND],
            pois[STATE].gather(rows),
            visitors.cast(pl.Int64).rename(VISITORS),
            pct,
            entries[PERIOD],
        ]
    )
    raw_naics = df[NAICS_CODE]
    if dropped:
        kept = pois[NAICS_CODE].is_not_null() & pois[STATE].is_not_null()
        raw_naics = raw_naics.filter(kept)
        pois = pois.filter(kept)
    known = pois[BRAND_COL].drop_nulls().unique()
    unknown = covisits.filter(~pl.col(DST_BRAND).is_in(known))
    report: dict[str, Any] = {
        "file": ctx.file,
        "rows": df.height,
        "pois": pois.height,
        "covisit_rows": covisits.height,
        "skipped": skipped,
        "skipped_maps": len(skipped) - len(dropped),
        "skipped_rows": len(dropped),
        **_naics_counts(raw_naics, pois[NAICS_CODE], taxonomy or NAICSTaxonomy()),
        "unknown_brands": sorted(unknown[DST_BRAND].unique().to_list()),
        "unknown_brand_rows": unknown.height,
        "unknown_brand_visitors": int(unknown[VISITORS].sum()),
    }
    return pois, covisits, report
