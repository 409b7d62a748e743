"""Geo core: haversine (NumPy and torch), H3 helpers, Equal Earth, coordinate checks."""

from __future__ import annotations

import math

import h3
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geograph.constants import EARTH_RADIUS_KM
from geograph.geo import (
    cell_area_km2,
    cell_centers,
    cell_neighbors,
    check_lat_lon,
    equal_earth,
    equal_earth_torch,
    haversine_km,
    haversine_km_torch,
    latlng_to_cells,
    pairwise_haversine_km,
)

JFK = (40.6413, -73.7781)
LAX = (33.9416, -118.4085)
POINTS = np.array(
    [
        JFK,
        LAX,
        (51.4700, -0.4543),
        (-33.9399, 151.1753),
        (0.0, 0.0),
        (89.9, 45.0),
        (-89.5, -179.9),
        (35.5, 179.99),
    ]
)

lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-180, 180, allow_nan=False)


# --------------------------------------------------------------------------------------------
# distances
# --------------------------------------------------------------------------------------------
def test_jfk_to_lax():
    d = float(haversine_km(*JFK, *LAX))
    assert abs(d - 3983) < 10


def test_torch_equals_numpy():
    lat1, lon1 = POINTS[:, 0], POINTS[:, 1]
    lat2, lon2 = POINTS[::-1, 0].copy(), POINTS[::-1, 1].copy()
    ref = haversine_km(lat1, lon1, lat2, lon2)
    got = haversine_km_torch(*(torch.as_tensor(a, dtype=torch.float64) for a in (lat1, lon1, lat2, lon2)))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-9)
    got32 = haversine_km_torch(*(torch.as_tensor(a, dtype=torch.float32) for a in (lat1, lon1, lat2, lon2)))
    np.testing.assert_allclose(got32.numpy(), ref, rtol=1e-4, atol=0.5)


def test_torch_is_differentiable():
    lat = torch.tensor([40.0], dtype=torch.float64, requires_grad=True)
    d = haversine_km_torch(lat, torch.tensor([-74.0]), torch.tensor([34.0]), torch.tensor([-118.0]))
    d.sum().backward()
    assert lat.grad is not None and torch.isfinite(lat.grad).all()


def test_special_distances_and_shapes():
    assert haversine_km(10.0, 20.0, 10.0, 20.0) == 0.0
    assert math.isclose(float(haversine_km(0, 0, 0, 180)), math.pi * EARTH_RADIUS_KM, rel_tol=1e-12)
    assert math.isclose(float(haversine_km(90, 0, -90, 0)), math.pi * EARTH_RADIUS_KM, rel_tol=1e-12)
    assert haversine_km(POINTS[:, 0], POINTS[:, 1], 0.0, 0.0).shape == (len(POINTS),)  # broadcasting
    m = pairwise_haversine_km(POINTS[:3, 0], POINTS[:3, 1], POINTS[:, 0], POINTS[:, 1])
    assert m.shape == (3, len(POINTS))
    np.testing.assert_allclose(np.diag(m[:, :3]), 0.0, atol=1e-9)
    assert math.isclose(m[0, 1], float(haversine_km(*JFK, *LAX)))


@settings(max_examples=60, deadline=None)
@given(lats, lons, lats, lons, lats, lons)
def test_metric_properties(a1, o1, a2, o2, a3, o3):
    ab = float(haversine_km(a1, o1, a2, o2))
    assert ab == pytest.approx(float(haversine_km(a2, o2, a1, o1)), abs=1e-6)
    assert 0.0 <= ab <= math.pi * EARTH_RADIUS_KM + 1e-6
    ac, cb = float(haversine_km(a1, o1, a3, o3)), float(haversine_km(a3, o3, a2, o2))
    assert ab <= ac + cb + 1e-6


# --------------------------------------------------------------------------------------------
# H3
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("res", [0, 5, 9, 15])
def test_latlng_to_cells_matches_h3(res):
    got = latlng_to_cells(POINTS[:, 0], POINTS[:, 1], res)
    assert got == [h3.latlng_to_cell(a, b, res) for a, b in POINTS]


@pytest.mark.parametrize("k", [1, 2])
def test_cell_neighbors_is_grid_disk_minus_cell(k):
    cell = h3.latlng_to_cell(*JFK, 8)
    got = cell_neighbors(cell, k)
    assert cell not in got
    assert set(got) == set(h3.grid_disk(cell, k)) - {cell}
    assert len(got) == 3 * k * (k + 1)  # hexagon: 6, 18
    pentagon = h3.get_pentagons(4)[0]
    assert set(cell_neighbors(pentagon)) == set(h3.grid_disk(pentagon, 1)) - {pentagon}
    assert len(cell_neighbors(pentagon)) == 5
    assert cell_neighbors(cell, 0) == []


@pytest.mark.parametrize("res", [16, -1, 1.5, "8"])
def test_bad_resolution_raises(res):
    with pytest.raises(ValueError, match="h3 resolution must be 0..15"):
        latlng_to_cells([0.0], [0.0], res)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="k must be >= 0"):
        cell_neighbors(h3.latlng_to_cell(0, 0, 5), -1)
    with pytest.raises(ValueError, match="latitude"):
        latlng_to_cells([91.0], [0.0], 5)


