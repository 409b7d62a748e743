"""The geotagged image table reader."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import polars as pl

from geograph.constants import EMBEDDING, IMAGE_ID, LAT, LON, PATH, QUERY_ID, QUERY_LAT, QUERY_LON, TEXT
from geograph.data.readers.columns import _float_col, _string_col, _unique
from geograph.data.readers.loading import Source, _Ctx, _first, _load, _require, _show


def read_images(source: Source, column_map: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Read and validate a geotagged image table.

    Contract: ``image_id`` (text, unique), ``latitude`` / ``longitude``, and ``embedding``
    (list of finite numbers, one length for all rows; in CSV a JSON list ``"[0.1, 0.2]"``)
    and / or ``path`` (text; existence is not checked); ``text`` optional.

    Args:
        source: CSV / Parquet path, hive-partitioned folder, or polars / pandas DataFrame.
        column_map: Your column name -> geograph's. Default none.

    Returns:
        A new DataFrame: ``image_id, latitude, longitude``, then ``embedding``
        (List(Float32)), ``path``, ``text`` when present, then extra columns.
    """
    df, ctx = _load(source, "images", column_map, string_columns=(IMAGE_ID, PATH, TEXT, EMBEDDING))
    if EMBEDDING not in df.columns and PATH not in df.columns:
        _require(df, (IMAGE_ID, LAT, LON, EMBEDDING), ctx, hint=" (an image needs an embedding or a path)")
    _require(df, (IMAGE_ID, LAT, LON), ctx)
    image_id = _string_col(df, IMAGE_ID, ctx)
    _unique(image_id, IMAGE_ID, ctx)
    out = [image_id, _float_col(df, LAT, ctx, -90.0, 90.0), _float_col(df, LON, ctx, -180.0, 180.0)]
    if EMBEDDING in df.columns:
        out.append(_embedding_col(df, ctx))
    if PATH in df.columns:
        out.append(_string_col(df, PATH, ctx, required=EMBEDDING not in df.columns))
    if TEXT in df.columns:
        out.append(_string_col(df, TEXT, ctx, required=False))
    result = pl.DataFrame(out)
    extras = [c for c in df.columns if c not in result.columns]
    return result.hstack(df.select(extras).get_columns())


def read_geotagged(
    source: Source,
    *,
    embedding_column: str = EMBEDDING,
    text_column: str = TEXT,
    require_coordinates: bool = True,
) -> pl.DataFrame:
    """Read and validate a table of geotagged queries (geolocation's train / val / test files).

    Contract: ``id`` (text or integer, unique), ``lat`` in [-90, 90] and ``lon`` in [-180, 180]
    (finite numbers), and ``embedding_column`` (list of finite numbers, one length for all rows;
    in CSV a JSON list ``"[0.1, 0.2]"``) or ``text_column`` (non-empty text; the query to embed).
    With both, the embedding is the query and the text is kept as a label.

    Args:
        source: CSV / Parquet path, hive-partitioned folder, or polars / pandas DataFrame.
        embedding_column: Name of the embedding column. Default ``embedding``.
        text_column: Name of the text column. Default ``text``.
        require_coordinates: Refuse a table without ``lat`` / ``lon`` (default true); when false,
            coordinates are optional but, if present, both are checked (a file to score).

    Returns:
        A new DataFrame: ``id`` (String), ``lat``, ``lon`` (Float64) when present, then
        ``embedding`` (List(Float32)) and / or ``text``, named as in ``source``.

    Raises:
        DataValidationError: naming the file, row and field: an empty table, a missing column, a
            duplicate id, a coordinate out of range or NaN, a non-finite or ragged embedding.
    """
    df, ctx = _load(
        source, "geotagged queries", None, string_columns=(QUERY_ID, text_column, embedding_column)
    )
    need = [QUERY_ID]
    if require_coordinates or QUERY_LAT in df.columns or QUERY_LON in df.columns:
        need += [QUERY_LAT, QUERY_LON]
    if embedding_column not in df.columns and text_column not in df.columns:
        need.append(embedding_column)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ctx.error(
            f"missing required column(s) {missing}; columns found: {df.columns}. Expected {QUERY_ID!r}, "
            f"{QUERY_LAT!r}, {QUERY_LON!r} and an {embedding_column!r} (list of numbers) or a "
            f"{text_column!r} column",
            field=missing[0],
        )
    ids = _string_col(df, QUERY_ID, ctx)
    _unique(ids, QUERY_ID, ctx)
    out = [ids]
    if QUERY_LAT in df.columns:
        out += [_float_col(df, QUERY_LAT, ctx, -90.0, 90.0), _float_col(df, QUERY_LON, ctx, -180.0, 180.0)]
    if embedding_column in df.columns:
        out.append(_embedding_col(df, ctx, embedding_column, what="row"))
    if text_column in df.columns:
        out.append(_string_col(df, text_column, ctx, required=embedding_column not in df.columns))
    return pl.DataFrame(out)


def _embedding_col(df: pl.DataFrame, ctx: _Ctx, col: str = EMBEDDING, what: str = "image") -> pl.Series:
    s = df[col]
    if s.dtype == pl.String:
        try:
            s = s.str.json_decode(pl.List(pl.Float64))
        except Exception:
            for i, text in enumerate(df[col].to_list()):  # find the row to blame
                try:
                    value = json.loads(text) if text is not None else []
                    if not isinstance(value, list) or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
                    ):
                        raise ValueError("not a list of numbers")
                    j = next((k for k, v in enumerate(value) if not math.isfinite(v)), None)
                except (ValueError, OverflowError):  # OverflowError: an integer beyond float range
                    raise ctx.error(
                        f"{col} must be a JSON list of numbers, got {_show(text)}", row=i, field=col
                    ) from None
                if j is not None:  # json.loads reads NaN / Infinity, polars does not
                    raise ctx.error(
                        f"{col} value {j} is {value[j]}; embeddings must be finite numbers", row=i, field=col
                    ) from None
            raise ctx.error(f"{col} column could not be parsed as JSON lists of numbers", field=col) from None
    if isinstance(s.dtype, pl.Array):
        s = s.cast(pl.List(s.dtype.inner))  # type: ignore[arg-type]
    if not isinstance(s.dtype, pl.List) or not (s.dtype.inner.is_numeric() or s.dtype.inner == pl.Null):
        raise ctx.error(f"{col} must be a list of floats, got a {s.dtype} column", field=col)
    s = s.cast(pl.List(pl.Float32))
    lengths = s.list.len()
    i = _first(s.is_null() | (lengths == 0))
    if i is not None:
        raise ctx.error(f"missing or empty {col} ({_show(s[i])}); every {what} needs one", row=i, field=col)
    i = _first(lengths != lengths[0])
    if i is not None:
        raise ctx.error(
            f"{col} has {lengths[i]} values but row 0 has {lengths[0]}; all embeddings must have one length",
            row=i,
            field=col,
        )
    bad = pl.select(s.list.eval(~pl.element().is_finite().fill_null(False)).list.any()).to_series()
    i = _first(bad)
    if i is not None:
        values = s[i].to_list()
        j = next(k for k, v in enumerate(values) if v is None or v != v or v in (float("inf"), float("-inf")))
        raise ctx.error(
            f"{col} value {j} is {values[j]}; embeddings must be finite numbers", row=i, field=col
        )
    return s.rename(col)
