"""H3 cells at array speed: cells are ``uint64`` H3 indexes inside geograph, strings at the edges.

Points -> cells, parents, grid disks and index <-> string conversions run vectorised in
``h3ronpy`` (the Rust ``h3o`` library over Arrow arrays); the cells it returns are the ones of
the ``h3`` C library, bit for bit (tests/geo/test_h3cells.py). Cell centres and areas stay on
``h3``, one call per cell: ``h3o`` computes them in a different floating-point order (centres
differ by up to ~5e-12 degrees, areas by up to ~1e-7 relative), and geograph's stored centres,
areas and cell features would change with it. Those loops run over the distinct cells, not the
points.

An H3 cell index lies in ``[2**59, 2**60)``: every cell's hex string has 15 digits, so sorting
cells as ``uint64`` and as strings gives the same order.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import h3
import h3ronpy
import numpy as np
from h3ronpy.vector import coordinates_to_cells

from geograph.geo.sphere import check_lat_lon

if TYPE_CHECKING:
    import polars as pl

CellIds = np.ndarray
"""H3 cell indexes, ``uint64``; shape ``(n,)``."""


def _is_series(x) -> bool:
    """A polars Series (polars is imported lazily: ``import geograph.geo`` stays light)."""
    pl = sys.modules.get("polars")
    return pl is not None and isinstance(x, pl.Series)


def _check_res(resolution: int) -> int:
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, (int, np.integer))
        or not 0 <= int(resolution) <= 15
    ):
        raise ValueError(f"h3 resolution must be 0..15, got {resolution!r}")
    return int(resolution)


def latlng_to_cell_ids(lat, lon, resolution: int) -> CellIds:
    """H3 cell index (``uint64``) of each point at ``resolution`` (0..15), vectorised.

    Shapes: ``lat``, ``lon`` ``(n,)`` degrees; returns ``(n,)`` ``uint64``.

    Raises:
        ValueError: a resolution outside 0..15, or a latitude / longitude out of range or NaN.
    """
    r = _check_res(resolution)
    lat = np.ascontiguousarray(lat, dtype=np.float64).reshape(-1)
    lon = np.ascontiguousarray(lon, dtype=np.float64).reshape(-1)
    if lat.shape != lon.shape:
        raise ValueError(f"lat and lon must have the same length, got {len(lat)} and {len(lon)}")
    check_lat_lon(lat, lon)
    if len(lat) == 0:
        return np.zeros(0, dtype=np.uint64)
    return np.asarray(coordinates_to_cells(lat, lon, r), dtype=np.uint64)


def latlng_to_cells(lat, lon, resolution: int) -> list[str]:
    """H3 cell (hex string) of each point at ``resolution`` (0..15)."""
    return cells_to_strings(latlng_to_cell_ids(lat, lon, resolution))


def cells_to_strings(ids) -> list[str]:
    """Hex strings (``h3``'s form, lower case) of H3 cell indexes."""
    return cells_to_string_series(ids).to_list()


def cells_to_string_series(ids, name: str = "") -> pl.Series:
    """H3 cell indexes (``uint64`` array or series; nulls stay null) as a polars ``String``
    series named ``name``.

    Raises:
        ValueError: an index that is not a valid H3 cell.
    """
    import polars as pl

    if _is_series(ids):
        ids = ids.cast(pl.UInt64).to_arrow()
    else:
        ids = np.asarray(ids, dtype=np.uint64).reshape(-1)
    if len(ids) == 0:
        return pl.Series(name, [], pl.String)
    return pl.Series(h3ronpy.cells_to_string(ids)).cast(pl.String).alias(name)


def cells_from_strings(cells: Sequence[str] | pl.Series) -> CellIds:
    """``uint64`` indexes of H3 cells given as hex strings; shape ``(n,)``.

    Raises:
        ValueError: a string that is not a valid H3 cell (named with its position).
    """
    import polars as pl

    s = cells if _is_series(cells) else pl.Series(list(cells), dtype=pl.String)
    ids = s.cast(pl.String).str.strip_chars().str.to_integer(base=16, dtype=pl.UInt64, strict=False)
    ok = ids.is_not_null().to_numpy() & np.asarray(
        h3ronpy.cells_valid(ids.fill_null(0).to_numpy(), booleanarray=True)
    )
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"not a valid H3 cell at position {i}: {s[i]!r}")
    return ids.to_numpy().astype(np.uint64, copy=False)


