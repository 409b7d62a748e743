"""Reading a table from a path, a folder of hive-partitioned Parquet or a DataFrame; errors that name the row.

The machinery every ``read_*`` function of :mod:`geograph.data.readers` shares: load the
source, apply ``column_map``, refuse empty tables and missing columns, and build
:class:`~geograph.errors.DataValidationError` messages that name the file and the row.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from geograph.errors import DataValidationError

Source = str | os.PathLike | pl.DataFrame | pl.LazyFrame | Any
"""A path (CSV, Parquet, or a folder of hive-partitioned Parquet) or a polars / pandas DataFrame."""

DATAFRAME = "<dataframe>"
"""The ``file`` reported in errors for in-memory inputs."""

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
