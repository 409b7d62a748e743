"""Operations on validated POI tables that graph construction and aggregation share."""

from __future__ import annotations

import polars as pl

from geograph.constants import BRAND_COL, LAT, LON, NAICS_CODE, NAME, POI_ID, STATE
from geograph.errors import DataValidationError

NON_FEATURE_COLUMNS = frozenset({POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE})
"""POI columns that are never numeric node features."""


def poi_feature_columns(pois: pl.DataFrame) -> list[str]:
    """Numeric extra columns of a POI table, in table order: the POI node features.

    Args:
        pois: A POI table (see :func:`~geograph.data.read_pois`).

    Returns:
        The names of the numeric columns outside :data:`NON_FEATURE_COLUMNS`.
    """
    return [c for c, dt in pois.schema.items() if c not in NON_FEATURE_COLUMNS and dt.is_numeric()]


def check_unique(ids: pl.Series, what: str, file: str) -> None:
    """Raise :class:`~geograph.errors.DataValidationError` naming the first repeated id.

    Args:
        ids: The id column.
        what: Field name used in the message (e.g. ``"poi_id"``).
        file: Table name used in the message.
    """
    dup = ids.is_duplicated()
    if dup.any():
        row = int(dup.arg_max())
        raise DataValidationError(f"duplicate {what} {ids[row]!r}", file=file, row=row, field=what)
