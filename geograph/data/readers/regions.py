"""The region (socioeconomic) table reader."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from geograph.constants import H3_CELL, LAT, LON
from geograph.data.readers.columns import _float_col, _string_col, _unique
from geograph.data.readers.loading import Source, _first, _load, _require, _show
from geograph.data.readers.pois import feature_columns


def _is_h3_cell(text: str) -> bool:
    """``h3.is_valid_cell`` that says False (instead of overflowing) for "-1" or 20 hex digits."""
    import h3

    try:
        return bool(h3.is_valid_cell(text))
    except (OverflowError, ValueError, TypeError):
        return False


def read_regions(source: Source, column_map: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Read and validate a region (socioeconomic) table.

    Contract: either ``h3_cell`` (valid H3 index as text or 64-bit int, unique) or
    ``latitude`` / ``longitude``, plus at least one numeric column (the features; nulls
    allowed there). Other text columns are kept but are not features.

    Args:
        source: CSV / Parquet path, hive-partitioned folder, or polars / pandas DataFrame.
        column_map: Your column name -> geograph's. Default none.

    Returns:
        A new DataFrame: ``h3_cell`` (lower-case text) or ``latitude, longitude`` first,
        then the other columns in input order.
    """
    import h3

    df, ctx = _load(source, "regions", column_map, string_columns=(H3_CELL,))
    if H3_CELL in df.columns:
        s = df[H3_CELL]
        if s.dtype.is_integer():
            # an H3 index is an unsigned 64-bit number: a negative one is no cell (and h3 would overflow)
            s = pl.Series(
                H3_CELL,
                [None if v is None else h3.int_to_str(v) if v >= 0 else str(v) for v in s.to_list()],
                pl.String,
            )
            df = df.with_columns(s)
        s = _string_col(df, H3_CELL, ctx).str.strip_chars().str.to_lowercase()
        uniq = s.unique().to_list()
        invalid = [c for c in uniq if not _is_h3_cell(c)]
        i = _first(s.is_in(pl.Series(invalid, dtype=pl.String)))
        if i is not None:
            raise ctx.error(
                f"h3_cell must be a valid H3 cell index, got {_show(df[H3_CELL][i])}", row=i, field=H3_CELL
            )
        _unique(s, H3_CELL, ctx)
        key = [s.rename(H3_CELL)]
    else:
        _require(df, (LAT, LON), ctx, hint=" (a region needs an h3_cell, or latitude and longitude)")
        key = [_float_col(df, LAT, ctx, -90.0, 90.0), _float_col(df, LON, ctx, -180.0, 180.0)]
    result = pl.DataFrame(key)
    extras = [c for c in df.columns if c not in result.columns]
    result = result.hstack(df.select(extras).get_columns())
    if not feature_columns(result):
        raise ctx.error(
            f"regions table has no numeric column; expected socioeconomic attributes (e.g. population), "
            f"columns found: {df.columns}"
        )
    return result
