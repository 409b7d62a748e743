"""Vectorised great-circle (haversine) distances in NumPy and torch."""

from __future__ import annotations

import numpy as np
import torch

from geograph.constants import EARTH_RADIUS_KM


def check_lat_lon(lat: np.ndarray, lon: np.ndarray, what: str = "coordinates") -> None:
    """Raise ``ValueError`` naming the first bad index if any lat/lon is NaN or out of range."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    bad = ~np.isfinite(lat) | (lat < -90) | (lat > 90)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: latitude must be in [-90, 90], got {lat[i]} at index {i}")
    bad = ~np.isfinite(lon) | (lon < -180) | (lon > 180)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: longitude must be in [-180, 180], got {lon[i]} at index {i}")


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasting).

    Shapes: any broadcastable shapes; the result has the broadcast shape.
    """
    p1 = np.radians(np.asarray(lat1, dtype=np.float64))
    p2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def haversine_km_torch(lat1: torch.Tensor, lon1: torch.Tensor, lat2: torch.Tensor, lon2: torch.Tensor) -> torch.Tensor:
    """Torch version of :func:`haversine_km` (degrees in, km out, differentiable)."""
    p1, p2 = torch.deg2rad(lat1), torch.deg2rad(lat2)
    dphi = p2 - p1
    dlmb = torch.deg2rad(lon2 - lon1)
    a = torch.sin(dphi / 2) ** 2 + torch.cos(p1) * torch.cos(p2) * torch.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * torch.asin(torch.sqrt(a.clamp(0.0, 1.0)))


def pairwise_haversine_km(lat_a, lon_a, lat_b, lon_b) -> np.ndarray:
    """All-pairs distance matrix of shape ``(len(a), len(b))`` in km."""
    lat_a = np.asarray(lat_a, dtype=np.float64)[:, None]
    lon_a = np.asarray(lon_a, dtype=np.float64)[:, None]
    return haversine_km(lat_a, lon_a, np.asarray(lat_b)[None, :], np.asarray(lon_b)[None, :])
