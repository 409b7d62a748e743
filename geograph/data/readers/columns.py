"""Column checks of the table readers: each returns the normalised column or raises naming the row."""

from __future__ import annotations

import re

import polars as pl

from geograph.constants import NAICS_CODE, STATE
from geograph.data.naics import NAICSTaxonomy
from geograph.data.readers.loading import _Ctx, _exc_line, _first, _show
from geograph.data.regions import H3_PREFIX, expected_region, normalize_region, normalize_regions
from geograph.data.regions import US_STATES as US_STATES

_DIGITS = re.compile(r"[0-9]+")


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


def _naics_col(
    df: pl.DataFrame,
    ctx: _Ctx,
    taxonomy: NAICSTaxonomy,
    vintage: str = "auto",
    errors: dict[int, str] | None = None,
) -> pl.Series:
    """2022 NAICS codes as 6-char strings, short codes zero-padded (:meth:`NAICSTaxonomy.pad`).

    Codes are read in ``vintage`` (see :meth:`NAICSTaxonomy.resolve`) from ints, whole floats
    or digit strings. A row whose code is missing, malformed or unknown raises naming the
    row, or, when ``errors`` is given, is recorded there (row -> reason) and left null.
    """
    s = df[NAICS_CODE]
    early: dict[int, str] = {}  # rows whose value is refused before any lookup
    if s.dtype.is_integer():
        t = s.cast(pl.String)
    elif s.dtype.is_float():
        bad = s.is_not_null() & (s.is_nan() | s.is_infinite() | (s != s.floor()))
        early = {i: f"NAICS code must be a whole number, got {s[i]}" for i in _rows(bad, errors)}
        big = s.is_not_null() & ~bad & (s.abs() >= 1e15)  # no code; beyond 2**63 the cast below fails
        early |= {i: f"NAICS code must have 2 to 6 digits, got {s[i]}" for i in _rows(big, errors)}
        t = pl.select(pl.when(bad | big).then(None).otherwise(s)).to_series().cast(pl.Int64).cast(pl.String)
    elif s.dtype == pl.String or s.dtype == pl.Null:
        t = s.cast(pl.String).str.strip_chars().str.replace(r"\.0+$", "")
    else:
        raise ctx.error(
            f"naics_code must be an integer or a digit string, got a {s.dtype} column", field=NAICS_CODE
        )
    expected = f"expected a NAICS code of 2 to 6 digits (naics_vintage={vintage!r})"
    good: dict[str, str] = {}
    why: dict[str, str] = {}
    for v in t.drop_nulls().unique().to_list():
        if not v:
            continue
        if not _DIGITS.fullmatch(v):
            why[v] = f"naics_code must contain digits only, got {_show(v)}; {expected}"
            continue
        try:
            good[v] = taxonomy.pad(taxonomy.resolve(v, vintage))
        except ValueError as exc:
            why[v] = f"{exc}; {expected}"
    out = t.replace_strict(good, default=None, return_dtype=pl.String).rename(NAICS_CODE)

    def reason(i: int) -> str:
        if i in early:
            return early[i]
        v = t[i]
        if not v:
            return f"missing naics_code ({_show(s[i])}); every POI needs a NAICS code"
        return why[v]

    for i in _rows(out.is_null(), errors):
        if errors is None:
            raise ctx.error(reason(i), row=i, field=NAICS_CODE)
        errors[i] = reason(i)
    return out


def _rows(mask: pl.Series, errors: dict[int, str] | None) -> list[int]:
    """Rows where ``mask`` holds: all of them when ``errors`` collects, else only the first."""
    if errors is not None:
        return mask.fill_null(False).arg_true().to_list()
    i = _first(mask)
    return [] if i is None else [i]


def _state_col(df: pl.DataFrame, ctx: _Ctx, errors: dict[int, str] | None = None) -> pl.Series:
    """Region keys (:mod:`geograph.data.regions`): ``CA``, ``CA-ON``, ``FI-18``, ``H3-<cell>``.

    Bare US codes and ``US-CA`` give the bare code, bare Canadian codes ``CA-ON``; any other
    ISO 3166-2 code is upper-cased and checked. A row whose key is missing or unknown raises
    naming the row (with close matches), or, when ``errors`` is given, is recorded there
    (row -> reason) and left null.
    """
    s = _string_col(df, STATE, ctx, required=errors is None)
    t = s.str.strip_chars()
    canon = normalize_regions(t.drop_nulls().unique().to_list())
    out = t.replace_strict(canon, default=None, return_dtype=pl.String).rename(STATE)

    def reason(i: int) -> str:
        v = t[i]
        if not v:
            return f"missing state ({_show(s[i])}); every row needs a region key"
        if v.upper().startswith(H3_PREFIX):  # a malformed H3 key says what is wrong with it
            try:
                normalize_region(v)
            except ValueError as exc:
                return f"state must be a region key, got {_show(s[i])}: {exc}"
        return f"state must be a region key, got {_show(s[i])}; {expected_region(v)}"

    for i in _rows(out.is_null(), errors):
        if errors is None:
            raise ctx.error(reason(i), row=i, field=STATE)
        errors.setdefault(i, reason(i))
    return out


def _known_ids(df: pl.DataFrame, col: str, known: pl.Series, ctx: _Ctx) -> None:
    i = _first(~df[col].is_in(known))
    if i is not None:
        raise ctx.error(
            f"unknown POI id {_show(df[col][i])} in {col}: it is not a poi_id of the POI table ({known.len()} POIs)",
            row=i,
            field=col,
        )
