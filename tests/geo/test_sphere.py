"""Sphere geometry: one formula per quantity, the same numbers from NumPy, torch and polars."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch

from geograph.constants import EARTH_RADIUS_KM
from geograph.geo import (
    bounding_box,
    cdist_km,
    chord_to_km,
    destination_point,
    haversine_km,
    haversine_km_indexed,
    initial_bearing_deg,
    km_to_chord,
    latlon_to_xyz,
    offset_km,
    pairwise_haversine_km,
    unit_xyz,
    xyz_to_latlon,
)

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)

rng = np.random.default_rng(0)
LAT1, LON1 = rng.uniform(-80, 80, 200), rng.uniform(-180, 180, 200)
LAT2, LON2 = rng.uniform(-80, 80, 200), rng.uniform(-180, 180, 200)


def _t(*xs: np.ndarray, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    return [torch.as_tensor(x, dtype=dtype) for x in xs]


def _same(np_out, torch_out, rtol: float = 1e-12, atol: float = 1e-9) -> None:
    if isinstance(np_out, tuple):
        for a, b in zip(np_out, torch_out, strict=True):
            _same(a, b, rtol, atol)
        return
    assert isinstance(torch_out, torch.Tensor) and isinstance(np_out, (np.ndarray, np.floating))
    np.testing.assert_allclose(torch_out.numpy(), np_out, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------------
# NumPy and torch agree, and each returns its own kind
# --------------------------------------------------------------------------------------------
def test_numpy_and_torch_give_the_same_values():
    a = (LAT1, LON1, LAT2, LON2)
    _same(haversine_km(*a), haversine_km(*_t(*a)))
    _same(pairwise_haversine_km(*a), pairwise_haversine_km(*_t(*a)))
    _same(initial_bearing_deg(*a), initial_bearing_deg(*_t(*a)), atol=1e-9)
    bearing, dist = rng.uniform(0, 360, 200), rng.uniform(0, 5000, 200)
    _same(destination_point(LAT1, LON1, bearing, dist), destination_point(*_t(LAT1, LON1, bearing, dist)))
    north, east = rng.normal(0, 20, 200), rng.normal(0, 20, 200)
    _same(offset_km(LAT1, LON1, north, east), offset_km(*_t(LAT1, LON1, north, east)))
    _same(unit_xyz(LAT1, LON1), unit_xyz(*_t(LAT1, LON1)))
    ll = np.stack([LAT1, LON1], 1)
    _same(latlon_to_xyz(ll), latlon_to_xyz(torch.as_tensor(ll)))
    xyz = unit_xyz(LAT1, LON1) * 2.5
    _same(xyz_to_latlon(xyz), xyz_to_latlon(torch.as_tensor(xyz)))
    _same(km_to_chord(dist), km_to_chord(torch.as_tensor(dist)))
    chord = rng.uniform(0, 2, 200)
    _same(chord_to_km(chord), chord_to_km(torch.as_tensor(chord)))
    xa, xb = unit_xyz(LAT1[:20], LON1[:20]), unit_xyz(LAT2, LON2)
    _same(cdist_km(xa, xb), cdist_km(torch.as_tensor(xa), torch.as_tensor(xb)), atol=1e-6)
    src, dst = rng.integers(0, 200, 500), rng.integers(0, 200, 500)
    _same(haversine_km_indexed(LAT1, LON1, src, dst), haversine_km_indexed(*_t(LAT1, LON1), src, dst))
    assert bounding_box(LAT1, LON1, 300.0) == bounding_box(*_t(LAT1, LON1), 300.0)


def test_torch_keeps_dtype_and_numpy_computes_in_float64():
    lat1, lon1, lat2, lon2 = _t(LAT1, LON1, LAT2, LON2, dtype=torch.float32)
    assert haversine_km(lat1, lon1, lat2, lon2).dtype == torch.float32
    assert unit_xyz(lat1, lon1).dtype == torch.float32
    assert destination_point(lat1, lon1, 90.0, 10.0)[0].dtype == torch.float32  # floats join the tensor
    assert haversine_km(LAT1.astype(np.float32), LON1, LAT2, LON2).dtype == np.float64
    # unit vectors keep a float32 input's dtype (the graph builder's neighbour distances rely on it)
    assert unit_xyz(LAT1.astype(np.float32), LON1.astype(np.float32)).dtype == np.float32
    assert unit_xyz([0.0], [0.0]).shape == (1, 3)


def test_polars_expression_equals_numpy():
    df = pl.DataFrame({"a": LAT1, "b": LON1, "c": LAT2, "d": LON2})
    got = df.select(haversine_km(pl.col("a"), pl.col("b"), pl.col("c"), pl.col("d"))).to_series().to_numpy()
    np.testing.assert_allclose(got, haversine_km(LAT1, LON1, LAT2, LON2), rtol=1e-12)
    lit = df.select(haversine_km(*PARIS, pl.col("c"), pl.col("d"))).to_series().to_numpy()
    np.testing.assert_allclose(lit, haversine_km(*PARIS, LAT2, LON2), rtol=1e-12)
    with pytest.raises(TypeError, match="polars expression"):
        unit_xyz(pl.col("a"), pl.col("b"))


def test_import_does_not_load_torch():
    code = "import sys, geograph.geo; assert 'torch' not in sys.modules and 'polars' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------
# known values
# --------------------------------------------------------------------------------------------
def test_known_distances():
    assert float(haversine_km(*PARIS, *LONDON)) == pytest.approx(343.5, abs=0.5)
    assert float(haversine_km(0.0, 0.0, 0.0, 180.0)) == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)
    assert float(haversine_km(45.0, 10.0, -45.0, -170.0)) == pytest.approx(
        math.pi * EARTH_RADIUS_KM, rel=1e-12
    )
    assert float(haversine_km(0.0, 0.0, 0.0, 180.0, radius_km=6371.0)) == pytest.approx(
        math.pi * 6371.0, rel=1e-12
    )
    d = haversine_km(*_t(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([180.0])))
    assert float(d) == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)
    assert float(haversine_km(10.0, 20.0, 10.0, 20.0)) == 0.0
    # one degree of a great circle
    assert float(haversine_km(0.0, 0.0, 1.0, 0.0)) == pytest.approx(
        math.pi * EARTH_RADIUS_KM / 180, rel=1e-12
    )


def test_known_bearings():
    got = initial_bearing_deg(0.0, 0.0, [10.0, 0.0, -10.0, 0.0], [0.0, 10.0, 0.0, -10.0])
    np.testing.assert_allclose(got, [0.0, 90.0, 180.0, 270.0], atol=1e-9)
    # Paris -> London heads north-west
    assert 300.0 < float(initial_bearing_deg(*PARIS, *LONDON)) < 340.0


def test_known_destinations():
    quarter = math.pi * EARTH_RADIUS_KM / 2
    lat, lon = destination_point(0.0, 0.0, 90.0, quarter)
    assert (float(lat), float(lon)) == pytest.approx((0.0, 90.0), abs=1e-9)
    lat, lon = destination_point(0.0, 0.0, 0.0, quarter)
    assert float(lat) == pytest.approx(90.0, abs=1e-9)
    # 20 degrees east of 170E: over the antimeridian
    lat, lon = destination_point(0.0, 170.0, 90.0, 20 * math.pi * EARTH_RADIUS_KM / 180)
    assert (float(lat), float(lon)) == pytest.approx((0.0, -170.0), abs=1e-9)


def test_bearing_destination_round_trip():
    # away from antipodes, where the bearing is undefined
    d = haversine_km(LAT1, LON1, LAT2, LON2)
    ok = d < 0.9 * math.pi * EARTH_RADIUS_KM
    b = initial_bearing_deg(LAT1, LON1, LAT2, LON2)
    lat, lon = destination_point(LAT1, LON1, b, d)
    assert (haversine_km(lat, lon, LAT2, LON2)[ok] < 1e-6).all()
    lat_t, lon_t = destination_point(
        *_t(LAT1, LON1), initial_bearing_deg(*_t(LAT1, LON1, LAT2, LON2)), torch.as_tensor(d)
    )
    assert (haversine_km(lat_t, lon_t, *_t(LAT2, LON2))[torch.as_tensor(ok)] < 1e-6).all()
    # a destination is at the requested distance
    dist = rng.uniform(0, 10000, 200)
    lat, lon = destination_point(LAT1, LON1, rng.uniform(0, 360, 200), dist)
    np.testing.assert_allclose(haversine_km(LAT1, LON1, lat, lon), dist, atol=1e-6)
    assert ((lon >= -180) & (lon < 180)).all()


def test_unit_vectors_and_chords():
    xyz = unit_xyz(LAT1, LON1)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(unit_xyz(0.0, 0.0), [1.0, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(unit_xyz(90.0, 0.0), [0.0, 0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(xyz_to_latlon(xyz), np.stack([LAT1, LON1], 1), atol=1e-9)
    ll = torch.as_tensor(np.stack([LAT1, LON1], 1)).reshape(10, 20, 2)
    assert latlon_to_xyz(ll).shape == (10, 20, 3)
    assert torch.allclose(xyz_to_latlon(latlon_to_xyz(ll)), ll)
    # chord length is monotone in great-circle distance, and the conversions invert each other
    d = haversine_km(LAT1, LON1, LAT2, LON2)
    chord = np.linalg.norm(unit_xyz(LAT1, LON1) - unit_xyz(LAT2, LON2), axis=-1)
    np.testing.assert_allclose(chord_to_km(chord), d, atol=1e-6)
    np.testing.assert_allclose(km_to_chord(d), chord, atol=1e-12)
    assert float(chord_to_km(2.0000001)) == pytest.approx(math.pi * EARTH_RADIUS_KM)  # clipped
    np.testing.assert_allclose(
        cdist_km(unit_xyz(LAT1[:20], LON1[:20]), unit_xyz(LAT2, LON2)),
        pairwise_haversine_km(LAT1[:20], LON1[:20], LAT2, LON2),
        atol=1e-6,
    )


def test_indexed_equals_gathered():
    src, dst = rng.integers(0, 200, 1000), rng.integers(0, 200, 1000)
    np.testing.assert_allclose(
        haversine_km_indexed(LAT1, LON1, src, dst),
        haversine_km(LAT1[src], LON1[src], LAT1[dst], LON1[dst]),
        rtol=1e-12,
    )


def test_offset_is_close_to_great_circle_for_small_steps():
    north, east = rng.normal(0, 10, 200), rng.normal(0, 10, 200)
    lat, lon = offset_km(LAT1, LON1, north, east)
    np.testing.assert_allclose(
        haversine_km(LAT1, LON1, lat, lon), np.hypot(north, east), rtol=5e-3, atol=1e-3
    )
    lat, _ = offset_km(89.0, 0.0, 500.0, 0.0)
    assert float(lat) == 89.9  # clipped short of the pole


# --------------------------------------------------------------------------------------------
# bounding boxes
# --------------------------------------------------------------------------------------------
def _in_lon_range(lon: np.ndarray, west: float, east: float) -> np.ndarray:
    """Whether ``lon`` (in [-180, 180)) lies in the unwrapped range ``[west, east]``."""
    return np.any([(lon + k >= west) & (lon + k <= east) for k in (-360.0, 0.0, 360.0)], axis=0)


@pytest.mark.parametrize("lat", [0.0, 33.0, 60.0, -72.0, 85.0])
@pytest.mark.parametrize("radius_km", [1.0, 50.0, 500.0, 2500.0])
def test_bbox_contains_the_circle(lat, radius_km):
    south, north, west, east = bounding_box(lat, 170.0, radius_km)  # near the antimeridian
    eps = 1e-9  # the circle's northernmost and southernmost points lie on the box, up to rounding
    bearings = np.linspace(0.0, 360.0, 721)
    for r in (radius_km, radius_km * 0.5):
        clat, clon = destination_point(lat, 170.0, bearings, r)
        assert ((clat >= south - eps) & (clat <= north + eps)).all()
        assert _in_lon_range(clon, west, east).all()
    # and it is not absurdly loose near the equator
    if abs(lat) < 40 and radius_km <= 500:
        assert north - south == pytest.approx(2 * math.degrees(radius_km / EARTH_RADIUS_KM))


def test_bbox_of_several_points_and_errors():
    lat, lon = np.array([30.0, 35.0]), np.array([-100.0, -90.0])
    south, north, west, east = bounding_box(lat, lon, 100.0)
    for la, lo in zip(lat, lon, strict=True):
        clat, clon = destination_point(la, lo, np.linspace(0, 360, 361), 100.0)
        assert ((clat >= south - 1e-9) & (clat <= north + 1e-9) & _in_lon_range(clon, west, east)).all()
    assert all(isinstance(v, float) for v in (south, north, west, east))
    with pytest.raises(ValueError, match="radius_km must be >= 0, got -1"):
        bounding_box(0.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="at least one point"):
        bounding_box([], [], 1.0)
