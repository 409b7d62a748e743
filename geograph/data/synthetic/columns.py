"""Extra column names of the embedded world (beyond the contract columns in constants.py), and row ids."""

from __future__ import annotations

import polars as pl

CITY = "city"
VISITS = "visits"
DWELL = "median_dwell_min"
AREA = "area_sqft"
OPEN_HOURS = "open_hours"
POPULATION = "population"
MEDIAN_INCOME = "median_income"
PCT_COLLEGE = "pct_college"


def row_ids(name: str, prefix: str, n: int) -> pl.Series:
    """``n`` ids ``<prefix>000000``, ``<prefix>000001``, ... (zero-padded to at least 6 digits).

    Args:
        name: Name of the returned Series (the id column).
        prefix: Text before the number (``"poi_"``, ``"img_"``).
        n: Number of ids.

    Returns:
        A String Series of ``n`` ids that sort in row order.
    """
    width = max(6, len(str(n - 1)))
    return pl.select(
        (pl.lit(prefix) + pl.int_range(n).cast(pl.Utf8).str.zfill(width)).alias(name)
    ).to_series()
