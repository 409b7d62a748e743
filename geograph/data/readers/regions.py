"""The region (socioeconomic) table reader."""

from __future__ import annotations

from collections.abc import Mapping

import h3ronpy
import numpy as np
import polars as pl

from geograph.constants import H3_CELL, LAT, LON
from geograph.data.readers.columns import _float_col, _string_col, _unique
from geograph.data.readers.loading import Source, _first, _load, _require, _show
from geograph.data.readers.pois import feature_columns
from geograph.geo.h3cells import cells_to_string_series


def _is_h3_cell(text: str) -> bool:
    """Whether ``text`` is a valid H3 cell as the reader parses it (hex digits, 64-bit)."""
    if not isinstance(text, str):
        return False
    return bool(_h3_ids(pl.Series([text], dtype=pl.String))[1][0])


def _h3_ids(text: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """``uint64`` H3 indexes of hex strings (null where not a number) and which are valid cells."""
    ids = text.str.to_integer(base=16, dtype=pl.UInt64, strict=False)
    valid = ids.is_not_null().to_numpy() & np.asarray(h3ronpy.cells_valid(ids.fill_null(0).to_numpy(), booleanarray=True))
    return ids, valid


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
    df, ctx = _load(source, "regions", column_map, string_columns=(H3_CELL,))
    if H3_CELL in df.columns:
        s = df[H3_CELL]
        if s.dtype.is_integer():
            # an H3 index is an unsigned 64-bit number: a negative one is no cell; the text of a
            # valid one is its hex string, of any other number its decimal digits (for the error)
            ids = s.cast(pl.UInt64, strict=False) if s.dtype.is_signed_integer() else s.cast(pl.UInt64)
            ok = ids.is_not_null().to_numpy() & np.asarray(
                h3ronpy.cells_valid(ids.fill_null(0).to_numpy(), booleanarray=True)
            )
            hexes = cells_to_string_series(ids.filter(pl.Series(ok))).to_numpy()
            text = s.cast(pl.String).to_numpy().astype(object)
            text[ok] = hexes
            s = pl.Series(H3_CELL, text, pl.String)
            df = df.with_columns(s)
        s = _string_col(df, H3_CELL, ctx).str.strip_chars().str.to_lowercase()
        # validated and stored as h3's canonical hex strings (users read the table); the graph
        # builder joins on the uint64 indexes
        ids, valid = _h3_ids(s)
        i = _first(pl.Series(~valid))
        if i is not None:
            raise ctx.error(
                f"h3_cell must be a valid H3 cell index, got {_show(df[H3_CELL][i])}", row=i, field=H3_CELL
            )
        s = cells_to_string_series(ids, H3_CELL)
        _unique(s, H3_CELL, ctx)
        key = [s]
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