def test_cell_centers_and_areas():
    cells = latlng_to_cells(POINTS[:, 0], POINTS[:, 1], 7)
    centers = cell_centers(cells)
    assert centers.shape == (len(POINTS), 2)
    # a point lies within one cell edge (~1.4 km at res 7) of its cell centre
    assert (haversine_km(centers[:, 0], centers[:, 1], POINTS[:, 0], POINTS[:, 1]) < 2.0).all()
    assert cell_centers([]).shape == (0, 2)
    areas = cell_area_km2(cells)
    np.testing.assert_allclose(areas, [h3.cell_area(c, unit="km^2") for c in cells])
    assert ((areas > 3.0) & (areas < 6.5)).all()  # res 7 cells are ~5.2 km^2 on average


# --------------------------------------------------------------------------------------------
# Equal Earth
# --------------------------------------------------------------------------------------------
def _equal_earth_reference(lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """Šavrič, Patterson & Jenny (2018), eqs. 1-2, unit sphere, written out independently.

    sin(theta) = sqrt(3)/2 sin(phi)
    x = 2 sqrt(3) lambda cos(theta) / (3 (9 A4 theta^8 + 7 A3 theta^6 + 3 A2 theta^2 + A1))
    y = A4 theta^9 + A3 theta^7 + A2 theta^3 + A1 theta
    then scaled by 66.50336 / 180 as GeoCLIP does.
    """
    a1, a2, a3, a4 = 1.340264, -0.081106, 0.000893, 0.003796  # published coefficients
    phi, lam = math.radians(lat_deg), math.radians(lon_deg)
    theta = math.asin(math.sqrt(3.0) / 2.0 * math.sin(phi))
    x = 2.0 * math.sqrt(3.0) * lam * math.cos(theta)
    x /= 3.0 * (9.0 * a4 * theta**8 + 7.0 * a3 * theta**6 + 3.0 * a2 * theta**2 + a1)
    y = theta * (a1 + theta**2 * (a2 + theta**4 * (a3 + a4 * theta**2)))  # Horner form
    scale = 66.50336 / 180.0
    return x * scale, y * scale


def test_equal_earth_matches_published_formula():
    got = equal_earth(POINTS[:, 0], POINTS[:, 1])
    ref = np.array([_equal_earth_reference(a, b) for a, b in POINTS])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_equal_earth_known_values():
    np.testing.assert_allclose(equal_earth([0.0], [0.0]), [[0.0, 0.0]], atol=1e-15)
    # closed forms of the published equations: at the pole theta = pi/3 exactly, on the
    # equator theta = 0 so x = 2 sqrt(3) pi / (3 A1) at lon 180
    a1, a2, a3, a4 = 1.340264, -0.081106, 0.000893, 0.003796
    t = math.pi / 3
    scale = 66.50336 / 180.0
    (_, y_pole), (x_edge, _) = equal_earth([90.0, 0.0], [0.0, 180.0])
    assert y_pole == pytest.approx((a1 * t + a2 * t**3 + a3 * t**7 + a4 * t**9) * scale, rel=1e-12)
    assert y_pole == pytest.approx(1.3173627591574 * scale, rel=1e-12)  # unit-sphere pole height
    assert x_edge == pytest.approx(2 * math.sqrt(3) * math.pi / (3 * a1) * scale, rel=1e-12)
    assert x_edge == pytest.approx(1.0, abs=1e-3)  # GeoCLIP's scaling puts the equator edge at ~1
    # symmetric in both axes
    a = equal_earth([30.0, -30.0], [60.0, -60.0])
    np.testing.assert_allclose(a[0], -a[1])


def test_equal_earth_torch_equals_numpy():
    t = equal_earth_torch(torch.as_tensor(POINTS, dtype=torch.float64))
    assert t.shape == (len(POINTS), 2) and t.dtype == torch.float64
    np.testing.assert_allclose(t.numpy(), equal_earth(POINTS[:, 0], POINTS[:, 1]), rtol=1e-12)
    t32 = equal_earth_torch(torch.as_tensor(POINTS, dtype=torch.float32))
    np.testing.assert_allclose(t32.numpy(), t.numpy(), atol=1e-6)


# --------------------------------------------------------------------------------------------
# check_lat_lon
# --------------------------------------------------------------------------------------------
def test_check_lat_lon_accepts_valid():
    check_lat_lon(POINTS[:, 0], POINTS[:, 1])
    check_lat_lon([90.0, -90.0], [180.0, -180.0])


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [
        ([0.0, 91.0], [0.0, 0.0], r"latitude must be in \[-90, 90\], got 91.0 at index 1"),
        ([0.0, float("nan")], [0.0, 0.0], r"latitude .* got nan at index 1"),
        ([0.0, 0.0, 0.0], [0.0, 0.0, -181.0], r"longitude must be in \[-180, 180\], got -181.0 at index 2"),
        ([0.0], [float("inf")], r"longitude .* got inf at index 0"),
    ],
)
def test_check_lat_lon_errors(lat, lon, match):
    with pytest.raises(ValueError, match=match):
        check_lat_lon(lat, lon, what="points")
    with pytest.raises(ValueError, match="^points: "):
        check_lat_lon(lat, lon, what="points")
