"""Adapter for SafeGraph / Advan *Monthly Patterns* files.

One patterns row is one POI in one month. It becomes one row of the POI contract and, from
the ``related_same_day_brand`` / ``related_same_month_brand`` JSON maps (brand name ->
percentage of this POI's visitors who also visited that brand, listed only where the
overlap stands out from the national average), brand-level co-visit rows
``(src_poi_id, dst_brand, state, visitors, pct, period)``.
See docs/readme/data.md for the rules and the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import polars as pl

from geograph.constants import BRAND_COL, DST_BRAND, NAME, PERIOD, POI_ID, SRC_POI, STATE, VISITORS
from geograph.data.naics import NAICSTaxonomy
from geograph.data.readers import Source, _count_col, _load, _require, _show, _validate_pois
from geograph.errors import ConfigError, DataValidationError

PLACEKEY = "placekey"
LOCATION_NAME = "location_name"
BRANDS = "brands"
REGION = "region"
RAW_VISITOR_COUNTS = "raw_visitor_counts"
POI_CBG = "poi_cbg"
RELATED_SAME_DAY = "related_same_day_brand"
RELATED_SAME_MONTH = "related_same_month_brand"
PCT = "pct"
"""Column of the brand co-visits holding the vendor's percentage (0..100)."""

WINDOWS: dict[str, str] = {RELATED_SAME_DAY: "same_day", RELATED_SAME_MONTH: "same_month"}
"""JSON column -> ``period`` value of the co-visit rows it yields."""

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


def _parse_map(text: str) -> dict[str, float]:
    """Parse one related-brand JSON map; raise ``ValueError`` saying what is wrong."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    for brand, pct in value.items():
        if not brand.strip():
            raise ValueError("empty brand name")
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not math.isfinite(pct):
            raise ValueError(f"percentage of {brand!r} must be a number, got {pct!r}")
        if not 0 <= pct <= 100:
            raise ValueError(f"percentage of {brand!r} must be in [0, 100], got {pct!r}")
    return value


def read_patterns(
    source: Source,
    taxonomy: NAICSTaxonomy | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    column_map: Mapping[str, str] | None = None,
    periods: Sequence[str] = ("same_day", "same_month"),
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
        on_error: What to do with a malformed JSON map: ``"raise"`` (default) raises
            :class:`~geograph.errors.DataValidationError` naming file, row and field;
            ``"skip"`` drops that row's map and lists it in ``report["skipped"]``.
        column_map: Your column names -> the Patterns names above. Default none.
        periods: Which maps to read: ``"same_day"`` and / or ``"same_month"`` (default
            both). The same-day overlap is part of the same-month one, so pick one period
            before summing visitors over a POI pair.

    Returns:
        ``(pois, brand_covisits, report)``. The report holds ``file``, ``rows``, ``pois``,
        ``covisit_rows``, ``skipped`` (list of ``{row, field, error}``), ``skipped_maps``,
        ``unknown_brands`` (sorted brands named in a map but carried by no POI row: they
        cannot become POI-to-POI edges), ``unknown_brand_rows`` and
        ``unknown_brand_visitors``.
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
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
    try:
        pois = _validate_pois(base, ctx, taxonomy)
    except DataValidationError as exc:  # name the Patterns column, not geograph's
        vendor = {v: k for k, v in _RENAME.items()}.get(exc.field or "")
        if vendor is None:
            raise
        raise DataValidationError(
            f"{exc.reason} (Patterns column {vendor!r} becomes geograph's {exc.field!r})",
            file=exc.file,
            row=exc.row,
            field=vendor,
        ) from None

    # JSON maps with per-row brand keys do not fit a polars struct dtype; a Python loop over
    # the non-empty maps is the measured fast path (about 1 s per million maps).
    ids = pois[POI_ID].to_list()
    states = pois[STATE].to_list()
    raws = pois[RAW_VISITOR_COUNTS].to_list()
    src: list[str] = []
    dst: list[str] = []
    st: list[str] = []
    pct: list[float] = []
    vis_raw: list[int] = []
    period: list[str] = []
    skipped: list[dict[str, Any]] = []
    for col in windows:
        texts = df[col].cast(pl.String).to_list()
        for i, text in enumerate(texts):
            if text is None or text.strip() in ("", "{}"):
                continue
            try:
                entries = _parse_map(text)
            except (ValueError, TypeError, AttributeError) as exc:
                reason = f"malformed {col} map ({exc}): got {_show(text)}"
                if on_error == "raise":
                    raise ctx.error(
                        f"{reason}; expected a JSON object of brand name -> percentage, e.g. "
                        '{"Walmart": 12}. Pass on_error="skip" to drop such maps',
                        row=i,
                        field=col,
                    ) from None
                skipped.append({"row": i, "field": col, "error": reason})
                continue
            for brand, p in entries.items():
                src.append(ids[i])
                dst.append(brand)
                st.append(states[i])
                pct.append(float(p))
                vis_raw.append(raws[i])
                period.append(WINDOWS[col])

    pct_s = pl.Series(PCT, pct, dtype=pl.Float64)
    covisits = pl.DataFrame(
        [
            pl.Series(SRC_POI, src, dtype=pl.String),
            pl.Series(DST_BRAND, dst, dtype=pl.String),
            pl.Series(STATE, st, dtype=pl.String),
            (pct_s / 100.0 * pl.Series(vis_raw, dtype=pl.Float64))
            .round(0, mode="half_away_from_zero")
            .cast(pl.Int64)
            .rename(VISITORS),
            pct_s,
            pl.Series(PERIOD, period, dtype=pl.String),
        ]
    )
    known = pois[BRAND_COL].drop_nulls().unique()
    unknown = covisits.filter(~pl.col(DST_BRAND).is_in(known))
    report: dict[str, Any] = {
        "file": ctx.file,
        "rows": df.height,
        "pois": pois.height,
        "covisit_rows": covisits.height,
        "skipped": skipped,
        "skipped_maps": len(skipped),
        "unknown_brands": sorted(unknown[DST_BRAND].unique().to_list()),
        "unknown_brand_rows": unknown.height,
        "unknown_brand_visitors": int(unknown[VISITORS].sum()),
    }
    return pois, covisits, report