def as_cell_ids(cells) -> CellIds:
    """``uint64`` indexes of cells given as integers (array or series) or hex strings."""
    if isinstance(cells, np.ndarray) and cells.dtype.kind in "ui":
        return cells.astype(np.uint64, copy=False)
    if _is_series(cells):
        if cells.dtype.is_integer():
            return cells.cast(sys.modules["polars"].UInt64).to_numpy()
    elif len(cells) and isinstance(cells[0], (int, np.integer)):
        return np.asarray(cells, dtype=np.uint64)
    return cells_from_strings(cells)


def cell_resolutions(cells) -> np.ndarray:
    """Resolution of each cell (``uint8``); ``cells`` as ``uint64`` indexes or hex strings."""
    ids = as_cell_ids(cells)
    if len(ids) == 0:
        return np.zeros(0, dtype=np.uint8)
    return np.asarray(h3ronpy.cells_resolution(ids), dtype=np.uint8)


def cell_parents(cells, resolution: int) -> CellIds:
    """Parent (``uint64``) of each cell at ``resolution``, no finer than the cells' own."""
    r = _check_res(resolution)
    ids = as_cell_ids(cells)
    if len(ids) == 0:
        return np.zeros(0, dtype=np.uint64)
    coarsest = int(cell_resolutions(ids).min())
    if r > coarsest:
        raise ValueError(f"parent resolution {r} is finer than a cell's own resolution {coarsest}")
    return np.asarray(h3ronpy.change_resolution(ids, r), dtype=np.uint64)


def cell_centers(cells) -> np.ndarray:
    """Centre (lat, lon) in degrees of each cell (``uint64`` indexes or hex strings); shape
    ``(n, 2)``, the ``h3`` library's values (see the module docstring)."""
    ids = as_cell_ids(cells)
    if len(ids) == 0:
        return np.zeros((0, 2))
    f = h3.api.basic_int.cell_to_latlng
    return np.asarray([f(c) for c in ids.tolist()], dtype=np.float64).reshape(-1, 2)


def cell_area_km2(cells) -> np.ndarray:
    """Exact area of each cell in km² (``uint64`` indexes or hex strings), ``h3``'s values."""
    ids = as_cell_ids(cells)
    f = h3.api.basic_int.cell_area
    return np.asarray([f(c, unit="km^2") for c in ids.tolist()], dtype=np.float64)


def grid_disks(cells, k: int) -> tuple[np.ndarray, CellIds]:
    """Cells within grid distance ``k`` of each cell (the cell itself included), vectorised.

    Each disk lists its cells in the order of ``h3.grid_disk``; the few disks that touch a
    pentagon (where the two libraries order differently) are taken from ``h3``.

    Returns:
        ``(offsets, disk_cells)``: disk ``i`` is ``disk_cells[offsets[i]:offsets[i + 1]]``;
        shapes ``(n + 1,)`` int64 and ``(offsets[-1],)`` ``uint64``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    ids = as_cell_ids(cells)
    if len(ids) == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    import polars as pl

    lists = pl.Series(h3ronpy.grid_disk(ids, int(k)))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lists.list.len().to_numpy(), out=offsets[1:])
    values = lists.explode().cast(pl.UInt64).to_numpy().copy()
    pentagons = np.unique(
        [h3.str_to_int(p) for r in np.unique(cell_resolutions(ids)).tolist() for p in h3.get_pentagons(r)]
    ).astype(np.uint64)
    touched = np.unique(
        np.searchsorted(offsets, np.flatnonzero(np.isin(values, pentagons)), side="right") - 1
    )
    for i in touched.tolist():
        exact = np.asarray(h3.api.basic_int.grid_disk(int(ids[i]), int(k)), dtype=np.uint64)
        values[offsets[i] : offsets[i + 1]] = exact  # the same cells, h3's order
    return offsets, values


def cell_neighbors(cell: str, k: int = 1) -> list[str]:
    """Cells within grid distance ``k`` of ``cell``, excluding ``cell`` itself."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return [c for c in h3.grid_disk(cell, k) if c != cell]
