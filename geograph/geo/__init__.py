"""Geo core: great-circle distances, H3 helpers, the Equal Earth projection."""

from geograph.geo.distance import check_lat_lon, haversine_km, haversine_km_torch, pairwise_haversine_km
from geograph.geo.h3cells import cell_area_km2, cell_centers, cell_neighbors, latlng_to_cells
from geograph.geo.projection import equal_earth, equal_earth_torch

__all__ = [
    "haversine_km",
    "haversine_km_torch",
    "pairwise_haversine_km",
    "check_lat_lon",
    "latlng_to_cells",
    "cell_centers",
    "cell_neighbors",
    "cell_area_km2",
    "equal_earth",
    "equal_earth_torch",
]
