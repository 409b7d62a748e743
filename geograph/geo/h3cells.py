"""Thin vectorised helpers over the ``h3`` library (v4 API)."""

from __future__ import annotations

import h3
import numpy as np

from geograph.geo.sphere import check_lat_lon


def _check_res(resolution: int) -> None:
    if not isinstance(resolution, (int, np.integer)) or not 0 <= int(resolution) <= 15:
        raise ValueError(f"h3 resolution must be 0..15, got {resolution!r}")


def latlng_to_cells(lat, lon, resolution: int) -> list[str]:
    """H3 cell (hex string) of each point at ``resolution`` (0..15)."""
    _check_res(resolution)
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    check_lat_lon(lat, lon)
    f = h3.latlng_to_cell
    r = int(resolution)
    return [f(a, b, r) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)]


def cell_centers(cells: list[str]) -> np.ndarray:
    """Centre (lat, lon) in degrees of each cell; shape ``(n, 2)``."""
    if len(cells) == 0:
        return np.zeros((0, 2))
    return np.asarray([h3.cell_to_latlng(c) for c in cells], dtype=np.float64)


def cell_neighbors(cell: str, k: int = 1) -> list[str]:
    """Cells within grid distance ``k`` of ``cell``, excluding ``cell`` itself."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return [c for c in h3.grid_disk(cell, k) if c != cell]


def cell_area_km2(cells: list[str]) -> np.ndarray:
    """Exact area of each cell in km²."""
    return np.asarray([h3.cell_area(c, unit="km^2") for c in cells], dtype=np.float64)
