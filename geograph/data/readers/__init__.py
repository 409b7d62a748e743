"""Readers and validators for geograph's data contracts: POIs, co-visits, images, regions.

Each ``read_*`` function takes a CSV or Parquet path (or a folder of hive-partitioned
Parquet files, ``state=CA/part-0.parquet``), or an in-memory polars / pandas DataFrame,
renames columns with ``column_map`` (``{"lat": "latitude"}``), checks the contract and
returns a new polars DataFrame with normalised types. Inputs are never modified.

Every problem raises :class:`~geograph.errors.DataValidationError` naming the file
(``"<dataframe>"`` for in-memory frames), the 0-based data row, the field, the bad value
and what was expected. Checks are polars expressions over whole columns; only the first
offending row is looked up afterwards, so a 1M-row table validates in about a second.

Modules: :mod:`.loading` (sources, ``column_map``, the error context that names file and
row), :mod:`.columns` (column checks), and one module per table: :mod:`.pois`,
:mod:`.covisits`, :mod:`.images`, :mod:`.regions`.
"""

from __future__ import annotations

# The ``_name as _name`` imports: the shared machinery other data modules build on (SafeGraph
# adapter, world folders, per-state loading), importable from here as before the split.
from geograph.data.readers.columns import US_STATES
from geograph.data.readers.columns import _count_col as _count_col
from geograph.data.readers.covisits import COVISIT_FORMS, CovisitLevel, covisit_level, read_covisits
from geograph.data.readers.covisits import _validate_covisits as _validate_covisits
from geograph.data.readers.images import read_geotagged, read_images
from geograph.data.readers.loading import _READ_ERRORS as _READ_ERRORS
from geograph.data.readers.loading import DATAFRAME, Source
from geograph.data.readers.loading import _Ctx as _Ctx
from geograph.data.readers.loading import _exc_line as _exc_line
from geograph.data.readers.loading import _first as _first
from geograph.data.readers.loading import _load as _load
from geograph.data.readers.loading import _require as _require
from geograph.data.readers.loading import _scan_folder as _scan_folder
from geograph.data.readers.loading import _show as _show
from geograph.data.readers.pois import _validate_pois as _validate_pois
from geograph.data.readers.pois import feature_columns, read_pois
from geograph.data.readers.regions import _is_h3_cell as _is_h3_cell
from geograph.data.readers.regions import read_regions

__all__ = [
    "COVISIT_FORMS",
    "DATAFRAME",
    "US_STATES",
    "CovisitLevel",
    "Source",
    "covisit_level",
    "feature_columns",
    "read_covisits",
    "read_geotagged",
    "read_images",
    "read_pois",
    "read_regions",
]
