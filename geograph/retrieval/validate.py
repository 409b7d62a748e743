"""Checks at the retrieval API boundary: query and database embeddings, before any search.

File tables are checked earlier, with their file and row (:mod:`geograph.data.readers`,
:func:`geograph.geolocate.data.check_width`); these checks guard in-memory arrays handed to
:class:`~geograph.retrieval.GeoPredictor`, :class:`~geograph.retrieval.KNNGeolocator` and
:class:`~geograph.retrieval.Gallery`, and raise :class:`~geograph.errors.DataValidationError`
naming the field (and the first bad row).
"""

from __future__ import annotations

import numpy as np
import torch

from geograph.errors import DataValidationError


def check_embeddings(
    values: np.ndarray | torch.Tensor,
    field: str,
    *,
    width: int | None = None,
    width_source: str = "the model",
    allow_empty: bool = False,
) -> None:
    """Refuse a non-2-D, empty (unless ``allow_empty``), wrongly wide or non-finite array.

    Args:
        values: ``(N, D)`` embeddings.
        field: Its name in the error (``queries``, ``database_queries``, ``gallery.embeddings``).
        width: The width ``D`` it must have (None: any).
        width_source: What ``width`` comes from, for the message.
        allow_empty: Accept ``N = 0``.

    Raises:
        DataValidationError: naming ``field`` (and the first row holding a NaN or infinity).
    """
    shape = tuple(values.shape)
    if len(shape) != 2:
        raise DataValidationError(
            f"{field} must be a 2-D (rows, width) array, got shape {shape}", field=field
        )
    if shape[0] == 0 and not allow_empty:
        raise DataValidationError(f"{field} is empty (0 rows)", field=field)
    if width is not None and shape[1] != width:
        raise DataValidationError(
            f"{field} has {shape[1]} values per row but {width_source} expects {width}", field=field
        )
    if torch.is_tensor(values):
        bad_rows = (~torch.isfinite(values)).any(dim=1)
        if bool(bad_rows.any()):
            row = int(torch.nonzero(bad_rows)[0, 0])
            raise DataValidationError(f"{field} holds NaN or infinite values", row=row, field=field)
        return
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.number):
        raise DataValidationError(f"{field} must be numeric, got dtype {arr.dtype}", field=field)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise DataValidationError(
            f"{field} holds NaN or infinite values", row=int(np.flatnonzero(bad)[0]), field=field
        )


__all__ = ["check_embeddings"]
