"""Geo core: sphere geometry (distances, bearings, unit vectors), H3 helpers, Equal Earth."""

from geograph.geo.h3cells import cell_area_km2, cell_centers, cell_neighbors, latlng_to_cells
from geograph.geo.projection import equal_earth, equal_earth_torch
from geograph.geo.sphere import (
    bounding_box,
    cdist_km,
    check_lat_lon,
    chord_to_km,
    destination_point,
    haversine_km,
    haversine_km_indexed,
    haversine_km_torch,
    initial_bearing_deg,
    km_to_chord,
    latlon_to_xyz,
    offset_km,
    pairwise_haversine_km,
    unit_xyz,
    xyz_to_latlon,
)

__all__ = [
    "haversine_km",
    "haversine_km_torch",
    "pairwise_haversine_km",
    "haversine_km_indexed",
    "cdist_km",
    "initial_bearing_deg",
    "destination_point",
    "offset_km",
    "bounding_box",
    "unit_xyz",
    "latlon_to_xyz",
    "xyz_to_latlon",
    "km_to_chord",
    "chord_to_km",
    "check_lat_lon",
    "latlng_to_cells",
    "cell_centers",
    "cell_neighbors",
    "cell_area_km2",
    "equal_earth",
    "equal_earth_torch",
]
