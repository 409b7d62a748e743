"""The vectorised H3 layer (h3ronpy) against the h3 library, cell for cell."""

from __future__ import annotations

import h3
import numpy as np
import polars as pl
import pytest

from geograph.geo.h3cells import (
    as_cell_ids,
    cell_area_km2,
    cell_centers,
    cell_parents,
    cell_resolutions,
    cells_from_strings,
    cells_to_string_series,
    cells_to_strings,
    grid_disks,
    latlng_to_cell_ids,
    latlng_to_cells,
)

# poles, the antimeridian from both sides, the equator / prime meridian, and near-pole points
EDGE_POINTS = np.array(
    [
        (90.0, 0.0),
        (-90.0, 0.0),
        (90.0, 180.0),
        (-90.0, -180.0),
        (0.0, 180.0),
        (0.0, -180.0),
        (45.0, 179.999999),
        (45.0, -179.999999),
        (-89.99999, 179.5),
        (89.99999, -0.001),
        (0.0, 0.0),
        (1e-12, -1e-12),
        (64.1, -21.9),
        (-33.9, 151.2),
    ]
)


def _points(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))  # uniform on the sphere
    lon = rng.uniform(-180.0, 180.0, n)
    return np.concatenate([lat, EDGE_POINTS[:, 0]]), np.concatenate([lon, EDGE_POINTS[:, 1]])


@pytest.mark.parametrize("res", [0, 1, 5, 7, 9, 12, 15])
def test_points_to_cells_match_h3(res):
    lat, lon = _points(res)
    ids = latlng_to_cell_ids(lat, lon, res)
    assert ids.dtype == np.uint64 and ids.shape == lat.shape
    ref = [h3.latlng_to_cell(a, b, res) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)]
    assert ids.tolist() == [h3.str_to_int(c) for c in ref]
    assert latlng_to_cells(lat, lon, res) == ref
    assert cells_to_strings(ids) == ref
    assert cells_from_strings(ref).tolist() == ids.tolist()
    assert (cell_resolutions(ids) == res).all()


def test_uint64_order_is_string_order():
    lat, lon = _points(1)
    ids = np.concatenate([latlng_to_cell_ids(lat, lon, r) for r in (0, 4, 8, 15)])
    text = cells_to_strings(ids)
    assert {len(t) for t in text} == {15}
    assert [text[i] for i in np.argsort(ids, kind="stable")] == sorted(text)


def test_centres_and_areas_are_h3s_bit_for_bit():
    lat, lon = _points(2, 500)
    ids = np.unique(latlng_to_cell_ids(lat, lon, 6))
    text = cells_to_strings(ids)
    np.testing.assert_array_equal(cell_centers(ids), np.asarray([h3.cell_to_latlng(c) for c in text]))
    np.testing.assert_array_equal(cell_centers(text), cell_centers(ids))
    np.testing.assert_array_equal(cell_area_km2(ids), [h3.cell_area(c, unit="km^2") for c in text])
    assert cell_centers(np.zeros(0, dtype=np.uint64)).shape == (0, 2)


@pytest.mark.parametrize("res", [3, 9])
def test_parents_match_h3(res):
    lat, lon = _points(3, 500)
    ids = latlng_to_cell_ids(lat, lon, 10)
    ref = [h3.str_to_int(h3.cell_to_parent(c, res)) for c in cells_to_strings(ids)]
    assert cell_parents(ids, res).tolist() == ref
    assert cell_parents(ids, 10).tolist() == ids.tolist()
    with pytest.raises(ValueError, match="finer than"):
        cell_parents(ids, 11)


@pytest.mark.parametrize("k", [1, 2])
def test_grid_disks_are_h3_grid_disk_in_order_incl_pentagons(k):
    lat, lon = _points(4, 400)
    pentagons = [h3.str_to_int(p) for p in h3.get_pentagons(5)]
    # the pentagons and cells beside them (where the two libraries order disks differently)
    beside = [h3.str_to_int(n) for p in h3.get_pentagons(5)[:3] for n in h3.grid_ring(p, 1)]
    ids = np.unique(
        np.concatenate([latlng_to_cell_ids(lat, lon, 5), np.asarray(pentagons + beside, np.uint64)])
    )
    offsets, disk = grid_disks(ids, k)
    assert offsets.shape == (len(ids) + 1,) and disk.dtype == np.uint64
    for i, c in enumerate(ids.tolist()):
        assert disk[offsets[i] : offsets[i + 1]].tolist() == h3.api.basic_int.grid_disk(c, k)


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match="h3 resolution must be 0..15, got 16"):
        latlng_to_cell_ids([0.0], [0.0], 16)
    with pytest.raises(ValueError, match="same length"):
        latlng_to_cell_ids([0.0, 1.0], [0.0], 5)
    with pytest.raises(ValueError, match="position 1: 'nope'"):
        cells_from_strings(["8828308281fffff", "nope"])
    with pytest.raises(ValueError, match="k must be an integer >= 0, got -1"):
        grid_disks(np.asarray([h3.str_to_int("8828308281fffff")], np.uint64), -1)


def test_edges_of_empty_and_mixed_inputs():
    assert latlng_to_cell_ids([], [], 7).shape == (0,)
    assert cells_to_strings(np.zeros(0, np.uint64)) == []
    cell = "8828308281fffff"
    as_int = h3.str_to_int(cell)
    for given in ([cell], [as_int], np.asarray([as_int], np.uint64), pl.Series([as_int], dtype=pl.UInt64)):
        assert as_cell_ids(given).tolist() == [as_int]
    s = cells_to_string_series(pl.Series([as_int, None], dtype=pl.UInt64), "h3_cell")
    assert s.name == "h3_cell" and s.to_list() == [cell, None]
