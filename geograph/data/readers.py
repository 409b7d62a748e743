"""Readers and validators for geograph's data contracts: POIs, co-visits, images, regions.

Each ``read_*`` function takes a CSV or Parquet path (or a folder of hive-partitioned
Parquet files, ``state=CA/part-0.parquet``), or an in-memory polars / pandas DataFrame,
renames columns with ``column_map`` (``{"lat": "latitude"}``), checks the contract and
returns a new polars DataFrame with normalised types. Inputs are never modified.

Every problem raises :class:`~geograph.errors.DataValidationError` naming the file
(``"<dataframe>"`` for in-memory frames), the 0-based data row, the field, the bad value
and what was expected. Checks are polars expressions over whole columns; only the first
offending row is looked up afterwards, so a 1M-row table validates in about a second.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_BRAND,
    DST_POI,
    EMBEDDING,
    H3_CELL,
    IMAGE_ID,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    PATH,
    PERIOD,
    POI_ID,
    POI_REQUIRED,
    SRC_BRAND,
    SRC_POI,
    STATE,
    TEXT,
    VISITORS,
)
from geograph.data.naics import NAICSTaxonomy
from geograph.errors import DataValidationError

Source = str | os.PathLike | pl.DataFrame | pl.LazyFrame | Any
"""A path (CSV, Parquet, or a folder of hive-partitioned Parquet) or a polars / pandas DataFrame."""

CovisitLevel = Literal["poi", "poi_brand", "brand"]

DATAFRAME = "<dataframe>"
"""The ``file`` reported in errors for in-memory inputs."""

US_STATES: frozenset[str] = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA PR RI SC SD TN TX UT VT VA WA WV WI WY".split()
)
"""USPS codes of the 50 states, the District of Columbia and Puerto Rico."""

COVISIT_FORMS: dict[str, tuple[str, ...]] = {
    "poi": (SRC_POI, DST_POI, VISITORS),
    "poi_brand": (SRC_POI, DST_BRAND, VISITORS),
    "brand": (SRC_BRAND, DST_BRAND, STATE, VISITORS),
}
"""Required columns of each co-visit level."""

_CONTRACT_COLUMNS = frozenset(
    (
        *POI_REQUIRED,
        SRC_POI,
        DST_POI,
        SRC_BRAND,
        DST_BRAND,
        VISITORS,
        PERIOD,
        IMAGE_ID,
        EMBEDDING,
        PATH,
        TEXT,
        H3_CELL,
    )
)
_FILE_COL = "__geograph_file__"
# What a damaged file can raise while polars reads it. A corrupt Parquet page can make polars'
# Rust code panic: PanicException derives from BaseException, not Exception.
_READ_ERRORS = (Exception, pl.exceptions.PanicException)
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq")


# ---------------------------------------------------------------------------------------
# where a row came from, and the errors that name it
# ---------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    """Where a table came from, so errors can name the file and row."""

    file: str
    table: str
    origin: pl.DataFrame | None = None  # (file, row) of each row, for tables read from many files

    def locate(self, row: int) -> tuple[str, int]:
        if self.origin is None:
            return self.file, row
        f, r = self.origin.row(row)
        return str(f), int(r)

    def error(self, message: str, row: int | None = None, field: str | None = None) -> DataValidationError:
        file = self.file
        if row is not None:
            file, row = self.locate(row)
        return DataValidationError(message, file=file, row=row, field=field)

    def rows_ref(self, first: int, second: int) -> str:
        (fa, ra), (fb, rb) = self.locate(first), self.locate(second)
        if fa == fb:
            return f"rows {ra} and {rb}"
        return f"row {ra} of {fa} and row {rb} of {fb}"


def _first(mask: pl.Series) -> int | None:
    """Index of the first True in ``mask`` (nulls count as False), or None."""
    mask = mask.fill_null(False)
    if not mask.any():
        return None
    return int(mask.arg_max())  # type: ignore[arg-type]


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------
def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas" and hasattr(obj, "columns")


def _hive_schema(folder: Path) -> dict[str, pl.DataType]:
    """Partition keys of a hive folder (``key=value`` directory names), all read as strings."""
    keys: dict[str, pl.DataType] = {}
    level = folder
    while True:
        subdirs = sorted(p for p in level.iterdir() if p.is_dir() and "=" in p.name)
        if not subdirs:
            return keys
        keys[subdirs[0].name.split("=", 1)[0]] = pl.String()
        level = subdirs[0]


def _scan_folder(folder: Path) -> pl.LazyFrame:
    return pl.scan_parquet(
        folder / "**" / "*.parquet",
        hive_partitioning=True,
        hive_schema=_hive_schema(folder) or None,
    )


def _read_folder(folder: Path, ctx: _Ctx) -> pl.DataFrame:
    if not any(folder.rglob("*.parquet")):
        raise ctx.error(
            "folder holds no .parquet files; expected a hive-partitioned table (state=XX/part-0.parquet)"
        )
    try:
        df = (
            pl.scan_parquet(
                folder / "**" / "*.parquet",
                hive_partitioning=True,
                hive_schema=_hive_schema(folder) or None,
                include_file_paths=_FILE_COL,
            )
            .with_columns(pl.int_range(pl.len()).over(_FILE_COL).alias("__row__"))
            .collect()
        )
    except _READ_ERRORS as exc:  # polars / arrow / OS errors all mean "cannot read"
        raise ctx.error(
            f"cannot read partitioned Parquet table ({_exc_line(exc)}); is a part file truncated?"
        ) from exc
    ctx.origin = df.select(_FILE_COL, "__row__")
    return df.drop(_FILE_COL, "__row__")


def _exc_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _read_file(path: Path, ctx: _Ctx, string_columns: Sequence[str]) -> pl.DataFrame:
    if not path.exists():
        raise ctx.error(f"file not found; expected a CSV or Parquet {ctx.table} table")
    if path.is_dir():
        return _read_folder(path, ctx)
    name = path.name.lower()
    is_csv = name.endswith(_CSV_SUFFIXES)
    is_parquet = name.endswith(_PARQUET_SUFFIXES)
    if not (is_csv or is_parquet):
        raise ctx.error(
            f"unsupported file type {path.suffix!r}; expected .csv, .csv.gz, .tsv, .parquet or .pq"
        )
    if path.stat().st_size == 0:
        raise ctx.error(
            f"file is empty (0 bytes); expected a {'CSV' if is_csv else 'Parquet'} {ctx.table} table"
        )
    kind = "CSV" if is_csv else "Parquet"
    try:
        if is_parquet:
            return pl.read_parquet(path)
        sep = "\t" if name.endswith(".tsv") else ","
        overrides = {c: pl.String for c in string_columns}
        try:
            return pl.read_csv(path, separator=sep, schema_overrides=overrides, infer_schema_length=10_000)
        except pl.exceptions.ComputeError:
            # a value past the inference window does not fit the inferred type: infer from all rows
            return pl.read_csv(path, separator=sep, schema_overrides=overrides, infer_schema_length=None)
    except _READ_ERRORS as exc:  # polars / arrow / OS / decoding errors all mean "cannot read"
        raise ctx.error(
            f"cannot read {kind} file ({_exc_line(exc)}); is it truncated or not {kind}?"
        ) from exc


def _apply_column_map(df: pl.DataFrame, column_map: Mapping[str, str] | None, ctx: _Ctx) -> pl.DataFrame:
    if not column_map:
        return df
    missing = [k for k in column_map if k not in df.columns]
    if missing:
        raise ctx.error(
            f"column_map renames column(s) {missing} that are not in the table; columns found: {df.columns}",
            field=missing[0],
        )
    targets = list(column_map.values())
    for t in targets:
        if targets.count(t) > 1:
            raise ctx.error(f"column_map maps several columns to {t!r}: {column_map}", field=t)
        if t in df.columns and t not in column_map:
            src = next(k for k, v in column_map.items() if v == t)
            raise ctx.error(
                f"column_map renames {src!r} to {t!r} but the table already has a {t!r} column", field=t
            )
    return df.rename(dict(column_map))


def _load(
    source: Source,
    table: str,
    column_map: Mapping[str, str] | None,
    string_columns: Sequence[str] = (),
) -> tuple[pl.DataFrame, _Ctx]:
    """Read ``source`` into a polars DataFrame, apply ``column_map``, refuse empty tables."""
    if isinstance(source, pl.DataFrame):
        df, ctx = source, _Ctx(DATAFRAME, table)
    elif isinstance(source, pl.LazyFrame):
        ctx = _Ctx(DATAFRAME, table)
        try:
            df = source.collect()
        except _READ_ERRORS as exc:
            raise ctx.error(f"cannot collect the LazyFrame ({_exc_line(exc)})") from exc
    elif _is_pandas(source):
        ctx = _Ctx(DATAFRAME, table)
        try:
            df = pl.from_pandas(source)
        except Exception as exc:
            raise ctx.error(
                f"cannot convert the pandas DataFrame ({_exc_line(exc)}); mixed-type column?"
            ) from exc
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        ctx = _Ctx(str(path), table)
        inverse = {v: k for k, v in (column_map or {}).items()}
        df = _read_file(path, ctx, [inverse.get(c, c) for c in string_columns])
    else:
        raise TypeError(
            f"{table} source must be a path, a polars or a pandas DataFrame, got {type(source).__name__}"
        )
    if df.height == 0:
        raise ctx.error(f"{table} table is empty (0 data rows); columns found: {df.columns}")
    return _apply_column_map(df, column_map, ctx), ctx


def _require(df: pl.DataFrame, required: Sequence[str], ctx: _Ctx, hint: str = "") -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ctx.error(
            f"missing required column(s) {missing} in the {ctx.table} table; columns found: {df.columns}"
            f"{hint}. Rename yours with column_map={{'your_name': {missing[0]!r}}}",
            field=missing[0],
        )


# ---------------------------------------------------------------------------------------
# column checks (each returns the normalised column)
# ---------------------------------------------------------------------------------------
def _string_col(df: pl.DataFrame, col: str, ctx: _Ctx, *, required: bool = True) -> pl.Series:
    """Text column; integer ids are turned into strings. ``required``: no null / empty values."""
    s = df[col]
    if s.dtype in (pl.Categorical, pl.Enum) or s.dtype.is_integer():
        s = s.cast(pl.String)
    elif s.dtype != pl.String and s.dtype != pl.Null:
        i = _first(s.is_not_null())
        raise ctx.error(
            f"{col} must be text (or integer ids), got a {s.dtype} column (first value {_show(s[i or 0])})",
            row=i,
            field=col,
        )
    s = s.cast(pl.String)
    if required:
        i = _first(s.is_null() | (s.str.len_chars() == 0))
        if i is not None:
            raise ctx.error(
                f"missing {col} ({_show(s[i])}); every row needs a non-empty {col}", row=i, field=col
            )
    return s


def _float_col(
    df: pl.DataFrame, col: str, ctx: _Ctx, lo: float | None = None, hi: float | None = None
) -> pl.Series:
    """Float64 column without nulls / NaN / inf, inside ``[lo, hi]`` when given."""
    s = df[col]
    if s.dtype == pl.String:
        f = s.str.strip_chars().cast(pl.Float64, strict=False)
        i = _first(f.is_null() & s.is_not_null())
        if i is not None:
            raise ctx.error(f"{col} must be a number, got {_show(s[i])}", row=i, field=col)
    elif s.dtype.is_numeric() or s.dtype == pl.Null:
        f = s.cast(pl.Float64)
    else:
        i = _first(s.is_not_null())
        raise ctx.error(
            f"{col} must be numeric (Float64), got a {s.dtype} column (first value {_show(s[i or 0])})",
            row=i,
            field=col,
        )
    i = _first(f.is_null() | f.is_nan())
    if i is not None:
        raise ctx.error(f"missing {col} ({f[i]}); every row needs a number", row=i, field=col)
    if lo is not None and hi is not None:
        i = _first((f < lo) | (f > hi) | f.is_infinite())
        if i is not None:
            raise ctx.error(f"{col} must be in [{lo:g}, {hi:g}], got {f[i]}", row=i, field=col)
    else:
        i = _first(f.is_infinite())
        if i is not None:
            raise ctx.error(f"{col} must be finite, got {f[i]}", row=i, field=col)
    return f.rename(col)


def _count_col(df: pl.DataFrame, col: str, ctx: _Ctx) -> pl.Series:
    """Int64 column of non-negative whole numbers (whole floats such as ``3.0`` are accepted)."""
    s = df[col]
    if s.dtype == pl.String:
        f = s.str.strip_chars().cast(pl.Float64, strict=False)
        i = _first(f.is_null() & s.is_not_null())
        if i is not None:
            raise ctx.error(
                f"{col} must be a non-negative integer count, got {_show(s[i])}", row=i, field=col
            )
    elif s.dtype.is_numeric() or s.dtype == pl.Null:
        f = s
    else:
        i = _first(s.is_not_null())
        raise ctx.error(
            f"{col} must be an integer count, got a {s.dtype} column (first value {_show(s[i or 0])})",
            row=i,
            field=col,
        )
    if f.dtype.is_float():
        i = _first(f.is_null() | f.is_nan())
        if i is None:
            i = _first(f.is_infinite() | (f != f.floor()))
            if i is not None:
                raise ctx.error(f"{col} must be a whole number of visitors, got {f[i]}", row=i, field=col)
    else:
        i = _first(f.is_null())
    if i is not None:
        raise ctx.error(f"missing {col} ({f[i]}); every row needs a count", row=i, field=col)
    i = _first(f < 0)
    if i is not None:
        raise ctx.error(f"{col} must be >= 0, got {f[i]}", row=i, field=col)
    too_big = f >= 2.0**63 if f.dtype.is_float() else f > 2**63 - 1 if f.dtype == pl.UInt64 else None
    i = _first(too_big) if too_big is not None else None
    if i is not None:
        raise ctx.error(f"{col} does not fit in a 64-bit integer, got {f[i]}", row=i, field=col)
    try:
        return f.cast(pl.Int64).rename(col)
    except pl.exceptions.InvalidOperationError as exc:  # e.g. UInt64 above 2**63
        raise ctx.error(f"{col} does not fit in a 64-bit integer ({_exc_line(exc)})", field=col) from exc


def _unique(s: pl.Series, col: str, ctx: _Ctx) -> None:
    j = _first(~s.is_first_distinct())
    if j is not None:
        value = s[j]
        i = _first(s == value)
        assert i is not None
        raise ctx.error(
            f"duplicate {col} {_show(value)} in {ctx.rows_ref(i, j)}; every {col} must be unique",
            row=j,
            field=col,
        )


def _naics_col(df: pl.DataFrame, ctx: _Ctx, taxonomy: NAICSTaxonomy) -> pl.Series:
    """6-digit 2022 NAICS codes as 6-char strings (from int, whole float or digit string)."""
    s = df[NAICS_CODE]
    if s.dtype.is_integer():
        t = s.cast(pl.String)
    elif s.dtype.is_float():
        i = _first(s.is_not_null() & (s.is_nan() | s.is_infinite() | (s != s.floor())))
        if i is not None:
            raise ctx.error(f"NAICS code must be a whole number, got {s[i]}", row=i, field=NAICS_CODE)
        i = _first(s.abs() >= 1e15)  # no code; and beyond 2**63 the Int64 cast below would fail
        if i is not None:
            raise ctx.error(f"NAICS code must have 6 digits, got {s[i]}", row=i, field=NAICS_CODE)
        t = s.cast(pl.Int64).cast(pl.String)
    elif s.dtype == pl.String or s.dtype == pl.Null:
        t = s.cast(pl.String).str.strip_chars().str.replace(r"\.0+$", "")
    else:
        raise ctx.error(
            f"naics_code must be an integer or a digit string, got a {s.dtype} column", field=NAICS_CODE
        )
    i = _first(t.is_null() | (t.str.len_chars() == 0))
    if i is not None:
        raise ctx.error(
            "missing naics_code (null); every POI needs a 6-digit 2022 NAICS code", row=i, field=NAICS_CODE
        )
    valid = pl.Series(taxonomy.codes(6), dtype=pl.String)
    i = _first(~t.is_in(valid))
    if i is not None:
        code = t[i]
        if not code.isdigit():
            msg = (
                f"naics_code must contain digits only, got {_show(s[i])}; expected a 6-digit 2022 NAICS code"
            )
        elif len(code) != 6:
            prefix = taxonomy.closest_valid_prefix(code)
            hint = f"; closest valid prefix is {prefix} ({taxonomy.title(prefix)})" if prefix else ""
            msg = f"NAICS code must have 6 digits, got {code!r} ({len(code)} digits){hint}"
        else:
            msg = f"{taxonomy.unknown_message(code)}; expected a 6-digit 2022 NAICS code"
        raise ctx.error(msg, row=i, field=NAICS_CODE)
    return t.rename(NAICS_CODE)


def _state_col(df: pl.DataFrame, ctx: _Ctx) -> pl.Series:
    """2-letter US state codes, stripped and upper-cased."""
    s = _string_col(df, STATE, ctx)
    t = s.str.strip_chars().str.to_uppercase()
    i = _first(~t.is_in(pl.Series(sorted(US_STATES), dtype=pl.String)))
    if i is not None:
        raise ctx.error(
            f"state must be a 2-letter US state code (50 states, DC or PR), got {_show(s[i])}",
            row=i,
            field=STATE,
        )
    return t.rename(STATE)


def _known_ids(df: pl.DataFrame, col: str, known: pl.Series, ctx: _Ctx) -> None:
    i = _first(~df[col].is_in(known))
    if i is not None:
        raise ctx.error(
            f"unknown POI id {_show(df[col][i])} in {col}: it is not a poi_id of the POI table ({known.len()} POIs)",
            row=i,
            field=col,
        )


# ---------------------------------------------------------------------------------------
# POIs
# ---------------------------------------------------------------------------------------
def read_pois(
    source: Source,
    column_map: Mapping[str, str] | None = None,
    taxonomy: NAICSTaxonomy | None = None,
) -> pl.DataFrame:
    """Read and validate a POI table.

    Contract: ``poi_id`` (text, unique), ``name`` (text), ``brand`` (text, null allowed),
    ``naics_code`` (6-digit 2022 NAICS, int or text), ``latitude`` / ``longitude`` (WGS84
    degrees), ``state`` (2-letter US code incl. DC and PR). Other columns are kept after
    these; the numeric ones are features (see :func:`feature_columns`).

    Args:
        source: CSV / Parquet path, hive-partitioned folder, or polars / pandas DataFrame.
        column_map: Your column name -> geograph's (``{"lat": "latitude"}``). Default none.
        taxonomy: NAICS taxonomy to check codes against (default: the 2022 edition).

    Returns:
        A new DataFrame: the seven contract columns first (``naics_code`` as a 6-char string,
        ``latitude`` / ``longitude`` Float64, ``state`` upper-case, empty brands as null),
        then the extra columns in input order.

    Raises:
        DataValidationError: naming file, row and field of the first problem.
    """
    df, ctx = _load(source, "pois", column_map, string_columns=(POI_ID, NAME, BRAND_COL, NAICS_CODE, STATE))
    return _validate_pois(df, ctx, taxonomy)


def _validate_pois(df: pl.DataFrame, ctx: _Ctx, taxonomy: NAICSTaxonomy | None) -> pl.DataFrame:
    _require(df, POI_REQUIRED, ctx)
    taxonomy = taxonomy or NAICSTaxonomy()
    poi_id = _string_col(df, POI_ID, ctx)
    _unique(poi_id, POI_ID, ctx)
    brand = _string_col(df, BRAND_COL, ctx, required=False)
    brand = pl.select(pl.when(brand.str.len_chars() > 0).then(brand)).to_series().rename(BRAND_COL)
    cols = [
        poi_id,
        _string_col(df, NAME, ctx),
        brand,
        _naics_col(df, ctx, taxonomy),
        _float_col(df, LAT, ctx, -90.0, 90.0),
        _float_col(df, LON, ctx, -180.0, 180.0),
        _state_col(df, ctx),
    ]
    extras = [c for c in df.columns if c not in POI_REQUIRED]
    return pl.DataFrame(cols).hstack(df.select(extras).get_columns())


def feature_columns(df: pl.DataFrame) -> list[str]:
    """Numeric columns of ``df`` that are not contract columns: the node features.

    ``latitude`` / ``longitude`` and count columns such as ``visitors`` are excluded; text
    extras (e.g. ``poi_cbg``) are kept in the tables but are not features.
    """
    return [c for c, dt in df.schema.items() if c not in _CONTRACT_COLUMNS and dt.is_numeric()]


# ---------------------------------------------------------------------------------------
# co-visits
# ---------------------------------------------------------------------------------------
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
    ``state`` are optional except that brand-level rows need a ``state``.

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


# ---------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------
# regions
# ---------------------------------------------------------------------------------------
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
