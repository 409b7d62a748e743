"""The co-visit table reader (POI-level, POI-to-brand or brand-level)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import polars as pl

from geograph.constants import DST_BRAND, DST_POI, PERIOD, POI_ID, SRC_BRAND, SRC_POI, STATE, VISITORS
from geograph.data.readers.columns import _count_col, _known_ids, _state_col, _string_col
from geograph.data.readers.loading import Source, _Ctx, _load, _require
from geograph.errors import DataValidationError

CovisitLevel = Literal["poi", "poi_brand", "brand"]

COVISIT_FORMS: dict[str, tuple[str, ...]] = {
    "poi": (SRC_POI, DST_POI, VISITORS),
    "poi_brand": (SRC_POI, DST_BRAND, VISITORS),
    "brand": (SRC_BRAND, DST_BRAND, STATE, VISITORS),
}
"""Required columns of each co-visit level."""


def covisit_level(df: pl.DataFrame) -> CovisitLevel:
    """Which co-visit form ``df`` is, from its columns.

    Returns:
        ``"poi"`` for ``(src_poi_id, dst_poi_id)`` pairs, ``"poi_brand"`` for
        ``(src_poi_id, dst_brand)`` rows and ``"brand"`` for ``(src_brand, dst_brand, state)``.
    """
    cols = set(df.columns)
    if SRC_POI in cols and DST_POI in cols:
        return "poi"
    if SRC_POI in cols and DST_BRAND in cols:
        return "poi_brand"
    if SRC_BRAND in cols and DST_BRAND in cols:
        return "brand"
    raise DataValidationError(
        f"cannot tell the co-visit form from columns {df.columns}; expected one of "
        + " | ".join(f"({', '.join(c)})" for c in COVISIT_FORMS.values())
    )


def read_covisits(
    source: Source,
    pois: pl.DataFrame | None = None,
    column_map: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Read and validate a co-visit table (POI-level, POI-to-brand or brand-level).

    Forms (see :func:`covisit_level`): ``src_poi_id, dst_poi_id, visitors``;
    ``src_poi_id, dst_brand, visitors``; ``src_brand, dst_brand, state, visitors``.
    ``visitors`` (people who visited both) must be a whole number >= 0; ``period`` and
    ``state`` are optional except that brand-level rows need a ``state`` (a region key,
    see :mod:`geograph.data.regions`, stored in its canonical form).

    Args:
        source: CSV / Parquet path, hive-partitioned folder, or polars / pandas DataFrame.
        pois: A validated POI table; when given, every ``src_poi_id`` / ``dst_poi_id`` must
            be one of its ``poi_id`` values. Default None (ids are not checked).
        column_map: Your column name -> geograph's. Default none.

    Returns:
        A new DataFrame: the form's columns (ids as text, ``visitors`` Int64), then
        ``period`` (text) and ``state`` when present, then any extra columns.
    """
    df, ctx = _load(
        source, "covisits", column_map, string_columns=(SRC_POI, DST_POI, SRC_BRAND, DST_BRAND, STATE, PERIOD)
    )
    return _validate_covisits(df, ctx, pois)


def _validate_covisits(df: pl.DataFrame, ctx: _Ctx, pois: pl.DataFrame | None) -> pl.DataFrame:
    cols = set(df.columns)
    if DST_POI in cols or DST_BRAND not in cols:
        level: CovisitLevel = "poi"
    elif SRC_BRAND in cols and SRC_POI not in cols:
        level = "brand"
    else:
        level = "poi_brand"
    forms = " | ".join(f"({', '.join(c)})" for c in COVISIT_FORMS.values())
    _require(df, COVISIT_FORMS[level], ctx, hint=f" (co-visit forms: {forms})")

    id_cols = [c for c in COVISIT_FORMS[level] if c not in (VISITORS, STATE)]
    out = [_string_col(df, c, ctx) for c in id_cols]
    out.append(_count_col(df, VISITORS, ctx))
    if PERIOD in cols:
        p = df[PERIOD]
        out.append(p if p.dtype == pl.String else p.cast(pl.String))
    if STATE in cols:
        out.append(_state_col(df, ctx))
    result = pl.DataFrame(out)
    if pois is not None and level != "brand":
        known = pois[POI_ID].cast(pl.String)
        for c in (SRC_POI, DST_POI):
            if c in result.columns:
                _known_ids(result, c, known, ctx)
    extras = [c for c in df.columns if c not in result.columns]
    return result.hstack(df.select(extras).get_columns())
