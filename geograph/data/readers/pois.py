"""The POI table reader."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

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
from geograph.data.naics import NAICSTaxonomy, check_vintage
from geograph.data.readers.columns import _float_col, _naics_col, _state_col, _string_col, _unique
from geograph.data.readers.loading import Source, _Ctx, _load, _require
from geograph.data.regions import region_from_coordinates

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


def read_pois(
    source: Source,
    column_map: Mapping[str, str] | None = None,
    taxonomy: NAICSTaxonomy | None = None,
    naics_vintage: str = "auto",
) -> pl.DataFrame:
    """Read and validate a POI table.

    Contract: ``poi_id`` (text, unique), ``name`` (text), ``brand`` (text, null allowed),
    ``naics_code`` (NAICS of 2 to 6 digits, int or text, read in ``naics_vintage`` and
    stored as its 2022 code), ``latitude`` / ``longitude`` (WGS84
    degrees), ``state`` (a region key, see :mod:`geograph.data.regions`: a US state code
    such as ``CA``, an ISO 3166-2 code such as ``CA-ON`` or ``FI-18``; bare Canadian codes
    such as ``ON`` are shorthand for ``CA-ON``). A table without a ``state`` column gets
    one from the coordinates (:func:`~geograph.data.regions.region_from_coordinates`, with
    a warning). Other columns are kept after these; the numeric ones are features (see
    :func:`feature_columns`).

    Args:
        source: CSV / Parquet path, hive-partitioned folder, or polars / pandas DataFrame.
        column_map: Your column name -> geograph's (``{"lat": "latitude"}``). Default none.
        taxonomy: NAICS taxonomy to check codes against (default: the 2022 edition).
        naics_vintage: NAICS edition of the codes: ``"auto"`` (default: 2022 codes stay,
            others go through the 2017, then the 2012 concordance), ``"2022"``, ``"2017"``
            or ``"2012"``. See :mod:`geograph.data.naics`.

    Returns:
        A new DataFrame: the seven contract columns first (``naics_code`` as the 6-char 2022
        code, a shorter code right-padded with zeros, e.g. 3118 -> ``"311800"``,
        ``latitude`` / ``longitude`` Float64, ``state`` the canonical region key, empty
        brands as null),
        then the extra columns in input order.

    Raises:
        DataValidationError: naming file, row and field of the first problem.
    """
    naics_vintage = check_vintage(naics_vintage)
    df, ctx = _load(source, "pois", column_map, string_columns=(POI_ID, NAME, BRAND_COL, NAICS_CODE, STATE))
    return _validate_pois(df, ctx, taxonomy, naics_vintage)


def _validate_pois(
    df: pl.DataFrame,
    ctx: _Ctx,
    taxonomy: NAICSTaxonomy | None,
    naics_vintage: str = "auto",
    naics_errors: dict[int, str] | None = None,
    state_errors: dict[int, str] | None = None,
) -> pl.DataFrame:
    """Check the POI contract; every row is kept.

    ``naics_errors``: when given, a row whose NAICS code is missing, malformed or unknown
    is recorded there (row -> reason) with a null ``naics_code`` instead of raising; the
    caller drops it. ``state_errors``: the same for a missing or unknown region key.

    Without a ``state`` column, each POI's region is derived from its coordinates
    (:func:`~geograph.data.regions.region_from_coordinates`) and a warning says so.
    """
    _require(df, [c for c in POI_REQUIRED if c != STATE], ctx)
    taxonomy = taxonomy or NAICSTaxonomy()
    poi_id = _string_col(df, POI_ID, ctx)
    _unique(poi_id, POI_ID, ctx)
    brand = _string_col(df, BRAND_COL, ctx, required=False)
    brand = pl.select(pl.when(brand.str.len_chars() > 0).then(brand)).to_series().rename(BRAND_COL)
    lat = _float_col(df, LAT, ctx, -90.0, 90.0)
    lon = _float_col(df, LON, ctx, -180.0, 180.0)
    if STATE in df.columns:
        state = _state_col(df, ctx, state_errors)
    else:
        state = pl.Series(STATE, region_from_coordinates(lat.to_numpy(), lon.to_numpy()), pl.String)
        warnings.warn(
            f"{ctx.file}: no {STATE} column; derived the region of {df.height} POIs from their coordinates "
            f"({state.n_unique()} regions, e.g. {state[0] if df.height else 'none'}); "
            "see geograph.data.regions.region_from_coordinates",
            stacklevel=3,
        )
    cols = [
        poi_id,
        _string_col(df, NAME, ctx),
        brand,
        _naics_col(df, ctx, taxonomy, naics_vintage, naics_errors),
        lat,
        lon,
        state,
    ]
    extras = [c for c in df.columns if c not in POI_REQUIRED]
    return pl.DataFrame(cols).hstack(df.select(extras).get_columns())


def feature_columns(df: pl.DataFrame) -> list[str]:
    """Numeric columns of ``df`` that are not contract columns: the node features.

    ``latitude`` / ``longitude`` and count columns such as ``visitors`` are excluded; text
    extras (e.g. ``poi_cbg``) are kept in the tables but are not features.
    """
    return [c for c, dt in df.schema.items() if c not in _CONTRACT_COLUMNS and dt.is_numeric()]
