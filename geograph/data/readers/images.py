"""The geotagged image table reader."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import polars as pl

from geograph.constants import EMBEDDING, IMAGE_ID, LAT, LON, PATH, TEXT
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


def _embedding_col(df: pl.DataFrame, ctx: _Ctx) -> pl.Series:
    s = df[EMBEDDING]
    if s.dtype == pl.String:
        try:
            s = s.str.json_decode(pl.List(pl.Float64))
        except Exception:
            for i, text in enumerate(df[EMBEDDING].to_list()):  # find the row to blame
                try:
                    value = json.loads(text) if text is not None else []
                    if not isinstance(value, list) or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
                    ):
                        raise ValueError("not a list of numbers")
                    if not all(math.isfinite(v) for v in value):  # json.loads reads NaN, polars does not
                        raise ValueError("not a list of finite numbers")
                except (ValueError, OverflowError):  # OverflowError: an integer beyond float range
                    raise ctx.error(
                        f"embedding must be a JSON list of numbers, got {_show(text)}", row=i, field=EMBEDDING
                    ) from None
            raise ctx.error(
                "embedding column could not be parsed as JSON lists of numbers", field=EMBEDDING
            ) from None
    if isinstance(s.dtype, pl.Array):
        s = s.cast(pl.List(s.dtype.inner))  # type: ignore[arg-type]
    if not isinstance(s.dtype, pl.List) or not (s.dtype.inner.is_numeric() or s.dtype.inner == pl.Null):
        raise ctx.error(f"embedding must be a list of floats, got a {s.dtype} column", field=EMBEDDING)
    s = s.cast(pl.List(pl.Float32))
    lengths = s.list.len()
    i = _first(s.is_null() | (lengths == 0))
    if i is not None:
        raise ctx.error(
            f"missing or empty embedding ({_show(s[i])}); every image needs one", row=i, field=EMBEDDING
        )
    i = _first(lengths != lengths[0])
    if i is not None:
        raise ctx.error(
            f"embedding has {lengths[i]} values but row 0 has {lengths[0]}; all embeddings must have one length",
            row=i,
            field=EMBEDDING,
        )
    bad = pl.select(s.list.eval(~pl.element().is_finite().fill_null(False)).list.any()).to_series()
    i = _first(bad)
    if i is not None:
        values = s[i].to_list()
        j = next(k for k, v in enumerate(values) if v is None or v != v or v in (float("inf"), float("-inf")))
        raise ctx.error(
            f"embedding value {j} is {values[j]}; embeddings must be finite numbers", row=i, field=EMBEDDING
        )
    return s.rename(EMBEDDING)
