"""Sphere geometry, in one place: great-circle distances, bearings, unit vectors, boxes.

Every formula here is written once and runs on NumPy arrays or torch tensors; a function
returns the kind it was given (torch as soon as one argument is a tensor; floats, lists and
polars Series count as NumPy). :func:`haversine_km` also builds a polars expression when an
argument is a ``pl.Expr``, for lazy queries.

Dtypes, kept as the callers have always had them so that seeded results do not move:

* NumPy inputs are computed in float64, except :func:`unit_xyz` / :func:`latlon_to_xyz`, which
  keep a float input's dtype (the graph builder's float32 neighbour distances depend on it).
* torch inputs keep their dtype and device (pass float64 for metre-level accuracy; float32
  haversine is good to ~0.5 km).

The earth is a sphere of radius ``EARTH_RADIUS_KM`` (IUGG mean radius, 6371.0088 km); every
function that measures takes ``radius_km`` to override it. Formulas follow Chris Veness,
"Calculate distance, bearing and more between latitude/longitude points",
https://www.movable-type.co.uk/scripts/latlong.html .
"""

from __future__ import annotations

import functools
import math
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from geograph.constants import EARTH_RADIUS_KM

if TYPE_CHECKING:
    import polars as pl
    import torch

Array = Any
"""A NumPy array (or anything ``np.asarray`` takes) or a torch tensor."""


# --------------------------------------------------------------------------------------------
# backends: the few primitives the formulas use, per array library. torch and polars are
# looked up in sys.modules, never imported here: a tensor or an expression can only exist
# once its library is loaded, and ``import geograph.geo`` stays free of both (the data layer
# and the CLI's data commands do not load torch).
# --------------------------------------------------------------------------------------------
def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_expr(x: Any) -> bool:
    pl = sys.modules.get("polars")
    return pl is not None and isinstance(x, pl.Expr)


class _NumpyOps:
    radians = staticmethod(np.radians)
    degrees = staticmethod(np.degrees)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    arcsin = staticmethod(np.arcsin)
    arctan2 = staticmethod(np.arctan2)
    sqrt = staticmethod(np.sqrt)

    @staticmethod
    def clip(x: Array, lo: float, hi: float) -> Array:
        return np.clip(x, lo, hi)

    @staticmethod
    def stack(xs: list[Array]) -> Array:
        return np.stack(xs, axis=-1)

    @staticmethod
    def asarray(x: Array, like: Array = None) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def normalize(xyz: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(xyz, axis=-1, keepdims=True)
        return xyz / np.maximum(norm, 1e-12)

    @staticmethod
    def cdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[..., :, None, :] - b[..., None, :, :], axis=-1)


@functools.cache
def _torch_ops() -> type:
    import torch

    class _TorchOps:
        radians = staticmethod(torch.deg2rad)
        degrees = staticmethod(torch.rad2deg)
        sin = staticmethod(torch.sin)
        cos = staticmethod(torch.cos)
        arcsin = staticmethod(torch.asin)
        arctan2 = staticmethod(torch.atan2)
        sqrt = staticmethod(torch.sqrt)

        @staticmethod
        def clip(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
            return x.clamp(lo, hi)

        @staticmethod
        def stack(xs: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack(xs, -1)

        @staticmethod
        def asarray(x: Array, like: torch.Tensor) -> torch.Tensor:
            if isinstance(x, torch.Tensor):
                return x
            return torch.as_tensor(x, dtype=like.dtype, device=like.device)

        @staticmethod
        def normalize(xyz: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(xyz, dim=-1)

        @staticmethod
        def cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.cdist(a, b)

    return _TorchOps


class _PolarsOps:
    radians = staticmethod(lambda e: e.radians())
    sin = staticmethod(lambda e: e.sin())
    cos = staticmethod(lambda e: e.cos())
    arcsin = staticmethod(lambda e: e.arcsin())
    sqrt = staticmethod(lambda e: e.sqrt())

    @staticmethod
    def clip(x: pl.Expr, lo: float, hi: float) -> pl.Expr:
        return x.clip(lo, hi)

    @staticmethod
    def asarray(x: Any, like: Any = None) -> pl.Expr:
        import polars as pl

        return x if isinstance(x, pl.Expr) else pl.lit(x)


def _ops(*xs: Any, polars: bool = False) -> tuple[Any, Any]:
    """The backend for the arguments, and the first torch tensor among them (or ``None``)."""
    for x in xs:
        if _is_tensor(x):
            return _torch_ops(), x
    if any(_is_expr(x) for x in xs):
        if not polars:
            raise TypeError(
                "this sphere function takes NumPy arrays or torch tensors, got a polars expression"
            )
        return _PolarsOps, None
    return _NumpyOps, None


def _convert(*xs: Any, polars: bool = False) -> tuple[Any, list[Any]]:
    xp, like = _ops(*xs, polars=polars)
    return xp, [xp.asarray(x, like) for x in xs]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def check_lat_lon(lat: Array, lon: Array, what: str = "coordinates") -> None:
    """Raise ``ValueError`` naming the first bad index if a latitude or longitude is bad.

    Args:
        lat: Latitudes in degrees, each in ``[-90, 90]``.
        lon: Longitudes in degrees, each in ``[-180, 180]``.
        what: Name of the points in the message (default ``"coordinates"``).

    Shapes: ``lat`` and ``lon`` any (equal) shape.

    Raises:
        ValueError: on NaN, infinity or a value out of range, with its index.
    """
    lat = np.asarray(lat.detach().cpu() if _is_tensor(lat) else lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon.detach().cpu() if _is_tensor(lon) else lon, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(lat) | (lat < -90) | (lat > 90)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: latitude must be in [-90, 90], got {lat[i]} at index {i}")
    bad = ~np.isfinite(lon) | (lon < -180) | (lon > 180)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: longitude must be in [-180, 180], got {lon[i]} at index {i}")


# --------------------------------------------------------------------------------------------
# great-circle distance
# --------------------------------------------------------------------------------------------
def _haversine(xp: Any, dphi: Array, dlmb: Array, cos1: Array, cos2: Array, radius_km: float) -> Array:
    """The haversine formula on differences in radians and the cosines of both latitudes.

    ``a`` is clipped to ``[0, 1]`` so that rounding can never take ``sqrt`` or ``asin`` out of
    their domain (antipodes, identical points).
    """
    a = xp.sin(dphi / 2) ** 2 + cos1 * cos2 * xp.sin(dlmb / 2) ** 2
    return 2 * radius_km * xp.arcsin(xp.sqrt(xp.clip(a, 0.0, 1.0)))


def haversine_km(
    lat1: Array, lon1: Array, lat2: Array, lon2: Array, radius_km: float = EARTH_RADIUS_KM
) -> Array:
    """Great-circle distance in km between points given in degrees (haversine formula).

    Differentiable for torch inputs. With a ``pl.Expr`` argument the result is a polars
    expression (floats become literals), e.g. ``haversine_km(37.8, -122.4, pl.col("lat"),
    pl.col("lon"))``.

    Args:
        lat1: Latitudes of the first points.
        lon1: Longitudes of the first points.
        lat2: Latitudes of the second points.
        lon2: Longitudes of the second points.
        radius_km: Sphere radius (default ``EARTH_RADIUS_KM``).

    Shapes: any broadcastable shapes; the result has the broadcast shape.
    """
    xp, (lat1, lon1, lat2, lon2) = _convert(lat1, lon1, lat2, lon2, polars=True)
    p1, p2 = xp.radians(lat1), xp.radians(lat2)
    return _haversine(xp, p2 - p1, xp.radians(lon2 - lon1), xp.cos(p1), xp.cos(p2), radius_km)


haversine_km_torch = haversine_km
"""The former torch-only name of :func:`haversine_km`, which takes tensors too."""


def pairwise_haversine_km(
    lat_a: Array, lon_a: Array, lat_b: Array, lon_b: Array, radius_km: float = EARTH_RADIUS_KM
) -> Array:
    """All-pairs great-circle distance matrix in km (degrees in).

    Args:
        lat_a: Latitudes of the row points.
        lon_a: Longitudes of the row points.
        lat_b: Latitudes of the column points.
        lon_b: Longitudes of the column points.
        radius_km: Sphere radius (default ``EARTH_RADIUS_KM``).

    Shapes: ``lat_a``, ``lon_a`` ``(A,)``; ``lat_b``, ``lon_b`` ``(B,)``; returns ``(A, B)``.
    """
    _, (lat_a, lon_a, lat_b, lon_b) = _convert(lat_a, lon_a, lat_b, lon_b)
    return haversine_km(lat_a[:, None], lon_a[:, None], lat_b[None, :], lon_b[None, :], radius_km)


def haversine_km_indexed(
    lat: Array, lon: Array, src: Array, dst: Array, radius_km: float = EARTH_RADIUS_KM
) -> Array:
    """Great-circle km between points ``src[e]`` and ``dst[e]`` of one point set.

    The same formula as :func:`haversine_km`, with the per-point terms (radians, cosine of the
    latitude) computed once per point and gathered per pair: for a graph's edges (many pairs
    over few points) that is 2-3x faster than :func:`haversine_km` on gathered coordinates.

    Args:
        lat: Latitudes of the points, degrees.
        lon: Longitudes of the points, degrees.
        src: Index of the first point of each pair.
        dst: Index of the second point of each pair.
        radius_km: Sphere radius (default ``EARTH_RADIUS_KM``).

    Shapes: ``lat``, ``lon`` ``(N,)``; ``src``, ``dst`` ``(E,)`` integers; returns ``(E,)``.
    """
    xp, like = _ops(lat, lon)
    lat, lon = xp.radians(xp.asarray(lat, like)), xp.radians(xp.asarray(lon, like))
    cos_lat = xp.cos(lat)
    return _haversine(xp, lat[dst] - lat[src], lon[dst] - lon[src], cos_lat[src], cos_lat[dst], radius_km)


# --------------------------------------------------------------------------------------------
# unit vectors and chords
# --------------------------------------------------------------------------------------------
def unit_xyz(lat: Array, lon: Array) -> Array:
    """Points on the unit sphere (x towards 0N 0E, z towards the north pole).

    The chord between two unit vectors is monotone in their great-circle distance, so a
    Euclidean k-d tree over them answers great-circle nearest-neighbour queries (see
    :func:`km_to_chord`, :func:`chord_to_km`).

    Args:
        lat: Latitudes in degrees.
        lon: Longitudes in degrees.

    Shapes: ``lat``, ``lon`` ``(...)``; returns ``(..., 3)`` in the dtype of the input
    (float64 for integers and lists).
    """
    xp, like = _ops(lat, lon)
    if xp is _NumpyOps:
        lat, lon = np.asarray(lat), np.asarray(lon)
    else:
        lat, lon = xp.asarray(lat, like), xp.asarray(lon, like)
    la, lo = xp.radians(lat), xp.radians(lon)
    cos_la = xp.cos(la)
    return xp.stack([cos_la * xp.cos(lo), cos_la * xp.sin(lo), xp.sin(la)])


def latlon_to_xyz(latlon: Array) -> Array:
    """:func:`unit_xyz` of ``(lat, lon)`` pairs in the last axis.

    Shapes: ``latlon`` ``(..., 2)`` degrees; returns ``(..., 3)``.
    """
    latlon = latlon if _is_tensor(latlon) else np.asarray(latlon)
    return unit_xyz(latlon[..., 0], latlon[..., 1])


def xyz_to_latlon(xyz: Array) -> Array:
    """Degrees of 3-D vectors (normalised first, so any non-zero length works).

    Shapes: ``xyz`` ``(..., 3)``; returns ``(..., 2)`` as ``(lat, lon)``, lon in ``[-180, 180]``.
    """
    xp, (xyz,) = _convert(xyz)
    xyz = xp.normalize(xyz)
    lat = xp.degrees(xp.arcsin(xp.clip(xyz[..., 2], -1.0, 1.0)))
    lon = xp.degrees(xp.arctan2(xyz[..., 1], xyz[..., 0]))
    return xp.stack([lat, lon])


def km_to_chord(km: Array, radius_km: float = EARTH_RADIUS_KM) -> Array:
    """Chord length on the unit sphere of a great-circle distance.

    Args:
        km: Great-circle distances in km.
        radius_km: Sphere radius (default ``EARTH_RADIUS_KM``).

    Shapes: any; returns the same shape.
    """
    xp, (km,) = _convert(km)
    return 2 * xp.sin(km / radius_km / 2)


def chord_to_km(chord: Array, radius_km: float = EARTH_RADIUS_KM) -> Array:
    """Great-circle km of chord lengths on the unit sphere (inverse of :func:`km_to_chord`).

    Accurate at all distances, unlike ``acos`` of a dot product near 1. Chords are clipped to
    ``[0, 2]``.

    Shapes: any; returns the same shape.
    """
    xp, (chord,) = _convert(chord)
    return 2 * radius_km * xp.arcsin(xp.clip(chord / 2, 0.0, 1.0))


def cdist_km(a_xyz: Array, b_xyz: Array, radius_km: float = EARTH_RADIUS_KM) -> Array:
    """All-pairs great-circle km between unit vectors (``torch.cdist`` chords for tensors).

    Args:
        a_xyz: Unit vectors, e.g. from :func:`latlon_to_xyz`.
        b_xyz: Unit vectors.
        radius_km: Sphere radius (default ``EARTH_RADIUS_KM``).

    Shapes: ``a_xyz`` ``(..., A, 3)``, ``b_xyz`` ``(..., B, 3)`` with equal batch dims;
    returns ``(..., A, B)``.
    """
    xp, (a_xyz, b_xyz) = _convert(a_xyz, b_xyz)
    return chord_to_km(xp.cdist(a_xyz, b_xyz), radius_km)


# --------------------------------------------------------------------------------------------
# bearing and destination
# --------------------------------------------------------------------------------------------
def initial_bearing_deg(lat1: Array, lon1: Array, lat2: Array, lon2: Array) -> Array:
    """Initial bearing (forward azimuth) of the great circle from point 1 to point 2.

    Args:
        lat1: Latitudes of the start points, degrees.
        lon1: Longitudes of the start points, degrees.
        lat2: Latitudes of the end points, degrees.
        lon2: Longitudes of the end points, degrees.

    Shapes: any broadcastable shapes; returns degrees clockwise from north in ``[0, 360)``
    with the broadcast shape (0 for identical points).
    """
    xp, (lat1, lon1, lat2, lon2) = _convert(lat1, lon1, lat2, lon2)
    p1, p2 = xp.radians(lat1), xp.radians(lat2)
    dlmb = xp.radians(lon2 - lon1)
    y = xp.sin(dlmb) * xp.cos(p2)
    x = xp.cos(p1) * xp.sin(p2) - xp.sin(p1) * xp.cos(p2) * xp.cos(dlmb)
    return (xp.degrees(xp.arctan2(y, x)) + 360.0) % 360.0


def destination_point(
    lat: Array, lon: Array, bearing_deg: Array, distance_km: Array, radius_km: float = EARTH_RADIUS_KM
) -> tuple[Array, Array]:
    """The point ``distance_km`` along the great circle leaving ``(lat, lon)`` at ``bearing_deg``.

    Args:
        lat: Latitudes of the start points, degrees.
        lon: Longitudes of the start points, degrees.
        bearing_deg: Initial bearings, degrees clockwise from north.
        distance_km: Distances to travel, km (>= 0).
        radius_km: Sphere radius (default ``EARTH_RADIUS_KM``).

    Shapes: any broadcastable shapes; returns ``(lat, lon)`` with the broadcast shape, lon in
    ``[-180, 180)``.
    """
    xp, (lat, lon, bearing_deg, distance_km) = _convert(lat, lon, bearing_deg, distance_km)
    p1, l1, theta = xp.radians(lat), xp.radians(lon), xp.radians(bearing_deg)
    delta = distance_km / radius_km
    sin_p2 = xp.clip(xp.sin(p1) * xp.cos(delta) + xp.cos(p1) * xp.sin(delta) * xp.cos(theta), -1.0, 1.0)
    p2 = xp.arcsin(sin_p2)
    l2 = l1 + xp.arctan2(xp.sin(theta) * xp.sin(delta) * xp.cos(p1), xp.cos(delta) - xp.sin(p1) * sin_p2)
    return xp.degrees(p2), (xp.degrees(l2) + 540.0) % 360.0 - 180.0


def offset_km(lat: Array, lon: Array, north_km: Array, east_km: Array) -> tuple[Array, Array]:
    """Move points by small north / east offsets in km (equirectangular approximation).

    A local flat-earth step, not a great circle: good to well under 1 % for offsets of tens of
    km away from the poles (use :func:`destination_point` for long distances). Latitudes are
    clipped to ``[-89.9, 89.9]``; the east step is scaled by the cosine of the new latitude;
    longitudes wrap to ``[-180, 180)``.

    Args:
        lat: Latitudes, degrees.
        lon: Longitudes, degrees.
        north_km: Northward offsets, km (negative: south).
        east_km: Eastward offsets, km (negative: west).

    Shapes: any broadcastable shapes; returns ``(lat, lon)`` with the broadcast shape.
    """
    xp, (lat, lon, north_km, east_km) = _convert(lat, lon, north_km, east_km)
    km_per_deg = math.pi * EARTH_RADIUS_KM / 180.0
    new_lat = xp.clip(lat + north_km / km_per_deg, -89.9, 89.9)
    new_lon = lon + east_km / (km_per_deg * xp.cos(xp.radians(new_lat)))
    return new_lat, (new_lon + 180.0) % 360.0 - 180.0


def bounding_box(
    lat: Array, lon: Array, radius_km: float, earth_radius_km: float = EARTH_RADIUS_KM
) -> tuple[float, float, float, float]:
    """A latitude / longitude box that contains every point within ``radius_km`` of the points.

    A cheap pre-filter for an exact great-circle test: the longitude margin uses the cosine of
    the highest latitude the circles reach (capped at 89 degrees), so it is a superset. The box
    is not wrapped at the antimeridian (``west`` may be below -180, ``east`` above 180).

    Args:
        lat: Latitudes of the points, degrees (one point: a float).
        lon: Longitudes of the points, degrees.
        radius_km: Radius around each point, km (>= 0).
        earth_radius_km: Sphere radius (default ``EARTH_RADIUS_KM``).

    Shapes: ``lat``, ``lon`` any (equal) non-empty shape; returns Python floats
    ``(south, north, west, east)``.

    Raises:
        ValueError: if ``radius_km`` is negative or there are no points.
    """
    if radius_km < 0:
        raise ValueError(f"radius_km must be >= 0, got {radius_km}")
    lat = lat if _is_tensor(lat) else np.asarray(lat, dtype=np.float64)
    lon = lon if _is_tensor(lon) else np.asarray(lon, dtype=np.float64)
    if (lat.numel() if _is_tensor(lat) else lat.size) == 0:
        raise ValueError("bounding_box needs at least one point, got none")
    lat_min, lat_max, lon_min, lon_max = (float(x) for x in (lat.min(), lat.max(), lon.min(), lon.max()))
    dlat = float(np.degrees(radius_km / earth_radius_km))
    coslat = max(float(np.cos(np.radians(min(89.0, max(abs(lat_min), abs(lat_max)) + dlat)))), 1e-6)
    dlon = min(180.0, dlat / coslat)
    return lat_min - dlat, lat_max + dlat, lon_min - dlon, lon_max + dlon


__all__ = [
    "bounding_box",
    "cdist_km",
    "check_lat_lon",
    "chord_to_km",
    "destination_point",
    "haversine_km",
    "haversine_km_indexed",
    "haversine_km_torch",
    "initial_bearing_deg",
    "km_to_chord",
    "latlon_to_xyz",
    "offset_km",
    "pairwise_haversine_km",
    "unit_xyz",
    "xyz_to_latlon",
]
